"""The document's opening: answers to the challenge's five questions, each a short paragraph computed
from the results, with its conditions, and — where the results cannot answer — what is missing and
the command that would measure it.

(1) where the bottleneck is (file I/O, the model, post-processing); (2) how time and memory scale with
image size and where parallelism lies; (3) whether densely packed cells cost more; (4) what the fast
settings save and cost in accuracy; (5) custom models against the pretrained one, and the number of
input channels. Units: seconds, MB = 1e6 bytes, GB = 1e9 bytes, MP = 1e6 pixels.
"""

from __future__ import annotations

from cpbench.fetch.catalogue import IMAGES
from cpbench.report import changes, density, studies
from cpbench.report.advice import GROUPS, Context
from cpbench.report.document import Section
from cpbench.report.evidence import (
    NOISE,
    SCALING_SWEEP,
    extrapolation_note,
    law_gap,
    law_supported,
)
from cpbench.report.results import Row
from cpbench.report.select import TIME, series
from cpbench.report.slide import END_TO_END, SlideModel, side_label

#: the fast settings of question (4), by the parameter names of the suite (resample: Cellpose 3.x)
FAST = ("niter", "tile_overlap", "augment", "batch_size", "bsize", "resample")



def _pct(share: float) -> str:
    return f"{share:.0%}" if share >= 0.01 or share == 0 else f"{share:.2%}"


def bottleneck(model: SlideModel) -> tuple[str, dict[str, float]] | None:
    """(size label, {group: share of the summed stage time}) at the largest size the network was timed
    at together with at least one other stage; None without it."""
    times = {b: dict(series(model.rows, b, TIME, model.device)) for g in GROUPS.values() for b in g}
    sizes = [px for px in times["bench_network.Network"]
             if sum(px in t for b, t in times.items() if b != "bench_network.Network") >= 1]
    if not sizes:
        return None
    px = max(sizes)
    shares = {g: sum(times[b].get(px, 0.0) for b in members) for g, members in GROUPS.items()}
    total = sum(shares.values())
    return side_label(px), {g: v / total for g, v in shares.items()}


def _q1(model: SlideModel, ctx: Context) -> tuple[str, list[str]]:
    b = bottleneck(model)
    if b is None:
        return ("(1) Bottleneck: not answered: the network and the mask stages were not timed at a common size.",
                ["question 1: cpbench sweep scaling (or make demo)"])
    size, shares = b
    top = max(shares, key=lambda g: shares[g])
    post = {m: model.measured(m).get(max(model.measured("bench_network.Network"))) for m in GROUPS["post-processing"]}
    worst = max((m for m in post if post[m]), key=lambda m: post[m] or 0.0, default=None)
    missing = [changes.stage_name(m) for g in GROUPS.values() for m in g if not model.measured(m)]
    eval_t = dict(series(model.rows, END_TO_END, TIME, model.device))
    timed = {g for g, members in GROUPS.items() if any(model.measured(m) for m in members)}
    text = (f"(1) Bottleneck ({model.device}): at {size}, {top} takes {_pct(shares[top])} of the summed stage time; "
            + ", ".join(f"{g} {_pct(s) if g in timed else 'not timed'}" for g, s in shares.items() if g != top)
            + (f" (the costliest post-processing stage: {changes.stage_name(worst)})" if worst else "") + "."
            + (f" Whole-image eval there: {max(eval_t.items())[1]:.3g} s at {side_label(max(eval_t))} (largest measured)."
               if eval_t else "")
            + (f" Not timed: {', '.join(missing)}." if missing else "")
            + f" File I/O here is the zarr region read and the mask write of the suite's synthetic slide; reading "
              f"an OME-TIFF plane is not among the stages. Conditions: {ctx.label}; {ctx.samples}.")
    return text, []


