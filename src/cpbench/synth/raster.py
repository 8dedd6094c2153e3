"""The numba kernel that draws star-convex nuclei (and their cells) into a window, in place."""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def rasterise(y0, x0, cy, cx, r, harm, ext, cell_factor, nucleoli, cells, idx, dn, spot, cidx, dc1, dc2):  # type: ignore[no-untyped-def]
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
