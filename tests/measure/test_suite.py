"""The asv suite itself: it passes `asv check`, covers every stage, and its instrument measures a
planted stage correctly when run through the real `asv run`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.serial  # measures time and memory: run alone (make test)

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
    assert {"bench_reference.track_threads", "bench_reference.track_numba_threads",
            "bench_reference.track_opencv_threads"} <= set(names)
    out = subprocess.run([sys.executable, "-c", "import cv2; print(cv2.getNumThreads())"], text=True,
                         capture_output=True, check=True, env={**os.environ, "OPENCV_FOR_THREADS_NUM": "3"})
    assert out.stdout.strip() == "3"  # OpenCV honours the variable pin_threads sets


def test_stages_warm_up_once_outside_the_samples() -> None:
    bench = _discover()["bench_masks.FollowFlows.time_stage"]
    assert 0 < bench.warmup_time < 1e-3  # type: ignore[attr-defined]  # one call, then samples
    assert bench.number == 1  # type: ignore[attr-defined]


def test_rounds_spread_each_benchmark_over_processes() -> None:
    names = _discover()
    follow, network = names["bench_masks.FollowFlows.time_stage"], names["bench_network.Network.time_stage"]
    assert follow.rounds == 6 and follow.repeat == (1, 2, 20.0)  # type: ignore[attr-defined]
    assert network.rounds == 4  # type: ignore[attr-defined]  # seconds a call: fewer processes


@pytest.mark.parametrize(("call_s", "expected"), [(0.2, 1), (0.05, 1), (0.01, 5), (0.011, 5), (1e-5, 20), (0.0, 20)])
def test_calls_per_sample(call_s: float, expected: int) -> None:
    from cpbench.measure.suite import calls_per_sample

    assert calls_per_sample(call_s, 0.05, 20) == expected


def test_short_stage_calibrates_calls_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first setup makes one untimed call (the warm-up), sets asv's ``number`` and prepares the
    inputs again; later setups (asv re-runs setup before every call) only prepare."""
    from cpbench.measure import probes, suite

    calls: list[str] = []

    class Tiny(suite.Stage):
        min_sample_s = 0.05

        def prepare(self, size: str) -> None:
            calls.append("prepare")

        def run(self) -> None:
            calls.append("run")

    monkeypatch.setattr(probes, "timed", lambda fn, device=None: (fn(), 0.004)[1])
    b = Tiny()
    b.setup(None, "256")
    assert calls == ["prepare", "run", "prepare"] and b.number == 13 and b.warmup_time == 0
    b.setup(None, "256")
    assert calls[3:] == ["prepare"]
    b.setup(None, "512")  # another combination in the same object: calibrated again
    assert calls[4:] == ["prepare", "run", "prepare"]
    assert suite.Stage.number == 1 and suite.Stage.warmup_time > 0  # the class is untouched


def test_short_stages_are_the_calibrated_ones() -> None:
    names = _discover()
    short = {n.rsplit(".", 1)[0] for n, b in names.items() if getattr(b, "_attr_sources", None)
             and any(getattr(s, "min_sample_s", 0) for s in b._attr_sources)}  # type: ignore[attr-defined]
    assert {"bench_preprocess.Convert", "bench_preprocess.Rescale", "bench_masks.GetMasks",
            "bench_write.WriteMasks"} <= short
    assert not short & {"bench_eval.EndToEnd", "bench_network.Network", "bench_masks.FollowFlows"}
    cold = {n.rsplit(".", 1)[0] for n, b in names.items() if getattr(b, "_attr_sources", None)
            and any(getattr(s, "memory_warmup", True) is False for s in b._attr_sources)}  # type: ignore[attr-defined]
    # the whole-image stages and the studies built on them (fast settings, input channels) start cold
    assert {n for n in cold if not n.endswith("GPUMemory")} == {
        "bench_eval.EndToEnd", "bench_network.Network", "bench_segment.Blockwise",
        "bench_eval.FastSettings", "bench_eval.EndToEndChannels", "bench_network.InputChannels"}


def test_stage_peak_is_the_least_of_the_calls_and_not_below_the_resolution(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Short stages: ``number`` calls, each after a fresh prepare, the least peak kept; a peak under
    the probe's resolution reads as the resolution. Other stages: after an unmeasured call (unless
    ``memory_warmup`` is off), up to MEMORY_CALLS calls while they are cheap, one when slow."""
    import numpy as np

    from cpbench.measure import suite

    MIB = 2**20

    class Alloc(suite.Stage):
        min_sample_s = 0.05  # a short stage: several calls

        def prepare(self, mib: int) -> None:
            self.sizes = getattr(self, "sizes", None) or [24]  # MiB, one per call

        def run(self) -> None:
            np.ones(self.sizes.pop(0) * MIB, np.uint8)

    b = Alloc()
    b.setup(None, 0)  # its calibration call takes the 24 MiB
    b.number, b.sizes = 1, [28, 16, 32, 24, 20]  # at least MEMORY_CALLS = 5 calls
    assert abs(b.track_stage_peak_bytes(None, 0) - 16 * MIB) < 2 * MIB  # the probe resolves ~1 MiB
    b.number, b.sizes = 7, [28, 26, 32, 24, 22, 30, 12]  # or number, when more
    assert abs(b.track_stage_peak_bytes(None, 0) - 12 * MIB) < 2 * MIB
    b.number, b.sizes = 1, [1] * suite.MEMORY_CALLS
    assert b.track_stage_peak_bytes(None, 0) == suite.MEMORY_RESOLUTION_BYTES
    b.min_sample_s, b.sizes = 0.0, [30, 20, 14, 18, 26, 16, 12]  # not short but cheap: a warm-up call,
    assert abs(b.track_stage_peak_bytes(None, 0) - 14 * MIB) < 2 * MIB  # then 5 calls (not a 6th)
    monkeypatch.setattr(suite, "MEMORY_CHEAP_S", 0.0)  # a slow stage: one measured call
    b.sizes = [30, 10, 5]
    assert abs(b.track_stage_peak_bytes(None, 0) - 10 * MIB) < 2 * MIB
    b.memory_warmup, b.sizes = False, [30, 10]  # the whole-network stages: the first call is measured
    assert abs(b.track_stage_peak_bytes(None, 0) - 30 * MIB) < 2 * MIB


def test_version_numbers_record_the_torch_build() -> None:
    import torch

    from cpbench.measure import suite

    assert suite.version_number("2.13.0+cpu") == 2.13 and suite.version_number("2.13.1") == 2.1301
    assert suite.version_number("12.8") == 12.08 and suite.version_number("0") == 0.0
    version, cuda = suite.torch_build()
    assert version == suite.version_number(torch.__version__)
    assert cuda == (suite.version_number(torch.version.cuda) if torch.version.cuda else 0.0)
