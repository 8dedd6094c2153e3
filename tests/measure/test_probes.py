"""Tests of cpbench.measure.probes. Memory scenarios run in fresh subprocesses, so pytest's own heap and
what earlier tests allocated cannot leak into the figures."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest

from cpbench.measure import probes

pytestmark = pytest.mark.serial  # measures time and memory: run alone (make test)

MiB = 1 << 20
PLANTED = 256 * MiB
TOL = 0.02  # +-2 %

needs_clear_refs = pytest.mark.skipif(not probes.clear_refs_available(), reason="/proc/self/clear_refs not writable")

# Scenario runner: a planted stage allocating 256 MiB, touched (np.ones), either as one array
# (mmap-backed) or as 256 x 1 MiB arrays (glibc heap once the mmap threshold has grown).
# "dirty" runs first a stage that allocates 512 MiB in 1 MiB arrays interleaved with small
# long-lived arrays (which pin the heap) and frees the big ones: freed memory the allocator
# keeps, which is the DESIGN.md pitfall. "setup" keeps a 300 MiB array alive across the stage.
_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from cpbench.measure.probes import StagePeak
    MiB = 1 << 20
    shape, before, trim = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    pins, keep = [], []

    def dirty():
        x = np.ones(8 * MiB // 8); del x          # lets glibc raise its mmap threshold
        chunks = []
        for _ in range(512):
            chunks.append(np.ones(MiB // 8))
            pins.append(np.ones(512))             # 4 KiB, long-lived, interleaved
        del chunks

    def planted():
        if shape == "big":
            a = np.ones(256 * MiB // 8)
            return float(a[-1])
        a = [np.ones(MiB // 8) for _ in range(256)]
        return len(a)

    if before == "dirty":
        dirty()
    elif before == "setup":
        keep.append(np.ones(300 * MiB // 8))
    with StagePeak(trim=trim) as peak:
        planted()
    print(json.dumps({"bytes": peak.bytes, "baseline": peak.baseline_bytes, "trimmed": peak.trimmed}))
    """
)


def _run(shape: str, before: str, trim: bool = True) -> dict[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, shape, before, "1" if trim else "0"],
        check=True, capture_output=True, text=True,
    )
    result: dict[str, int] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _close(measured: int, expected: int = PLANTED) -> bool:
    return abs(measured - expected) <= TOL * expected


@needs_clear_refs
@pytest.mark.parametrize("shape", ["big", "chunks"])
def test_planted_allocation_measured(shape: str) -> None:
    r = _run(shape, "fresh")
    assert _close(r["bytes"]), f"planted 256 MiB measured as {r['bytes'] / MiB:.1f} MiB"


@needs_clear_refs
@pytest.mark.parametrize("shape", ["big", "chunks"])
def test_result_independent_of_earlier_stage(shape: str) -> None:
    fresh = _run(shape, "fresh")["bytes"]
    after = _run(shape, "dirty")
    assert after["trimmed"], "malloc_trim did not run (not glibc?)"
    assert _close(after["bytes"]), f"after a freed 512 MiB stage: {after['bytes'] / MiB:.1f} MiB"
    assert abs(after["bytes"] - fresh) <= TOL * PLANTED


@needs_clear_refs
def test_without_trim_the_pitfall_shows() -> None:
    """The scenario above is a real test of the trim: without it the heap reuse hides the stage."""
    if probes._MALLOC_TRIM is None:
        pytest.skip("not glibc: no allocator trim to compare against")
    untrimmed = _run("chunks", "dirty", trim=False)["bytes"]
    trimmed = _run("chunks", "dirty", trim=True)["bytes"]
    assert untrimmed < 0.5 * PLANTED, f"without trim: {untrimmed / MiB:.1f} MiB"
    assert trimmed - untrimmed > 0.45 * PLANTED


@needs_clear_refs
def test_setup_allocations_excluded() -> None:
    r = _run("big", "setup")
    assert r["baseline"] > 300 * MiB
    assert _close(r["bytes"]), f"with 300 MiB alive from setup: {r['bytes'] / MiB:.1f} MiB"


