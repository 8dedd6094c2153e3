"""What the report reads beside asv's results: recorded runs of the other two capabilities.

* ``cpbench segment``'s seam reports (``LABELS.seams.json``): blockwise segmentation of a whole slide —
  wall time per pass, seconds per block and per megapixel, the workers' peak memory, what happened at
  every seam — set beside whole-image eval's time per megapixel from asv's results;
* ``cpbench profile``'s deep-dive summaries (``summary.json`` in each run folder): the source lines behind
  a stage's time, with their share of the profiled CPU time and the cores busy there.

Units: seconds, MP = 1e6 pixels, GB = 1e9 bytes, shares in percent of the profiled CPU time.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cpbench.errors import UserError
from cpbench.fetch.catalogue import IMAGES
from cpbench.report.document import Section
from cpbench.report.results import Row
from cpbench.report.select import TIME, series
from cpbench.report.slide import END_TO_END, side_label

SEGMENT_COMMAND = ("cpbench segment SLIDE --out LABELS.ome.tif (writes LABELS.seams.json), then "
                   "cpbench report --seams LABELS.seams.json")
PROFILE_COMMAND = ("cpbench profile network --param size=1024 --out DIR (and follow_flows, ...), then "
                   "cpbench report --profiles DIR")
#: source lines of a deep-dive quoted in the report
TOP_LINES = 3


def _load(path: Path, what: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read it as {what} ({exc}); give the file cpbench wrote") from None


@dataclass(frozen=True)
class SegmentRun:
    """One recorded ``cpbench segment`` run."""

    path: Path
    shape: tuple[int, int]
    block: int
    blocks: int
    workers: int
    device: str
    seconds: dict[str, float]  # per pass
    block_seconds: list[float]  # the blocks segmented in this run (not resumed)
    labels: int
    seams: dict[str, int]
    worker_peak: int | None  # bytes, summed over the workers' high-water marks; None in older reports
    client_peak: int | None

    @property
    def megapixels(self) -> float:
        return self.shape[0] * self.shape[1] / 1e6

    @property
    def wall(self) -> float:
        return sum(self.seconds.values())


def load_seam_report(path: Path) -> SegmentRun:
    """A seam report as :class:`SegmentRun`; a one-line UserError when it is not one."""
    doc = _load(path, "a seam report")
    if not {"shape", "outcome", "blocks"} <= doc.keys():
        raise UserError(f"{path}: not a seam report (no shape, outcome and blocks); give LABELS.seams.json from "
                        "cpbench segment")
    out, peak = doc["outcome"], doc.get("peak_bytes") or {}
    return SegmentRun(path, (int(doc["shape"][0]), int(doc["shape"][1])), int(doc["block"]), int(out["blocks"]),
                      int(out["workers"]), str(doc.get("device", "cpu")), {k: float(v) for k, v in out["seconds"].items()},
                      [float(b["seconds"]) for b in doc["blocks"] if not b.get("resumed")], int(out["labels"]),
                      {k: int(v) for k, v in out["seams"].items()}, peak.get("workers"), peak.get("client"))


def segment_section(runs: list[SegmentRun], rows: list[Row], device: str = "cpu") -> Section:
    """One row per recorded run; statements set each run beside whole-image eval's time per MP."""
    sec = Section("Blockwise segmentation: recorded cpbench segment runs")
    if not runs:
        sec.missing.append(f"blockwise segmentation of a whole slide (time, peak memory, seams): {SEGMENT_COMMAND}")
        return sec
    sec.table = [["slide", "MP", "block, px", "blocks", "workers", "wall, s", "s per MP", "median block, s",
                  "workers' peak, GB", "labels", "seams: matched / merged / rescued / dropped / duplicated"]]
    evals = dict(series(rows, END_TO_END, TIME, device))
    for r in runs:
        peak = f"{r.worker_peak / 1e9:.2f}" if r.worker_peak else "not recorded"
        s = r.seams
        sec.table.append([r.path.name.removesuffix(".seams.json"), f"{r.megapixels:.1f}", str(r.block), str(r.blocks),
                          str(r.workers), f"{r.wall:.0f}", f"{r.wall / r.megapixels:.2f}",
                          f"{statistics.median(r.block_seconds):.1f}" if r.block_seconds else "-", peak, str(r.labels),
                          " / ".join(str(s.get(k, 0)) for k in ("matched", "merged", "rescued", "dropped", "duplicated"))])
        text = (f"{r.path.name}: {r.shape[0]} x {r.shape[1]} px ({r.megapixels:.1f} MP) in {r.blocks} blocks of "
                f"{r.block} px on {r.workers} worker(s), {r.wall:.0f} s ({r.wall / r.megapixels:.2f} s per MP: "
                + ", ".join(f"{k} {v:.0f} s" for k, v in r.seconds.items()) + ")")
        if evals:
            px, t = max(evals.items())
            text += (f"; whole-image eval measured {t / (px / 1e6):.2f} s per MP at {side_label(px)} (largest "
                     f"measured, asv), so blockwise is x{(r.wall / r.megapixels) / (t / (px / 1e6)):.2f} per MP")
        if r.worker_peak:
            text += f"; the workers' peak together at most {r.worker_peak / 1e9:.2f} GB"
        sec.statements.append(text + ".")
        if r.block_seconds:
            per = statistics.median(r.block_seconds)
            sec.statements.append(
                f"At {per:.1f} s per {r.block} px block (the median of this run's {len(r.block_seconds)}) on "
                f"{r.workers} worker(s), each challenge image as a sum over blocks of that size: "
                + "; ".join(f"{name} {blocks_of(name, r.block)} blocks, ~{blocks_of(name, r.block) * per / 3600:.2g} h"
                            for name in IMAGES) + " (the slide's own density changes a block's time: see dense cells).")
    return sec


