"""What a plan knows of a slide before any block is segmented: its metadata and one low pyramid level
of the nuclear channel (never a full read of a pyramidal slide), the tissue map built from it, the
blocks ``cpbench segment`` would skip as bare glass, and the windows to sample, stratified by signal.

The tissue map follows ``cpbench segment``'s rules on the low level: intensities normalized with that
level's 1st/99th percentiles, a block is bare glass when its brightest low-level pixel lies below
:data:`cpbench.segment.run.EMPTY_BELOW` of that range, and a block's *signal* is the mean of its
normalized pixels clipped to [0, 1] (what grows with the nuclei it holds). A low level averages pixels,
so it sees a block's brightest pixel dimmer than the full level does: the estimate of the bare-glass
blocks errs towards segmenting, never towards skipping tissue.
Units: pixels of the full-resolution level unless a name says otherwise; bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cpbench.errors import UserError
from cpbench.segment.blocks import Grid, make_grid
from cpbench.segment.normalize import histogram, percentiles
from cpbench.segment.run import EMPTY_BELOW

#: the survey reads the coarsest level that still gives a sampled window this many pixels across
SURVEY_PIXELS_PER_WINDOW = 16


@dataclass(frozen=True)
class Survey:
    """The slide as a plan sees it: shape, tiling, the low level read and the tissue map."""

    image: str
    channel: int
    channels: int
    shape: tuple[int, int]
    dtype: str
    tile: tuple[int, int]
    file_bytes: int
    level: int
    downsample: float  # full-resolution pixels per low-level pixel, along one axis
    lowhigh: tuple[float, float]  # the low level's 1st/99th percentiles (image units)
    low: np.ndarray  # the low level, normalized with ``lowhigh`` and clipped to [0, 1]

    @property
    def pixels(self) -> int:
        return self.shape[0] * self.shape[1]

    def window_stats(self, window: tuple[int, int, int, int]) -> tuple[float, bool]:
        """(signal, bare glass) of a full-resolution window ``(y0, y1, x0, x1)`` from the low level."""
        y0, y1, x0, x1 = window
        f = self.downsample
        a = self.low[int(y0 // f):max(int(math.ceil(y1 / f)), int(y0 // f) + 1),
                     int(x0 // f):max(int(math.ceil(x1 / f)), int(x0 // f) + 1)]
        if not a.size:
            return 0.0, True
        return float(a.mean()), bool(a.max() < EMPTY_BELOW)

    def blocks(self, grid: Grid) -> list[tuple[tuple[int, int], tuple[int, int], float, bool]]:
        """Every block of ``grid``: (index, read shape, signal of its read window, bare glass by its core)."""
        out = []
        for b in grid:
            signal, _ = self.window_stats(b.read)
            _, empty = self.window_stats(b.core)
            out.append((b.index, b.read_shape, signal, empty))
        return out


def _open(image: Path, channel: int) -> tuple[tuple[int, int], int, str, tuple[int, int] | None, list[float], int]:
    """(Y, X), channels, dtype, tile, each level's downsample, file bytes; one-line errors for a slide a
    plan cannot survey (:func:`cpbench.io.slide.open_slide`'s, and a slide stored in strips)."""
    from cpbench.io.slide import open_slide

    sl = open_slide(image, channel, integer=True)
    if sl.tile is None:
        raise UserError(f"{image} is not a tiled TIFF (stored in strips): a plan would have to read the whole channel "
                        f"({sl.channel_bytes / 1e9:.3g} GB) to map the tissue, and every block would read full-width "
                        "strips; convert it to a tiled pyramidal OME-TIFF (e.g. bfconvert -tilex 512 -tiley 512 "
                        "-pyramid-resolutions 4) first")
    downs = [sl.shape[1] / lvl[-1] for lvl in sl.levels]
    return sl.shape, sl.channels, sl.dtype, sl.tile, downs, sl.file_bytes


def survey(image: Path, channel: int, window: int) -> Survey:
    """Read the metadata and the coarsest level that gives a ``window`` px window at least
    :data:`SURVEY_PIXELS_PER_WINDOW` pixels across (level 0 only when the slide has no pyramid)."""
    import tifffile
    import zarr

    yx, nch, dtype, tile, downs, size = _open(image, channel)
    fine = [k for k, d in enumerate(downs) if window / d >= SURVEY_PIXELS_PER_WINDOW]
    level = max(fine, key=lambda k: downs[k]) if fine else 0
    try:
        with tifffile.TiffFile(image) as tf:
            arr = zarr.open(tf.series[0].aszarr(level=level), mode="r")
            low = np.asarray(arr[channel] if arr.ndim == 3 else arr[:])
    except Exception as exc:  # noqa: BLE001 - a damaged level is the slide's problem, said in one line
        raise UserError(f"{image}: level {level} cannot be read ({type(exc).__name__}: {' '.join(str(exc).split())}); "
                        "the file is damaged: re-download or re-export it") from None
    lo, hi = percentiles(histogram([low]))
    norm = np.clip((low.astype(np.float32) - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    return Survey(str(image), channel, nch, yx, dtype, tile, size, level, float(downs[level]), (lo, hi), norm)


@dataclass(frozen=True)
class Candidate:
    """A window to sample: the block of a grid of ``side`` px it is (whole read window inside the slide)."""

    index: tuple[int, int]
    signal: float


def sample_windows(sv: Survey, side: int, overlap: int, k: int) -> tuple[Grid, list[Candidate]]:
    """``k`` blocks of a ``side`` px grid, stratified by signal: the non-glass blocks whose read window
    is whole (not cut by the slide's edge) sorted by signal, cut into ``k`` strata of equal count, and
    each stratum's block nearest its median signal. Fewer when fewer blocks hold tissue."""
    grid = make_grid(sv.shape, side, overlap)
    full = (side + 2 * overlap, side + 2 * overlap)
    cands = [Candidate(idx, sig) for idx, shape, sig, empty in sv.blocks(grid) if not empty and shape == full]
    if not cands:  # a slide smaller than one whole window: any block with tissue
        cands = [Candidate(idx, sig) for idx, _, sig, empty in sv.blocks(grid) if not empty]
    if not cands:
        raise UserError(f"no tissue found in {Path(sv.image).name} channel {sv.channel}: at pyramid level {sv.level} "
                        f"every block's brightest pixel lies below {EMPTY_BELOW:.0%} of the slide's 1st-99th "
                        "percentile range (cpbench segment would skip them all); check --channel")
    cands.sort(key=lambda c: c.signal)
    picks = []
    for part in np.array_split(np.arange(len(cands)), min(k, len(cands))):
        stratum = [cands[i] for i in part]
        med = float(np.median([c.signal for c in stratum]))
        picks.append(min(stratum, key=lambda c: abs(c.signal - med)))
    return grid, picks
