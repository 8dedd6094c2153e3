"""The findings the results support, as :class:`~cpbench.report.findings.Finding` data: what each
stage costs of a whole-image run, what each parameter and each Cellpose commit changes (judged against
the benchmark's noise), whether whole-image eval fits in the machine's memory, and CPU against GPU.
:func:`findings` makes them; :mod:`cpbench.report.findings` ranks and renders them.

Effects are shares of whole-image eval's time (fractions) and seconds per challenge image where the
cost models are scaling laws (:mod:`cpbench.report.evidence`), else the share at the size measured.
"""

from __future__ import annotations

from dataclasses import dataclass

from cpbench.fetch.catalogue import IMAGES
from cpbench.report import changes, density, studies
from cpbench.report.changes import stage_name
from cpbench.report.evidence import NOISE, extrapolation_note, law_gap, samples_summary
from cpbench.report.findings import MIN_EFFECT, Finding
from cpbench.report.results import Row
from cpbench.report.select import PROCESS_PEAK, TIME, off_defaults, pixels, series
from cpbench.report.slide import END_TO_END, Effect, SlideModel, side_label
from cpbench.report.stage_table import STAGE_ORDER

#: single stages (composites excluded), stage-map order
SINGLE = [b for b, _ in STAGE_ORDER if b not in ("bench_masks.MaskRecovery", END_TO_END)]
#: the challenge's question (1): which stage is file I/O, the model, or post-processing
GROUPS: dict[str, list[str]] = {
    "file I/O": ["bench_read.ReadRegion", "bench_write.WriteMasks"],
    "preprocessing": ["bench_preprocess.Convert", "bench_preprocess.Normalize", "bench_preprocess.Rescale"],
    "the model": ["bench_network.Network"],
    "post-processing": ["bench_masks.ResampleFlows", "bench_masks.FollowFlows", "bench_masks.GetMasks",
                        "bench_masks.FlowQC", "bench_masks.FillHoles"],
}
#: how to reproduce each kind of finding
COMMANDS = {"stage": "cpbench sweep scaling", "parameter": "cpbench sweep params",
            "history": "asv run --record-samples -a rounds=6 \"v3.1.0..main\" (or make history)",
            "memory": "cpbench sweep scaling", "device": "asv run --launch-method spawn on a CUDA machine"}


@dataclass(frozen=True)
class Context:
    """What every finding states as its conditions: machine, Cellpose commit, environment, device."""

    label: str  # "machine box (Test CPU, 2 CPUs, 16 GB RAM), Cellpose v3.1.1.3"
    ram: float | None  # bytes
    samples: str  # "1 sample per timing (asv run --quick)"


def _conditions(ctx: Context, device: str, model: SlideModel, bench: str = END_TO_END) -> str:
    pts = model.measured(bench)
    sizes = ", ".join(side_label(p) for p in sorted(pts)) or "none"
    return f"{ctx.label}, {device}; sizes measured: {sizes}; {ctx.samples}"



def _confidence(model: SlideModel, extra: str = "") -> str:
    if model.projectable:
        far = max((model.run_seconds(n).extrapolation for n in IMAGES if model.run_seconds(n)), default=0.0)  # type: ignore[union-attr]
        out = (f"whole-slide numbers from eval's scaling law ({model.eval_time.n} sizes, "  # type: ignore[union-attr]
               f"fit error {model.eval_time.linear_error or 0:.0%})"  # type: ignore[union-attr]
               + (f"; {extrapolation_note(far)}" if extrapolation_note(far) else ""))
    else:
        out = f"no whole-slide number: {model.why_not()}; the share is at the largest size measured"
    return out + (f"; {extra}" if extra else "")


def stage_findings(model: SlideModel, ctx: Context, top: int = 3) -> list[Finding]:
    """The ``top`` single stages by their share of whole-image eval, each a finding of what it costs."""
    shares = [(b, model.share(b)) for b in SINGLE]
    ranked = sorted(((b, s) for b, s in shares if s is not None), key=lambda bs: -bs[1])[:top]
    out = []
    for i, (bench, share) in enumerate(ranked):
        group = next(g for g, members in GROUPS.items() if bench in members)
        px = model.largest_common(bench)
        out.append(Finding(
            claim=f"{stage_name(bench)} ({group}) takes {share:.0%} of whole-image eval's time at {side_label(px or 0)} "
                  f"on {model.device}" + (": the largest single cost, the first place to optimize." if i == 0 else "."),
            kind="bottleneck", effects=model.costs(bench), conditions=_conditions(ctx, model.device, model, bench),
            evidence=f"{bench}.time_stage and bench_eval.EndToEnd.time_stage; {COMMANDS['stage']}",
            confidence=_confidence(model)))
    return out


