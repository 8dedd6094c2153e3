"""The one place that opens a slide for every command that reads one: checks, before any pixel is read and
before any cluster starts, that the path is a readable file, a TIFF, its first series (C, Y, X) or (Y, X)
of 8- or 16-bit integers (for the commands that need that), tiled or not (and what a full read of a channel
costs when not), that the channel exists, and that every tile or strip of every level lies inside the file
(a truncated copy is named as truncated, with the size it has and the size its tiles need). Each problem is
one :class:`~cpbench.errors.UserError` line naming the file, the problem and the fix.

Nothing here allocates what a header claims: only the IFDs' offset and byte-count tables are read (their
length is bounded by the file's own size). Units: pixels, bytes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cpbench.errors import UserError

#: the fix for a damaged or truncated copy
REFETCH = "re-download or copy it again (cpbench fetch NAME re-downloads a challenge image and verifies its MD5)"


@dataclass(frozen=True)
class Slide:
    """What the checks found: shape of the full level (Y, X), channels, dtype, axes, the tile (None:
    strips), the levels' shapes, the file's bytes and the bytes its tiles reach to."""

    path: Path
    shape: tuple[int, int]
    channels: int
    dtype: str
    axes: str
    tile: tuple[int, int] | None
    levels: list[tuple[int, ...]]
    file_bytes: int
    needed_bytes: int

    @property
    def channel_bytes(self) -> int:
        """Bytes of one channel of the full level, decoded."""
        return self.shape[0] * self.shape[1] * np.dtype(self.dtype).itemsize


@contextlib.contextmanager
def quiet_tifffile() -> Iterator[None]:
    """tifffile's own log (it warns on stderr, line by line, about every damaged tag it meets) held back:
    what the checks find is said in one line instead."""
    log = logging.getLogger("tifffile")
    level = log.level
    log.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        log.setLevel(level)


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]


def _needed(pages: list) -> int:
    """The largest offset + byte count over ``pages``' tiles or strips (0 for none)."""
    end = 0
    for p in pages:
        offs = np.asarray(p.dataoffsets, dtype=np.int64)
        counts = np.asarray(p.databytecounts, dtype=np.int64)
        if offs.size and counts.size == offs.size:
            end = max(end, int((offs + counts).max()))
    return end


def open_slide(path: Path, channel: int | None = None, integer: bool = False, planes: bool = True) -> Slide:
    """Check ``path`` (see the module's docstring) and describe it; ``channel`` must exist when given;
    ``integer``: the pixels must be uint8 or uint16 (an exact histogram, as ``cpbench segment`` needs);
    ``planes`` False: any axes (``cpbench info`` describes a stack it cannot segment)."""
    import tifffile

    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a slide file: give the path of an OME-TIFF file")
    if not path.exists():
        raise UserError(f"{path} does not exist: check the path")
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise UserError(f"{path} cannot be read ({_one_line(exc)}): check its permissions") from None
    if size == 0:
        raise UserError(f"{path} is empty (0 bytes): {REFETCH}")
    if head[:4] not in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        raise UserError(f"{path} is not a readable TIFF (it starts with {head[:8]!r}, no TIFF header): give an OME-TIFF")
    try:
        with quiet_tifffile(), tifffile.TiffFile(path) as tf:
            s = tf.series[0]
            shape, axes, dtype = tuple(int(v) for v in s.shape), str(s.axes), np.dtype(s.dtype)
            page = s.pages[0]
            tile = (int(page.tilelength), int(page.tilewidth)) if page.is_tiled else None
            levels = [tuple(int(v) for v in lvl.shape) for lvl in s.levels]
            needed = max(_needed([p for p in lvl.pages if p is not None]) for lvl in s.levels)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged header is the file's problem, said in one line
        raise UserError(f"{path} is not a readable TIFF ({_one_line(exc)}): {REFETCH}") from None
    if needed > size:
        raise UserError(f"{path} is truncated: it has {size:,} bytes but its tiles reach to byte {needed:,} "
                        f"({needed - size:,} bytes missing); {REFETCH}")
    if len(shape) == 2:
        nch, yx = 1, (shape[0], shape[1])
    elif len(shape) == 3 and axes[-2:] == "YX":
        nch, yx = shape[0], (shape[1], shape[2])
    elif not planes:
        nch, yx = int(np.prod(shape[:-2])), (shape[-2], shape[-1])
    else:
        raise UserError(f"{path} has axes {axes} {shape}: a (C, Y, X) or (Y, X) image is needed; export one plane "
                        "per channel")
    if integer and dtype not in (np.dtype(np.uint8), np.dtype(np.uint16)):
        raise UserError(f"{path} holds {dtype} pixels: uint8 or uint16 are needed (an exact histogram of the "
                        "channel); convert the slide")
    if channel is not None and not 0 <= channel < nch:
        raise UserError(f"--channel {channel} is out of range: {path.name} has channels 0..{nch - 1}")
    return Slide(path, yx, nch, str(dtype), axes, tile, levels, size, needed)


def damaged_tile(path: Path, channel: int, window: tuple[int, int, int, int]) -> tuple[int, int, int, int] | None:
    """The first tile of the full level within ``window`` (y0, y1, x0, x1) that does not decode, as its
    pixel range; None when every tile decodes (the failure was elsewhere)."""
    import tifffile
    import zarr

    y0, y1, x0, x1 = window
    with tifffile.TiffFile(path) as tf:
        page = tf.series[0].pages[0]
        th = int(page.tilelength) if page.is_tiled else int(page.rowsperstrip or (y1 - y0))
        tw = int(page.tilewidth) if page.is_tiled else tf.series[0].shape[-1]
        arr = zarr.open(tf.series[0].aszarr(level=0), mode="r")
        h, w = arr.shape[-2:]
        for ty in range((y0 // th) * th, y1, th):
            for tx in range((x0 // tw) * tw, x1, tw):
                sl = (slice(ty, min(ty + th, h)), slice(tx, min(tx + tw, w)))
                try:
                    arr[sl] if arr.ndim == 2 else arr[(channel, *sl)]
                except Exception:  # noqa: BLE001 - any failure to decode marks the tile
                    return ty, min(ty + th, h), tx, min(tx + tw, w)
    return None
