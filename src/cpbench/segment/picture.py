"""A picture of a seam region: the slide's channel with the blockwise labels' outlines, the block cores
and read windows drawn over it, beside another label image of the same slide (whole-image eval, or
another run), objects without a partner at IoU > 0.5 in the other image in red. Reads only the
region (labels from OME-TIFF or OME-Zarr). Units: pixels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cpbench.errors import UserError


def read_labels(path: Path, y0: int, x0: int, h: int, w: int) -> np.ndarray:
    """The ``h`` x ``w`` window at (``y0``, ``x0``) of a label image: OME-TIFF or OME-Zarr (level 0)."""
    if path.is_dir():
        import zarr

        return np.asarray(zarr.open_group(str(path), mode="r")["0"][y0:y0 + h, x0:x0 + w])
    from cpbench import stages as cs

    return cs.read_region(path, 0, y0, x0, h, w)


def outlines(labels: np.ndarray) -> np.ndarray:
    """Pixels of an object that touch another id (or background) on their right or below."""
    edge = np.zeros(labels.shape, bool)
    dy = labels[1:, :] != labels[:-1, :]
    dx = labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= dy
    edge[:-1, :] |= dy
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    return edge & (labels > 0)


@dataclass(frozen=True)
class View:
    """What the picture shows: its window (y0, x0, h, w) and, per panel, labels in view and unmatched."""

    window: tuple[int, int, int, int]
    labels: list[int]
    unmatched: list[int]


def seam_picture(labels: Path, image: Path, out: Path, against: Path | None = None,
                 at: tuple[int, int] | None = None, size: int | None = None) -> View:
    """Draw the region of ``size`` px centred on ``at`` (default: the block corner nearest the slide's
    centre) into the PNG ``out`` (atomic). The grid, channel and contrast come from the seam report
    beside ``labels``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cpbench import stages as cs
    from cpbench.io.files import atomic_path
    from cpbench.segment.agreement import unmatched
    from cpbench.segment.run import seam_report_path

    report = seam_report_path(labels)
    if not report.exists():
        raise UserError(f"{report} is missing: give a label image written by cpbench segment (its seam report "
                        "lies beside it)")
    doc = json.loads(report.read_text())
    (sy, sx), block, overlap = doc["shape"], int(doc["block"]), int(doc["overlap"])
    if at is None:
        at = (min(max(sy // 2 // block, 1), -(-sy // block) - 1) * block,
              min(max(sx // 2 // block, 1), -(-sx // block) - 1) * block)
    size = min(size or max(8 * overlap, 256), sy, sx)
    y0 = int(min(max(at[0] - size // 2, 0), sy - size))
    x0 = int(min(max(at[1] - size // 2, 0), sx - size))
    img = cs.read_region(image, int(doc["channel"]), y0, x0, size, size).astype(np.float32)
    lo, hi = doc["lowhigh"]
    img = np.clip((img - lo) / max(hi - lo, 1e-9), 0, 1)
    panels = [("blockwise", read_labels(labels, y0, x0, size, size))]
    if against is not None:
        panels.append((against.name.split(".")[0], read_labels(against, y0, x0, size, size)))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 6.6), squeeze=False)
    counts, missing = [], []
    for k, (name, lab) in enumerate(panels):
        ax = axes[0, k]
        odd = unmatched(lab, panels[1 - k][1]) if len(panels) == 2 else np.zeros(0, lab.dtype)
        rgb = np.repeat(img[..., None], 3, axis=2)
        edge = outlines(lab)
        rgb[edge] = (0.1, 0.9, 1.0)
        rgb[edge & np.isin(lab, odd)] = (1.0, 0.15, 0.15)
        ax.imshow(rgb, extent=(x0, x0 + size, y0 + size, y0), interpolation="nearest")
        for edge_px in range(0, max(sy, sx) + 1, block):  # block cores (solid), read windows (dashed)
            for pos, style in ((edge_px, "-"), (edge_px - overlap, ":"), (edge_px + overlap, ":")):
                if y0 < pos < y0 + size and 0 < edge_px < sy:
                    ax.axhline(pos, color="yellow", ls=style, lw=1)
                if x0 < pos < x0 + size and 0 < edge_px < sx:
                    ax.axvline(pos, color="yellow", ls=style, lw=1)
        n = len(np.unique(lab)) - int((lab == 0).any())
        counts.append(n)
        missing.append(len(odd))
        extra = f", {len(odd)} without a match in the other (red)" if len(panels) == 2 else ""
        ax.set_title(f"{name}: {n} labels in view{extra}", fontsize=10)
        ax.set_xlabel("x (px)")
        ax.set_ylabel("y (px)")
    fig.suptitle(f"{labels.name}: block {block} px, overlap {overlap} px (yellow: block cores, dotted: read "
                 "windows)", fontsize=10)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return View((y0, x0, size, size), counts, missing)
