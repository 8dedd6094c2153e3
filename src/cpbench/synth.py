"""A CyCIF-like synthetic slide with known nuclei, rendered window by window.

The scene is defined on the whole (infinite) plane by pure functions of the seed and of global
pixel coordinates, so any window can be rendered on its own and adjacent windows agree exactly:
tiles have no seams, and the result does not depend on the tile size.

* Tissue: a low-frequency noise field thresholded softly; where it is low the slide is empty glass.
* Nuclei: a Matérn type-II hard-core process. Candidates are drawn per 128-px block from a
  generator seeded by (seed, block); a candidate is kept with probability tissue x cellularity at
  its centre, and survives unless a neighbour of higher priority sits closer than
  ``overlap x (r_i + r_j)``. That rule looks only at the 3x3 neighbouring blocks, so it is local,
  yet gives touching clusters without heavy overlap. Shapes are star-convex (radius with 2nd-4th
  harmonics); a pixel covered by two nuclei goes to the one whose normalised radius is smaller, so
  touching nuclei share a clean border and every label is one connected region.
* Label ids are contiguous 1..N in raster order of blocks (a counting pass over the block grid).
* Channels: channel ``c`` of cycle ``c // 4`` has role ``c % 4``: 0 nuclear stain (chromatin
  texture, dark nucleoli, bright compact mitoses, dim and bright nuclei side by side, bleaching with
  cycle), 1 cytoplasmic marker, 2 membrane marker, 3 background/stroma; markers are expressed by a
  random subset of cells. Tissue autofluorescence, camera offset, a point-spread blur, patches that
  are out of focus, shot noise and read noise are added.

All lengths are pixels; intensities are uint16 counts.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from scipy import ndimage
from scipy.special import ndtri

from cpbench import noise

#: challenge image shapes (C, Y, X), as on Synapse folder syn26848688
PRESETS: dict[str, tuple[int, int, int]] = {
    "exemplar-001": (12, 3138, 2509),
    "LUNG-1-LN": (44, 10101, 9666),
    "WD-76845-097": (40, 27120, 26139),
}
CHANNELS_PER_CYCLE = 4
ROLES = ("DNA", "Cyto", "Membrane", "Stroma")

BLOCK = 128  # px, side of the blocks that candidates are drawn in
_CELLULARITY_MAX = 1.6
_OFFSET = 200.0  # camera offset, counts
_GAIN = 2.0  # counts per photo-electron (shot-noise variance = signal x gain)
_READ_NOISE = 6.0  # counts
_PSF_SIGMA = 1.0  # px
_OOF_SIGMA = 3.0  # px, blur of the out-of-focus patches
_MARGIN = int(math.ceil(4 * (_PSF_SIGMA + _OOF_SIGMA))) + 2  # halo so blurs are seam-free

# noise streams (any distinct integers)
_S_TISSUE, _S_CELLULARITY, _S_FOCUS, _S_AF, _S_CHROMATIN, _S_CYTO_TEX, _S_STROMA = range(1, 8)
_S_MARKER, _S_MARKER_LEVEL, _S_PIXEL_NOISE, _S_CHANNEL_GAIN = 100, 200, 300, 400


@dataclass(frozen=True)
class SceneParams:
    """What the synthetic tissue looks like. Lengths in pixels.

    density: candidate nuclei per 10,000 px² of fully cellular tissue before the hard-core
        thinning; the realised density is lower and is reported after generation.
    overlap: two nuclei centres are at least ``overlap x (r1 + r2)`` apart (1.0: no overlap).
    tissue_scale: size of the tissue / empty-glass pattern.
    tissue_fraction: expected fraction of a large slide covered by tissue (a small image may have
        more or less: the pattern is tissue_scale pixels across).
    out_of_focus: fraction (about) of the tissue that is blurred as if out of focus.
    """

    seed: int = 0
    diameter_mean: float = 13.0
    diameter_sd: float = 2.0
    density: float = 90.0
    overlap: float = 0.75
    tissue_scale: float = 1500.0
    tissue_fraction: float = 0.65
    out_of_focus: float = 0.15

    def validate(self) -> None:
        """Raise ValueError naming the first parameter out of range."""
        checks = [
            (self.seed >= 0, "seed must be >= 0"),
            (3.0 <= self.diameter_mean <= 60.0, "diameter_mean must be in [3, 60] px"),
            (0.0 <= self.diameter_sd <= self.diameter_mean / 2, "diameter_sd must be in [0, diameter_mean/2] px"),
            (0.0 < self.density <= 200.0, "density must be in (0, 200] nuclei per 10,000 px²"),
            (0.3 <= self.overlap <= 1.5, "overlap must be in [0.3, 1.5]"),
            (self.tissue_scale >= 16, "tissue_scale must be >= 16 px"),
            (0.0 < self.tissue_fraction <= 1.0, "tissue_fraction must be in (0, 1]"),
            (0.0 <= self.out_of_focus <= 1.0, "out_of_focus must be in [0, 1]"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)


def channel_names(n_channels: int) -> list[str]:
    """CyCIF-style channel names: ``DNA_1, Cyto_1, Membrane_1, Stroma_1, DNA_2, ...``."""
    return [f"{ROLES[c % CHANNELS_PER_CYCLE]}_{c // CHANNELS_PER_CYCLE + 1}" for c in range(n_channels)]


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@dataclass
class _Nuclei:
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

    def take(self, sel: np.ndarray) -> _Nuclei:
        return _Nuclei(**{k: v[sel] for k, v in self.__dict__.items()})

    @staticmethod
    def concat(parts: list[_Nuclei]) -> _Nuclei:
        if not parts:
            return _Nuclei.empty()
        return _Nuclei(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in parts[0].__dict__})

    @staticmethod
    def empty() -> _Nuclei:
        return _Nuclei(
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


class Scene:
    """A synthetic slide of ``shape`` (C, Y, X); render any window with :meth:`render`."""

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
        self._tissue_offset = self._centre_tissue()

    # ----- nuclei placement -------------------------------------------------------------
    @property
    def _tissue_level(self) -> float:
        """Threshold on the tissue noise field giving ``tissue_fraction`` (the field is close to
        normal with mean 0.5 and sd 0.14; the soft edge is 0.06 wide). Measured: 0.63-0.65 of a
        60,000 px square slide is tissue at the default 0.65, for seeds 0-2."""
        f = self.params.tissue_fraction
        return -1.0 if f >= 1.0 else 0.47 + 0.14 * float(ndtri(1.0 - f))

    def _tissue_at(self, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        p = self.params
        oy, ox = self._tissue_offset
        t = noise.fractal_noise_at(p.seed, _S_TISSUE, np.asarray(y) + oy, np.asarray(x) + ox, p.tissue_scale, 3)
        return _smoothstep((t - self._tissue_level) / 0.06)

    def _centre_tissue(self) -> tuple[int, int]:
        """Shift of the tissue pattern (px) that puts tissue at the image centre, as on a real slide
        (and so a small image is not all glass). The first of 64 fixed shifts that works; else none."""
        cy, cx = np.array([self.shape[1] / 2]), np.array([self.shape[2] / 2])
        self._tissue_offset = (0, 0)
        for k in range(64):
            self._tissue_offset = (k * 3001, k * 1777)
            if self._tissue_at(cy, cx)[0] > 0.95:
                return self._tissue_offset
        return (0, 0)

    def _cellularity_at(self, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        f = noise.fractal_noise_at(self.params.seed, _S_CELLULARITY, y, x, 160.0, 2)
        return 0.25 + 1.35 * f

    def _candidates(self, by: int, bx: int) -> tuple[_Nuclei, np.ndarray]:
        def make() -> tuple[_Nuclei, np.ndarray]:
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
            cand = _Nuclei(cy=cy, cx=cx, r=r, harm=harm, bright=bright, texture=texture, nucleoli=nuc,
                           cell_factor=cell_factor, key=key.astype(np.int64), ids=np.zeros(n, np.uint32))
            pkeep = self._tissue_at(cy, cx) * self._cellularity_at(cy, cx) / _CELLULARITY_MAX
            sel = keep_u < pkeep
            return cand.take(sel), priority[sel]

        return self._cand_cache.get_or((by, bx), make)

    def _conflicts(self, a: _Nuclei, a_pri: np.ndarray, b: _Nuclei, b_pri: np.ndarray) -> np.ndarray:
        """Which of ``a`` have a higher-priority member of ``b`` closer than overlap x (r_a + r_b)."""
        d2 = (a.cy[:, None] - b.cy[None, :]) ** 2 + (a.cx[:, None] - b.cx[None, :]) ** 2
        lim = self.params.overlap * (a.r[:, None] + b.r[None, :])
        return ((d2 < lim**2) & (b_pri[None, :] > a_pri[:, None])).any(axis=1)

    def _hood(self, by: int, bx: int, mask_fn: Any = None) -> tuple[_Nuclei, np.ndarray]:
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
        return _Nuclei.concat(parts), np.concatenate(pris)

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

    def _accepted(self, by: int, bx: int) -> _Nuclei:
        """Nuclei of block (by, bx): Matérn-II survivors plus a second Matérn-II round among the
        candidates that round left room for (denser packing; still local: 5x5 blocks)."""

        def make() -> _Nuclei:
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
        hood = _Nuclei.concat([self._accepted(by + dy, bx + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
        me = np.flatnonzero((hood.key[:, None] == n.key[straddle][None, :]).any(axis=1))  # same order
        for k, i in zip(me, straddle):
            wy0, wy1 = max(int(y0[i]), 0), min(int(y1[i]), H)
            wx0, wx1 = max(int(x0[i]), 0), min(int(x1[i]), W)
            idx = np.full((wy1 - wy0, wx1 - wx0), -1, np.int32)
            dn = np.full(idx.shape, np.inf, np.float32)
            spot = np.ones(idx.shape, np.float32)
            empty_i, empty_f = np.empty((0, 0), np.int32), np.empty((0, 0), np.float32)
            _rasterise(wy0, wx0, hood.cy, hood.cx, hood.r, np.ascontiguousarray(hood.harm), hood.extent(),
                       hood.cell_factor, np.ascontiguousarray(hood.nucleoli), False, idx, dn, spot,
                       empty_i, empty_f, empty_f)
            hits[i] = bool((idx == k).any())
        return hits

    def _block_range(self) -> tuple[range, range]:
        return range(-1, self._nby + 1), range(-1, self._nbx + 1)

    def count_nuclei(self, progress: Any = None) -> int:
        """Place every nucleus once to give them contiguous ids; return how many touch the image.

        ``progress`` is an optional tqdm-like object updated once per block row.
        """
        if self._offsets is None:
            rows, cols = self._block_range()
            counts = np.zeros((len(rows), len(cols)), np.int64)
            for i, by in enumerate(rows):
                for j, bx in enumerate(cols):
                    counts[i, j] = int(self._in_image(by, bx).sum())
                if progress is not None:
                    progress.update(1)
            flat = counts.ravel()
            self._offsets = np.concatenate([[0], np.cumsum(flat)[:-1]]).reshape(counts.shape)
            self._total = int(flat.sum())
        return self._total

    @property
    def n_block_rows(self) -> int:
        """Number of block rows the counting pass walks (for progress bars)."""
        return self._nby + 2

    def nuclei_in(self, y0: float, x0: float, h: float, w: float) -> _Nuclei:
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
                acc = _Nuclei(**{**acc.__dict__, "ids": ids})
                sel = (acc.cy >= y0) & (acc.cy < y0 + h) & (acc.cx >= x0) & (acc.cx < x0 + w)
                parts.append(acc.take(sel))
        return _Nuclei.concat(parts)

    # ----- geometry -----------------------------------------------------------------------
    def geometry(self, y0: int, x0: int, h: int, w: int, cells: bool) -> dict[str, np.ndarray]:
        """Rasterise nuclei (and cells) over a window.

        Returns ``idx`` (int32 index into ``nuclei``, -1 outside), ``dn`` (normalised radius of the
        owning nucleus, 0 centre .. 1 edge), ``spot`` (nucleoli darkening factor), and with ``cells``
        also ``cidx``, ``dc1``, ``dc2`` (owning cell and its/the runner-up normalised radius), plus
        the ``nuclei`` table.
        """
        pad = self._cell_ext_cap if cells else self._ext_cap
        nuc = self.nuclei_in(y0 - pad, x0 - pad, h + 2 * pad, w + 2 * pad)
        idx = np.full((h, w), -1, np.int32)
        dn = np.full((h, w), np.inf, np.float32)
        spot = np.ones((h, w), np.float32)
        out: dict[str, Any] = {"idx": idx, "dn": dn, "spot": spot, "nuclei": nuc}
        if cells:
            cidx = np.full((h, w), -1, np.int32)
            dc1 = np.full((h, w), np.inf, np.float32)
            dc2 = np.full((h, w), np.inf, np.float32)
            out.update(cidx=cidx, dc1=dc1, dc2=dc2)
        else:
            cidx = np.empty((0, 0), np.int32)
            dc1 = dc2 = np.empty((0, 0), np.float32)
        _rasterise(y0, x0, nuc.cy, nuc.cx, nuc.r, np.ascontiguousarray(nuc.harm), nuc.extent(),
                   nuc.cell_factor, np.ascontiguousarray(nuc.nucleoli), cells, idx, dn, spot, cidx, dc1, dc2)
        return out

    def labels(self, y0: int, x0: int, h: int, w: int) -> np.ndarray:
        """Ground-truth nuclear labels (uint32, 0 background) of a window inside the image."""
        g = self.geometry(y0, x0, h, w, cells=False)
        ids = np.concatenate([g["nuclei"].ids, np.zeros(1, np.uint32)])
        return ids[g["idx"]]  # idx -1 picks the trailing 0

    # ----- pixels -------------------------------------------------------------------------
    def tissue(self, y0: int, x0: int, h: int, w: int) -> np.ndarray:
        """Soft tissue mask in [0, 1] over a window (float32)."""
        p = self.params
        oy, ox = self._tissue_offset
        t = noise.fractal_noise(p.seed, _S_TISSUE, y0 + oy, x0 + ox, h, w, p.tissue_scale, 3)
        return _smoothstep((t - np.float32(self._tissue_level)) / np.float32(0.06)).astype(np.float32)

    def render(self, channel: int, y0: int, x0: int, h: int, w: int, labels_out: np.ndarray | None = None) -> np.ndarray:
        """Render channel ``channel`` over the window; uint16 (h, w).

        With ``labels_out`` (uint32 (h, w)) the ground-truth labels of the window are written into it
        from the same geometry, for free.
        """
        p = self.params
        m = _MARGIN
        role = channel % CHANNELS_PER_CYCLE
        cycle = channel // CHANNELS_PER_CYCLE
        H, W = h + 2 * m, w + 2 * m
        Y0, X0 = y0 - m, x0 - m
        g = self.geometry(Y0, X0, H, W, cells=role != 0)
        nuc: _Nuclei = g["nuclei"]
        if labels_out is not None:
            ids = np.concatenate([nuc.ids, np.zeros(1, np.uint32)])
            labels_out[...] = ids[g["idx"][m:m + h, m:m + w]]
        tissue = self.tissue(Y0, X0, H, W)
        ch_gain = 0.6 + 0.8 * float(noise.uniform(p.seed, _S_CHANNEL_GAIN, np.array([channel]), np.array([0]))[0])
        af_level = (250.0 if role != 3 else 600.0) * ch_gain * (1.0 - 0.03 * cycle)
        img = tissue * np.float32(af_level) * (0.6 + 0.8 * noise.fractal_noise(p.seed, _S_AF, Y0, X0, H, W, 40.0, 3))
        img += np.float32(_OFFSET)
        if role == 0:
            idx = g["idx"]
            inside = idx >= 0
            if inside.any():
                ii = idx[inside]
                dn = g["dn"][inside]
                edge = _smoothstep((1.0 - dn) / 0.3)
                dome = 0.8 + 0.2 * (1.0 - dn * dn)
                chrom = noise.fractal_noise(p.seed, _S_CHROMATIN, Y0, X0, H, W, 3.0, 2)[inside]
                tex = 1.0 + nuc.texture[ii] * (chrom - 0.5) * 2.2
                level = 3500.0 * ch_gain * nuc.bright[ii] * (0.93**cycle)
                img[inside] += (level * edge * dome * np.maximum(tex, 0.05) * g["spot"][inside]).astype(np.float32)
        else:
            cidx = g["cidx"]
            incell = (cidx >= 0) & (g["dc1"] < 1.0)
            if incell.any():
                ci = cidx[incell]
                key = nuc.key[ci]
                pos_rate = (0.45, 0.4, 0.08)[role - 1]
                u = noise.uniform(p.seed, _S_MARKER + channel, key, np.zeros_like(key))
                lvl = noise.uniform(p.seed, _S_MARKER_LEVEL + channel, key, np.zeros_like(key))
                expr = np.where(u < pos_rate, 1500.0 * ch_gain * (0.3 + 1.7 * lvl), 0.0)
                dc1 = g["dc1"][incell]
                if role == 1:  # cytoplasm: fills the cell, weak in the nucleus, granular
                    tex = noise.fractal_noise(p.seed, _S_CYTO_TEX, Y0, X0, H, W, 4.0, 2)[incell]
                    in_nuc = g["idx"][incell] >= 0
                    val = expr * np.where(in_nuc, 0.2, 1.0) * (0.5 + tex) * _smoothstep((1.0 - dc1) / 0.15)
                elif role == 2:  # membrane: a ring on the cell border (own edge or shared border)
                    rc = (nuc.r[ci] * nuc.cell_factor[ci]).astype(np.float32)
                    dist = np.minimum(1.0 - dc1, 0.5 * (g["dc2"][incell] - dc1)) * rc
                    val = expr * np.exp(-(dist / 1.3) ** 2)
                else:  # stroma-like: diffuse, low
                    val = 0.4 * expr * _smoothstep((1.0 - dc1) / 0.3)
                img[incell] += val.astype(np.float32)
            if role == 3:
                img += tissue * np.float32(300.0 * ch_gain) * noise.fractal_noise(p.seed, _S_STROMA, Y0, X0, H, W, 14.0, 3)
        img = ndimage.gaussian_filter(img, _PSF_SIGMA, truncate=4.0)
        if p.out_of_focus > 0:
            f = noise.fractal_noise(p.seed, _S_FOCUS, Y0, X0, H, W, 700.0, 2)
            focus = _smoothstep((f - (1.0 - p.out_of_focus * 0.9)) / 0.1).astype(np.float32)
            if focus.any():
                img = img * (1 - focus) + ndimage.gaussian_filter(img, _OOF_SIGMA, truncate=4.0) * focus
        img = img[m:m + h, m:m + w]
        z1, z2 = noise.gaussian_pair(p.seed, _S_PIXEL_NOISE + channel, y0, x0, h, w)
        signal = np.maximum(img - np.float32(_OFFSET), 0)
        img = img + np.sqrt(signal * np.float32(_GAIN)) * z1 + np.float32(_READ_NOISE) * z2
        return np.clip(np.rint(img), 0, 65535).astype(np.uint16)


@numba.njit(cache=True, nogil=True)
def _rasterise(y0, x0, cy, cx, r, harm, ext, cell_factor, nucleoli, cells, idx, dn, spot, cidx, dc1, dc2):  # type: ignore[no-untyped-def]
    """Rasterise star-convex nuclei (and their cells) into the window arrays, in place.

    A pixel belongs to the nucleus with the smallest normalised radius ``d = rho / R(theta) < 1``;
    with ``cells`` it also belongs to the cell with the smallest ``d / cell_factor`` (and the
    runner-up is kept for membranes). Offsets are computed from global coordinates so every window
    gets bit-identical values, whatever its origin.
    """
    h, w = idx.shape
    for i in range(cy.shape[0]):
        e = ext[i] * (cell_factor[i] if cells else 1.0)
        ya = max(int(cy[i] - y0 - e), 0)
        yb = min(int(cy[i] - y0 + e) + 2, h)
        xa = max(int(cx[i] - x0 - e), 0)
        xb = min(int(cx[i] - x0 + e) + 2, w)
        for yy in range(ya, yb):
            dy = (yy + (y0 + 0.5)) - cy[i]
            for xx in range(xa, xb):
                dx = (xx + (x0 + 0.5)) - cx[i]
                rho = math.sqrt(dy * dy + dx * dx)
                th = math.atan2(dy, dx)
                shp = (1.0 + harm[i, 0, 0] * math.cos(2.0 * (th - harm[i, 0, 1]))
                       + harm[i, 1, 0] * math.cos(3.0 * (th - harm[i, 1, 1]))
                       + harm[i, 2, 0] * math.cos(4.0 * (th - harm[i, 2, 1])))
                d = np.float32(rho / (r[i] * shp))
                if d < 1.0 and d < dn[yy, xx]:
                    dn[yy, xx] = d
                    idx[yy, xx] = i
                    f = np.float32(1.0)
                    for k in range(3):
                        if nucleoli[i, k, 0] > 0:
                            rr = nucleoli[i, k, 1] * r[i]
                            tt = nucleoli[i, k, 2]
                            sr = nucleoli[i, k, 3] * r[i]
                            qy = dy - rr * math.sin(tt)
                            qx = dx - rr * math.cos(tt)
                            f *= np.float32(1.0 - 0.55 * math.exp(-(qy * qy + qx * qx) / (sr * sr)))
                    spot[yy, xx] = f
                if cells:
                    dc = np.float32(d / cell_factor[i])
                    if dc < dc1[yy, xx]:
                        dc2[yy, xx] = dc1[yy, xx]
                        dc1[yy, xx] = dc
                        cidx[yy, xx] = i
                    elif dc < dc2[yy, xx]:
                        dc2[yy, xx] = dc
