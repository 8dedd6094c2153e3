"""A measured stage's effect on a whole-slide run of each challenge image, within what the data allows.

:class:`SlideModel` holds the cost models of one snapshot on one device (whole-image eval's time and
process peak, each stage's time and stage peak). :meth:`SlideModel.effects` turns "this stage's time
is multiplied by ``ratio``" into the seconds and the share of the whole-slide run that changes, per
challenge image, when the eval model is a scaling law (:func:`~cpbench.report.evidence.law_supported`)
and the slide lies within :data:`~cpbench.report.evidence.NUMBER_BEYOND` x of the largest size measured;
otherwise into the share of the run at the largest size measured (labelled so), which is what a quick
run can honestly say.

Units: seconds, bytes, pixels (the nuclear channel's Y x X), shares as fractions of eval's time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from cpbench.fetch.catalogue import IMAGES
from cpbench.report.costmodel import CostFit, Projection, fit_cost, project
from cpbench.report.evidence import (
    extrapolation_note,
    law_gap,
    law_supported,
    projection_number,
)
from cpbench.report.results import Row
from cpbench.report.select import PROCESS_PEAK, TIME, series

END_TO_END = "bench_eval.EndToEnd"


def slide_pixels(name: str) -> int:
    """Pixels of one channel of challenge image ``name``."""
    _, y, x = IMAGES[name].shape
    return y * x


@dataclass(frozen=True)
class Effect:
    """What a finding changes in one run: ``where`` is a challenge image or ``"at 1024 px (measured)"``.

    ``seconds`` (negative: saved) and ``share`` (of that run's eval time) for time; ``bytes`` for memory
    (None when the finding is not about it); ``projected``: from scaling laws at the slide's size."""

    where: str
    share: float
    seconds: float | None = None
    bytes: float | None = None
    projected: bool = False
    note: str = ""  # the extrapolation label, when there is one
    signed: bool = True  # False: a cost (the stage's own time), not a change

    def text(self) -> str:
        parts = []
        share = f"{self.share:+.1%}" if self.signed else f"{self.share:.1%}"
        if self.seconds is not None:
            t = _signed_time(self.seconds)
            parts.append(f"{t if self.signed else t[1:]} ({share} of the run)")
        elif self.share:
            parts.append(f"{share} of the run")
        if self.bytes is not None:
            parts.append(f"{self.bytes / 1e9:+.3g} GB" if self.signed else f"peak {self.bytes / 1e9:.3g} GB")
        if not parts and self.note:
            return f"{self.where}: {self.note}"
        return f"{self.where}: {', '.join(parts) or 'no change'}" + (f" ({self.note})" if self.note else "")


def _signed_time(s: float) -> str:
    a = abs(s)
    sign = "-" if s < 0 else "+"
    if a >= 3600:
        return f"{sign}{a / 3600:.2g} h"
    if a >= 60:
        return f"{sign}{a / 60:.2g} min"
    return f"{sign}{a:.2g} s"


class SlideModel:
    """Cost models of one snapshot (rows of one machine, environment and commit) on ``device``."""

    def __init__(self, rows: list[Row], device: str = "cpu") -> None:
        self.device = device
        self.rows = rows
        self.eval_time = fit_cost(series(rows, END_TO_END, TIME, device))
        self.eval_peak = fit_cost(series(rows, END_TO_END, PROCESS_PEAK, device), "bytes")
        self._time: dict[str, CostFit | None] = {}
        self._measured: dict[str, dict[int, float]] = {}

    def stage_time(self, bench: str) -> CostFit | None:
        if bench not in self._time:
            self._time[bench] = fit_cost(series(self.rows, bench, TIME, self.device))
        return self._time[bench]

    def measured(self, bench: str, measure: str = TIME) -> dict[int, float]:
        """``{pixels: value}`` of ``bench`` at default parameters."""
        key = f"{bench}.{measure}"
        if key not in self._measured:
            self._measured[key] = dict(series(self.rows, bench, measure, self.device))
        return self._measured[key]

    @property
    def projectable(self) -> bool:
        """Whether whole-slide numbers may be stated (eval's time is a scaling law)."""
        return law_supported(self.eval_time)

    def why_not(self) -> str:
        """Why no whole-slide number is given (empty when it is)."""
        return "" if self.projectable else f"end-to-end eval time: {law_gap(self.eval_time)}"

    def largest_common(self, bench: str) -> int | None:
        """The largest size (pixels) at which both ``bench`` and end-to-end eval were timed."""
        common = set(self.measured(bench)) & set(self.measured(END_TO_END))
        return max(common) if common else None

    def run_seconds(self, name: str) -> Projection | None:
        """Projected whole-image eval time of challenge image ``name``; None when no number may be given."""
        if not self.projectable:
            return None
        p = project(self.eval_time, slide_pixels(name))  # type: ignore[arg-type]
        return p if projection_number(p.extrapolation) else None

    def run_peak(self, name: str) -> Projection | None:
        """Projected whole-image eval process peak (bytes), under the same rules as :meth:`run_seconds`."""
        if not law_supported(self.eval_peak):
            return None
        p = project(self.eval_peak, slide_pixels(name))  # type: ignore[arg-type]
        return p if projection_number(p.extrapolation) else None

    def share(self, bench: str, px: int | None = None) -> float | None:
        """``bench``'s time over eval's at ``px`` (measured when both were; else their linear models;
        default: the largest size both were measured at)."""
        px = px if px is not None else self.largest_common(bench)
        if px is None:
            return None
        t, e = self.measured(bench).get(px), self.measured(END_TO_END).get(px)
        if t is not None and e:
            return t / e
        ft = self.stage_time(bench)
        if ft is None or self.eval_time is None or self.eval_time.linear(px) <= 0:
            return None
        return max(ft.linear(px), 0.0) / self.eval_time.linear(px)

    def effects(self, bench: str, ratio: float, size_px: int | None = None) -> list[Effect]:
        """The effect of multiplying ``bench``'s time by ``ratio``: per challenge image when projectable
        (the stage's own model must be a law too), else one effect at the size measured (``size_px``,
        default the largest measured with eval)."""
        out = []
        ft = self.stage_time(bench)
        if self.projectable and law_supported(ft):
            for name in IMAGES:
                run = self.run_seconds(name)
                if run is None:
                    far = slide_pixels(name) / self.eval_time.max_pixels  # type: ignore[union-attr]
                    out.append(Effect(name, 0.0, note=f"not projected: {far:.3g}x beyond the largest size measured"))
                    continue
                px = slide_pixels(name)
                stage = max(ft.linear(px), 0.0)  # type: ignore[union-attr]
                delta = (ratio - 1.0) * stage
                out.append(Effect(name, delta / run.value if run.value else 0.0, seconds=delta, projected=True,
                                  note=extrapolation_note(run.extrapolation)))
        if any(e.projected for e in out):
            return out
        px = size_px if size_px is not None else self.largest_common(bench)
        s = self.share(bench, px)
        if s is None or px is None:
            return []
        return [Effect(f"at {side_label(px)} (measured)", (ratio - 1.0) * s)]

    def costs(self, bench: str) -> list[Effect]:
        """``bench``'s own time as a part of the run, per challenge image or at the size measured."""
        return [replace(e, signed=False) for e in self.effects(bench, 2.0)]



def side_label(px: int) -> str:
    """``"512 px"`` for a square of ``px`` pixels, else ``"7.87 MP"``."""
    side = round(px ** 0.5)
    return f"{side} px" if side * side == px else f"{px / 1e6:.3g} MP"