def parameter_findings(rows: list[Row], model: SlideModel, ctx: Context) -> list[Finding]:
    """Each parameter value whose time or stage peak is not within noise (changes and single samples)."""
    out = []
    for e in changes.largest_size([e for e in changes.parameter_effects(rows) if e.time is not None]):
        if e.device != model.device:
            continue
        t = e.time
        peak_changed = e.peak is not None and e.peak.changed
        if t.verdict == NOISE and not peak_changed:  # type: ignore[union-attr]
            continue
        verdict = t.verdict if t.verdict != NOISE else f"time {NOISE}"  # type: ignore[union-attr]
        accuracy = ""
        if e.ap is not None:
            accuracy = (" at no accuracy cost (AP@0.5 within 0.01)" if abs(e.ap[1] - e.ap[0]) <= 0.01
                        else f", AP@0.5 {e.ap[0]:.3f} -> {e.ap[1]:.3f}")
        claim = (f"{e.describe()}{accuracy if 'AP@0.5' not in e.describe() else ''} at {side_label(e.pixels)} "
                 f"({verdict}).")
        effects = model.effects(e.stage, t.ratio, e.pixels) if t.verdict != NOISE else []  # type: ignore[union-attr]
        out.append(Finding(claim=claim, kind="parameter", effects=effects,
                           conditions=_conditions(ctx, e.device, model, e.stage),
                           evidence=f"{e.stage}.time_stage with {e.param}={e.value} against the default; "
                                    f"{COMMANDS['parameter']}",
                           confidence=_confidence(model, f"{t.verdict}: {t.basis}")))  # type: ignore[union-attr]
    return out


def history_findings(rows: list[Row], names: dict[str, str], model: SlideModel, ctx: Context) -> list[Finding]:
    """Each step between Cellpose commits that is a change or a single sample beyond asv's factor."""
    h = changes.history(rows, names, model.device)
    if h is None:
        return []
    out = []
    px = next((p for p in model.measured(END_TO_END) if side_label(p) == f"{h.size} px"), None)
    for st in h.steps:
        if st.judgement.verdict == NOISE:
            continue
        bench = st.stage.split(" (")[0]
        if st.measure == TIME:
            effects = model.effects(bench, st.judgement.ratio, px)
            mem = 0.0
        else:
            effects = []
            peak = dict(series(model.rows, END_TO_END, PROCESS_PEAK, model.device)).get(px or -1)
            mem = (st.after_value - st.before_value) / peak if peak else 0.0
        out.append(Finding(claim=f"{st.describe()}.", kind="history", effects=effects, memory_share=mem,
                           conditions=f"asv environment {h.env}, {model.device}; {ctx.samples}",
                           evidence=f"{bench}.{st.measure}; {COMMANDS['history']}",
                           confidence=st.judgement.verdict + ": " + st.judgement.basis))
    return out


def density_findings(rows: list[Row], ctx: Context) -> list[Finding]:
    """Packed cells against the typical density, per stage timed at both (not within noise): its effect is
    the change of the stage's time over whole-image eval's at the typical density, both measured by the
    density sweep at that size (end-to-end eval itself: its own ratio)."""
    t = density.times(rows)
    out = []
    for e in density.effects(rows):
        if e.dataset != "synthetic-packed" or e.judgement.verdict == NOISE:
            continue
        whole = e.stage in (END_TO_END, density.BLOCKWISE)  # a whole run: its own time is the run's
        stage = t[e.stage][(density.TYPICAL, e.size)]
        typical = stage if whole else t.get(END_TO_END, {}).get((density.TYPICAL, e.size))
        if typical is None or not typical.value:
            continue
        share = (e.judgement.ratio - 1.0) * (stage.value or 0.0) / typical.value
        run = "whole-image eval" if e.stage == END_TO_END else f"blockwise segmentation ({density.DENSITY_BLOCK} px blocks)"
        out.append(Finding(
            claim=(f"Densely packed cells make {run} {e.judgement.ratio:.2f}x as long as the typical density "
                   f"at {e.size} px ({e.judgement.verdict})." if whole else
                   f"Densely packed cells: {stage_name(e.stage)} takes {e.judgement.ratio:.2f}x the typical density's "
                   f"time at {e.size} px ({e.judgement.verdict})."),
            kind="density", effects=[Effect(f"at {e.size} px (measured)", share)],
            conditions=f"{ctx.label}, cpu; the synthetic slide at four densities (packed: its table below)",
            evidence=f"{e.stage}.time_stage, dataset=synthetic-packed against synthetic; cpbench sweep density",
            confidence=f"{e.judgement.verdict}: {e.judgement.basis}"))
    return out