def _q2(model: SlideModel, ctx: Context) -> tuple[str, list[str]]:
    t, m = model.eval_time, model.eval_peak
    if t is None:
        return ("(2) Scaling: not answered: whole-image eval was timed at fewer than two sizes.",
                ["question 2: cpbench sweep scaling"])
    sizes = f"{t.n} sizes, {t.min_pixels / 1e6:.3g}-{t.max_pixels / 1e6:.3g} MP"
    if law_supported(t):
        text = (f"(2) Scaling ({model.device}): whole-image eval's time grows as pixels^{t.exponent:.2f} "
                f"({t.per_megapixel:.3g} s per MP, fit error {t.linear_error or 0:.0%}; {sizes})")
        if m is not None and law_supported(m):
            text += f" and its process peak by {m.per_pixel:.0f} bytes per pixel over {m.fixed / 1e6:.0f} MB"
        proj = []
        for name in IMAGES:
            p = model.run_seconds(name)
            if p is not None:
                note = extrapolation_note(p.extrapolation)
                proj.append(f"{name} ~{p.value / 3600:.2g} h ({p.low / 3600:.2g}-{p.high / 3600:.2g})"
                            + (f", {note}" if note else ""))
        text += ("; projected whole-image eval: " + "; ".join(proj) if proj else "") + "."
        missing = []
    else:
        text = (f"(2) Scaling ({model.device}): no scaling law from these results ({law_gap(t)}); measured: "
                + ", ".join(f"{v:.3g} s at {side_label(px)}" for px, v in sorted(model.measured(END_TO_END).items())) + ".")
        missing = [f"question 2 (a scaling law and whole-slide projections): {SCALING_SWEEP}"]
    text += (" Parallelism: a whole-slide run splits into independent blocks (cpbench segment, workers on Dask); "
             "within a block, the network uses torch's threads and follow_flows numba's.")
    return text + f" Conditions: {ctx.label}.", missing


def _q3(rows: list[Row]) -> tuple[str, list[str]]:
    eff = density.effects(rows)
    if not eff:
        return ("(3) Dense cells: not measured in these results (the stages at the four synthetic cell densities).",
                ["question 3: cpbench sweep density (bare, sparse, typical, packed at 256, 512, 1024 px)"])
    held = density.contents(rows)
    size = next((e.size for e in eff if e.stage != density.BLOCKWISE), eff[0].size)  # blockwise: larger crops

    def what(d: str) -> str:
        h = held.get((d, size), {})
        return (f"{h['nuclei_per_mp']:.0f} nuclei per MP, {h['cell_fraction']:.0%} cell pixels"
                if "nuclei_per_mp" in h and "cell_fraction" in h else "contents not measured")

    def at(e: density.DensityEffect) -> str:  # a stage measured at other sizes (blockwise: larger crops)
        return "" if e.size == size else f" at {e.size} px" + (
            f" in {density.DENSITY_BLOCK} px blocks" if e.stage == density.BLOCKWISE else "")

    packed = sorted((e for e in eff if e.dataset == "synthetic-packed"), key=lambda e: -e.judgement.ratio)
    text = (f"(3) Dense cells (cpu, {size} px): packed ({what('synthetic-packed')}) against typical "
            f"({what(density.TYPICAL)}): "
            + "; ".join(f"{changes.stage_name(e.stage)}{at(e)} x{e.judgement.ratio:.2f} ({e.judgement.verdict})"
                        for e in packed)
            + ". Bare glass (" + what("synthetic-bare") + "): "
            + "; ".join(f"{changes.stage_name(e.stage)}{at(e)} x{e.judgement.ratio:.2f}" for e in eff
                        if e.dataset == "synthetic-bare") + ".")
    return text, []


