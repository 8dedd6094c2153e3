"""asv benchmarks for cpbench: thin classes, one file per stage family; logic lives in src/cpbench.

asv runs each benchmark in a temporary directory, so the data directory is pinned here to the
repository's data/ (override with CPBENCH_DATA).
"""

import os
from pathlib import Path

os.environ.setdefault("CPBENCH_DATA", str(Path(__file__).resolve().parents[1] / "data"))

# Every benchmark process imports the same heavy modules, so that bench_reference.peakmem_reference
# (a process that imports them and does nothing) is the common baseline of every peakmem_*.
import cellpose.models  # noqa: E402,F401
import torch  # noqa: E402,F401
