"""Crafted asv results for the report tests, written with asv's own results API (asv.results.Results):
one result file per commit plus benchmarks.json and machine.json. A value given as a list is a set of
recorded samples (the result is their median)."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np

MACHINE = "box"
RAM = 16_000_000_000
SIZES = ["256", "512", "1024", "2048", "full"]
PX = {"256": 256**2, "512": 512**2, "1024": 1024**2, "2048": 2048**2, "full": 3138 * 2509}

#: planted costs: seconds = fixed + s_per_px * px; bytes = fixed + bpp * px
NET_T, NET_M = (0.5, 2e-6), (50e6, 40.0)
E2E_T, E2E_P = (1.0, 20e-6), (300e6, 700.0)
MASK_T = (0.01, 0.3e-6)


def _lin(c: tuple[float, float], px: int) -> float:
    return c[0] + c[1] * px


def _write(results: Path, commit: str, date: int, benches: dict[str, tuple[list[str], list[list[str]], list]]) -> None:
    """One asv result file (asv.results.Results) plus benchmarks.json and machine.json."""
    from asv import runner
    from asv.results import Results

    meta_path = results / "benchmarks.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {"version": 2}
    res = Results({"machine": MACHINE, "python": "3.11"}, {}, commit, date, "3.11", "existing-py", {})
    for name, (names, params, values) in benches.items():
        unit = "seconds" if ".time_" in name else "AP@0.5" if "ap50" in name else "bytes"
        bench = {"name": name, "params": params, "param_names": names, "version": "1", "unit": unit,
                 "type": "time" if unit == "seconds" else "track"}
        meta[name] = bench
        samples = [None if v is None else list(v) if isinstance(v, list) else [v] for v in values]
        values = [float(np.median(v)) if isinstance(v, list) else v for v in values]  # a list: recorded samples
        res.add_result(bench, runner.BenchmarkResult(result=values, samples=samples,
                                                     number=[1] * len(values), errcode=0, stderr="", profile=None),
                       record_samples=True)
    (results / MACHINE).mkdir(parents=True, exist_ok=True)
    (results / MACHINE / "machine.json").write_text(json.dumps(
        {"machine": MACHINE, "cpu": "Test CPU", "num_cpu": "2", "ram": str(RAM), "os": "Linux", "arch": "x86_64",
         "version": 1}))
    res.save(str(results))
    meta_path.write_text(json.dumps(meta))


def _grid(names: list[str], params: list[list[str]], value) -> tuple[list[str], list[list[str]], list]:
    quoted = [[f"'{v}'" if not re.fullmatch(r"[-\d.]+|True|False", v) else v for v in p] for p in params]
    plain = [dict(zip(names, combo)) for combo in itertools.product(*params)]
    return names, quoted, [value(p) for p in plain]