def _q4(rows: list[Row], device: str) -> tuple[str, list[str]]:
    study = studies.fast_answer(rows, device)
    if study is not None:
        return study, []
    effects = [e for e in changes.largest_size(changes.parameter_effects(rows)) if e.time is not None
               and e.param in FAST and e.device == device]
    measured = sorted({e.param for e in effects})
    unmeasured = [p for p in FAST if p not in measured]
    if not effects:
        return (f"(4) Fast settings ({device}): not measured in these results.",
                [f"question 4: {studies.FAST_COMMAND}"])
    parts = []
    for e in sorted(effects, key=lambda e: e.time.ratio):  # type: ignore[union-attr]
        ap = f", AP@0.5 {e.ap[0]:.3f} -> {e.ap[1]:.3f}" if e.ap else ", accuracy not measured on this stage"
        parts.append(f"{e.param}={e.value}: {changes.stage_name(e.stage)} x{e.time.ratio:.2f} at {e.size} px "  # type: ignore[union-attr]
                     f"({e.time.verdict}){ap}")  # type: ignore[union-attr]
    keep = [e for e in effects if e.ap and abs(e.ap[1] - e.ap[0]) <= 0.01 and e.time.changed and e.time.ratio < 1]  # type: ignore[union-attr]
    text = f"(4) Fast settings ({device}): " + "; ".join(parts) + "."
    if keep:
        text += " Faster with AP@0.5 within 0.01: " + ", ".join(f"{e.param}={e.value}" for e in keep) + "."
    if unmeasured:
        text += f" Not measured: {', '.join(unmeasured)}."
    return text, [f"question 4 (all settings side by side with their accuracy): {studies.FAST_COMMAND}"]


#: what each model of the grid is (models.registry), for the answer
MODEL_WORDS = {"random": "random weights in the installed Cellpose's default architecture (3.x: the nuclei CPnet, "
                         "the pretrained nuclei model's cost without its weights; 4.x: Cellpose-SAM)",
               "nuclei": "Cellpose 3's pretrained nuclei model", "cpsam": "Cellpose-SAM's pretrained weights"}
MODEL_COMMAND = "cpbench sweep models --results-dir .asv/results-models"


def _q5(rows: list[Row], device: str) -> tuple[str, list[str]]:
    effects = [e for e in changes.largest_size(changes.parameter_effects(rows, only="model")) if e.time is not None
               and e.device == device]
    chan = studies.channel_answer(rows, device)
    missing = [] if chan else [f"question 5 (input channels): {studies.CHANNEL_COMMAND}"]
    if effects:
        parts = []
        for value in dict.fromkeys(e.value for e in effects):
            mine = [e for e in effects if e.value == value]
            parts.append(f"model={value} ({MODEL_WORDS.get(value, value)}) against the reference model (a custom "
                         "model: the nuclei CPnet trained by cpbench on synthetic nuclei): " + ", ".join(
                             f"{changes.stage_name(e.stage)} x{e.time.ratio:.2f} at {e.size} px ({e.time.verdict})"  # type: ignore[union-attr]
                             for e in mine))
        unmeasured = [m for m in MODEL_WORDS if m not in {e.value for e in effects}]
        net = [e for e in effects if e.stage == "bench_network.Network" and e.value == "random"]
        same = bool(net) and all(e.time.verdict == NOISE for e in net)  # type: ignore[union-attr]
        models = ("(5) Models: " + "; ".join(parts) + "."
                  + (" The network's time did not change with the weights (same architecture): a custom model "
                     "trained in the default architecture costs the network what the pretrained one does; eval's "
                     "mask recovery follows the flows a model produces, so its time depends on the weights."
                     if same else "")
                  + (f" Not measured: {', '.join(unmeasured)} (weights absent or another Cellpose release)."
                     if unmeasured else ""))
    else:
        models = "(5) Models: only one model measured in these results (the reference model)."
        missing.append(f"question 5 (models): {MODEL_COMMAND}")
    return models + " " + (chan or "The number of input channels was not varied."), missing


def answers_section(snap_rows: list[Row], machine_rows: list[Row], ctx: Context, device: str = "cpu") -> Section:
    """The five answers as statements; what they cannot answer as missing lines naming the command."""
    model = SlideModel(snap_rows, device)
    sec = Section("Answers to the challenge's questions")
    for text, missing in (_q1(model, ctx), _q2(model, ctx), _q3(machine_rows), _q4(machine_rows, device),
                          _q5(machine_rows, device)):
        sec.statements.append(text)
        sec.missing += missing
    return sec
