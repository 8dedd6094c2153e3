"""The stage x size table: median seconds, stage peak MB and bytes per pixel, per device."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

from cpbench.measure.suite import MEMORY_RESOLUTION_BYTES, PARAM_DEFAULTS
from cpbench.report.results import Row
from cpbench.report.stability import detection_limit

#: stage map order (shared/DESIGN.md) with a readable name per benchmark class
STAGE_ORDER: list[tuple[str, str]] = [
    ("bench_read.ReadRegion", "1 read region (zarr)"),
    ("bench_preprocess.Convert", "2 convert"),
    ("bench_preprocess.Normalize", "3 normalize"),
    ("bench_preprocess.Rescale", "4 rescale"),
    ("bench_network.Network", "5 network"),
    ("bench_masks.ResampleFlows", "6 resample flows"),
    ("bench_masks.FollowFlows", "7 follow_flows"),
    ("bench_masks.GetMasks", "8 get_masks"),
    ("bench_masks.FlowQC", "9 flow QC"),
    ("bench_masks.FillHoles", "10 fill holes"),
    ("bench_masks.MaskRecovery", "7-10 mask recovery"),
    ("bench_write.WriteMasks", "11 write masks"),
    ("bench_eval.EndToEnd", "end to end (eval)"),
]

#: the default value of each parameter that is not a table axis: one row per stage and size
DEFAULTS = PARAM_DEFAULTS


def _side(size: str) -> int | None:
    return int(size) if size.isdigit() else None


def stage_table(rows: Iterable[Row], device: str = "cpu",
                stages: list[tuple[str, str]] = STAGE_ORDER) -> list[dict[str, object]]:
    """Rows of the table for ``device``: stage, size (px), pixels, seconds (median of samples),
    stage peak bytes, bytes per pixel, AP@0.5 where measured, and ``flag_from``: the smallest
    slowdown (ratio) asv would flag given the recorded samples of the timing (None: one sample). Parameters other than size and
    device are held at :data:`DEFAULTS`. ``stages``: (benchmark class, label) in table order."""
    cells: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    samples: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        if r.value is None or "size" not in r.params:
            continue
        p = r.params
        if p.get("device", "cpu") != device:  # stages without a device param run on the CPU
            continue
        if any(k in p and p[k] != v for k, v in DEFAULTS.items()):
            continue
        cells[(r.stage, p["size"])][r.measure] = r.value
        if r.measure == "time_stage" and r.samples and len(r.samples) > 1:
            samples[(r.stage, p["size"])] = r.samples
    out = []
    for stage, label in stages:
        sizes = sorted({s for (st, s) in cells if st == stage}, key=lambda s: _side(s) or 10**9)
        for size in sizes:
            c = cells[(stage, size)]
            side = _side(size)
            px = side * side if side else None
            peak = c.get("track_stage_peak_bytes")
            recorded = samples.get((stage, size))
            out.append({
                "stage": label, "size": size, "pixels": px,
                "seconds": c.get("time_stage"), "peak_bytes": peak,
                "bytes_per_pixel": (peak / px) if (peak is not None and px and peak > MEMORY_RESOLUTION_BYTES) else None,
                "process_peak_bytes": c.get("peakmem_stage"),
                "ap50": c.get("track_ap50"),
                "flag_from": detection_limit(recorded) if recorded else None,
            })
    return out


def _limit(ratio: object) -> str:
    if ratio is None:
        return ""
    return "never" if math.isinf(ratio) else f"+{ratio - 1:.0%}"  # type: ignore[arg-type,operator]


def _peak(peak: object) -> str:
    if peak is None:
        return ""
    if peak <= MEMORY_RESOLUTION_BYTES:  # type: ignore[operator]  # below what the probe resolves
        return f"<= {MEMORY_RESOLUTION_BYTES / 1e6:.1f}"
    return f"{peak / 1e6:.1f}"  # type: ignore[operator]


def to_markdown(table: list[dict[str, object]], device: str) -> str:
    """The table as Markdown (seconds with 3 significant digits, MB = 1e6 bytes; "asv flags from": the
    smallest slowdown of that stage asv would call a regression here, blank without recorded samples;
    a stage peak at the probe's resolution shows as "<= 4.2" MB, with no bytes per pixel)."""
    head = (f"| stage ({device}) | size | median s | asv flags from | stage peak MB | bytes/px | process peak MB "
            "| AP@0.5 |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")

    def f(v: object, fmt: str) -> str:
        return "" if v is None else format(v, fmt)

    lines = []
    for t in table:
        lines.append(
            f"| {t['stage']} | {t['size']} | {f(t['seconds'], '.3g')} | {_limit(t['flag_from'])} | "
            f"{_peak(t['peak_bytes'])} | "
            f"{f(t['bytes_per_pixel'], '.1f')} | "
            f"{f(None if t['process_peak_bytes'] is None else t['process_peak_bytes'] / 1e6, '.0f')} | "  # type: ignore[operator]
            f"{f(t['ap50'], '.3f')} |"
        )
    return head + "\n".join(lines) + "\n"
