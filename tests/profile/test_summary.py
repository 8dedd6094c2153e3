"""Scalene's JSON -> lines, functions, shares; two runs matched by source text (lines move between releases)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from cpbench.profile import compare, summary

SOURCE = textwrap.dedent('''\
    import numpy as np


    def outer(x):
        y = np.sort(x)
        def inner(z):
            return z < 3 & z > 1
        return inner(y)
    ''')


def _line(lineno: int, text: str, py: float = 0.0, c: float = 0.0, sys_: float = 0.0, mb: float = 0.0) -> dict[str, Any]:
    return {"lineno": lineno, "line": text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e"),
            "n_cpu_percent_python": py, "n_cpu_percent_c": c, "n_sys_percent": sys_, "n_malloc_mb": mb,
            "n_peak_mb": mb, "n_copy_mb_s": 0.0, "n_core_utilization": 0.5}


def _package(root: Path, source: str = SOURCE) -> Path:
    (root / "fakepose").mkdir(parents=True)
    (root / "fakepose" / "__init__.py").write_text("")
    path = root / "fakepose" / "dyn.py"
    path.write_text(source)
    return path


@pytest.fixture()
def pkg(tmp_path: Path) -> Path:
    return _package(tmp_path / "site")


def _profile(path: Path, shift: int = 0) -> dict[str, Any]:
    src = [""] + path.read_text().splitlines()  # src[n]: line n, as Scalene reports it
    return {"elapsed_time_sec": 2.0, "files": {str(path): {"lines": [
        _line(5 + shift, src[5 + shift], py=10, c=50, sys_=5, mb=30), _line(7 + shift, src[7 + shift], py=20),
        _line(1 + shift, src[1 + shift])]}}}


def test_lines_functions_and_shares(pkg: Path) -> None:
    lines = summary.load_lines(_profile(pkg), cpus=2)
    assert [ln.where for ln in lines] == ["fakepose.dyn:5", "fakepose.dyn:7"]  # line 1: nothing recorded
    first, second = lines
    assert first.function == "outer" and second.function == "outer.inner"
    assert second.text == "return z < 3 & z > 1"  # Scalene's escapes undone
    assert first.cpu == 65 and first.cores == 1.0
    md = "\n".join(summary.cpu_section(lines))
    assert "cover **85.0 %**" in md and "the rest, 15.0 %" in md
    assert "| `fakepose.dyn.outer` | 65.0 | 10.0 | 50.0 | 5.0 |" in md
    mem = "\n".join(summary.memory_section(lines))
    assert "Allocation: 30 MB" in mem and "`fakepose.dyn:5`" in mem


def _run(folder: Path, profile: dict[str, Any], stage_s: float, niter: str) -> Path:
    lines = summary.load_lines(profile)
    folder.mkdir()
    run = {"target": f"x.Y.time_stage({niter})", "bench": "x.Y", "params": {"niter": niter},
           "plain": {"call_s": [stage_s], "versions": {"cellpose": "9.9"}}}
    (folder / "summary.json").write_text(json.dumps({"run": run, "lines": [
        {"where": ln.where, "module": ln.module, "function": ln.function, "text": ln.text, "cpu": ln.cpu,
         "malloc_mb": ln.malloc_mb} for ln in lines]}))
    return folder


def test_compare_matches_moved_lines_by_text(pkg: Path, tmp_path: Path) -> None:
    moved = _package(tmp_path / "release-b", "\n\n" + SOURCE)  # B: the same code two lines further down
    a = _run(tmp_path / "a", _profile(pkg, 0), 2.0, "200")
    b = _run(tmp_path / "b", _profile(moved, 2), 1.0, "50")
    path = compare.write_comparison(a, b, tmp_path / "out")
    md = path.read_text()
    assert "niter 200 -> 50" in md and "B/A 0.50x" in md
    row = next(r for r in md.splitlines() if "np.sort" in r)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:3] == ["fakepose.dyn:5", "fakepose.dyn:7", "same"]  # matched although it moved
    assert float(cells[5]) == pytest.approx(1.3) and float(cells[6]) == pytest.approx(0.65)
    assert not any("absent" in r for r in md.splitlines() if "np.sort" in r)


def test_compare_pairs_renamed_and_edited_lines(tmp_path: Path) -> None:
    old = _package(tmp_path / "a", SOURCE.replace("outer", "steps2D").replace("np.sort(x)", "np.sort(x.copy())"))
    new = _package(tmp_path / "b", SOURCE.replace("outer", "steps"))
    a = _run(tmp_path / "ra", _profile(old), 2.0, "200")
    b = _run(tmp_path / "rb", _profile(new), 2.0, "200")
    rows = {r["how"]: r for r in compare.compare(compare.load_run(a), compare.load_run(b))}
    assert rows["edited"]["text"] == "y = np.sort(x.copy())  =>  y = np.sort(x)"
    assert rows["same"]["function"] == "steps.inner"  # the renamed function's line still matched by its text
    assert "gone" not in rows and "new" not in rows
