"""What the identity tests share: a script run in a fresh Python whose ``cellpose`` is the installed release
or, with the patched copy first on its path, the patched one (two releases of one package cannot share a
process); it writes its arrays and ``out.json`` into a folder of its own."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_script(code: str, out: Path, path: list[str], plan: Any) -> dict[str, Any]:
    """Run ``code`` with ``sys.argv[1:] = [out, json(plan)]`` and ``path`` before cpbench's src on
    PYTHONPATH (2 threads, the project's data folder); returns the ``out.json`` it wrote."""
    out.mkdir()
    env = {"PYTHONPATH": ":".join([*path, str(ROOT / "src")]), "PATH": "/usr/bin:/bin",
           "CPBENCH_DATA": str(ROOT / "data"), "OMP_NUM_THREADS": "2"}
    res = subprocess.run([sys.executable, "-c", code, str(out), json.dumps(plan)], env=env, capture_output=True,
                         text=True, timeout=1800)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads((out / "out.json").read_text())


@pytest.fixture()
def run_cellpose() -> Callable[[str, Path, list[str], Any], dict[str, Any]]:
    """:func:`run_script`."""
    return run_script
