"""Counter-based random fields: every value is a pure function of (seed, stream, global coordinates).

Synthetic slides are generated tile by tile; drawing random numbers from a stateful generator would
make the picture depend on the tiling (and leave seams). Here each random value is a hash of its
integer coordinates instead (SplitMix64 finalizer), so any window of the infinite field can be
computed on its own and neighbouring windows agree exactly.

Coordinates are in pixels of the full-resolution image; scales are in pixels.
"""

from __future__ import annotations

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_PRIME_Y = np.uint64(0xD6E8FEB86659FD93)
_PRIME_X = np.uint64(0xA0761D6478BD642F)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)


def _mix(h: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer, in place on a uint64 array."""
    h ^= h >> _S30
    h *= _M1
    h ^= h >> _S27
    h *= _M2
    h ^= h >> _S31
    return h


def _key(seed: int, stream: int) -> np.uint64:
    k = _mix(np.array([(seed * 0x9E3779B1 + stream * 0x85EBCA77 + 1) & 0xFFFFFFFFFFFFFFFF], np.uint64))
    return k[0]


def hash_u64(seed: int, stream: int, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Hash integer coordinate arrays (at least 1-D, broadcast together) to uniform uint64 values."""
    yy = np.asarray(y, dtype=np.int64).view(np.uint64)
    xx = np.asarray(x, dtype=np.int64).view(np.uint64)
    h = (yy * _PRIME_Y) ^ (xx * _PRIME_X)
    h += _key(seed, stream)
    h *= _GOLDEN
    return _mix(h)


def uniform(seed: int, stream: int, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Uniform float64 in [0, 1) at integer coordinates ``(y, x)`` (broadcast)."""
    return (hash_u64(seed, stream, y, x) >> _S11).astype(np.float64) * (1.0 / 2**53)


def gaussian_pair(seed: int, stream: int, y0: int, x0: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Two independent standard-normal float32 fields over the window ``[y0, y0+h) x [x0, x0+w)``.

    One 64-bit hash per pixel feeds a Box-Muller transform (two 32-bit uniforms).
    """
    ys = np.arange(y0, y0 + h, dtype=np.int64)[:, None]
    xs = np.arange(x0, x0 + w, dtype=np.int64)[None, :]
    hv = hash_u64(seed, stream, ys, xs)
    u1 = ((hv >> np.uint64(32)).astype(np.float32) + np.float32(0.5)) * np.float32(1.0 / 2**32)
    u2 = ((hv & np.uint64(0xFFFFFFFF)).astype(np.float32)) * np.float32(1.0 / 2**32)
    r = np.sqrt(np.float32(-2.0) * np.log(u1))
    t = np.float32(2 * np.pi) * u2
    return r * np.cos(t), r * np.sin(t)


def _fade(t: np.ndarray) -> np.ndarray:
    return t * t * (3.0 - 2.0 * t)


def value_noise(seed: int, stream: int, y0: int, x0: int, h: int, w: int, scale: float) -> np.ndarray:
    """Smooth value noise in [0, 1] over a window; features are about ``scale`` pixels across.

    Random values sit on a lattice of spacing ``scale`` pixels and are interpolated with a
    smoothstep fade, separably (first along x for each lattice row, then along y). float32 (h, w).
    """
    gy = (np.arange(y0, y0 + h, dtype=np.float64) + 0.5) / scale
    gx = (np.arange(x0, x0 + w, dtype=np.float64) + 0.5) / scale
    iy = np.floor(gy).astype(np.int64)
    ix = np.floor(gx).astype(np.int64)
    fy = _fade(gy - iy).astype(np.float32)[:, None]
    fx = _fade(gx - ix).astype(np.float32)[None, :]
    ly = np.arange(iy.min(), iy.max() + 2, dtype=np.int64)
    lx = np.arange(ix.min(), ix.max() + 2, dtype=np.int64)
    lattice = uniform(seed, stream, ly[:, None], lx[None, :]).astype(np.float32)
    cx = ix - lx[0]
    rows = lattice[:, cx] * (1 - fx) + lattice[:, cx + 1] * fx  # (len(ly), w)
    cy = iy - ly[0]
    return rows[cy] * (1 - fy) + rows[cy + 1] * fy


def value_noise_at(seed: int, stream: int, y: np.ndarray, x: np.ndarray, scale: float) -> np.ndarray:
    """Value noise of :func:`value_noise` evaluated at arbitrary float pixel positions (float64)."""
    gy = (np.asarray(y, dtype=np.float64) + 0.5) / scale
    gx = (np.asarray(x, dtype=np.float64) + 0.5) / scale
    iy = np.floor(gy).astype(np.int64)
    ix = np.floor(gx).astype(np.int64)
    fy = _fade(gy - iy)
    fx = _fade(gx - ix)
    v00 = uniform(seed, stream, iy, ix)
    v01 = uniform(seed, stream, iy, ix + 1)
    v10 = uniform(seed, stream, iy + 1, ix)
    v11 = uniform(seed, stream, iy + 1, ix + 1)
    top = v00 * (1 - fx) + v01 * fx
    bottom = v10 * (1 - fx) + v11 * fx
    return top * (1 - fy) + bottom * fy


def fractal_noise(
    seed: int, stream: int, y0: int, x0: int, h: int, w: int, scale: float, octaves: int = 3
) -> np.ndarray:
    """Sum of ``octaves`` value-noise layers (scale, scale/2, ...), amplitudes halving; in [0, 1]."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        out += np.float32(amp) * value_noise(seed, stream * 16 + o, y0, x0, h, w, scale / 2**o)
        total += amp
        amp *= 0.5
    out /= np.float32(total)
    return out


def fractal_noise_at(seed: int, stream: int, y: np.ndarray, x: np.ndarray, scale: float, octaves: int = 3) -> np.ndarray:
    """:func:`fractal_noise` evaluated at arbitrary float pixel positions (float64)."""
    out = np.zeros(np.broadcast(np.asarray(y), np.asarray(x)).shape, np.float64)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        out += amp * value_noise_at(seed, stream * 16 + o, y, x, scale / 2**o)
        total += amp
        amp *= 0.5
    return out / total


def smoothstep(t: np.ndarray) -> np.ndarray:
    """``3t² - 2t³`` of ``t`` clipped to [0, 1]: a soft step from 0 to 1."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)
