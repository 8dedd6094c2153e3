"""asv benchmarks for cpbench: thin classes, one file per stage family; logic lives in src/cpbench.

asv runs each benchmark in a temporary directory, so the data directory is pinned here to the
repository's data/ (override with CPBENCH_DATA).

Every benchmark class (and ``peakmem_reference``) sets an explicit asv ``version``. asv's default
is a hash of the benchmark's source *including the inherited* ``Stage.setup``/``time_stage`` in
``src/cpbench``, so without it any edit or move of library code would make earlier results
incomparable (``asv compare`` shows "x"). Bump a class's version only when what it measures changes.
"""

import os
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("CPBENCH_DATA", str(_ROOT / "data"))

# The cpbench library comes from this checkout, whatever environment asv runs in: asv's
# environments hold Cellpose (built per commit) and benchmarks/requirements.txt, not cpbench, so that
# the suite and its library are always the same version and cpbench is never Cellpose's dependency.
if str(_ROOT / "src") not in sys.path:
    sys.path.insert(0, str(_ROOT / "src"))

# Threads fixed before numpy/torch/numba are imported ($CPBENCH_THREADS, default 2; recorded by
# bench_reference.track_threads). Only environment variables here: torch must not start its thread
# pool in asv's forkserver (forked benchmarks would deadlock).
from cpbench.measure.suite import pin_threads  # noqa: E402

pin_threads()

# Every benchmark process imports the same heavy modules, so that bench_reference.peakmem_reference
# (a process that imports them and does nothing) is the common baseline of every peakmem_*.
import cellpose.models  # noqa: E402,F401
import torch  # noqa: E402,F401
