"""Changes the results show, judged by :func:`cpbench.report.evidence.judge`: a parameter off its
default against the default (same stage, size, device, commit), and a stage across Cellpose commits.
Each is data (:class:`ParamEffect`, :class:`Step`) that the sections and the ranked findings both use,
so the tables, the statements and the guidelines never disagree.

Ratios are ``after / before`` (time: seconds; stage peak: bytes); sizes as asv wrote them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from cpbench.measure.suite import MEMORY_RESOLUTION_BYTES, STUDY_PARAMS
from cpbench.report.evidence import Judgement, detection_limits, judge
from cpbench.report.results import Row
from cpbench.report.select import (
    AP,
    STAGE_PEAK,
    TIME,
    commit_label,
    off_defaults,
    parameter_changes,
    pixels,
)
from cpbench.report.stability import ASV_FACTOR
from cpbench.report.stage_table import STAGE_ORDER

NAMES = {**dict(STAGE_ORDER), "bench_segment.Blockwise": "blockwise (cpbench segment)"}


def stage_name(bench: str) -> str:
    """``"8 get_masks"`` for ``bench_masks.GetMasks``."""
    return NAMES.get(bench, bench)


@dataclass
class ParamEffect:
    """One parameter value against the default, for one stage at one size and device."""

    stage: str  # module.Class
    param: str
    value: str
    size: str
    device: str
    time: Judgement | None = None
    peak: Judgement | None = None
    ap: tuple[float, float] | None = None  # (default's AP@0.5, this value's)

    @property
    def pixels(self) -> int:
        return pixels({"size": self.size}) or 0

    def describe(self) -> str:
        """``"batch_size=32 multiplies 5 network time by 0.80 (a change: ...)"``, with peak and AP."""
        parts = [f"{self.param}={self.value} multiplies {stage_name(self.stage)} time by {self.time.ratio:.2f}"
                 if self.time else f"{self.param}={self.value}"]
        if self.peak is not None and self.peak.changed:
            parts.append(f" and its stage peak by {self.peak.ratio:.2f}")
        if self.ap is not None:
            parts.append(f"; AP@0.5 {self.ap[0]:.3f} -> {self.ap[1]:.3f}")
        return "".join(parts)


def parameter_effects(rows: list[Row], only: str | None = None) -> list[ParamEffect]:
    """Every one-parameter-off measurement with a baseline, judged (time and stage peak); ``only``: that
    parameter's alone. The input (``dataset``: report.density), the model (question 5: a choice of
    what to run, not a setting; ``only="model"``) and the studies' parameters (report.studies) are left out."""
    limits = detection_limits(rows)
    by: dict[tuple[str, str, str, str, str], ParamEffect] = {}
    for c in parameter_changes(rows):
        if (c.param != only) if only else (c.param in ("dataset", "model") or c.param in STUDY_PARAMS):
            continue
        k = (c.stage, c.param, c.value, c.size, c.device)
        e = by.setdefault(k, ParamEffect(*k))
        if c.measure == TIME and c.row is not None and c.base_row is not None:
            e.time = judge(c.base_row, c.row, limits)
        elif c.measure == STAGE_PEAK and c.row is not None and c.base_row is not None:
            e.peak = judge(c.base_row, c.row, limits)
        elif c.measure == AP:
            e.ap = (c.baseline, c.measured)
    order = [b for b, _ in STAGE_ORDER]
    return sorted(by.values(), key=lambda e: (order.index(e.stage) if e.stage in order else 99, e.param, e.value,
                                              e.pixels, e.device))


def largest_size(effects: list[ParamEffect]) -> list[ParamEffect]:
    """Per (stage, parameter, value, device), the effect at the largest size measured."""
    best: dict[tuple[str, str, str, str], ParamEffect] = {}
    for e in effects:
        k = (e.stage, e.param, e.value, e.device)
        if k not in best or e.pixels > best[k].pixels:
            best[k] = e
    return list(best.values())


