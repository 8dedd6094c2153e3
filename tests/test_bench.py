"""The asv suite itself: it passes `asv check`, covers every stage, and its instrument measures a
planted stage correctly when run through the real `asv run`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASV = [sys.executable, "-m", "asv"]

#: stage map (shared/DESIGN.md) -> the benchmark classes that cover it
STAGES = {
    "read image": ["bench_read.ReadSlide", "bench_read.ReadRegion"],
    "convert": ["bench_preprocess.Convert"],
    "normalize": ["bench_preprocess.Normalize"],
    "rescale": ["bench_preprocess.Rescale"],
    "network": ["bench_network.Network"],
    "resample flows": ["bench_masks.ResampleFlows"],
    "follow_flows": ["bench_masks.FollowFlows"],
    "get_masks": ["bench_masks.GetMasks"],
    "flow QC": ["bench_masks.FlowQC"],
    "fill holes / min size": ["bench_masks.FillHoles"],
    "write masks": ["bench_write.WriteMasks"],
    "end to end": ["bench_eval.EndToEnd"],
}


def _discover() -> dict[str, object]:
    from asv_runner.discovery import disc_benchmarks

    return {b.name: b for b in disc_benchmarks(str(ROOT / "benchmarks"))}


def test_every_stage_has_time_and_memory_benchmarks() -> None:
    names = _discover()
    for stage, classes in STAGES.items():
        for cls in classes:
            for kind in ("time_stage", "track_stage_peak_bytes", "peakmem_stage"):
                assert f"{cls}.{kind}" in names, f"{stage}: {cls}.{kind} missing"
    assert "bench_reference.peakmem_reference" in names
    for cls in ("bench_eval.EndToEnd", "bench_masks.MaskRecovery"):
        assert f"{cls}.track_ap50" in names
    for cls in ("bench_network.Network", "bench_eval.EndToEnd", "bench_masks.FollowFlows", "bench_masks.GetMasks",
                "bench_masks.FlowQC", "bench_masks.MaskRecovery"):
        bench = names[f"{cls}.time_stage"]
        assert "'cuda'" in bench.params[bench.param_names.index("device")]  # asv keeps params as repr
        gpu = names[f"{cls}GPUMemory.track_gpu_peak_bytes"]
        assert gpu.params[gpu.param_names.index("device")] == ["'cuda'"]
        assert not any(n.startswith(f"{cls}GPUMemory.") and not n.endswith("track_gpu_peak_bytes") for n in names)
        assert f"{cls}.track_gpu_peak_bytes" not in names


def test_every_benchmark_has_an_explicit_version() -> None:
    """asv's default version hashes the (library) source of time_stage/setup: a library edit would
    orphan every earlier result. An explicit version is a short string, not a sha256 of code."""
    names = _discover()
    assert names
    for name, bench in names.items():
        version = str(bench.version)  # type: ignore[attr-defined]
        assert len(version) < 16, f"{name} has no explicit asv version (got the code hash {version[:12]}...)"


def test_asv_check_passes() -> None:
    res = subprocess.run([*ASV, "check", "--python=same"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "No problems found" in res.stdout


PLANTED = '''
import time
import numpy as np
from cpbench import bench as _b

MIB = 1 << 20

class Planted(_b.Stage):
    """A stage that holds 256 MiB (touched) and sleeps 100 ms; its setup keeps 300 MiB alive.
    Its parameters look like a real stage's, so the report tools can read it as one."""
    params = (["synthetic"], ["256"])
    param_names = ["dataset", "size"]

    def setup_cache(self):
        return "planted"

    def prepare(self, dataset, size):
        self.setup_array = np.ones(300 * MIB, np.uint8)  # made in setup: must not count

    def run(self):
        a = np.ones(256 * MIB, np.uint8)
        time.sleep(0.1)
        return int(a[::4096].sum())
'''


@pytest.fixture(scope="module")
def planted_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the planted stage with the real `asv run` and read the results with asv's results API."""
    proj = tmp_path_factory.mktemp("asvproj")
    (proj / "benchmarks").mkdir()
    (proj / "benchmarks" / "__init__.py").write_text("")
    (proj / "benchmarks" / "bench_preprocess.py").write_text(textwrap.dedent(PLANTED))
    conf = {"version": 1, "project": "planted", "repo": ".", "branches": ["main"], "benchmark_dir": "benchmarks",
            "results_dir": "results", "html_dir": "html", "environment_type": "virtualenv"}
    (proj / "asv.conf.json").write_text(json.dumps(conf))
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "."], ["git", "commit", "-qm", "planted"]):
        subprocess.run(cmd, cwd=proj, check=True, env=env)
    subprocess.run([*ASV, "machine", "--yes", "--machine", "testbox"], cwd=proj, check=True, capture_output=True)
    res = subprocess.run([*ASV, "run", "--python=same", "--quick", "--set-commit-hash", "HEAD", "--machine", "testbox",
                          "--show-stderr"],
                         cwd=proj, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    return proj


@pytest.fixture(scope="module")
def planted_results(planted_project: Path) -> dict[str, float]:
    """The planted stage's results, read with asv's own results API."""
    from asv.results import iter_results

    out: dict[str, float] = {}
    for r in iter_results(str(planted_project / "results" / "testbox")):
        for name in r.get_all_result_keys():
            out[name] = r.get_result_value(name, r.get_result_params(name))[0]  # the one param combination
    return out


MIB = 1 << 20


def test_planted_delay_shows_in_time_stage(planted_results: dict[str, float]) -> None:
    assert planted_results["bench_preprocess.Planted.time_stage"] >= 0.1


def test_planted_allocation_measured_within_2_percent(planted_results: dict[str, float]) -> None:
    measured = planted_results["bench_preprocess.Planted.track_stage_peak_bytes"]
    assert abs(measured - 256 * MIB) <= 0.02 * 256 * MIB, f"{measured / MIB:.1f} MiB"


def test_setup_allocations_are_not_in_the_stage_but_in_the_process(planted_results: dict[str, float]) -> None:
    stage = planted_results["bench_preprocess.Planted.track_stage_peak_bytes"]
    process = planted_results["bench_preprocess.Planted.peakmem_stage"]
    assert stage < 300 * MIB  # the 300 MiB setup array is excluded from the stage
    assert process > (256 + 300) * MIB  # ... and included in the whole-process peak


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
