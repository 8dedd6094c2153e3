"""Benchmark identities (names, parameter names and values, explicit versions) are the same whatever
Cellpose release is installed, so that results of different Cellpose commits pair in `asv compare`
and line up in `asv publish`. `make test` runs this under cellpose 3.x (.venv) and again under 4.x
(.venv-cellpose4), each time against the other interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

LIST = r"""
import importlib, inspect, json, pkgutil, sys
sys.path.insert(0, sys.argv[1])
import benchmarks
out = {}
for mod in pkgutil.iter_modules(benchmarks.__path__):
    m = importlib.import_module(f"benchmarks.{mod.name}")
    for name, obj in vars(m).items():
        if inspect.isclass(obj) and obj.__module__ == m.__name__ and not name.startswith("_"):
            out[f"{mod.name}.{name}"] = [repr(getattr(obj, "params", None)), getattr(obj, "param_names", None),
                                         getattr(obj, "version", None),
                                         sorted(a for a in dir(obj) if a.startswith(("time_", "track_", "peakmem_")))]
from importlib.metadata import version
print(json.dumps({"cellpose": version("cellpose"), "benchmarks": out}))
"""


def _identities(python: str) -> dict:
    res = subprocess.run([python, "-c", LIST, str(ROOT)], capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_identities_are_the_same_under_cellpose_3_and_4() -> None:
    here = _identities(sys.executable)
    others = [p for p in (ROOT / ".venv" / "bin" / "python", ROOT / ".venv-cellpose4" / "bin" / "python")
              if p.exists() and p.parents[1].resolve() != Path(sys.prefix).resolve()]
    others = [p for p in others if _identities(str(p))["cellpose"].split(".")[0] != here["cellpose"].split(".")[0]]
    if not others:
        pytest.skip("no interpreter with the other Cellpose major here (make test-cellpose4 runs this again)")
    there = _identities(str(others[0]))
    assert here["benchmarks"] and here["benchmarks"] == there["benchmarks"], (here["cellpose"], there["cellpose"])