def memory_findings(model: SlideModel, ctx: Context) -> list[Finding]:
    """Whole-image eval's process peak against this machine's RAM, per challenge image when projectable."""
    peaks = series(model.rows, END_TO_END, PROCESS_PEAK, model.device)
    if not peaks:
        return []
    px, peak = peaks[-1]
    if ctx.ram is None:
        return []
    projected = {n: model.run_peak(n) for n in IMAGES}
    over = [n for n, p in projected.items() if p is not None and p.low > ctx.ram]
    if over:
        first = over[0]
        p = projected[first]
        effects = [Effect(n, 0.0, bytes=pr.value, projected=True, note=extrapolation_note(pr.extrapolation),
                          signed=False) if pr is not None else Effect(n, 0.0, note="not projected: beyond 20x")
                   for n, pr in projected.items()]
        claim = (f"Whole-image eval does not fit in this machine's {ctx.ram / 1e9:.1f} GB from {first} on "
                 f"(projected {p.value / 1e9:.3g} GB, {p.low / 1e9:.3g}-{p.high / 1e9:.3g}): segment in blocks "  # type: ignore[union-attr]
                 "(cpbench segment), whose peak follows the block, not the slide.")
        return [Finding(claim=claim, kind="memory", effects=effects, memory_share=1.0,
                        conditions=_conditions(ctx, model.device, model), confidence=_confidence(model),
                        evidence=f"bench_eval.EndToEnd.peakmem_stage; {COMMANDS['memory']}")]
    gap = law_gap(model.eval_peak)
    shown = {n: pr for n, pr in projected.items() if pr is not None}
    if gap or not shown:
        claim = (f"Whole-image eval's process peak is {peak / 1e6:.0f} MB at {side_label(px)} ({peak / px:.0f} bytes per "
                 f"pixel, fixed part included) on {model.device}; no whole-slide projection "
                 f"({gap or 'every challenge image lies beyond 20x the largest size measured'}).")
        return [Finding(claim=claim, kind="memory", memory_share=MIN_EFFECT,
                        effects=[Effect(f"at {side_label(px)} (measured)", 0.0, bytes=peak, signed=False)],
                        conditions=_conditions(ctx, model.device, model), confidence=_confidence(model),
                        evidence=f"bench_eval.EndToEnd.peakmem_stage; {COMMANDS['memory']}")]
    worst = max(shown.values(), key=lambda pr: pr.value)
    claim = (f"Whole-image eval fits in this machine's {ctx.ram / 1e9:.1f} GB for "
             + ", ".join(f"{n} (projected {pr.value / 1e9:.3g} GB)" for n, pr in shown.items())
             + "".join(f"; {n}: not projected" for n in projected if n not in shown) + ".")
    effects = [Effect(n, 0.0, bytes=pr.value, projected=True, note=extrapolation_note(pr.extrapolation), signed=False)
               if pr is not None else Effect(n, 0.0, note="not projected: beyond 20x") for n, pr in projected.items()]
    # it fits: no run changes, but whether to go blockwise rests on it; a guideline, ranked after the effects
    return [Finding(claim=claim + f" Highest projected peak: {worst.high / ctx.ram:.0%} of RAM at the top of its range.",
                    kind="memory", effects=effects, memory_share=MIN_EFFECT,
                    conditions=_conditions(ctx, model.device, model), confidence=_confidence(model),
                    evidence=f"bench_eval.EndToEnd.peakmem_stage; {COMMANDS['memory']}")]


