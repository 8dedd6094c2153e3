"""The asv suite itself: it passes `asv check`, covers every stage, and its instrument measures a
planted stage correctly when run through the real `asv run`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
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


def test_threads_are_fixed_by_one_variable_and_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    from cpbench.measure import suite

    for var in (suite.THREADS_ENV, *suite.THREAD_VARS):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "7")  # whatever the host had is replaced, not kept
    assert suite.pin_threads() == suite.DEFAULT_THREADS
    assert all(os.environ[v] == str(suite.DEFAULT_THREADS) for v in suite.THREAD_VARS)
    monkeypatch.setenv(suite.THREADS_ENV, "3")
    assert suite.pin_threads() == 3 and os.environ["NUMBA_NUM_THREADS"] == "3"
    monkeypatch.setenv(suite.THREADS_ENV, "zero")
    with pytest.raises(ValueError, match="CPBENCH_THREADS must be a whole number"):
        suite.pin_threads()
    monkeypatch.setenv(suite.THREADS_ENV, "2")
    names = _discover()
    assert {"bench_reference.track_threads", "bench_reference.track_numba_threads"} <= set(names)


def test_stages_warm_up_once_outside_the_samples() -> None:
    bench = _discover()["bench_masks.FollowFlows.time_stage"]
    assert 0 < bench.warmup_time < 1e-3  # type: ignore[attr-defined]  # one call, then samples
    assert bench.number == 1  # type: ignore[attr-defined]
