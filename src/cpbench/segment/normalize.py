"""Whole-slide intensity bounds from a streamed histogram: every block is normalized as whole-image
Cellpose would normalize the whole image (its 1st and 99th percentiles), without holding the image.

A uint8/uint16 channel has at most 65,536 values, so one integer histogram, added block by block, gives
the exact order statistics of the whole channel; the percentiles follow numpy's default ('linear')
rule. Units: the image's own intensity units.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

#: Cellpose's normalization percentiles (``normalize_img`` default)
PERCENTILES = (1.0, 99.0)


def histogram(blocks: Iterable[np.ndarray]) -> np.ndarray:
    """Counts of each intensity over all ``blocks`` (uint8 or uint16 arrays): int64, 256 or 65,536 bins."""
    hist: np.ndarray | None = None
    for b in blocks:
        if b.dtype not in (np.uint8, np.uint16):
            raise TypeError(f"an integer image of 8 or 16 bits is needed for an exact histogram, not {b.dtype}")
        h = np.bincount(b.ravel(), minlength=np.iinfo(b.dtype).max + 1)
        hist = h if hist is None else hist + h
    if hist is None or not hist.sum():
        raise ValueError("no pixels to take percentiles of")
    return hist.astype(np.int64)


def percentiles(hist: np.ndarray, qs: Iterable[float] = PERCENTILES) -> tuple[float, ...]:
    """The ``qs`` percentiles (0-100) of the values counted in ``hist``, as ``np.percentile`` gives them."""
    cum = np.cumsum(hist)
    n = int(cum[-1])
    out = []
    for q in qs:
        h = q / 100.0 * (n - 1)
        k = int(np.floor(h))
        v0 = float(np.searchsorted(cum, k, side="right"))
        v1 = float(np.searchsorted(cum, min(k + 1, n - 1), side="right"))
        out.append(v0 + (h - k) * (v1 - v0))
    return tuple(out)
