"""A CyCIF-like synthetic slide with known nuclei, rendered window by window.

The scene is defined on the whole (infinite) plane by pure functions of the seed and of global
pixel coordinates, so any window can be rendered on its own and adjacent windows agree exactly:
tiles have no seams, and the result does not depend on the tile size.

Nuclei placement is :mod:`cpbench.synth.placement`; this module turns it into pixels.

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
from typing import Any

import numpy as np
from scipy import ndimage

from cpbench.synth import noise
from cpbench.synth.params import CHANNELS_PER_CYCLE
from cpbench.synth.placement import Nuclei, NucleusField
from cpbench.synth.raster import rasterise

_OFFSET = 200.0  # camera offset, counts
_GAIN = 2.0  # counts per photo-electron (shot-noise variance = signal x gain)
_READ_NOISE = 6.0  # counts
_PSF_SIGMA = 1.0  # px
_OOF_SIGMA = 3.0  # px, blur of the out-of-focus patches
_MARGIN = int(math.ceil(4 * (_PSF_SIGMA + _OOF_SIGMA))) + 2  # halo so blurs are seam-free

# noise streams of the renderer (any distinct integers; placement uses 1 and 2)
_S_FOCUS, _S_AF, _S_CHROMATIN, _S_CYTO_TEX, _S_STROMA = range(3, 8)
_S_MARKER, _S_MARKER_LEVEL, _S_PIXEL_NOISE, _S_CHANNEL_GAIN = 100, 200, 300, 400


class Scene(NucleusField):
    """A synthetic slide of ``shape`` (C, Y, X); render any window with :meth:`render`."""

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
        rasterise(y0, x0, nuc.cy, nuc.cx, nuc.r, np.ascontiguousarray(nuc.harm), nuc.extent(),
                   nuc.cell_factor, np.ascontiguousarray(nuc.nucleoli), cells, idx, dn, spot, cidx, dc1, dc2)
        return out

    def labels(self, y0: int, x0: int, h: int, w: int) -> np.ndarray:
        """Ground-truth nuclear labels (uint32, 0 background) of a window inside the image."""
        g = self.geometry(y0, x0, h, w, cells=False)
        ids = np.concatenate([g["nuclei"].ids, np.zeros(1, np.uint32)])
        return ids[g["idx"]]  # idx -1 picks the trailing 0

    # ----- pixels -------------------------------------------------------------------------
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
        nuc: Nuclei = g["nuclei"]
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
                edge = noise.smoothstep((1.0 - dn) / 0.3)
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
                    val = expr * np.where(in_nuc, 0.2, 1.0) * (0.5 + tex) * noise.smoothstep((1.0 - dc1) / 0.15)
                elif role == 2:  # membrane: a ring on the cell border (own edge or shared border)
                    rc = (nuc.r[ci] * nuc.cell_factor[ci]).astype(np.float32)
                    dist = np.minimum(1.0 - dc1, 0.5 * (g["dc2"][incell] - dc1)) * rc
                    val = expr * np.exp(-(dist / 1.3) ** 2)
                else:  # stroma-like: diffuse, low
                    val = 0.4 * expr * noise.smoothstep((1.0 - dc1) / 0.3)
                img[incell] += val.astype(np.float32)
            if role == 3:
                img += tissue * np.float32(300.0 * ch_gain) * noise.fractal_noise(p.seed, _S_STROMA, Y0, X0, H, W, 14.0, 3)
        img = ndimage.gaussian_filter(img, _PSF_SIGMA, truncate=4.0)
        if p.out_of_focus > 0:
            f = noise.fractal_noise(p.seed, _S_FOCUS, Y0, X0, H, W, 700.0, 2)
            focus = noise.smoothstep((f - (1.0 - p.out_of_focus * 0.9)) / 0.1).astype(np.float32)
            if focus.any():
                img = img * (1 - focus) + ndimage.gaussian_filter(img, _OOF_SIGMA, truncate=4.0) * focus
        img = img[m:m + h, m:m + w]
        z1, z2 = noise.gaussian_pair(p.seed, _S_PIXEL_NOISE + channel, y0, x0, h, w)
        signal = np.maximum(img - np.float32(_OFFSET), 0)
        img = img + np.sqrt(signal * np.float32(_GAIN)) * z1 + np.float32(_READ_NOISE) * z2
        return np.clip(np.rint(img), 0, 65535).astype(np.uint16)
