"""A picture of a (synthetic or real) slide: pyramid overview plus a full-resolution crop.

Reads only a small pyramid level and one crop through tifffile's zarr store, so it is cheap for
an 80 GB slide too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from cpbench.io.files import atomic_path


def _norm(a: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(a, [1, 99.8])
    return np.clip((a.astype(np.float32) - lo) / max(float(hi - lo), 1.0), 0, 1)


def _region(path: Path, level: int, y0: int, x0: int, h: int, w: int, channel: int | None) -> np.ndarray:
    import zarr

    with tifffile.TiffFile(path) as tf:
        store = tf.series[0].aszarr(level=level)
        arr = zarr.open_array(store, mode="r")
        sl = (slice(y0, y0 + h), slice(x0, x0 + w))
        return np.asarray(arr[(channel, *sl)] if channel is not None else arr[sl])


def write_preview(image: Path, out_png: Path, labels: Path | None = None, crop: int = 300,
                  max_overview: int = 1600) -> Path:
    """Write a PNG: overview of DNA (blue) with two marker channels, and a ``crop`` px full-resolution
    crop of channel 0 with ground-truth outlines (red) when ``labels`` is given. Returns ``out_png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import ndimage

    with tifffile.TiffFile(image) as tf:
        levels = tf.series[0].levels
        k = next((i for i, lv in enumerate(levels) if max(lv.shape[-2:]) <= max_overview), len(levels) - 1)
        ov = levels[k].asarray()
        full_shape = levels[0].shape
    ov = ov[None] if ov.ndim == 2 else ov
    c = ov.shape[0]
    rgb = np.zeros((*ov.shape[1:], 3), np.float32)
    rgb[..., 2] = _norm(ov[0])
    if c > 2:
        rgb[..., 0], rgb[..., 1] = _norm(ov[1]), _norm(ov[2])
    # crop: the brightest part of the overview's nuclear channel (likely tissue)
    Y, X = full_shape[-2:]
    crop = min(crop, Y, X)
    f = Y / ov.shape[1]
    sm = ndimage.uniform_filter(ov[0].astype(np.float32), size=max(int(crop / f), 1))
    cy, cx = np.unravel_index(int(np.argmax(sm)), sm.shape)
    y0 = int(np.clip(cy * f - crop / 2, 0, Y - crop))
    x0 = int(np.clip(cx * f - crop / 2, 0, X - crop))
    dna = _norm(_region(image, 0, y0, x0, crop, crop, 0 if len(full_shape) == 3 else None))
    panels = 3 if labels is not None else 2
    fig, ax = plt.subplots(1, panels, figsize=(6 * panels, 6))
    ax[0].imshow(rgb)
    ax[0].set_title(f"overview, level {k}: DNA blue" + (", ch1 red, ch2 green" if c > 2 else ""))
    ax[0].add_patch(plt.Rectangle((x0 / f, y0 / f), crop / f, crop / f, fill=False, color="w"))
    ax[1].imshow(dna, cmap="gray")
    ax[1].set_title(f"channel 0, {crop}x{crop} px at y={y0}, x={x0}")
    if labels is not None:
        lab = _region(labels, 0, y0, x0, crop, crop, None)
        edge = ndimage.maximum_filter(lab, 3) != ndimage.minimum_filter(lab, 3)
        over = np.repeat(dna[..., None], 3, axis=-1)
        over[edge] = (1.0, 0.2, 0.2)
        ax[2].imshow(over)
        ax[2].set_title(f"ground truth: {len(np.unique(lab)) - 1} nuclei in the crop")
    for a in ax:
        a.axis("off")
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
    return out_png
