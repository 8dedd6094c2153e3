"""The committed example (reports/example/) is reproducible: ``cpbench report`` on the asv results
committed beside it regenerates its document and stage table (``make example`` made both)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "reports" / "example"


def _stable(text: str) -> list[str]:
    """The lines of a generated document that do not depend on when it was generated."""
    return [line for line in text.splitlines() if not line.startswith("Generated ")]


def test_the_example_report_regenerates_from_its_committed_results(tmp_path: Path) -> None:
    # the arguments make example gives: every results* folder, the seam reports, the deep-dives, the patches
    dirs = sorted(d.name for d in EXAMPLE.glob("results*/") if (d / "benchmarks.json").is_file())
    assert dirs, "reports/example holds no asv results: run make example"
    args = [a for d in dirs for a in ("--results", f"reports/example/{d}")]
    args += [a for f in sorted(EXAMPLE.glob("segment/*.seams.json")) for a in ("--seams", str(f.relative_to(ROOT)))]
    args += ["--profiles", "reports/example/profiles"] if (EXAMPLE / "profiles").is_dir() else []
    args += ["--optimizations", "reports/optimizations"] if (ROOT / "reports/optimizations/results").is_dir() else []
    res = subprocess.run([sys.executable, "-m", "cpbench.cli", "report", *args, "--out", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    for name in ("guidelines.md", "stage_table_cpu.md"):
        assert _stable((tmp_path / name).read_text()) == _stable((EXAMPLE / name).read_text()), name
    assert (tmp_path / "guidelines.html").stat().st_size > 10_000  # figures inline


@pytest.mark.parametrize("name", ["guidelines.md", "guidelines.html", "stage_table_cpu.md"])
def test_a_run_writes_to_reports_not_to_the_example(name: str) -> None:
    """What a user's runs write (reports/*) is git-ignored; the example is tracked."""
    ignored = subprocess.run(["git", "check-ignore", "-q", f"reports/{name}"], cwd=ROOT).returncode == 0
    tracked = subprocess.run(["git", "ls-files", "--error-unmatch", f"reports/example/{name}"], cwd=ROOT,
                             capture_output=True).returncode == 0
    assert ignored and tracked


def test_table_only_prints_the_stage_table_and_writes_nothing(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "cpbench.cli", "report", "--table", "--results",
                          "reports/example/results", "--out", str(tmp_path / "out")], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert "5 network" in res.stdout and "| 512 |" in res.stdout.replace("  ", " ")
    assert not (tmp_path / "out").exists()


def test_the_example_names_its_commits_without_the_history(tmp_path: Path) -> None:
    from cpbench.report.select import saved_commit_names

    names = saved_commit_names(EXAMPLE / "results")
    assert names and all(v.startswith("v") for v in names.values())
    guidelines = (EXAMPLE / "guidelines.md").read_text()
    assert all(f"{v} ({c[:7]})" in guidelines for c, v in names.items())


def test_the_quick_report_agrees_with_the_full_one(tmp_path: Path) -> None:
    """The newcomer's quick-run report (make demo's results alone) and the committed full report state the
    same bottleneck, and where the quick one gives no scaling law it gives no projection either."""
    quick = subprocess.run([sys.executable, "-m", "cpbench.cli", "report", "--results", "reports/example/results",
                            "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert quick.returncode == 0, quick.stderr
    q_md, f_md = (tmp_path / "guidelines.md").read_text(), (EXAMPLE / "guidelines.md").read_text()

    def answer(md: str, n: int) -> str:
        return next(line for line in md.splitlines() if line.startswith(f"- ({n})"))

    def top(md: str) -> str:
        return answer(md, 1).split("% of the summed stage time")[0].split(", ")[-1].rsplit(" takes ", 1)[0]

    assert top(q_md) == top(f_md) == "the model"
    if "no scaling law" in answer(q_md, 2):
        assert " h (" not in answer(q_md, 2)
