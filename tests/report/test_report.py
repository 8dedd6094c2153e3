"""cpbench report: asv results (read with asv's results API) into the stage table, and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

MIB = 1 << 20


def test_report_reads_asv_results_into_a_stage_table(planted_project: Path, tmp_path: Path) -> None:
    from cpbench.report.results import latest, load_rows
    from cpbench.report.stage_table import STAGE_ORDER, stage_table

    rows = latest(load_rows(planted_project / "results"))
    assert {r.measure for r in rows} == {"time_stage", "track_stage_peak_bytes", "peakmem_stage"}
    (row,) = stage_table(rows, "cpu", stages=[("bench_preprocess.Planted", "planted")])
    assert stage_table(rows, "cpu", stages=STAGE_ORDER) == []  # not a real stage
    assert row["size"] == "256" and row["pixels"] == 256 * 256
    assert row["bytes_per_pixel"] == pytest.approx(256 * MIB / 65536, rel=0.02)
    assert row["seconds"] >= 0.1


def test_report_cli_refuses_empty_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cpbench.cli import main

    assert main(["report", "--results", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "no asv results" in capsys.readouterr().err
