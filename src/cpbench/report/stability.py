"""How far each benchmark's numbers can be trusted: spread, outliers, bimodality, detection limit.

Spread is the **robust CV** = IQR / 1.349 / median (for normal noise the IQR is 1.349 standard
deviations, so this is the coefficient of variation, but a few outliers do not move it). The
**detection limit** is the smallest slowdown ``after / before`` that asv itself would flag for a
benchmark with these samples: ``asv compare`` / ``asv continuous`` mark a change when the ratio
exceeds the regression factor (1.1 by default) *and* ``asv._stats.is_different`` finds the two sample
sets different (Mann-Whitney U at p < 0.002 when there are enough samples, else non-overlapping
99 % intervals from ``asv_runner.statistics.compute_stats``). Here "after" is the same samples
scaled by the ratio: the same noise, a slower stage. Times are seconds, memory bytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from cpbench.report.results import Row

#: robust CV above which a timing is called noisy (the target of the suite on 2 shared cores)
CV_LIMIT = 0.03
#: a sample above this multiple of the median is an outlier worth reporting
WORST_LIMIT = 1.5
#: samples shorter than this are dominated by timer and scheduler noise, seconds
MIN_SAMPLE_S = 1e-3
#: asv's default regression factor (``asv compare --factor``, ``regressions_thresholds``)
ASV_FACTOR = 1.1
#: IQR of a normal distribution in standard deviations
_IQR_PER_SD = 1.349


@dataclass(frozen=True)
class Stability:
    """What the samples of one benchmark (one parameter combination) say about its trustworthiness.

    ``median`` in the samples' unit; ``robust_cv`` and ``worst_ratio`` are fractions / ratios;
    ``detection_limit`` is the smallest ``after / before`` asv would flag (``inf``: never, e.g. one
    sample); ``reasons`` is empty for a stable benchmark.
    """

    n: int
    median: float
    robust_cv: float
    worst_ratio: float
    outliers: int
    bimodal: bool
    detection_limit: float
    reasons: tuple[str, ...] = field(default=())

    @property
    def stable(self) -> bool:
        """No reason to doubt the result."""
        return not self.reasons


def _clean(samples: Sequence[float]) -> np.ndarray:
    a = np.asarray([s for s in samples if s is not None and not math.isnan(s)], dtype=np.float64)
    return np.sort(a)


def robust_cv(samples: Sequence[float]) -> float:
    """IQR / 1.349 / median of ``samples`` (0 for fewer than 2 samples)."""
    a = _clean(samples)
    if len(a) < 2 or np.median(a) == 0:
        return 0.0
    q25, q75 = np.percentile(a, [25, 75])
    return float((q75 - q25) / _IQR_PER_SD / np.median(a))


def worst_ratio(samples: Sequence[float]) -> float:
    """Largest sample over the median (1.0 for a single sample)."""
    a = _clean(samples)
    return float(a[-1] / np.median(a)) if len(a) and np.median(a) > 0 else 1.0


def count_outliers(samples: Sequence[float], k: float = 3.0) -> int:
    """Samples farther than ``k`` robust standard deviations (IQR / 1.349, at least 0.5 % of the
    median) from the median."""
    a = _clean(samples)
    if len(a) < 4:
        return 0
    med = float(np.median(a))
    q25, q75 = np.percentile(a, [25, 75])
    sd = max((q75 - q25) / _IQR_PER_SD, 0.005 * abs(med))
    return int(np.sum(np.abs(a - med) > k * sd))


def is_bimodal(samples: Sequence[float], min_gap: float = 0.05) -> bool:
    """Two separate groups of samples: split at the largest gap between sorted samples; bimodal
    when each side holds at least 2 samples and a fifth of them, and the gap is wider than
    ``min_gap`` of the median and than 3x the spread (range) inside either group."""
    a = _clean(samples)
    n = len(a)
    if n < 6:
        return False
    gaps = np.diff(a)
    i = int(np.argmax(gaps))
    left, right = a[: i + 1], a[i + 1:]
    if min(len(left), len(right)) < max(2, math.ceil(n / 5)):
        return False
    inner = max(float(np.ptp(left)), float(np.ptp(right)))
    return bool(gaps[i] > min_gap * np.median(a) and gaps[i] > 3 * inner)


def asv_flags(before: Sequence[float], after: Sequence[float], factor: float = ASV_FACTOR) -> bool:
    """Whether asv would mark ``after`` as a regression of ``before`` (the rule of ``asv compare``:
    median ratio above ``factor`` and ``asv._stats.is_different`` on the samples and their stats)."""
    from asv import _stats
    from asv_runner.statistics import compute_stats

    b, a = list(_clean(before)), list(_clean(after))
    vb, sb = compute_stats(b, 1)
    va, sa = compute_stats(a, 1)
    if vb is None or va is None:
        return False
    if len(b) > 1 and len(a) > 1 and not _stats.is_different(b, a, sb, sa):
        return False
    return bool(vb < va / factor)


def detection_limit(samples: Sequence[float], factor: float = ASV_FACTOR, max_ratio: float = 4.0,
                    resolution: float = 0.002) -> float:
    """Smallest slowdown ``after / before`` (e.g. 1.12 = 12 % slower) that asv flags for a benchmark
    with these samples, to ``resolution``; ``inf`` if not even ``max_ratio`` is flagged. Bisection:
    a larger slowdown of the same samples is flagged whenever a smaller one is."""
    a = _clean(samples)
    if len(a) == 0 or not asv_flags(a, a * max_ratio, factor):
        return math.inf
    lo, hi = factor, max_ratio
    while hi - lo > resolution:
        mid = (lo + hi) / 2
        if asv_flags(a, a * mid, factor):
            hi = mid
        else:
            lo = mid
    return round(hi, 3)


def assess(samples: Sequence[float], cv_limit: float = CV_LIMIT, worst_limit: float = WORST_LIMIT,
           min_sample_s: float | None = MIN_SAMPLE_S, factor: float = ASV_FACTOR) -> Stability:
    """:class:`Stability` of one benchmark's samples, with the reasons it may be unstable (like
    pyperf's "the result may be unstable", per benchmark). ``min_sample_s`` None: not a timing."""
    a = _clean(samples)
    n = len(a)
    if n == 0:
        return Stability(0, math.nan, math.nan, math.nan, 0, False, math.inf, ("no samples",))
    med = float(np.median(a))
    cv, worst = robust_cv(a), worst_ratio(a)
    out, bim = count_outliers(a), is_bimodal(a)
    limit = detection_limit(a, factor)
    reasons = []
    if n < 3:
        reasons.append(f"too few samples ({n}): run without --quick, with --record-samples")
    if cv > cv_limit:
        reasons.append(f"noisy: robust CV {cv:.1%} > {cv_limit:.0%}")
    if worst > worst_limit:
        reasons.append(f"outlier: worst sample {worst:.2f}x the median")
    elif out:
        reasons.append(f"outliers: {out} of {n} samples beyond 3 robust SD")
    if bim:
        reasons.append("bimodal: two groups of samples")
    if min_sample_s is not None and med < min_sample_s:
        reasons.append(f"too short: {med * 1e3:.2g} ms per sample (< {min_sample_s * 1e3:g} ms)")
    return Stability(n, med, cv, worst, out, bim, limit, tuple(reasons))