@dataclass
class Step:
    """A stage's value at one commit against the previous commit measured (same env, size, device)."""

    stage: str  # module.Class (with " (model=...)" when the model is not the default)
    measure: str  # TIME or STAGE_PEAK
    size: str
    before: str  # commit labels
    after: str
    judgement: Judgement
    before_value: float
    after_value: float

    def describe(self) -> str:
        base = self.stage.split(" (")[0]
        name = stage_name(base) + self.stage[len(base):]
        what, unit, scale = ("time", "s", 1.0) if self.measure == TIME else ("stage peak", "MB", 1e-6)
        size = "the whole frame" if self.size == "full" else f"{self.size} px"
        return (f"{name} {what} at {size}: {self.before} -> {self.after}: {self.before_value * scale:.3g} {unit} -> "
                f"{self.after_value * scale:.3g} {unit} ({self.judgement.ratio:.2f}x; {self.judgement.verdict}: "
                f"{self.judgement.basis})")


@dataclass
class History:
    """The commits measured in one environment at one size, every value and every step between them."""

    env: str
    size: str
    commits: list[str]  # hashes, commit-date order
    labels: list[str]
    values: dict[tuple[str, str], list[float | None]]  # (stage key, measure) -> value per commit
    steps: list[Step]


def _per_commit(rows: list[Row], measure: str, device: str) -> dict[tuple[str, str], dict[str, Row]]:
    """(stage key, size) -> commit -> row, at default parameters (the model may vary)."""
    per: dict[tuple[str, str], dict[str, Row]] = defaultdict(dict)
    for r in rows:
        if r.measure != measure or r.value is None or r.params.get("device", "cpu") != device:
            continue
        off = off_defaults(r)
        if off and off != ["model"]:
            continue
        key = r.stage + (f" (model={r.params['model']})" if off else "")
        per[(key, r.params.get("size", ""))][r.commit] = r
    return per


def history(rows: list[Row], names: dict[str, str], device: str = "cpu") -> History | None:
    """The environment that measured the most commits and the size measured at the most commits in it
    (1024 px on a tie); None with fewer than two commits. Steps beyond asv's factor are judged; memory at
    or below the probe's resolution is not compared."""
    envs: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        if r.value is not None:
            envs[r.env].add(r.commit)
    if not envs:
        return None
    env = max(envs, key=lambda e: len(envs[e]))
    rows = [r for r in rows if r.env == env]
    limits = detection_limits(rows)
    per = _per_commit(rows, TIME, device)
    sizes: dict[str, int] = defaultdict(int)
    for (_, size), by in per.items():
        sizes[size] = max(sizes[size], len(by))
    if not sizes or max(sizes.values()) < 2:
        return None
    size = max(sizes, key=lambda s: (sizes[s], s == "1024"))
    dates = {c: r.date for (_, sz), by in per.items() if sz == size for c, r in by.items()}
    commits = sorted(dates, key=lambda c: dates[c])
    out = History(env, size, commits, [commit_label(c, names) for c in commits], {}, [])
    for measure in (TIME, STAGE_PEAK):
        for (key, sz), by in sorted((per if measure == TIME else _per_commit(rows, measure, device)).items()):
            if sz != size or len(by) < 2:
                continue
            out.values[(key, measure)] = [by[c].value if c in by else None for c in commits]
            prev: int | None = None
            for i, c in enumerate(commits):
                r = by.get(c)
                if r is None or (measure == STAGE_PEAK and (r.value or 0) <= MEMORY_RESOLUTION_BYTES):
                    continue
                if prev is not None:
                    before = by[commits[prev]]
                    j = judge(before, r, limits)
                    if j.ratio > 0 and max(j.ratio, 1 / j.ratio) > ASV_FACTOR:
                        out.steps.append(Step(key, measure, size, out.labels[prev], out.labels[i], j,
                                              before.value, r.value))  # type: ignore[arg-type]
                prev = i
    return out
