"""The program a deep-dive runs: one benchmark's own setup, then only its stage call, repeated.

Run as ``python driver.py SPEC.json`` (plain: times the calls) or under Scalene
(``scalene run --off ... driver.py --- SPEC.json``): Scalene starts with profiling off and this
program switches it on around each stage call only, so imports, input preparation (the benchmark's
``setup``, exactly as asv calls it) and the warm-up call are never in the profile.

SPEC (JSON): ``root`` (the project: ``benchmarks/`` is imported from there), ``bench``
(``module.Class``), ``params`` (values as asv writes them, ``repr``), ``repeats`` (calls profiled;
null: as many as make ``min_seconds``, at most ``max_repeats``), ``min_seconds``, ``max_repeats``,
``profile`` (bool: Scalene is running), ``stage_peak`` (bool: then measure one more call's stage peak
with the suite's probe), ``record`` (where to write what happened, JSON).
Exit status 3: the benchmark skips this combination (the record says why).
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import platform
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any


def _versions() -> dict[str, Any]:
    import cellpose
    import torch

    from cpbench import stages

    return {"cellpose": ".".join(map(str, stages.cellpose_version())),
            "cellpose_path": str(Path(cellpose.__file__).parent),
            "torch": torch.__version__, "torch_cuda_build": torch.version.cuda or "none",
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "threads_env": {k: os.environ.get(k) for k in ("CPBENCH_THREADS", "OMP_NUM_THREADS",
                                                           "NUMBA_NUM_THREADS")}}


def main(spec_path: str) -> int:
    """Run SPEC (see the module docstring); returns the exit status."""
    spec = json.loads(Path(spec_path).read_text())
    record: dict[str, Any] = {"bench": spec["bench"], "params": spec["params"], "profiled": spec["profile"]}
    out = Path(spec["record"])
    root = spec["root"]
    os.environ["CPBENCH_FULL"] = "1"  # the full grids: every value a user can name is a valid parameter
    if root not in sys.path:
        sys.path.insert(0, root)
    module, name = spec["bench"].rsplit(".", 1)
    cls = getattr(importlib.import_module(f"benchmarks.{module}"), name)
    params = [ast.literal_eval(v) for v in spec["params"]]
    bench = cls()
    record["versions"] = _versions()
    try:
        t0 = time.perf_counter()
        bench.setup(None, *params)  # the benchmark's own setup: inputs, memory guard, calibration
        bench._call()  # warm-up (numba cache loads, torch's thread pool): never profiled
        bench.prepare(*params)
        record["setup_s"] = time.perf_counter() - t0
    except NotImplementedError as exc:
        record["skipped"] = str(exc)
        out.write_text(json.dumps(record, indent=1))
        return 3
    profiler = None
    if spec["profile"]:
        from scalene import scalene_profiler as profiler
    times: list[float] = []
    repeats = spec["repeats"]
    while True:
        if times:
            bench.prepare(*params)  # fresh inputs per call, as asv's setup before each sample
        t = time.perf_counter()
        if profiler:
            profiler.start()
        bench._call()
        if profiler:
            profiler.stop()
        times.append(time.perf_counter() - t)
        if repeats is not None:
            if len(times) >= repeats:
                break
        elif sum(times) >= spec["min_seconds"] or len(times) >= spec["max_repeats"]:
            break
    if spec.get("stage_peak"):  # the suite's stage-peak probe (track_stage_peak_bytes), one more call
        from cpbench.measure.probes import StagePeak

        bench.prepare(*params)
        with StagePeak() as peak:
            bench._call()
        record["stage_peak_bytes"] = peak.bytes
    record.update(python_threads=sorted({t.name for t in threading.enumerate()} - {"MainThread"}), call_s=times, total_s=sum(times), repeats=len(times),
                  max_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  device=getattr(bench, "device", "cpu"))
    out.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
