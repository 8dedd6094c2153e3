""""How to segment each challenge image": per image on the machine measured, whole-image or blockwise,
the block side, batch size, workers, projected wall time and peak memory with ranges, and which runs
support them, under the rules of :mod:`cpbench.report.evidence` (a projection needs eval's scaling law
and lies within 20x of the largest size measured; beyond 4x it is labelled).

A block's peak is whole-image eval's process peak at the block's pixels (the block is a small image);
blocks run one at a time here, so the run's peak is one block's. Units: seconds, bytes, pixels.
"""

from __future__ import annotations

from cpbench.fetch.catalogue import IMAGES
from cpbench.plan.project import block_shapes, makespan
from cpbench.report.costmodel import Projection, project
from cpbench.report.document import Section
from cpbench.report.evidence import (
    SCALING_SWEEP,
    extrapolation_note,
    law_supported,
    projection_number,
)
from cpbench.report.select import PROCESS_PEAK, series
from cpbench.report.slide import END_TO_END, SlideModel, side_label, slide_pixels

#: block sides considered (px), largest first
BLOCKS = (8192, 4096, 2048, 1024)
#: a run may use at most this share of RAM (the rest: the OS, the reader, the stitched labels)
RAM_SHARE = 0.5


def _block(model: SlideModel, ram: float) -> tuple[int, str] | None:
    """The largest block side whose eval peak stays within RAM_SHARE of ``ram`` by the peak's scaling law
    (the block within 20x of the largest size measured): (side, basis); None without a law (the largest
    size measured is not a recommendation: larger blocks were simply not measured)."""
    budget = RAM_SHARE * ram
    fit = model.eval_peak
    for side in BLOCKS:
        px = side * side
        if law_supported(fit) and projection_number(px / fit.max_pixels):  # type: ignore[union-attr]
            p = project(fit, px)  # type: ignore[arg-type]
            if p.high <= budget:
                return side, f"its projected peak {p.value / 1e9:.3g} GB (up to {p.high / 1e9:.3g})"
    return None


def _blocks_time(model: SlideModel, name: str, side: int) -> tuple[Projection | None, int]:
    """(the sum of whole-image eval's time over the blocks, the block count): blocks are independent images, so
    the projection reaches only as far as one block beyond the sizes measured. Overlap and stitching are
    not included. None when one block lies beyond 20x the largest size measured or eval has no law."""
    _, y, x = IMAGES[name].shape
    shapes = block_shapes((y, x), side)  # edge blocks are smaller
    fit = model.eval_time
    if not law_supported(fit) or not projection_number(side * side / fit.max_pixels):  # type: ignore[union-attr]
        return None, len(shapes)
    parts = [project(fit, h * w) for h, w in shapes]  # type: ignore[arg-type]
    # one worker runs the blocks one after the other (cpbench plan's projection, at one worker)
    return Projection(makespan([p.value for p in parts], 1), makespan([p.low for p in parts], 1),
                      makespan([p.high for p in parts], 1), max(p.extrapolation for p in parts)), len(shapes)


def howto_section(model: SlideModel, ram: float | None, label: str) -> Section:
    """The table and a sentence per image; what cannot be stated is said, with the command."""
    sec = Section(f"How to segment each challenge image ({model.device})")
    if ram is None or not law_supported(model.eval_peak):
        peaks = series(model.rows, END_TO_END, PROCESS_PEAK, model.device)
        sec.statements.append("Not stated from these results: whole-image or blockwise, and the block size, follow "
                              "from the scaling law of whole-image eval's process peak, which these results do not "
                              "give" + (f" (measured: {', '.join(f'{v / 1e9:.3g} GB at {side_label(px)}' for px, v in peaks)})"
                                        if peaks else "") + ".")
        sec.missing.append(f"how to segment each challenge image: {SCALING_SWEEP}")
        return sec
    block = _block(model, ram)
    table = [["image", "nuclear channel, MP", "how", "block, px", "batch size", "workers", "wall time (range)",
              "peak, GB (range)", "supported by"]]
    support = (f"end-to-end eval at {model.eval_time.n if model.eval_time else 0} sizes to "
               f"{max(model.measured(END_TO_END), default=0) / 1e6:.3g} MP; {label}")
    for name in IMAGES:
        px = slide_pixels(name)
        peak = model.run_peak(name)
        run = model.run_seconds(name)
        whole = peak is not None and peak.high <= RAM_SHARE * ram
        if whole:
            how, side, peak_text = "whole image", "", f"{peak.value / 1e9:.3g} ({peak.low / 1e9:.3g}-{peak.high / 1e9:.3g})"  # type: ignore[union-attr]
        elif block is not None:
            how, side = "blockwise (cpbench segment)", str(block[0])
            bp = project(model.eval_peak, block[0] ** 2)
            peak_text = f"{bp.value / 1e9:.3g} ({bp.low / 1e9:.3g}-{bp.high / 1e9:.3g}) per block"
        else:
            how, side, peak_text = "not stated", "", "no block fits the measured peaks"
        if side and model.eval_time is not None:
            run, count = _blocks_time(model, name, int(side))
            how += f", {count} blocks"
        if run is not None:
            note = extrapolation_note(run.extrapolation)
            time = (f"{run.value / 3600:.2g} h ({run.low / 3600:.2g}-{run.high / 3600:.2g} h)"
                    + (f", {note}" if note else ""))
        else:
            time = "not projected" + ("" if model.projectable else f" ({model.why_not()})")
        table.append([name, f"{px / 1e6:.1f}", how, side, "8 (default)", "1", time, peak_text, support])
        blocks = f", blocks of {side} px ({block[1]})" if side and block else ""
        sec.statements.append(f"{name}: {how}{blocks}; wall time " + (f"~{time}." if run is not None else f"{time}."))
    sec.table = table
    sec.statements.append(
        f"Peak budget: {RAM_SHARE:.0%} of {ram / 1e9:.1f} GB RAM. Batch size 8 and one worker: the parameter sweep "
        "measures other batch sizes on the network alone, and blockwise runs with more workers share this "
        "machine's cores (time per block measured by cpbench segment, not by these results). Wall time: whole-image "
        "eval's time law at the slide's pixels, or its sum over the blocks, each an image (blockwise adds each block's overlap and the stitching, which "
        "cpbench segment's seam reports record). For a slide of your own, on your own machine or cluster: "
        "cpbench plan SLIDE samples a few of its blocks and projects the run with this same arithmetic.")
    if not model.projectable:
        sec.missing.append(f"projected wall times: {SCALING_SWEEP}")
    return sec
