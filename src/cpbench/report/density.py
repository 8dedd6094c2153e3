"""Question 3, do densely packed cells cost more: the stages measured on the synthetic slide at four cell
densities (``cpbench sweep density``), beside what each input holds (``bench_masks.CellDensity``:
nuclei per megapixel, fraction of pixels in a nucleus), and a cost model of each stage in pixels and
cell pixels: ``seconds = fixed + a * pixels + b * cell_pixels``, fitted to relative residuals.

Units: seconds, pixels, nuclei per MP (1e6 pixels), fractions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cpbench.report.changes import stage_name
from cpbench.report.document import Section
from cpbench.report.evidence import Judgement, detection_limits, judge
from cpbench.report.results import Row
from cpbench.report.select import TIME, off_defaults, pixels

TYPICAL = "synthetic"
#: density datasets in order, with a word for each
LEVELS = {"synthetic-bare": "bare glass", "synthetic-sparse": "sparse", TYPICAL: "typical",
          "synthetic-packed": "packed"}
DENSITY = "bench_masks.CellDensity"
STAGES = ("bench_masks.FollowFlows", "bench_masks.GetMasks", "bench_masks.FlowQC", "bench_masks.FillHoles",
          "bench_masks.MaskRecovery", "bench_network.Network", "bench_eval.EndToEnd", "bench_segment.Blockwise")
BLOCKWISE = "bench_segment.Blockwise"
#: the block side the density sweep segments in, pixels (measure.sweep.DENSITY_BLOCK)
DENSITY_BLOCK = "256"


@dataclass(frozen=True)
class CellFit:
    """``seconds = fixed + per_pixel * pixels + per_cell_pixel * cell_pixels`` and its RMS relative error."""

    fixed: float
    per_pixel: float
    per_cell_pixel: float
    error: float | None  # None with 3 points or fewer
    n: int


def fit_cells(points: list[tuple[int, int, float]]) -> CellFit | None:
    """Fit ``(pixels, cell_pixels, seconds)`` points; None unless both pixels and cell pixels vary."""
    pts = [(p, c, v) for p, c, v in points if v and v > 0]
    if len(pts) < 3 or len({p for p, _, _ in pts}) < 2 or len({round(c / p, 3) for p, c, _ in pts}) < 2:
        return None
    px, cells, val = (np.array(x, dtype=float) for x in zip(*pts))
    a = np.vstack([np.ones_like(px), px, cells]).T / val[:, None]
    coef = np.linalg.lstsq(a, np.ones_like(val), rcond=None)[0]
    fit = a @ coef * val
    err = float(np.sqrt(np.mean(((fit - val) / val) ** 2))) if len(pts) > 3 else None
    return CellFit(float(coef[0]), float(coef[1]), float(coef[2]), err, len(pts))


def _defaults(r: Row) -> bool:
    if r.stage == BLOCKWISE:  # measured in blocks of DENSITY_BLOCK px
        return r.params.get("block") == DENSITY_BLOCK and set(off_defaults(r)) <= {"dataset", "block"}
    return r.params.get("device", "cpu") == "cpu" and off_defaults(r) in ([], ["dataset"])


def contents(rows: list[Row]) -> dict[tuple[str, str], dict[str, float]]:
    """(dataset, size) -> {"nuclei_per_mp", "cell_fraction"} from bench_masks.CellDensity."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    for r in rows:
        if r.stage == DENSITY and r.value is not None:
            key = r.measure.removeprefix("track_")
            out.setdefault((r.params["dataset"], r.params["size"]), {})[key] = r.value
    return out


def times(rows: list[Row]) -> dict[str, dict[tuple[str, str], Row]]:
    """stage -> (dataset, size) -> its newest time row, at default parameters otherwise (CPU)."""
    out: dict[str, dict[tuple[str, str], Row]] = {}
    for r in rows:
        if r.measure == TIME and r.value is not None and r.stage in STAGES and r.params.get("dataset") in LEVELS \
                and _defaults(r):
            by = out.setdefault(r.stage, {})
            key = (r.params["dataset"], r.params.get("size", ""))
            if key not in by or r.date > by[key].date:  # the newest measurement
                by[key] = r
    return out


