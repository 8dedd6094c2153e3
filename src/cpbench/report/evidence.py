"""What the data may say: the report's honesty rules, one function each.

* A **scaling law** (an exponent, a per-pixel slope quoted as a law) needs at least
  :data:`LAW_MIN_SIZES` sizes spanning at least :data:`LAW_MIN_SPAN` x in pixels.
* A **projection** beyond :data:`LABEL_BEYOND` x the largest size measured is labelled an
  extrapolation with its factor; beyond :data:`NUMBER_BEYOND` x no number is given in a guideline.
* A **change** between two measurements (commits, or a parameter against its default) is called one
  only when asv's own statistics on recorded samples say so (``asv compare``'s rule: the factor and
  Mann-Whitney / non-overlapping intervals, :func:`cpbench.report.stability.asv_flags`) or, with single
  samples, when the ratio exceeds that benchmark's detection limit measured from recorded samples of the
  same benchmark elsewhere in the results. Otherwise it is "within noise" or "one sample".
* Memory (stage peaks, process peaks) is one value per run; asv's rule for it is the factor alone, and
  the probe resolves :data:`~cpbench.measure.suite.MEMORY_RESOLUTION_BYTES`: a change is beyond both.

Ratios are ``after / before``; sizes are pixel counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cpbench.measure.suite import MEMORY_RESOLUTION_BYTES
from cpbench.report.costmodel import CostFit
from cpbench.report.results import Row
from cpbench.report.stability import ASV_FACTOR, asv_flags, detection_limit

#: a scaling law needs this many sizes ...
LAW_MIN_SIZES = 4
#: ... spanning this factor in pixels (largest / smallest)
LAW_MIN_SPAN = 16.0
#: a projection beyond this multiple of the largest size measured is labelled an extrapolation
LABEL_BEYOND = 4.0
#: and beyond this one it gives no number in a guideline
NUMBER_BEYOND = 20.0

#: the command that measures enough sizes for a law (cpbench sweep's default sizes: 256 px to 16.8 MP)
SCALING_SWEEP = ("cpbench sweep scaling (6 sizes: 256 to 4096 px and the 3138 x 2509 frame; "
                 "--sizes 256,1024,4096,8192 reaches 67 MP)")

#: verdicts of :func:`judge`
CHANGE, NOISE, ONE_SAMPLE = "change", "within noise", "one sample"


def law_supported(fit: CostFit | None) -> bool:
    """Whether ``fit`` rests on enough sizes over a wide enough range to be stated as a scaling law."""
    return fit is not None and fit.n >= LAW_MIN_SIZES and fit.max_pixels >= LAW_MIN_SPAN * fit.min_pixels


def law_gap(fit: CostFit | None) -> str:
    """Why ``fit`` is not a law (empty when it is): sizes and span measured against what is needed."""
    if law_supported(fit):
        return ""
    if fit is None:
        return f"fewer than 2 sizes (a law needs {LAW_MIN_SIZES} sizes over {LAW_MIN_SPAN:g}x in pixels)"
    return (f"{fit.n} sizes over {fit.max_pixels / fit.min_pixels:.3g}x in pixels (a law needs "
            f"{LAW_MIN_SIZES} sizes over {LAW_MIN_SPAN:g}x)")


def projection_number(factor: float) -> bool:
    """Whether a projection ``factor`` x beyond the largest size measured may be a number in a guideline."""
    return factor <= NUMBER_BEYOND


def extrapolation_note(factor: float) -> str:
    """``""`` inside :data:`LABEL_BEYOND`; else ``"extrapolated 10.6x beyond the largest size measured"``."""
    if factor <= LABEL_BEYOND:
        return ""
    return f"extrapolated {factor:.3g}x beyond the largest size measured"


def _key(r: Row) -> tuple[str, tuple[tuple[str, str], ...]]:
    return r.benchmark, tuple(sorted(r.params.items()))


def _samples(r: Row) -> list[float]:
    return [s for s in (r.samples or []) if s is not None and not math.isnan(s)]


def detection_limits(rows: Iterable[Row]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Per (benchmark, parameters): the smallest slowdown asv flags, from the row with the most recorded
    samples (at least 3) of that benchmark in ``rows``; timings only."""
    best: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]] = {}
    for r in rows:
        s = _samples(r)
        if r.measure.startswith("time_") and len(s) >= 3 and len(s) > len(best.get(_key(r), [])):
            best[_key(r)] = s
    return {k: detection_limit(s) for k, s in best.items()}


@dataclass(frozen=True)
class Judgement:
    """The verdict on ``after / before`` (:data:`CHANGE`, :data:`NOISE` or :data:`ONE_SAMPLE`) and why."""

    verdict: str
    ratio: float
    basis: str  # "asv statistics on 5 and 5 samples", "detection limit +23%", ...

    @property
    def changed(self) -> bool:
        return self.verdict == CHANGE


def judge(before: Row, after: Row, limits: dict | None = None) -> Judgement:
    """Did ``after`` change from ``before`` (same benchmark, one parameter or commit apart)?

    Timings with recorded samples on both sides: asv's rule in both directions. Timings with single
    samples: beyond the benchmark's detection limit (``limits``, from :func:`detection_limits`; looked up
    under either row's parameters), else :data:`ONE_SAMPLE` when no limit is known. Memory and accuracy:
    beyond asv's factor (memory: and the probe's resolution)."""
    if not before.value or after.value is None:
        return Judgement(NOISE, math.nan, "no value")
    ratio = after.value / before.value
    if not before.measure.startswith("time_"):
        if before.unit == "bytes" and abs(after.value - before.value) <= MEMORY_RESOLUTION_BYTES:
            return Judgement(NOISE, ratio, f"within the probe's {MEMORY_RESOLUTION_BYTES / 2**20:g} MiB resolution")
        beyond = max(ratio, 1 / ratio) > ASV_FACTOR if ratio > 0 else True
        return Judgement(CHANGE if beyond else NOISE, ratio, f"one value per run: asv's factor {ASV_FACTOR:g}")
    sb, sa = _samples(before), _samples(after)
    if len(sb) > 1 and len(sa) > 1:
        flagged = asv_flags(sb, sa) or asv_flags(sa, sb)
        return Judgement(CHANGE if flagged else NOISE, ratio, f"asv statistics on {len(sb)} and {len(sa)} samples")
    known = [lim for lim in ((limits or {}).get(_key(r)) for r in (before, after)) if lim is not None]
    if not known:
        return Judgement(ONE_SAMPLE, ratio, "no detection limit measured for this benchmark (asv run --record-samples)")
    limit = min(known)
    if math.isinf(limit):
        return Judgement(NOISE, ratio, "asv cannot flag this benchmark at any ratio (its samples spread too far)")
    beyond = max(ratio, 1 / ratio) > limit if ratio > 0 else True
    return Judgement(CHANGE if beyond else NOISE, ratio, f"one sample beyond the detection limit +{limit - 1:.0%}" if beyond
                     else f"one sample inside the detection limit +{limit - 1:.0%}")


def samples_summary(rows: Sequence[Row]) -> str:
    """``"1 sample per timing"`` or ``"3-10 samples per timing"`` over the timings in ``rows``."""
    counts = sorted({max(len(_samples(r)), 1) for r in rows if r.measure.startswith("time_") and r.value is not None})
    if not counts:
        return "no timings"
    if counts == [1]:
        return "1 sample per timing (asv run --quick)"
    return f"{counts[0]}-{counts[-1]} samples per timing"
