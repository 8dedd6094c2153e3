"""Stages 1 and 11, reading the slide and writing masks: tifffile and zarr only, no Cellpose.

Sizes and coordinates in pixels.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from cpbench.io.files import atomic_path


def read_full(path: str | os.PathLike[str]) -> np.ndarray:
    """Read series 0, full resolution, all channels into memory (``tifffile.imread``); ``(C, Y, X)`` or ``(Y, X)``."""
    import tifffile

    return np.asarray(tifffile.imread(path, series=0, level=0))


def read_page(path: str | os.PathLike[str], channel: int = 0) -> np.ndarray:
    """Read one full-resolution plane (page ``channel`` of series 0) into memory; ``(Y, X)``."""
    import tifffile

    with tifffile.TiffFile(path) as tf:
        series = tf.series[0]
        if series.ndim == 2 and channel != 0:
            raise IndexError(f"{path} has one plane, channel {channel} does not exist")
        return np.asarray(series.pages[channel].asarray())


def read_region(path: str | os.PathLike[str], channel: int, y0: int, x0: int, h: int, w: int) -> np.ndarray:
    """Read the ``h`` x ``w`` pixel region at ``(y0, x0)`` of one channel; ``(h, w)``.

    Goes through the zarr view of series 0, level 0 (``aszarr``), so only the tiles (or strips)
    that overlap the region are read and decoded, never the whole page.
    """
    import tifffile
    import zarr

    with tifffile.TiffFile(path) as tf:
        arr = zarr.open(tf.series[0].aszarr(level=0), mode="r")
        index = (slice(y0, y0 + h), slice(x0, x0 + w))
        out = arr[index] if arr.ndim == 2 else arr[(channel, *index)]
        return np.asarray(out)


def read_lazy(path: str | os.PathLike[str]) -> Any:
    """Open series 0, level 0 as a lazy ``zarr.Array`` (nothing is read until indexed).

    The array keeps the TIFF file open through its store until it is garbage collected.
    """
    import tifffile
    import zarr

    return zarr.open(tifffile.imread(path, aszarr=True, series=0, level=0), mode="r")


def write_masks(
    path: str | os.PathLike[str],
    masks: np.ndarray,
    compression: str | None = "zlib",
    tile: int | None = None,
) -> Path:
    """Write a label image as TIFF; returns the final path.

    ``compression``: a tifffile codec name (``"zlib"``, ``"zstd"``, ``"lzw"``) or None/"none";
    ``tile``: tile edge in pixels (multiple of 16) or None for strips. Written to a temporary
    name in the same directory and renamed at the end, so ``path`` only ever holds a complete file.
    """
    import tifffile

    path = Path(path)
    codec = None if compression in (None, "none") else compression
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, masks, compression=codec, tile=None if tile is None else (tile, tile))
    return path