def device_findings(rows: list[Row]) -> list[Finding]:
    """CPU against CUDA for each stage measured on both at its largest common size."""
    vals: dict[tuple[str, str], dict[str, float]] = {}
    for r in rows:
        if r.measure == TIME and r.value is not None and "device" in r.params and not off_defaults(r):
            vals.setdefault((r.stage, r.params.get("size", "")), {})[r.params["device"]] = r.value
    both = {k: v for k, v in vals.items() if "cpu" in v and "cuda" in v}
    out = []
    for (stage, size), v in sorted(both.items()):
        if stage != END_TO_END and stage != "bench_network.Network":
            continue
        out.append(Finding(claim=f"{stage_name(stage)} at {size} px: {v['cpu']:.3g} s on CPU, {v['cuda']:.3g} s on "
                                 f"CUDA ({v['cpu'] / v['cuda']:.1f}x).", kind="device",
                           effects=[Effect(f"at {size} px (measured)", v["cuda"] / v["cpu"] - 1.0)],
                           evidence=f"{stage}.time_stage, device=cpu and cuda; {COMMANDS['device']}"))
    return out


def study_findings(rows: list[Row], model: SlideModel, ctx: Context) -> list[Finding]:
    """What each fast setting does to whole-image eval (time, accuracy) at the largest size of the study, and
    what each input-channel count does to the network, where not within noise."""
    out = []
    fast = studies.fast_settings(rows, model.device)
    if fast:
        size = max(fast, key=lambda s: side_px(s))
        for st in fast[size][1:]:
            if st.time.verdict == NOISE:
                continue
            ap = (f", AP@0.5 {st.ap_default:.3f} -> {st.ap:.3f}" if st.ap is not None and st.ap_default is not None
                  else "")
            out.append(Finding(
                claim=f"Cellpose's {st.name} ({studies.describe_setting(st.name)}) makes whole-image eval "
                      f"x{st.time.ratio:.2f} as long at {size} px{ap} ({st.time.verdict}).",
                kind="parameter", effects=model.effects(END_TO_END, st.time.ratio, side_px(size)),
                conditions=_conditions(ctx, model.device, model, studies.FAST_STAGE),
                evidence=f"{studies.FAST_STAGE}.time_stage and track_ap50, setting={st.name} against default; "
                         f"{studies.FAST_COMMAND}",
                confidence=_confidence(model, f"{st.time.verdict}: {st.time.basis}")))
    network = [c for c in studies.channel_costs(rows, model.device) if c.stage == "bench_network.InputChannels"]
    for c in network[-1:]:  # channel_costs orders a stage's sizes smallest first: its largest
        for n, j in sorted(c.against_two.items()):
            if j.verdict == NOISE:
                continue
            out.append(Finding(
                claim=f"A CPnet of {n} input channels takes x{j.ratio:.2f} the network time of 2 channels at "
                      f"{c.size} px ({j.verdict}).", kind="parameter",
                effects=model.effects("bench_network.Network", j.ratio, side_px(c.size)),
                conditions=_conditions(ctx, model.device, model, c.stage),
                evidence=f"{c.stage}.time_stage, nchan={n} against 2; {studies.CHANNEL_COMMAND}",
                confidence=_confidence(model, f"{j.verdict}: {j.basis}")))
    return out


def side_px(size: str) -> int:
    """Pixels of a crop side (``"512"``) or the full frame."""
    return pixels({"size": size}) or 0


def findings(snap_rows: list[Row], machine_rows: list[Row], names: dict[str, str], ctx: Context,
             device: str = "cpu") -> list[Finding]:
    """Every finding of one snapshot (its cost models) and the machine's parameter and history runs."""
    model = SlideModel(snap_rows, device)
    return (stage_findings(model, ctx) + parameter_findings(machine_rows, model, ctx)
            + history_findings(machine_rows, names, model, ctx) + memory_findings(model, ctx)
            + (density_findings(machine_rows, ctx) if device == "cpu" else [])
            + study_findings(machine_rows, model, ctx)
            + device_findings(machine_rows))


def context(label: str, ram: float | None, rows: list[Row]) -> Context:
    return Context(label, ram, samples_summary(rows))

