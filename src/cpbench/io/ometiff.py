"""Streaming writer and reader helpers for tiled, pyramidal OME-TIFF (tifffile + zarr scratch).

The full-resolution image is produced tile by tile by a callback and written straight to the
file; nothing of image size is held in memory. Sub-resolution levels (SubIFDs, 2x block means)
are accumulated on the way into a compressed zarr scratch store beside the output and written
after level 0, as tifffile requires. Output goes to a temporary name that is renamed at the end,
so a final file name only ever holds a complete file.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from cpbench.errors import UserError
from cpbench.io.files import atomic_path

COMPRESSIONS = ("none", "zlib", "zstd", "lzw")
TileFn = Callable[[int, int, int, int, int], np.ndarray]
"""``fn(channel, y0, x0, h, w) -> (h, w) array`` producing one tile of level 0."""


@dataclass(frozen=True)
class Layout:
    """Geometry of a tiled pyramidal image. ``tile`` in pixels, ``levels`` = sub-resolutions."""

    shape: tuple[int, int, int]  # C, Y, X
    tile: int
    levels: int

    def level_shape(self, k: int) -> tuple[int, int, int]:
        """(C, Y, X) of level ``k`` (0 is full resolution); each level halves Y and X, rounding up."""
        c, y, x = self.shape
        return c, -(-y // 2**k), -(-x // 2**k)

    def tiles(self, k: int = 0) -> Iterator[tuple[int, int, int, int, int]]:
        """Yield ``(channel, y0, x0, h, w)`` for every tile of level ``k``, in TIFF order."""
        c, y, x = self.level_shape(k)
        for ch in range(c):
            for y0 in range(0, y, self.tile):
                for x0 in range(0, x, self.tile):
                    yield ch, y0, x0, min(self.tile, y - y0), min(self.tile, x - x0)

    def n_tiles(self, k: int = 0) -> int:
        """Number of tiles of level ``k`` over all channels."""
        c, y, x = self.level_shape(k)
        return c * (-(-y // self.tile)) * (-(-x // self.tile))


def auto_levels(y: int, x: int, tile: int) -> int:
    """Sub-resolution levels needed until the smallest level fits in one tile."""
    n = 0
    while max(-(-y // 2**n), -(-x // 2**n)) > tile:
        n += 1
    return n


def _block_mean(a: np.ndarray, f: int) -> np.ndarray:
    """Mean over ``f x f`` blocks, edge blocks padded by edge replication; same dtype (rounded)."""
    if f == 1:
        return a
    h, w = a.shape
    hh, ww = -(-h // f) * f, -(-w // f) * f
    if (hh, ww) != (h, w):
        a = np.pad(a, ((0, hh - h), (0, ww - w)), mode="edge")
    m = a.reshape(hh // f, f, ww // f, f).mean(axis=(1, 3), dtype=np.float64)
    return np.rint(m).astype(a.dtype)


def _block_first(a: np.ndarray, f: int) -> np.ndarray:
    """The first pixel of every ``f x f`` block (nearest sampling: label ids are never averaged)."""
    return a[::f, ::f]


#: how a sub-resolution level is made from level 0: "mean" for intensities, "nearest" for labels
REDUCERS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {"mean": _block_mean, "nearest": _block_first}


def estimate_bytes(shape: tuple[int, int, int], dtype: np.dtype, levels: int) -> int:
    """Upper estimate of the uncompressed size of a pyramid (level 0 plus sub-levels), bytes."""
    c, y, x = shape
    return int(sum(c * math.ceil(y / 2**k) * math.ceil(x / 2**k) for k in range(levels + 1)) * np.dtype(dtype).itemsize)


def ome_metadata(channel_names: list[str] | None, pixel_size_um: float, name: str) -> dict[str, Any]:
    """tifffile ``metadata`` for OME-XML: axes, physical pixel size (µm) and channel names."""
    md: dict[str, Any] = {
        "axes": "CYX" if channel_names is not None else "YX",
        "Name": name,
        "PhysicalSizeX": pixel_size_um,
        "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": pixel_size_um,
        "PhysicalSizeYUnit": "µm",
    }
    if channel_names is not None:
        md["Channel"] = {"Name": list(channel_names)}
    return md


def write_pyramid(
    path: Path,
    layout: Layout,
    dtype: np.dtype,
    tile_fn: TileFn,
    *,
    channel_names: list[str] | None,
    pixel_size_um: float,
    compression: str = "none",
    progress: Any = None,
    on_tile: Callable[[int, int, int, np.ndarray], None] | None = None,
    reduce: str = "mean",
) -> None:
    """Write a tiled pyramidal OME-TIFF to ``path`` (atomically), streaming tiles from ``tile_fn``.

    ``channel_names`` None writes a 2-D (Y, X) image (``layout.shape[0]`` must be 1).
    ``progress`` (tqdm-like) is advanced by one per level-0 tile and one per sub-level tile.
    ``on_tile(channel, y0, x0, tile)`` is called with every level-0 tile after it is made.
    ``reduce``: sub-levels are block means ("mean") or nearest samples ("nearest", for label images).
    Units: pixels for sizes, µm for ``pixel_size_um``.
    """
    import zarr

    if reduce not in REDUCERS:
        raise ValueError(f"reduce must be one of {', '.join(REDUCERS)}, not {reduce!r}")
    if compression not in COMPRESSIONS:
        raise UserError(f"unknown compression {compression!r}; use one of {', '.join(COMPRESSIONS)}")
    comp = None if compression == "none" else compression
    dtype = np.dtype(dtype)
    t = layout.tile
    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent)))
        lv = [
            zarr.create_array(
                store=str(scratch / f"level{k}.zarr"), shape=layout.level_shape(k),
                chunks=(1, max(t >> k, 1), max(t >> k, 1)), dtype=dtype, fill_value=0,
            )
            for k in range(1, layout.levels + 1)
        ]

        def level0() -> Iterator[np.ndarray]:
            for ch, y0, x0, h, w in layout.tiles(0):
                a = np.ascontiguousarray(tile_fn(ch, y0, x0, h, w), dtype=dtype)
                if a.shape != (h, w):
                    raise RuntimeError(f"tile_fn returned {a.shape}, expected {(h, w)}")
                for k, arr in enumerate(lv, start=1):
                    f = 2**k
                    d = REDUCERS[reduce](a, f)
                    arr[ch, y0 // f:y0 // f + d.shape[0], x0 // f:x0 // f + d.shape[1]] = d
                if on_tile is not None:
                    on_tile(ch, y0, x0, a)
                if progress is not None:
                    progress.update(1)
                yield a

        def level(k: int) -> Iterator[np.ndarray]:
            arr = lv[k - 1]
            for ch, y0, x0, h, w in layout.tiles(k):
                a = np.asarray(arr[ch, y0:y0 + h, x0:x0 + w])
                if progress is not None:
                    progress.update(1)
                yield a

        c, y, x = layout.shape
        shape0: tuple[int, ...] = (c, y, x) if channel_names is not None else (y, x)
        res = (1e4 / pixel_size_um, 1e4 / pixel_size_um)  # pixels per cm
        opts = dict(tile=(t, t), compression=comp, photometric="minisblack", dtype=dtype,
                    resolution=res, resolutionunit="CENTIMETER", maxworkers=1)
        with atomic_path(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=True, ome=True) as tw:
            tw.write(level0(), shape=shape0, subifds=layout.levels,
                     metadata=ome_metadata(channel_names, pixel_size_um, path.name.split(".")[0]), **opts)
            for k in range(1, layout.levels + 1):
                ck, yk, xk = layout.level_shape(k)
                shape_k = (ck, yk, xk) if channel_names is not None else (yk, xk)
                tw.write(level(k), shape=shape_k, subfiletype=1, metadata=None,
                         **{**opts, "resolution": (res[0] / 2**k, res[1] / 2**k)})


def describe(path: Path) -> dict[str, Any]:
    """Summary of an OME-TIFF: shape, dtype, axes, tile, levels, channel names, pixel size (µm), bytes."""
    with tifffile.TiffFile(path) as tf:
        s = tf.series[0]
        page = s.pages[0]
        names: list[str] = []
        size_um: float | None = None
        if tf.ome_metadata:
            meta = tifffile.xml2dict(tf.ome_metadata).get("OME", {})
            img = meta.get("Image", {})
            img = img[0] if isinstance(img, list) else img
            pix = img.get("Pixels", {})
            ch = pix.get("Channel", [])
            ch = ch if isinstance(ch, list) else [ch]
            names = [str(c.get("Name", "")) for c in ch]
            size_um = pix.get("PhysicalSizeX")
        return {
            "path": str(path),
            "shape": tuple(int(v) for v in s.shape),
            "axes": s.axes,
            "dtype": str(s.dtype),
            "tile": (int(page.tilelength), int(page.tilewidth)) if page.is_tiled else None,
            "compression": page.compression.name.lower(),
            "levels": [tuple(int(v) for v in lvl.shape) for lvl in s.levels],
            "channel_names": names,
            "pixel_size_um": size_um,
            "file_bytes": path.stat().st_size,
        }