# ------------------------------------------------------------------------------------------------
# over asv results
# ------------------------------------------------------------------------------------------------


def _label(row: Row) -> str:
    from cpbench.report.stage_table import DEFAULTS

    shown = {k: v for k, v in row.params.items() if k not in ("dataset", "device") and DEFAULTS.get(k) != v}
    return ", ".join(f"{k}={v}" for k, v in shown.items())


def _runs(rows: Sequence[Row]) -> list[tuple[str, int]]:
    """(commit, date) of the result files, newest first."""
    return sorted({(r.commit, r.date) for r in rows}, key=lambda cd: -cd[1])


def stability_table(rows: Sequence[Row], device: str = "cpu") -> list[dict[str, object]]:
    """One entry per benchmark and parameter combination of the newest run on ``device``: the
    :class:`Stability` of its samples (timings) and, where an earlier run of the same benchmark
    exists, ``aa_change`` = newest / previous median - 1 (for memory, value / value - 1).
    A benchmark without a device parameter counts as CPU."""
    rows = [r for r in rows if r.params.get("device", "cpu") == device and r.value is not None]
    runs = _runs(rows)
    if not runs:
        return []
    newest, previous = runs[0], runs[1] if len(runs) > 1 else None
    before = {(r.benchmark, tuple(sorted(r.params.items()))): r for r in rows
              if previous is not None and (r.commit, r.date) == previous}
    out = []
    for r in sorted((r for r in rows if (r.commit, r.date) == newest), key=lambda r: (r.benchmark, _label(r))):
        timing = r.measure.startswith("time_")
        samples = r.samples if (timing and r.samples) else [r.value]
        st = assess(samples, min_sample_s=MIN_SAMPLE_S if timing else None)
        old = before.get((r.benchmark, tuple(sorted(r.params.items()))))
        aa = r.value / old.value - 1 if old is not None and old.value else None  # asv's value: the median
        reasons = list(st.reasons)
        if not timing:  # one value per run: its repeatability is the A/A change, wanted within 1 %
            reasons = [] if aa is None or abs(aa) <= 0.01 else [f"not repeatable: {aa:+.1%} between runs"]
        elif aa is not None and abs(aa) >= ASV_FACTOR - 1:
            reasons.append(f"drifts: {aa:+.1%} between runs")
        out.append({"benchmark": r.benchmark, "stage": r.stage, "measure": r.measure, "size": r.params.get("size", ""),
                    "params": _label(r), "unit": r.unit, "stability": st, "aa_change": aa, "reasons": reasons})
    return out


def _fmt(value: float, unit: str) -> str:
    if unit == "seconds":
        return f"{value * 1e3:.3g} ms" if value < 1 else f"{value:.3g} s"
    if unit == "bytes":
        return f"{value / 1e6:.3g} MB"
    return f"{value:.4g}"


def to_markdown(table: Sequence[dict[str, object]], device: str) -> str:
    """The stability table as Markdown, one row per benchmark and parameter combination."""
    head = (f"| benchmark ({device}) | params | n | median | robust CV | worst/median | asv flags from | "
            "A/A change | verdict |\n|---|---|---:|---:|---:|---:|---:|---:|---|\n")
    lines = []
    for t in table:
        st: Stability = t["stability"]  # type: ignore[assignment]
        aa = t["aa_change"]
        lim = "never" if math.isinf(st.detection_limit) else f"+{st.detection_limit - 1:.1%}"
        verdict = "; ".join(t["reasons"]) or "ok"  # type: ignore[arg-type]
        lines.append(f"| {t['benchmark']} | {t['params'] or t['size']} | {st.n} | {_fmt(st.median, str(t['unit']))} | "
                     f"{st.robust_cv:.1%} | {st.worst_ratio:.2f} | {lim} | "
                     f"{'' if aa is None else format(aa, '+.1%')} | {verdict} |")
    return head + "\n".join(lines) + "\n"
