"""Cost models of a stage from its measurements at several image sizes, and projections from them.

Two models are fitted to ``(pixels, value)`` points (value: seconds or bytes):

* linear, ``value = fixed + per_pixel * pixels`` (least squares): the fixed cost (seconds, bytes) and
  the cost per pixel (seconds per megapixel, bytes per pixel) a guideline quotes;
* power law, ``value = a * pixels ** exponent`` (least squares in log-log): the exponent says whether
  the stage grows linearly (1), sub- or super-linearly.

The fit error is the root-mean-square of the relative residuals (``(fit - value) / value``) of the
model, over the points; with two points a model passes through both, so no error is known (None).
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
    exponent: float  # power-law exponent (1 = linear)
    scale: float  # power-law prefactor: value = scale * pixels ** exponent
    linear_error: float | None  # RMS relative residual of the linear model; None with 2 points
    power_error: float | None  # the same for the power law
    n: int  # points fitted
    min_pixels: int
    max_pixels: int
    unit: str

    @property
    def per_megapixel(self) -> float:
        """Cost per megapixel (1e6 pixels): seconds/MP or bytes/MP."""
        return self.per_pixel * 1e6

    def linear(self, pixels: float) -> float:
        return self.fixed + self.per_pixel * pixels

    def power(self, pixels: float) -> float:
        return self.scale * pixels ** self.exponent


@dataclass(frozen=True)
class Projection:
    """A projected value with its range (same unit as the fit) and how far it extrapolates."""

    value: float
    low: float
    high: float
    extrapolation: float  # pixels / the largest measured pixels (<= 1: inside the measured range)


def _rms(rel: np.ndarray) -> float | None:
    return float(np.sqrt(np.mean(rel**2))) if len(rel) > 2 else None


def fit_cost(points: Sequence[tuple[int, float]], unit: str = "seconds") -> CostFit | None:
    """Fit both models to ``(pixels, value)`` points (values > 0); None with fewer than 2 sizes."""
    pts = sorted((int(p), float(v)) for p, v in points if v is not None and v > 0 and p > 0)
    if len({p for p, _ in pts}) < 2:
        return None
    px = np.array([p for p, _ in pts], dtype=float)
    val = np.array([v for _, v in pts], dtype=float)
    a = np.vstack([np.ones_like(px), px]).T
    fixed, per_pixel = np.linalg.lstsq(a, val, rcond=None)[0]
    k, log_scale = np.polyfit(np.log(px), np.log(val), 1)
    lin = fixed + per_pixel * px
    pw = math.exp(log_scale) * px**k
    return CostFit(
        fixed=float(fixed), per_pixel=float(per_pixel), exponent=float(k), scale=float(math.exp(log_scale)),
        linear_error=_rms((lin - val) / val), power_error=_rms((pw - val) / val), n=len(pts),
        min_pixels=int(px.min()), max_pixels=int(px.max()), unit=unit,
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