@needs_clear_refs
def test_stage_peak_rss_returns_result_and_bytes() -> None:
    import numpy as np

    result, nbytes = probes.stage_peak_rss(lambda n: float(np.ones(n).sum()), 8 * MiB // 8)
    assert result == 8 * MiB // 8
    assert 0.5 * 8 * MiB < nbytes < 3 * 8 * MiB


def test_tracemalloc_method_is_explicit_and_sees_numpy() -> None:
    import numpy as np

    with probes.StagePeak(method="tracemalloc") as peak:
        a = np.ones(16 * MiB // 8)
        del a
    assert peak.method == "tracemalloc"
    assert _close(peak.bytes, 16 * MiB)
    with pytest.raises(ValueError):
        probes.StagePeak(method="bogus")  # type: ignore[arg-type]


def test_clear_refs_unavailable_raises_skip(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(probes, "_CLEAR_REFS", tmp_path / "missing" / "clear_refs")
    assert not probes.clear_refs_available()
    with pytest.raises(NotImplementedError, match="clear_refs"):
        probes.require_clear_refs()
    with pytest.raises(NotImplementedError):
        probes.stage_peak_rss(lambda: None)


def test_timed_lower_bound() -> None:
    assert probes.timed(time.sleep, None, 0.1) >= 0.1
    assert probes.timed(time.sleep, "cpu", 0.1) >= 0.1


def test_gpu_probes_skip_on_cpu() -> None:
    with pytest.raises(NotImplementedError):
        probes.cuda_peak_bytes(lambda: None, "cpu")
    with pytest.raises(NotImplementedError):
        probes.available_gpu_memory_bytes(None)
    if not _cuda():
        with pytest.raises(NotImplementedError, match="CUDA"):
            probes.timed(time.sleep, "cuda", 0.0)


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@pytest.mark.skipif(not _cuda(), reason="no CUDA device")
def test_cuda_peak_bytes() -> None:
    import torch

    def stage() -> float:
        a = torch.ones(64 * MiB // 4, device="cuda")
        return float(a.sum())

    _, nbytes = probes.cuda_peak_bytes(stage, "cuda")
    assert _close(nbytes, 64 * MiB)
    assert probes.timed(torch.cuda._sleep, "cuda", 1_000_000) > 0


def test_available_memory_plausible() -> None:
    total = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                total = int(line.split()[1]) * 1024
    avail = probes.available_memory_bytes()
    assert 0 < avail <= total


def test_memory_guard() -> None:
    probes.memory_guard(10**9, available_bytes=2 * 10**9)
    with pytest.raises(NotImplementedError, match=r"skipped: predicted 2\.50 GB > available 2\.00 GB"):
        probes.memory_guard(2 * 10**9, available_bytes=2 * 10**9)  # 2 GB x margin 1.25
    with pytest.raises(NotImplementedError, match="skipped: predicted"):
        probes.memory_guard(10**15)  # a petabyte does not fit here
    assert probes.predict_eval_bytes(10**6) == probes.EVAL_FIXED_BYTES + probes.EVAL_BYTES_PER_PIXEL * 10**6


# The per-pixel coefficients of the memory model, checked against a real run here with a
# generous bound (0.25x .. 2x): mask recovery from ground-truth flows on a 1024 x 1024 image.
_MASKS_SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    from cpbench import stages as cs
    from cpbench.measure.probes import StagePeak
    n, r, pitch = 1024, 8, 20
    yy, xx = np.mgrid[:n, :n]
    cy, cx = (yy // pitch) * pitch + pitch // 2, (xx // pitch) * pitch + pitch // 2
    inside = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) & (cy + r < n) & (cx + r < n)
    labels = np.where(inside, (yy // pitch) * (n // pitch + 1) + xx // pitch + 1, 0).astype(np.int32)
    labels = np.unique(labels, return_inverse=True)[1].reshape(n, n).astype(np.uint16)
    dP, cellprob = cs.ground_truth_flows(labels)
    cs.masks_from_flows(dP[:, :64, :64].copy(), cellprob[:64, :64].copy())   # numba warm-up
    with StagePeak() as peak:
        masks = cs.masks_from_flows(dP, cellprob)
    print(json.dumps({"bytes": peak.bytes, "pixels": n * n, "n": int(labels.max()), "ap": float(cs.average_precision(labels, masks)[0])}))
    """
)


@needs_clear_refs
def test_masks_coefficient_within_bounds() -> None:
    out = subprocess.run([sys.executable, "-c", _MASKS_SCRIPT], check=True, capture_output=True, text=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    per_px = r["bytes"] / r["pixels"]
    assert r["ap"] == 1.0
    assert 0.25 * probes.MASKS_BYTES_PER_PIXEL <= per_px <= 2 * probes.MASKS_BYTES_PER_PIXEL, per_px
    assert probes.predict_masks_bytes(r["pixels"]) == probes.MASKS_BYTES_PER_PIXEL * r["pixels"]


# Whole-process model of an end-to-end eval (random-init nuclei net, rescale 17/30, every
# pixel through the dynamics = worst case): the process high-water mark must stay under the
# guarded prediction (prediction x MARGIN) and not be wildly over-predicted.
_EVAL_SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    from cpbench import stages as cs
    from cpbench.measure.probes import hwm_bytes
    n = 512
    img = np.random.default_rng(0).integers(100, 3000, (n, n)).astype(np.uint16)
    model = cs.random_model()
    masks = cs.eval_end_to_end(model, img, diameter=30.0, cellprob_threshold=-1e9, flow_threshold=0.0)
    print(json.dumps({"hwm": hwm_bytes(), "pixels": n * n, "masks": int(masks.max())}))
    """
)


@needs_clear_refs
def test_eval_process_model_within_bounds() -> None:
    out = subprocess.run([sys.executable, "-c", _EVAL_SCRIPT], check=True, capture_output=True, text=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    predicted = probes.predict_eval_bytes(r["pixels"])
    assert r["masks"] > 0
    assert 0.25 * predicted <= r["hwm"] <= probes.MARGIN * predicted, (r["hwm"], predicted)


FREED_BLOCK = """
import sys
import numpy as np
from cpbench.measure import probes
if sys.argv[1] == "fixed":
    assert probes.fix_malloc_thresholds()
a = np.ones(16 << 20, np.uint8)
del a  # a mapped block: glibc now raises its mmap threshold to 16 MiB, its trim threshold to 32
b = np.ones(8 << 20, np.uint8)
before = probes.rss_bytes()
del b
print(before - probes.rss_bytes())
"""


@pytest.mark.parametrize(("mode", "returned_mib"), [("default", 0), ("fixed", 8)])
def test_fixed_malloc_thresholds_return_freed_blocks(mode: str, returned_mib: int) -> None:
    """By default whether a freed 8 MiB array leaves the resident set depends on what the process
    freed before; with the thresholds frozen it always does (a fresh process each: the setting
    lasts for the process)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", FREED_BLOCK, mode], capture_output=True, text=True, check=True)
    assert abs(int(out.stdout) / 2**20 - returned_mib) < 0.5
