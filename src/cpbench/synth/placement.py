"""Where the nuclei of a synthetic slide are: tissue, cellularity and a local hard-core process.

* Tissue: a low-frequency noise field thresholded softly; where it is low the slide is empty glass.
* Nuclei: a Matérn type-II hard-core process. Candidates are drawn per 128-px block from a
  generator seeded by (seed, block); a candidate is kept with probability tissue x cellularity at
  its centre, and survives unless a neighbour of higher priority sits closer than
  ``overlap x (r_i + r_j)``. That rule looks only at the 3x3 neighbouring blocks, so it is local,
  yet gives touching clusters without heavy overlap. Shapes are star-convex (radius with 2nd-4th
  harmonics).
* Label ids are contiguous 1..N in raster order of blocks (a counting pass over the block grid).

Everything is a pure function of the seed and of global pixel coordinates (lengths in pixels).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtri

from cpbench.synth import noise
from cpbench.synth.params import SceneParams
from cpbench.synth.raster import rasterise

BLOCK = 128  # px, side of the blocks that candidates are drawn in
_CELLULARITY_MAX = 1.6

# noise streams of placement (any distinct integers; the renderer's are in scene.py, 3..7 and 100..400)
_S_TISSUE, _S_CELLULARITY = 1, 2


@dataclass
class Nuclei:
    """Per-nucleus parameters, one entry per nucleus (structure of arrays)."""

    cy: np.ndarray
    cx: np.ndarray
    r: np.ndarray  # base radius, px
    harm: np.ndarray  # (n, 3, 2): amplitude and phase of harmonics 2, 3, 4
    bright: np.ndarray  # relative brightness
    texture: np.ndarray  # chromatin texture strength
    nucleoli: np.ndarray  # (n, 3, 4): present, rho (fraction of r), theta, radius (fraction of r)
    cell_factor: np.ndarray  # cell radius / nucleus radius
    key: np.ndarray  # int64 stable key (block, index) for per-nucleus hashing
    ids: np.ndarray  # uint32 label ids (0: not in the image)

    def __len__(self) -> int:
        return len(self.cy)

    def take(self, sel: np.ndarray) -> Nuclei:
        return Nuclei(**{k: v[sel] for k, v in self.__dict__.items()})

    @staticmethod
    def concat(parts: list[Nuclei]) -> Nuclei:
        if not parts:
            return Nuclei.empty()
        return Nuclei(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in parts[0].__dict__})

    @staticmethod
    def empty() -> Nuclei:
        return Nuclei(
            cy=np.zeros(0), cx=np.zeros(0), r=np.zeros(0), harm=np.zeros((0, 3, 2)), bright=np.zeros(0),
            texture=np.zeros(0), nucleoli=np.zeros((0, 3, 4)), cell_factor=np.zeros(0),
            key=np.zeros(0, np.int64), ids=np.zeros(0, np.uint32),
        )

    def extent(self) -> np.ndarray:
        """Upper bound of the nucleus radius in any direction, px."""
        return self.r * (1.0 + np.abs(self.harm[:, :, 0]).sum(axis=1))


class _LRU(OrderedDict):
    def __init__(self, maxsize: int) -> None:
        super().__init__()
        self.maxsize = maxsize

    def get_or(self, key: Any, make: Any) -> Any:
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = make()
        self[key] = value
        if len(self) > self.maxsize:
            self.popitem(last=False)
        return value


class NucleusField:
    """The nuclei of a slide of ``shape`` (C, Y, X): placement, ids and the tissue mask they sit in."""

    def __init__(self, shape: tuple[int, int, int], params: SceneParams | None = None) -> None:
        self.params = params or SceneParams()
        self.params.validate()
        c, y, x = shape
        if c < 1 or y < 1 or x < 1:
            raise ValueError(f"shape must be positive (C, Y, X), got {shape}")
        self.shape = (int(c), int(y), int(x))
        p = self.params
        self._r_cap = 0.5 * (p.diameter_mean + 3 * p.diameter_sd) * 1.4
        self._ext_cap = self._r_cap * 1.6  # harmonics add at most 60 %
        self._cell_ext_cap = self._ext_cap * 2.3  # cells reach cell_factor <= 2.3 nucleus radii
        if 2 * self._ext_cap * max(p.overlap, 1.0) > BLOCK:
            raise ValueError("diameter too large for the block size")
        self._nby = -(-self.shape[1] // BLOCK)
        self._nbx = -(-self.shape[2] // BLOCK)
        width = self._nbx + 3
        self._cand_cache = _LRU(maxsize=8 * width)
        self._acc_cache = _LRU(maxsize=24 * width)
        self._offsets: np.ndarray | None = None
        self.block_counts: np.ndarray | None = None  # nuclei per placement block, once counted
        self._tissue_offset = self._centre_tissue()

    # ----- nuclei placement -------------------------------------------------------------
    @property
    def _tissue_level(self) -> float:
        """Threshold on the tissue noise field giving ``tissue_fraction`` (the field is close to
        normal with mean 0.5 and sd 0.14; the soft edge is 0.06 wide). Measured: 0.63-0.65 of a
        60,000 px square slide is tissue at the default 0.65, for seeds 0-2."""
        f = self.params.tissue_fraction
        return -1.0 if f >= 1.0 else 0.47 + 0.14 * float(ndtri(1.0 - f))

    def tissue_at(self, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Soft tissue mask in [0, 1] at float pixel positions ``(y, x)`` (broadcast; float64)."""
        p = self.params
        oy, ox = self._tissue_offset
        t = noise.fractal_noise_at(p.seed, _S_TISSUE, np.asarray(y) + oy, np.asarray(x) + ox, p.tissue_scale, 3)
        return noise.smoothstep((t - self._tissue_level) / 0.06)

    def _centre_tissue(self) -> tuple[int, int]:
        """Shift of the tissue pattern (px) that puts tissue at the image centre, as on a real slide
        (and so a small image is not all glass). The first of 64 fixed shifts that works; else none."""
        cy, cx = np.array([self.shape[1] / 2]), np.array([self.shape[2] / 2])
        self._tissue_offset = (0, 0)
        for k in range(64):
            self._tissue_offset = (k * 3001, k * 1777)
            if self.tissue_at(cy, cx)[0] > 0.95:
                return self._tissue_offset
        return (0, 0)

    def _cellularity_at(self, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        f = noise.fractal_noise_at(self.params.seed, _S_CELLULARITY, y, x, 160.0, 2)
        return 0.25 + 1.35 * f

    def _candidates(self, by: int, bx: int) -> tuple[Nuclei, np.ndarray]:
        def make() -> tuple[Nuclei, np.ndarray]:
            p = self.params
            rng = np.random.default_rng([p.seed, by + (1 << 30), bx + (1 << 30)])
            lam = p.density / 1e4 * _CELLULARITY_MAX * BLOCK * BLOCK
            n = int(rng.poisson(lam))
            cy = (by + rng.random(n)) * BLOCK
            cx = (bx + rng.random(n)) * BLOCK
            keep_u = rng.random(n)
            priority = rng.random(n)
            kind = rng.random(n)
            diam = np.clip(rng.normal(p.diameter_mean, p.diameter_sd, n),
                           0.5 * p.diameter_mean, p.diameter_mean + 3 * p.diameter_sd)
            r = diam / 2
            bright = rng.lognormal(0.0, 0.5, n)
            texture = rng.uniform(0.15, 0.55, n)
            amp = rng.uniform(0, 1, (n, 3)) * np.array([0.22, 0.07, 0.04])
            phase = rng.uniform(0, 2 * np.pi, (n, 3))
            nuc = np.stack([rng.random((n, 3)) < np.array([0.7, 0.4, 0.15]),
                            rng.uniform(0.0, 0.55, (n, 3)), rng.uniform(0, 2 * np.pi, (n, 3)),
                            rng.uniform(0.12, 0.22, (n, 3))], axis=-1).astype(np.float64)
            cell_factor = rng.uniform(1.5, 2.3, n)
            # rare kinds: compact bright mitoses (small, round, textured), large pale nuclei
            mitotic = kind < 0.03
            pale = (kind >= 0.03) & (kind < 0.06)
            r = np.where(mitotic, r * 0.7, np.where(pale, np.minimum(r * 1.3, self._r_cap), r))
            bright = np.where(mitotic, bright * 2.5, np.where(pale, bright * 0.45, bright))
            texture = np.where(mitotic, 0.6, texture)
            amp[mitotic] *= 0.3
            nuc[mitotic, :, 0] = 0
            harm = np.stack([amp, phase], axis=-1)
            key = ((np.int64(by) + (1 << 20)) << 40) + ((np.int64(bx) + (1 << 20)) << 16) + np.arange(n)
            cand = Nuclei(cy=cy, cx=cx, r=r, harm=harm, bright=bright, texture=texture, nucleoli=nuc,
                           cell_factor=cell_factor, key=key.astype(np.int64), ids=np.zeros(n, np.uint32))
            pkeep = self.tissue_at(cy, cx) * self._cellularity_at(cy, cx) / _CELLULARITY_MAX
            sel = keep_u < pkeep
            return cand.take(sel), priority[sel]

        return self._cand_cache.get_or((by, bx), make)

    def _conflicts(self, a: Nuclei, a_pri: np.ndarray, b: Nuclei, b_pri: np.ndarray) -> np.ndarray:
        """Which of ``a`` have a higher-priority member of ``b`` closer than overlap x (r_a + r_b)."""
        d2 = (a.cy[:, None] - b.cy[None, :]) ** 2 + (a.cx[:, None] - b.cx[None, :]) ** 2
        lim = self.params.overlap * (a.r[:, None] + b.r[None, :])
        return ((d2 < lim**2) & (b_pri[None, :] > a_pri[:, None])).any(axis=1)

    def _hood(self, by: int, bx: int, mask_fn: Any = None) -> tuple[Nuclei, np.ndarray]:
        """Candidates of the 3x3 blocks around (by, bx), optionally filtered by ``mask_fn(by, bx)``."""
        parts, pris = [], []
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                cand, pri = self._candidates(by + dy, bx + dx)
                if mask_fn is not None:
                    sel = mask_fn(by + dy, bx + dx)
                    cand, pri = cand.take(sel), pri[sel]
                parts.append(cand)
                pris.append(pri)
        return Nuclei.concat(parts), np.concatenate(pris)

    def _round1(self, by: int, bx: int) -> np.ndarray:
        """Matérn type-II survivors among the block's candidates (bool mask)."""

        def make() -> np.ndarray:
            own, pri = self._candidates(by, bx)
            if len(own) == 0:
                return np.zeros(0, bool)
            return ~self._conflicts(own, pri, *self._hood(by, bx))

        return self._acc_cache.get_or(("r1", by, bx), make)

    def _eligible2(self, by: int, bx: int) -> np.ndarray:
        """Candidates rejected in round 1 that are in conflict with no round-1 survivor (bool mask)."""

        def make() -> np.ndarray:
            own, pri = self._candidates(by, bx)
            r1 = self._round1(by, bx)
            if len(own) == 0:
                return r1
            s1, s1_pri = self._hood(by, bx, self._round1)
            blocked = self._conflicts(own, np.full(len(own), -1.0), s1, s1_pri)  # any survivor blocks
            return ~r1 & ~blocked

        return self._acc_cache.get_or(("e2", by, bx), make)

    def _accepted(self, by: int, bx: int) -> Nuclei:
        """Nuclei of block (by, bx): Matérn-II survivors plus a second Matérn-II round among the
        candidates that round left room for (denser packing; still local: 5x5 blocks)."""

        def make() -> Nuclei:
            own, pri = self._candidates(by, bx)
            if len(own) == 0:
                return own
            keep = self._round1(by, bx).copy()
            e2 = self._eligible2(by, bx)
            if e2.any():
                idx2 = np.flatnonzero(e2)
                c2, p2 = self._hood(by, bx, self._eligible2)
                keep[idx2[~self._conflicts(own.take(idx2), pri[idx2], c2, p2)]] = True
            return own.take(keep)

        return self._acc_cache.get_or(("acc", by, bx), make)

    def _in_image(self, by: int, bx: int) -> np.ndarray:
        """Which accepted nuclei of block (by, bx) own at least one pixel of the image (bool mask).

        Nuclei well inside need no test; for those that straddle the border, the border window is
        rasterised with every nucleus that can reach it, so the answer is exact."""
        n = self._accepted(by, bx)
        _, H, W = self.shape
        ext = n.extent()
        y0, y1 = np.floor(n.cy - ext).astype(np.int64), np.ceil(n.cy + ext).astype(np.int64) + 1
        x0, x1 = np.floor(n.cx - ext).astype(np.int64), np.ceil(n.cx + ext).astype(np.int64) + 1
        hits = (y1 > 0) & (y0 < H) & (x1 > 0) & (x0 < W)
        straddle = np.flatnonzero(hits & ((y0 < 0) | (y1 > H) | (x0 < 0) | (x1 > W)))
        if len(straddle) == 0:
            return hits
        hood = Nuclei.concat([self._accepted(by + dy, bx + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
        me = np.flatnonzero((hood.key[:, None] == n.key[straddle][None, :]).any(axis=1))  # same order
        for k, i in zip(me, straddle):
            wy0, wy1 = max(int(y0[i]), 0), min(int(y1[i]), H)
            wx0, wx1 = max(int(x0[i]), 0), min(int(x1[i]), W)
            idx = np.full((wy1 - wy0, wx1 - wx0), -1, np.int32)
            dn = np.full(idx.shape, np.inf, np.float32)
            spot = np.ones(idx.shape, np.float32)
            empty_i, empty_f = np.empty((0, 0), np.int32), np.empty((0, 0), np.float32)
            rasterise(wy0, wx0, hood.cy, hood.cx, hood.r, np.ascontiguousarray(hood.harm), hood.extent(),
                       hood.cell_factor, np.ascontiguousarray(hood.nucleoli), False, idx, dn, spot,
                       empty_i, empty_f, empty_f)
            hits[i] = bool((idx == k).any())
        return hits

    def _block_range(self) -> tuple[range, range]:
        return range(-1, self._nby + 1), range(-1, self._nbx + 1)

    def block_counts_row(self, i: int) -> np.ndarray:
        """Nuclei touching the image in each placement block of the ``i``-th block row of the
        counting pass (row ``i - 1`` of the plane; int64, one per block column)."""
        rows, cols = self._block_range()
        by = rows[i]
        return np.array([int(self._in_image(by, bx).sum()) for bx in cols], np.int64)

    def set_block_counts(self, counts: np.ndarray) -> None:
        """Give the nuclei their ids from the per-block counts of the counting pass (rows x cols, as
        :meth:`block_counts_row` returns them): ids run 1.. block by block, row-major."""
        rows, cols = self._block_range()
        counts = np.asarray(counts, np.int64)
        if counts.shape != (len(rows), len(cols)):
            raise ValueError(f"block counts of shape {counts.shape}, expected {(len(rows), len(cols))}")
        flat = counts.ravel()
        self._offsets = np.concatenate([[0], np.cumsum(flat)[:-1]]).reshape(counts.shape)
        self._total = int(flat.sum())
        self.block_counts = counts

    def count_nuclei(self, progress: Any = None) -> int:
        """Place every nucleus once to give them contiguous ids; return how many touch the image.

        ``progress`` is an optional tqdm-like object updated once per block row.
        """
        if self._offsets is None:
            out = []
            for i in range(self.n_block_rows):
                out.append(self.block_counts_row(i))
                if progress is not None:
                    progress.update(1)
            self.set_block_counts(np.stack(out))
        return self._total

    @property
    def n_block_rows(self) -> int:
        """Number of block rows the counting pass walks (for progress bars)."""
        return self._nby + 2

    def nuclei_in(self, y0: float, x0: float, h: float, w: float) -> Nuclei:
        """All nuclei (with label ids) whose centre lies in the window, any window of the plane."""
        self.count_nuclei()
        assert self._offsets is not None
        parts = []
        by0, by1 = int(math.floor(y0 / BLOCK)), int(math.floor((y0 + h) / BLOCK))
        bx0, bx1 = int(math.floor(x0 / BLOCK)), int(math.floor((x0 + w) / BLOCK))
        for by in range(by0, by1 + 1):
            for bx in range(bx0, bx1 + 1):
                acc = self._accepted(by, bx)
                ids = np.zeros(len(acc), np.uint32)
                if -1 <= by <= self._nby and -1 <= bx <= self._nbx:
                    inside = self._acc_cache.get_or(("in", by, bx), lambda: self._in_image(by, bx))
                    base = self._offsets[by + 1, bx + 1]
                    ids[inside] = (base + 1 + np.arange(int(inside.sum()))).astype(np.uint32)
                acc = Nuclei(**{**acc.__dict__, "ids": ids})
                sel = (acc.cy >= y0) & (acc.cy < y0 + h) & (acc.cx >= x0) & (acc.cx < x0 + w)
                parts.append(acc.take(sel))
        return Nuclei.concat(parts)

    def tissue(self, y0: int, x0: int, h: int, w: int) -> np.ndarray:
        """Soft tissue mask in [0, 1] over a window (float32)."""
        p = self.params
        oy, ox = self._tissue_offset
        t = noise.fractal_noise(p.seed, _S_TISSUE, y0 + oy, x0 + ox, h, w, p.tissue_scale, 3)
        return noise.smoothstep((t - np.float32(self._tissue_level)) / np.float32(0.06)).astype(np.float32)