def blocks_of(image: str, block: int) -> int:
    """Blocks of ``block`` px that tile challenge image ``image``'s frame."""
    _, y, x = IMAGES[image].shape
    return math.ceil(y / block) * math.ceil(x / block)


@dataclass(frozen=True)
class Profile:
    """One deep-dive: what ran, its plain time per call, and its costliest source lines."""

    path: Path
    target: str
    params: dict[str, str]
    seconds: float  # plain (unprofiled) time per call, median
    lines: list[dict[str, Any]]  # summary.json's lines, costliest first


def load_profile(folder: Path) -> Profile:
    """A deep-dive folder's ``summary.json``; a one-line UserError when there is none."""
    path = folder / "summary.json"
    if not path.is_file():
        raise UserError(f"{folder}: no summary.json; give a folder cpbench profile wrote")
    doc = _load(path, "a deep-dive summary")
    run = doc["run"]
    lines = sorted(doc.get("lines", []), key=lambda ln: -float(ln.get("cpu", 0.0)))
    return Profile(folder, str(run["target"]), {k: str(v) for k, v in run.get("params", {}).items()},
                   statistics.median(run["plain"]["call_s"]), lines)


def profile_folders(roots: Iterable[Path]) -> list[Path]:
    """Every deep-dive folder at or under ``roots`` (those holding a summary.json), by name."""
    found = []
    for root in roots:
        if (root / "summary.json").is_file():
            found.append(root)
        elif root.is_dir():
            found += [p.parent for p in root.glob("*/summary.json")]
        else:
            raise UserError(f"--profiles {root}: no such folder; give a folder cpbench profile wrote, or their parent")
    return sorted(set(found), key=lambda p: p.name)


def profile_section(profiles: list[Profile]) -> Section:
    """The costliest source lines of each deep-dive."""
    sec = Section("Where the time goes inside a stage: Scalene deep-dives")
    if not profiles:
        sec.missing.append(f"the source lines behind the costliest stages: {PROFILE_COMMAND}")
        return sec
    sec.table = [["deep-dive", "parameters", "s per call", "source line", "function", "CPU share", "native", "cores"]]
    for p in profiles:
        params = ", ".join(f"{k}={v}" for k, v in p.params.items())
        for ln in p.lines[:TOP_LINES]:
            sec.table.append([p.path.name, params, f"{p.seconds:.3g}", f"{ln['where']}: {ln['text'][:60]}",
                              str(ln.get("function", "")), f"{float(ln['cpu']):.0f}%", f"{float(ln['native']):.0f}%",
                              f"{float(ln['cores']):.2f}"])
        if p.lines:
            top = p.lines[0]
            sec.statements.append(f"{p.target} ({params}, {p.seconds:.3g} s a call): {float(top['cpu']):.0f}% of the "
                                  f"profiled CPU time on one line, {top['where']} `{top['text'][:80]}` "
                                  f"({float(top['cores']):.2f} cores busy there); the top {TOP_LINES} lines hold "
                                  f"{sum(float(ln['cpu']) for ln in p.lines[:TOP_LINES]):.0f}%.")
    return sec


def recorded_sections(seams: list[Path], profiles: list[Path], rows: list[Row], device: str = "cpu") -> list[Section]:
    """Both sections from the files given (``cpbench report --seams ... --profiles ...``)."""
    runs = [load_seam_report(p) for p in seams]
    return [segment_section(runs, rows, device), profile_section([load_profile(f) for f in profile_folders(profiles)])]

