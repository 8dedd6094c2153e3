"""The stage x size table: median seconds, stage peak MB and bytes per pixel, per device."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from cpbench.report.results import Row

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
DEFAULTS = {"dataset": "synthetic", "model": "reference", "bsize": "224", "batch_size": "8", "tile_overlap": "0.1",
            "augment": "False", "niter": "200", "cellprob_threshold": "0.0", "flow_threshold": "0.4",
            "min_size": "15", "flows": "network", "tile_norm_blocksize": "0", "diameter": "13.0",
            "compression": "zlib"}


def _side(size: str) -> int | None:
    return int(size) if size.isdigit() else None


def stage_table(rows: Iterable[Row], device: str = "cpu",
                stages: list[tuple[str, str]] = STAGE_ORDER) -> list[dict[str, object]]:
    """Rows of the table for ``device``: stage, size (px), pixels, seconds (median of samples),
    stage peak bytes, bytes per pixel, AP@0.5 where measured. Parameters other than size and
    device are held at :data:`DEFAULTS`. ``stages``: (benchmark class, label) in table order."""
    cells: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for r in rows:
        if r.value is None or "size" not in r.params:
            continue
        p = r.params
        if p.get("device", "cpu") != device:  # stages without a device param run on the CPU
            continue
        if any(k in p and p[k] != v for k, v in DEFAULTS.items()):
            continue
        cells[(r.stage, p["size"])][r.measure] = r.value
    out = []
    for stage, label in stages:
        sizes = sorted({s for (st, s) in cells if st == stage}, key=lambda s: _side(s) or 10**9)
        for size in sizes:
            c = cells[(stage, size)]
            side = _side(size)
            px = side * side if side else None
            peak = c.get("track_stage_peak_bytes")
            out.append({
                "stage": label, "size": size, "pixels": px,
                "seconds": c.get("time_stage"), "peak_bytes": peak,
                "bytes_per_pixel": (peak / px) if (peak is not None and px) else None,
                "process_peak_bytes": c.get("peakmem_stage"),
                "ap50": c.get("track_ap50"),
            })
    return out


def to_markdown(table: list[dict[str, object]], device: str) -> str:
    """The table as Markdown (seconds with 3 significant digits, MB = 1e6 bytes)."""
    head = f"| stage ({device}) | size | median s | stage peak MB | bytes/px | process peak MB | AP@0.5 |\n"
    head += "|---|---:|---:|---:|---:|---:|---:|\n"

    def f(v: object, fmt: str) -> str:
        return "" if v is None else format(v, fmt)

    lines = []
    for t in table:
        lines.append(
            f"| {t['stage']} | {t['size']} | {f(t['seconds'], '.3g')} | "
            f"{f(None if t['peak_bytes'] is None else t['peak_bytes'] / 1e6, '.1f')} | "  # type: ignore[operator]
            f"{f(t['bytes_per_pixel'], '.1f')} | "
            f"{f(None if t['process_peak_bytes'] is None else t['process_peak_bytes'] / 1e6, '.0f')} | "  # type: ignore[operator]
            f"{f(t['ap50'], '.3f')} |"
        )
    return head + "\n".join(lines) + "\n"
