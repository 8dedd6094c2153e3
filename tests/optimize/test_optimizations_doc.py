"""reports/optimizations.md is reproducible: ``cpbench optimize --report`` on what is committed in
reports/optimizations/ (asv results with their commit names, deep-dives, whole-slide records) regenerates it;
every shipped patch has its section, the asv verdicts say nothing got worse, and the whole-slide labels are
the release's. Without measurements the document and the guidelines say what is missing and how to make it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cpbench.optimize.branches import patches
from cpbench.optimize.report import guidelines_section, write

ROOT = Path(__file__).resolve().parents[2]
OPT = ROOT / "reports" / "optimizations"


def _stable(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("Generated ")]


def test_the_document_regenerates_from_what_is_committed(tmp_path: Path) -> None:
    assert (OPT / "results" / "benchmarks.json").is_file(), "nothing committed in reports/optimizations"
    out = tmp_path / "optimizations.md"
    res = subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; from cpbench.optimize.report "
                          "import write; write(Path('reports/optimizations'), Path(sys.argv[1]))", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert _stable(out.read_text()) == _stable((ROOT / "reports" / "optimizations.md").read_text())


def test_the_committed_document_proves_every_measured_patch() -> None:
    text = (ROOT / "reports" / "optimizations.md").read_text()
    for p in patches():
        assert f"## {p.name}: " in text and p.path.read_text().rstrip() in text  # its section and the patch itself
    verdicts = [line.rsplit("|", 2)[1].strip() for line in text.splitlines()
                if line.startswith("| ") and "| patched/release |" not in line and line.count("|") == 10]
    assert verdicts and "better" in verdicts  # the per-stage tables (9 columns) are there
    assert not {"worse", "lower"} & set(verdicts), "a measurement got worse"
    assert "pixels differ" not in text  # whole-slide labels: the release's


def test_without_measurements_the_missing_commands_are_named(tmp_path: Path) -> None:
    sec = guidelines_section(tmp_path / "none")
    assert not sec.statements and "tools/optimize_measure.sh" in sec.missing[0]
    out = write(tmp_path / "none", tmp_path / "optimizations.md")
    text = out.read_text()
    assert text.count("Not measured: no asv results") == len(patches())
    assert "Not profiled: `tools/optimize_measure.sh" in text