@dataclass(frozen=True)
class DensityEffect:
    stage: str
    size: str
    dataset: str
    judgement: Judgement  # against the typical density at the same size


def effects(rows: list[Row]) -> list[DensityEffect]:
    """Each stage at each density against the typical one, at the largest size every level was timed at."""
    limits = detection_limits(rows)
    out = []
    for stage, by in times(rows).items():
        sizes = [s for s in {s for _, s in by} if all((d, s) in by for d in LEVELS)]
        if not sizes:
            continue
        size = max(sizes, key=lambda s: pixels({"size": s}) or 0)
        for d in LEVELS:
            if d != TYPICAL:
                out.append(DensityEffect(stage, size, d, judge(by[(TYPICAL, size)], by[(d, size)], limits)))
    return out


def density_section(rows: list[Row]) -> Section:
    """The table (stage x density at the largest common size, with what each input holds), the cell-pixel
    cost models, and statements; missing: the command."""
    sec = Section("Dense cells: cost against cell density (cpu)")
    held = contents(rows)
    eff = effects(rows)
    if not eff:
        sec.missing.append("no stage timed at the four densities at one size: cpbench sweep density")
        return sec
    t = times(rows)
    size = next((e.size for e in eff if e.stage != BLOCKWISE), eff[0].size)  # blockwise: larger crops
    head = ["stage", "size"] + [f"{LEVELS[d]}, s" for d in LEVELS]
    table = [head]
    for stage in [s for s in STAGES if s in t]:
        by = t[stage]
        for at in dict.fromkeys([size, *(e.size for e in eff if e.stage == stage)]):  # and its own largest
            if all((d, at) in by for d in LEVELS):
                table.append([stage_name(stage), at] + [f"{by[(d, at)].value:.3g}" for d in LEVELS])
    if held:
        table.append(["nuclei per MP", size] + [f"{held.get((d, size), {}).get('nuclei_per_mp', float('nan')):.0f}" for d in LEVELS])
        table.append(["cell-pixel fraction", size] + [f"{held.get((d, size), {}).get('cell_fraction', float('nan')):.1%}" for d in LEVELS])
    sec.table = table
    packed = [e for e in eff if e.dataset == "synthetic-packed"]
    for e in sorted(packed, key=lambda e: -e.judgement.ratio):
        sec.statements.append(f"{stage_name(e.stage)} at {e.size} px: packed cells take {e.judgement.ratio:.2f}x the "
                              f"typical density's time ({e.judgement.verdict}: {e.judgement.basis}); bare glass "
                              + next((f"{b.judgement.ratio:.2f}x" for b in eff if b.stage == e.stage and
                                      b.dataset == "synthetic-bare"), "not timed") + ".")
    for stage, by in t.items():
        pts = [(pixels({"size": s}) or 0, int((pixels({"size": s}) or 0) * held[(d, s)]["cell_fraction"]), r.value)
               for (d, s), r in by.items() if (d, s) in held and "cell_fraction" in held[(d, s)]]
        fit = fit_cells(pts)  # type: ignore[arg-type]
        if fit is not None:
            sec.statements.append(
                f"{stage_name(stage)}: {fit.fixed:.3g} s + {fit.per_pixel * 1e6:.3g} s per MP + "
                f"{fit.per_cell_pixel * 1e6:.3g} s per MP of cell pixels ({fit.n} inputs, fit error "
                + (f"{fit.error:.0%})." if fit.error is not None else "n/a)."))
    if not held:
        sec.missing.append("what each input holds (bench_masks.CellDensity): cpbench sweep density")
    return sec
