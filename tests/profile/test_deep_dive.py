"""Real deep-dives at a tiny size: the benchmark's own setup, only the stage call under Scalene, a summary
naming Cellpose lines that exist, shares that add up, an HTML view that opens offline, a comparison."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from cpbench.cli import main

pytestmark = pytest.mark.slow

RUN = ["--out", "{out}", "--min-seconds", "1.5", "--max-repeats", "8"]


def _profile(out: Path, *args: str) -> Path:
    before = set(out.iterdir()) if out.is_dir() else set()
    assert main(["profile", *args, *(a.format(out=out) for a in RUN)]) == 0
    (folder,) = set(out.iterdir()) - before
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("profiles")
    ff = _profile(out, "bench_masks.FollowFlows.time_stage", "--param", "size=256")
    ff50 = _profile(out, "follow_flows", "--param", "size=256", "--param", "niter=50", "--against", str(ff))
    gm = _profile(out, "bench_masks.GetMasks.track_stage_peak_bytes", "--param", "size=512")
    return {"follow_flows": ff, "niter50": ff50, "get_masks": gm}


def _installed(line: dict[str, Any]) -> str:
    return Path(line["path"]).read_text().splitlines()[line["lineno"] - 1].strip()


def test_summary_names_cellpose_lines_that_exist(runs: dict[str, Path]) -> None:
    data = json.loads((runs["follow_flows"] / "summary.json").read_text())
    lines = data["lines"]
    assert lines and all(_installed(ln) == ln["text"] for ln in lines)  # file and line match the installed source
    top = max(lines, key=lambda ln: ln["cpu"])
    assert top["module"] == "cellpose.dynamics" and "cellpose" in top["path"]
    md = (runs["follow_flows"] / "summary.md").read_text()
    assert f"`{top['where']}`" in md and top["function"] in md
    assert "overhead" in md and "Cellpose | 3." in md or "Cellpose | 4." in md
    assert not list(runs["follow_flows"].parent.glob("*.partial"))


def test_shares_add_up(runs: dict[str, Path]) -> None:
    data = json.loads((runs["follow_flows"] / "summary.json").read_text())
    for ln in data["lines"]:
        assert ln["cpu"] == pytest.approx(ln["python"] + ln["native"] + ln["system"])
    total = sum(ln["cpu"] for ln in data["lines"])
    assert total == pytest.approx(data["cpu_total"]) and 50 < total <= 100.5
    md = (runs["follow_flows"] / "summary.md").read_text()
    assert f"cover {total:.1f} %" in md
    run = data["run"]
    assert 1 <= run["profiled"]["repeats"] <= 8 and 1 <= run["plain"]["repeats"] <= 8
    assert data["elapsed_s"] > 0


def test_memory_deep_dive_names_the_allocating_lines(runs: dict[str, Path]) -> None:
    data = json.loads((runs["get_masks"] / "summary.json").read_text())
    assert data["memory"] and data["run"]["mode"] == "memory"
    alloc = [ln for ln in data["lines"] if ln["malloc_mb"] > 0]
    assert alloc and all(_installed(ln) == ln["text"] for ln in alloc)
    assert any(ln["module"].startswith("cellpose.") for ln in alloc)
    md = (runs["get_masks"] / "summary.md").read_text()
    assert "## Where the memory goes" in md and "allocated MB" in md


def test_comparison_lists_the_line_that_changed(runs: dict[str, Path]) -> None:
    md = (runs["niter50"] / "compare.md").read_text()
    assert "niter 200 -> 50" in md
    first = next(line for line in md.splitlines() if line.startswith("| cellpose.dynamics:"))
    cells = [c.strip() for c in first.split("|")]
    assert cells[3] == "same" and float(cells[8]) < 0  # the flow-following loop got cheaper with fewer steps


def test_html_opens_offline(runs: dict[str, Path], browser: Any, tmp_path: Path) -> None:
    folder = runs["follow_flows"]
    html = (folder / "profile.html").read_text()
    assert "googletagmanager" not in html and '<script src="http' not in html
    with browser.serve(folder) as base:
        dom = browser.browse(f"{base}/profile.html", tmp_path / "profile.png")
    shown = re.sub(r"<(script|style)\b.*?</\1>", "", dom, flags=re.S)  # what the page's code drew, not its data
    top = max(json.loads((folder / "summary.json").read_text())["lines"], key=lambda ln: ln["cpu"])
    assert "% of time" in shown and top["path"] in shown and top["function"].split(".")[-1] in shown, \
        "the profile was not rendered"
    assert (tmp_path / "profile.png").stat().st_size > 10_000


def test_the_report_quotes_the_costliest_line(runs: dict[str, Path]) -> None:
    from cpbench.report.recorded import load_profile, profile_folders, profile_section

    folders = profile_folders([runs["follow_flows"].parent])
    assert set(folders) == set(runs.values())  # every run folder under the parent, nothing else
    prof = load_profile(runs["follow_flows"])
    top = max(json.loads((runs["follow_flows"] / "summary.json").read_text())["lines"], key=lambda ln: ln["cpu"])
    sec = profile_section([prof])
    assert prof.params["size"] == "256" and prof.seconds > 0
    assert f"{top['where']} `{top['text'][:80]}`" in sec.statements[0] and sec.table is not None


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    def error(*args: str) -> str:
        assert main(["profile", *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("cpbench: error: ")
        return err

    out = tmp_path / "out"
    if not torch.cuda.is_available():  # the benchmark's own skip, with its reason
        assert error("get_masks", "--param", "size=256", "--device", "cuda", "--out", str(out)).endswith(
            "bench_masks.GetMasks skips these parameters here: no CUDA device here")
    no_scalene = tmp_path / "python-without-scalene"
    no_scalene.write_text("#!/bin/sh\nexit 1\n")
    no_scalene.chmod(0o755)
    assert "Scalene is not installed for" in error("get_masks", "--python", str(no_scalene), "--out", str(out))
    assert "cannot run --python" in error("get_masks", "--python", str(tmp_path / "none"), "--out", str(out))
    assert "niter=7 is not in its grid; valid: 50, 100, 200, 400" in error("follow_flows", "--param", "niter=7")
    assert main(["profile-compare", str(tmp_path), str(tmp_path)]) == 2
    assert "not a deep-dive folder" in capsys.readouterr().err
    assert not out.exists() or not list(out.iterdir())  # nothing half-written left behind
