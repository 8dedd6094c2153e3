"""Cost models of a stage from its measurements at several image sizes, and projections from them.

Two models are fitted to ``(pixels, value)`` points (value: seconds or bytes):

* linear, ``value = fixed + per_pixel * pixels``: the fixed cost (seconds, bytes) and the cost per
  pixel (seconds per megapixel, bytes per pixel) a guideline quotes;
* power law over a floor, ``value = floor + scale * pixels ** exponent`` (``floor >= 0``): the exponent
  says whether the part that grows with the image grows linearly (1), sub- or super-linearly. A pure
  power law (no floor) would read a large fixed cost (the ~0.5 GB a network holds whatever the image)
  as an exponent of ~0.25 and project whole slides far too low. With two sizes the floor is 0.

Both minimise the *relative* residuals ``(fit - value) / value``: the sizes span four orders of
magnitude, and an unweighted fit lets the largest size decide everything (the small sizes then sit
100% off their own fit and the fixed cost is noise). The fit error is the root-mean-square of those
relative residuals; when a model has as many parameters as there are points it passes through them
all, so no error is known (None).
A projection beyond the measured range gives the linear model's value and a range spanning both
models, widened by their fit errors: the disagreement of two plausible models is the uncertainty an
extrapolation honestly has.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CostFit:
    """A stage's fitted cost. ``unit``: of the values ("seconds" or "bytes"). Pixels are counts."""

    fixed: float  # value at zero pixels (seconds or bytes)
    per_pixel: float  # value per pixel (seconds/pixel or bytes/pixel)
    exponent: float  # power-law exponent of the growing part (1 = linear)
    scale: float  # power-law prefactor: value = floor + scale * pixels ** exponent
    linear_error: float | None  # RMS relative residual of the linear model; None with 2 points
    power_error: float | None  # the same for the power law; None with 3 points or fewer
    n: int  # points fitted
    min_pixels: int
    max_pixels: int
    unit: str
    floor: float = 0.0  # the power law's constant part (seconds or bytes)

    @property
    def per_megapixel(self) -> float:
        """Cost per megapixel (1e6 pixels): seconds/MP or bytes/MP."""
        return self.per_pixel * 1e6

    def linear(self, pixels: float) -> float:
        return self.fixed + self.per_pixel * pixels

    def power(self, pixels: float) -> float:
        return self.floor + self.scale * pixels ** self.exponent


@dataclass(frozen=True)
class Projection:
    """A projected value with its range (same unit as the fit) and how far it extrapolates."""

    value: float
    low: float
    high: float
    extrapolation: float  # pixels / the largest measured pixels (<= 1: inside the measured range)


def _rms(rel: np.ndarray, params: int) -> float | None:
    return float(np.sqrt(np.mean(rel**2))) if len(rel) > params else None


def _power(px: np.ndarray, val: np.ndarray, fixed: float) -> tuple[float, float, float]:
    """(floor, scale, exponent) of ``floor + scale * px ** exponent`` minimising relative residuals;
    two points: the pure power law through them. Bounded least squares (scipy), started from the
    linear fit and from the pure power law; the better of the two is kept."""
    k2, log_s2 = np.polyfit(np.log(px), np.log(val), 1)
    if len(px) < 3:
        return 0.0, float(math.exp(log_s2)), float(k2)
    from scipy.optimize import least_squares

    def resid(theta: np.ndarray) -> np.ndarray:
        floor, log_scale, k = theta
        return (floor + np.exp(log_scale + k * np.log(px))) / val - 1.0

    starts = [(max(fixed, 0.0), math.log(max(float(np.median((val - max(fixed, 0.0)) / px)), 1e-300)), 1.0),
              (0.0, float(log_s2), float(k2))]
    best = None
    for x0 in starts:
        x0 = (min(x0[0], 0.99 * float(val.min())), x0[1], min(max(x0[2], 0.05), 4.0))
        sol = least_squares(resid, x0, bounds=([0.0, -np.inf, 0.05], [float(val.min()), np.inf, 4.0]))
        if best is None or sol.cost < best.cost:
            best = sol
    floor, log_scale, k = best.x
    return float(floor), float(math.exp(log_scale)), float(k)


def fit_cost(points: Sequence[tuple[int, float]], unit: str = "seconds") -> CostFit | None:
    """Fit both models to ``(pixels, value)`` points (values > 0); None with fewer than 2 sizes."""
    pts = sorted((int(p), float(v)) for p, v in points if v is not None and v > 0 and p > 0)
    if len({p for p, _ in pts}) < 2:
        return None
    px = np.array([p for p, _ in pts], dtype=float)
    val = np.array([v for _, v in pts], dtype=float)
    a = np.vstack([np.ones_like(px), px]).T / val[:, None]  # rows scaled by 1/value: relative residuals
    fixed, per_pixel = np.linalg.lstsq(a, np.ones_like(val), rcond=None)[0]
    floor, scale, k = _power(px, val, float(fixed))
    lin = fixed + per_pixel * px
    pw = floor + scale * px**k
    return CostFit(
        fixed=float(fixed), per_pixel=float(per_pixel), exponent=k, scale=scale,
        linear_error=_rms((lin - val) / val, 2), power_error=_rms((pw - val) / val, 3), n=len(pts),
        min_pixels=int(px.min()), max_pixels=int(px.max()), unit=unit, floor=floor,
    )


def project(fit: CostFit, pixels: float) -> Projection:
    """The cost at ``pixels``: linear model's value, range over both models widened by their fit errors
    (with two points, by 0: the range is then only the two models' disagreement)."""
    lin, pw = fit.linear(pixels), fit.power(pixels)
    err_l, err_p = fit.linear_error or 0.0, fit.power_error or 0.0
    low = min(lin * (1 - err_l), pw * (1 - err_p))
    high = max(lin * (1 + err_l), pw * (1 + err_p))
    return Projection(value=max(lin, 0.0), low=max(low, 0.0), high=high, extrapolation=pixels / fit.max_pixels)


def pixels_at(fit: CostFit, budget: float) -> float | None:
    """Pixels at which the linear model reaches ``budget`` (seconds or bytes); None when it never
    does (no growth) and 0 when the fixed cost alone exceeds it."""
    if fit.fixed >= budget:
        return 0.0
    if fit.per_pixel <= 0:
        return None
    return (budget - fit.fixed) / fit.per_pixel
