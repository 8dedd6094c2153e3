"""Questions 4 and 5 of the challenge, from their own studies (``cpbench sweep fast`` / ``channels``):

* fast settings: whole-image eval (``bench_eval.FastSettings``) at each of Cellpose's fast settings
  (``suite.FAST_SETTINGS``), its time, stage peak and AP@0.5 beside the default's, and the fastest
  setting whose AP@0.5 stays within :data:`AP_TOLERANCE` of the default's;
* input channels: the network and eval with a CPnet of 1-8 input channels (``bench_network.InputChannels``,
  ``bench_eval.EndToEndChannels``), each against 2 channels (the nuclei model's), and the cost of one
  more channel from a straight line through the counts.

A time is a change only as :func:`cpbench.report.evidence.judge` says. Units: seconds, MB = 1e6 bytes,
AP@0.5 (0-1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cpbench.measure.suite import FAST_SETTINGS, MEMORY_RESOLUTION_BYTES, PARAM_DEFAULTS
from cpbench.report.document import Section
from cpbench.report.evidence import ONE_SAMPLE, Judgement, detection_limits, judge
from cpbench.report.stability import ASV_FACTOR
from cpbench.report.results import Row
from cpbench.report.select import AP, STAGE_PEAK, TIME, pixels

FAST_STAGE = "bench_eval.FastSettings"
CHANNEL_STAGES = {"bench_network.InputChannels": "5 network", "bench_eval.EndToEndChannels": "end to end (eval)"}
#: the most AP@0.5 a fast setting may lose and still count as keeping the accuracy (the issue's 0.01)
AP_TOLERANCE = 0.01
DEFAULT, BASE_NCHAN = PARAM_DEFAULTS["setting"], PARAM_DEFAULTS["nchan"]
FAST_COMMAND = "cpbench sweep fast (every setting at 256 and 512 px: time, stage peak, AP@0.5)"
CHANNEL_COMMAND = "cpbench sweep channels (1, 2, 3, 4, 8 input channels at 256, 512, 1024 px)"


def _newest(rows: list[Row], stage: str, device: str) -> dict[tuple[str, str, str], Row]:
    """(measure, size, the study's parameter and model) -> the newest row of ``stage`` on ``device``."""
    out: dict[tuple[str, str, str], Row] = {}
    for r in rows:
        if r.stage != stage or r.value is None or r.params.get("device", "cpu") != device:
            continue
        which = r.params.get("setting") or r.params.get("nchan", "")
        if "model" in r.params and r.params["model"] != PARAM_DEFAULTS["model"]:
            continue  # the reference model's study; another model's is its own table (not yet drawn)
        key = (r.measure, r.params.get("size", ""), which)
        if key not in out or r.date > out[key].date:
            out[key] = r
    return out


def _by_size(found: dict[tuple[str, str, str], Row]) -> list[str]:
    return sorted({s for _, s, _ in found}, key=lambda s: pixels({"size": s}) or 0)


@dataclass(frozen=True)
class Setting:
    """One fast setting at one size against the default there."""

    name: str
    size: str
    seconds: float
    time: Judgement
    peak_mb: float | None
    ap: float | None
    ap_default: float | None

    @property
    def ap_loss(self) -> float | None:
        return None if self.ap is None or self.ap_default is None else self.ap_default - self.ap

    @property
    def keeps_accuracy(self) -> bool:
        return self.ap_loss is not None and self.ap_loss <= AP_TOLERANCE


def fast_settings(rows: list[Row], device: str = "cpu") -> dict[str, list[Setting]]:
    """size -> every setting measured there beside a measured default (the default itself first)."""
    found = _newest(rows, FAST_STAGE, device)
    limits = detection_limits(rows)
    out: dict[str, list[Setting]] = {}
    for size in _by_size(found):
        base = found.get((TIME, size, DEFAULT))
        if base is None:
            continue
        base_ap = found.get((AP, size, DEFAULT))
        for name in FAST_SETTINGS:
            t = found.get((TIME, size, name))
            if t is None or t.value is None:
                continue
            peak, ap = found.get((STAGE_PEAK, size, name)), found.get((AP, size, name))
            out.setdefault(size, []).append(Setting(
                name, size, t.value, judge(base, t, limits), peak.value / 1e6 if peak and peak.value else None,
                ap.value if ap else None, base_ap.value if base_ap else None))
    return {s: v for s, v in out.items() if len(v) > 1}


def fastest_keeping_accuracy(settings: list[Setting]) -> Setting | None:
    """The setting with the least time that is measurably faster than the default (a change) and keeps
    AP@0.5 within :data:`AP_TOLERANCE`; None when none is."""
    ok = [s for s in settings if s.name != DEFAULT and s.keeps_accuracy and s.time.changed and s.time.ratio < 1]
    return min(ok, key=lambda s: s.seconds, default=None)


def leanest_keeping_accuracy(settings: list[Setting]) -> Setting | None:
    """The setting with the least stage peak, below the default's by more than the probe's resolution and
    asv's factor, that keeps AP@0.5 within :data:`AP_TOLERANCE`; None when none is."""
    base = settings[0].peak_mb
    ok = [s for s in settings if s.name != DEFAULT and s.keeps_accuracy and s.peak_mb and base
          and s.peak_mb < base / ASV_FACTOR and base - s.peak_mb > MEMORY_RESOLUTION_BYTES / 1e6]
    return min(ok, key=lambda s: s.peak_mb or 0.0, default=None)


def _memory_text(settings: list[Setting]) -> str:
    lean = leanest_keeping_accuracy(settings)
    if lean is None:
        return ""
    return (f" Least memory with AP@0.5 within {AP_TOLERANCE}: {lean.name} ({describe_setting(lean.name)}), stage "
            f"peak {lean.peak_mb:.0f} MB against the default's {settings[0].peak_mb:.0f} MB "
            f"(x{(lean.peak_mb or 0) / (settings[0].peak_mb or 1):.2f}), at x{lean.time.ratio:.2f} its time "
            f"({lean.time.verdict}).")


def describe_setting(name: str) -> str:
    kw = FAST_SETTINGS.get(name, {})
    return ", ".join(f"{k}={v}" for k, v in kw.items()) or "Cellpose's defaults"


def fast_answer(rows: list[Row], device: str = "cpu") -> str | None:
    """Question 4's paragraph at the largest size of the study; None without the study."""
    by = fast_settings(rows, device)
    if not by:
        return None
    size = max(by, key=lambda s: pixels({"size": s}) or 0)
    st = by[size]
    best = fastest_keeping_accuracy(st)
    parts = [f"{s.name} ({describe_setting(s.name)}) x{s.time.ratio:.2f} ({s.time.verdict})"
             + (f", AP@0.5 {s.ap:.3f}" if s.ap is not None else "") for s in st if s.name != DEFAULT]
    base = st[0]
    text = (f"(4) Fast settings ({device}, whole-image eval at {size} px, reference model, diameter 13): default "
            f"{base.seconds:.3g} s" + (f", AP@0.5 {base.ap:.3f}" if base.ap is not None else "") + "; "
            + "; ".join(parts) + ". ")
    if best is not None:
        text += (f"Fastest with AP@0.5 within {AP_TOLERANCE}: {best.name} ({describe_setting(best.name)}), "
                 f"{best.seconds:.3g} s = x{best.time.ratio:.2f} of the default, AP@0.5 {best.ap:.3f}.")
    else:
        text += (f"No setting is measurably faster than the default while keeping AP@0.5 within {AP_TOLERANCE} "
                 "(on these samples).")
    return text + _memory_text(st)


def fast_section(rows: list[Row], out: Path, device: str = "cpu") -> Section:
    """The table of every setting at every size and the time-against-accuracy figure."""
    sec = Section(f"Fast settings: time, memory and accuracy ({device})")
    by = fast_settings(rows, device)
    if not by:
        sec.missing.append(f"question 4 (fast settings): {FAST_COMMAND}")
        return sec
    sec.table = [["size", "setting", "eval gets", "seconds", "x default", "verdict", "stage peak, MB", "AP@0.5",
                  "AP lost"]]
    for size, st in by.items():
        for s in st:
            sec.table.append([size, s.name, describe_setting(s.name), f"{s.seconds:.3g}", f"{s.time.ratio:.2f}",
                              s.time.verdict if s.name != DEFAULT else "-",
                              f"{s.peak_mb:.0f}" if s.peak_mb else "-", f"{s.ap:.3f}" if s.ap is not None else "-",
                              f"{s.ap_loss:+.3f}" if s.ap_loss is not None and s.name != DEFAULT else "-"])
        best = fastest_keeping_accuracy(st)
        sec.statements.append(
            f"At {size} px: " + (f"the fastest setting that keeps AP@0.5 within {AP_TOLERANCE} is {best.name} "
                                 f"(x{best.time.ratio:.2f} of the default's time, {best.time.basis})" if best else
                                 f"no setting is measurably faster while keeping AP@0.5 within {AP_TOLERANCE}") + "."
            + _memory_text(st))
    from cpbench.report.figures import fast_png

    sec.figure = fast_png(by, out / f"fast_settings_{device}.png", f"Cellpose's fast settings on {device}: time "
                          "against accuracy (whole-image eval)")
    return sec


@dataclass(frozen=True)
class ChannelCost:
    """One stage at one size: time per channel count against 2 channels, and the line through them."""

    stage: str
    size: str
    seconds: dict[int, float]
    against_two: dict[int, Judgement]
    per_channel: float | None  # seconds one more channel adds (least squares), None with < 3 counts


def channel_costs(rows: list[Row], device: str = "cpu") -> list[ChannelCost]:
    """Every stage and size of the channel study with 2 channels measured."""
    limits = detection_limits(rows)
    out = []
    for stage in CHANNEL_STAGES:
        found = _newest(rows, stage, device)
        for size in _by_size(found):
            timed = {int(n): r for (m, s, n), r in found.items() if m == TIME and s == size and n.isdigit()}
            base = timed.get(int(BASE_NCHAN))
            if base is None or len(timed) < 2:
                continue
            counts = sorted(timed)
            slope = float(np.polyfit(counts, [timed[n].value for n in counts], 1)[0]) if len(counts) >= 3 else None
            out.append(ChannelCost(stage, size, {n: timed[n].value for n in counts},  # type: ignore[misc]
                                   {n: judge(base, timed[n], limits) for n in counts if n != int(BASE_NCHAN)}, slope))
    return out


def channel_answer(rows: list[Row], device: str = "cpu") -> str | None:
    """Question 5's channel sentence at each stage's largest size; None without the study."""
    costs = channel_costs(rows, device)
    if not costs:
        return None
    parts = []
    for stage in CHANNEL_STAGES:
        mine = [c for c in costs if c.stage == stage]
        if not mine:
            continue
        c = max(mine, key=lambda c: pixels({"size": c.size}) or 0)
        two = c.seconds[int(BASE_NCHAN)]
        parts.append(f"{CHANNEL_STAGES[stage]} at {c.size} px, {two:.3g} s with 2 channels: "
                     + ", ".join(f"{n} ch x{j.ratio:.2f} ({j.verdict})" for n, j in sorted(c.against_two.items()))
                     + (f"; one more channel adds {c.per_channel / two:+.1%} of the 2-channel time"
                        if c.per_channel is not None else ""))
    return ("Input channels (a CPnet of 1-8 channels, random weights, unrescaled): " + "; ".join(parts)
            + ". In a CPnet only the first block takes the channels (nbase[0] = nchan); with random weights eval's "
              "mask recovery follows random flows, so its times vary with the weights as much as with the channels; "
              "reading a slide's channels is I/O on top.")


def channel_section(rows: list[Row], device: str = "cpu") -> Section:
    """The table: time per channel count at each size, and the per-channel slope."""
    sec = Section(f"Input channels: cost against the number of channels ({device})")
    costs = channel_costs(rows, device)
    if not costs:
        sec.missing.append(f"question 5 (input channels): {CHANNEL_COMMAND}")
        return sec
    counts = sorted({n for c in costs for n in c.seconds})
    sec.table = [["stage", "size"] + [f"{n} ch, s" for n in counts] + ["per extra channel"]]
    for c in costs:
        two = c.seconds[int(BASE_NCHAN)]
        sec.table.append([CHANNEL_STAGES[c.stage], c.size] + [f"{c.seconds[n]:.3g}" if n in c.seconds else "-"
                                                               for n in counts]
                         + [f"{c.per_channel / two:+.1%}" if c.per_channel is not None else "-"])
        changed = [f"{n} ch x{j.ratio:.2f}" for n, j in sorted(c.against_two.items()) if j.changed]
        unjudged = all(j.verdict == ONE_SAMPLE for j in c.against_two.values())
        sec.statements.append(f"{CHANNEL_STAGES[c.stage]} at {c.size} px: "
                              + (f"changes against 2 channels: {', '.join(changed)}" if changed else
                                 "one sample per count, no verdict against 2 channels" if unjudged else
                                 "no channel count changes the time beyond noise against 2 channels")
                              + f" ({next(iter(c.against_two.values())).basis}).")
    return sec
