"""Build the guideline sections from asv result rows: every statement is computed from the rows.

Sections: scaling (fitted cost models), breakdown per size and device, parameter sensitivity,
history across Cellpose commits, CPU vs GPU, and "will it fit" for the three challenge images.
A section whose data is absent says what is missing and how to measure it.

Units in the text: seconds (s), megapixels (MP = 1e6 pixels), megabytes (MB = 1e6 bytes), GB = 1e9 bytes.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from cpbench.fetch.catalogue import IMAGES
from cpbench.measure.suite import MEMORY_RESOLUTION_BYTES
from cpbench.report import changes, figures
from cpbench.report.costmodel import CostFit, fit_cost, pixels_at, project
from cpbench.report.document import Section
from cpbench.report.evidence import (
    NUMBER_BEYOND,
    SCALING_SWEEP,
    extrapolation_note,
    law_gap,
    law_supported,
    projection_number,
)
from cpbench.report.results import Row
from cpbench.report.select import (
    GPU_PEAK,
    PROCESS_PEAK,
    STAGE_PEAK,
    TIME,
    Snapshot,
    off_defaults,
    pixels,
    series,
)
from cpbench.report.stability import ASV_FACTOR
from cpbench.report.stage_table import STAGE_ORDER

#: single stages (composites excluded) in stage-map order: what the breakdown stacks
SINGLE = [(b, lab) for b, lab in STAGE_ORDER if b not in ("bench_masks.MaskRecovery", "bench_eval.EndToEnd")]
END_TO_END = "bench_eval.EndToEnd"


def _s(v: float) -> str:
    return f"{v:.3g}"


def size_text(size: str) -> str:
    """``1024 px`` or, for ``full``, ``the whole frame``."""
    return "the whole frame" if size == "full" else f"{size} px"


def _err(e: float | None) -> str:
    return "n/a (2 sizes)" if e is None else f"{e:.0%}"


def scaling_section(rows: list[Row], snap: Snapshot, label: str, out: Path, device: str) -> tuple[Section, dict]:
    """Fitted time and stage-peak models per stage; returns the section and {benchmark: {time, memory}} fits."""
    sec = Section(f"Scaling with image size ({device})")
    data: dict[str, dict[str, list[tuple[int, float]]]] = {}
    fits: dict[str, dict[str, CostFit | None]] = {}
    table = [["stage", "sizes, MP", "fixed s", "s per MP", "time exponent", "time fit error",
              "fixed MB", "bytes per pixel", "memory exponent", "memory fit error"]]
    by_bench: dict[str, dict[str, CostFit | None]] = {}
    for bench, name in STAGE_ORDER:
        t = series(rows, bench, TIME, device)
        peaks = series(rows, bench, STAGE_PEAK, device)
        m = [(p, v) for p, v in peaks if v > MEMORY_RESOLUTION_BYTES]
        if not t:
            continue
        data[name] = {"time": t, "memory": m}
        ft, fm = fit_cost(t, "seconds"), fit_cost(m, "bytes")
        fits[name] = by_bench[bench] = {"time": ft, "memory": fm}
        sizes = f"{t[0][0] / 1e6:.3g}-{t[-1][0] / 1e6:.3g} ({len(t)})"
        row = [name, sizes]
        row += [_s(ft.fixed), _s(ft.per_megapixel), f"{ft.exponent:.2f}", _err(ft.linear_error)] if ft else ["", "", "", ""]
        row += ([_s(fm.fixed / 1e6), f"{fm.per_pixel:.1f}", f"{fm.exponent:.2f}", _err(fm.linear_error)] if fm
                else ["", f"below {MEMORY_RESOLUTION_BYTES / 2**20:g} MiB" if peaks else "not measured", "", ""])
        table.append(row)
        if ft is None:
            sec.missing.append(f"{name}: one size only, no model")
    if len(table) == 1:
        sec.missing.append("no stage measured at default parameters; run: cpbench sweep scaling")
        return sec, by_bench
    sec.table = table
    sec.figure = figures.scaling_png(data, fits, out / f"scaling_{device}.png", f"Stage cost vs image size, {label}")
    grows = sorted(((n, f["time"]) for n, f in fits.items() if f["time"]), key=lambda x: -x[1].per_pixel)
    if grows:
        n, f = grows[0]
        sec.statements.append(f"The costliest stage per pixel is {n}: {_s(f.per_megapixel)} s per megapixel "
                              f"({'+' if f.fixed >= 0 else ''}{_s(f.fixed)} s fixed; exponent {f.exponent:.2f}, fit error {_err(f.linear_error)}).")
    superlin = [(n, f["time"]) for n, f in fits.items() if law_supported(f["time"]) and f["time"].exponent > 1.15]
    for n, f in superlin:
        sec.statements.append(f"{n} grows faster than the image: time ~ pixels^{f.exponent:.2f} over "
                              f"{f.min_pixels / 1e6:.3g}-{f.max_pixels / 1e6:.3g} MP ({f.n} sizes).")
    unlawful = [n for n, f in fits.items() if f["time"] and not law_supported(f["time"])]
    if unlawful:
        gap = law_gap(fits[unlawful[0]]["time"])
        sec.statements.append(f"No scaling law (exponent) is stated for {', '.join(unlawful)}: {gap}; the table's "
                              "exponents describe the sizes measured only.")
        sec.missing.append(f"a scaling law per stage: {SCALING_SWEEP}")
    mem = sorted(((n, f["memory"]) for n, f in fits.items() if f["memory"]), key=lambda x: -x[1].per_pixel)
    if mem:
        sec.statements.append("Bytes per pixel of the stage peaks (slope of the fit): " + "; ".join(
            f"{n} {f.per_pixel:.0f}" for n, f in mem[:6]) + ".")
    return sec, by_bench


def breakdown_section(rows: list[Row], label: str, out: Path, device: str) -> Section:
    """Per size: stacked seconds and stage peaks of the single stages; which stage dominates."""
    sec = Section(f"Where the time goes, per image size ({device})")
    cells: dict[int, dict[str, tuple[float | None, float | None]]] = defaultdict(dict)
    names: dict[int, str] = {}
    for bench, name in SINGLE + [(END_TO_END, "end to end (eval)")]:
        t = dict(series(rows, bench, TIME, device))
        m = dict(series(rows, bench, STAGE_PEAK if bench != END_TO_END else PROCESS_PEAK, device))
        for px in set(t) | set(m):
            cells[px][name] = (t.get(px), m.get(px))
    for r in rows:
        px = pixels(r.params)
        if px is not None:
            names.setdefault(px, r.params["size"])
    sizes = sorted(px for px in cells if any(k != "end to end (eval)" and v[0] is not None for k, v in cells[px].items()))
    if not sizes:
        sec.missing.append("no single stage measured; run the quick suite or cpbench sweep scaling")
        return sec
    stages = [n for _, n in SINGLE if any(cells[px].get(n, (None, None))[0] is not None for px in sizes)]
    secs = {st: [cells[px].get(st, (0.0, None))[0] or 0.0 for px in sizes] for st in stages}
    peaks = {st: [(cells[px].get(st, (None, None))[1] or 0.0) / 1e6 for px in sizes] for st in stages}
    proc = [((cells[px].get("end to end (eval)") or (None, None))[1] or 0) / 1e6 or None for px in sizes]
    sec.figure = figures.breakdown_png([names[px] for px in sizes], stages, secs, peaks, proc,
                                       out / f"breakdown_{device}.png", f"Stage breakdown, {label}")
    table = [["size", "megapixels", "dominant stage", "its share of stage time", "stage time sum, s",
              "end-to-end eval, s", "end-to-end process peak, MB"]]
    for i, px in enumerate(sizes):
        total = sum(secs[st][i] for st in stages)
        top = max(stages, key=lambda st: secs[st][i])
        unmeasured = [st for st in stages if cells[px].get(st, (None, None))[0] is None]
        without = f"; without {', '.join(unmeasured)}: not measured at this size" if unmeasured else ""
        e2e = cells[px].get("end to end (eval)", (None, None))
        table.append([names[px], f"{px / 1e6:.3g}", top + (f" ({without[2:]})" if without else ""), f"{secs[top][i] / total:.0%}" if total else "",
                      _s(total), _s(e2e[0]) if e2e[0] else "", f"{e2e[1] / 1e6:.0f}" if e2e[1] else ""])
        sec.statements.append(f"At {size_text(names[px])} ({px / 1e6:.3g} MP) {top} takes {secs[top][i] / total:.0%} of the "
                              f"summed time of the stages measured ({_s(secs[top][i])} s of {_s(total)} s){without}.")
        missing = [n for _, n in SINGLE if n not in cells[px]]
        if missing:
            sec.missing.append(f"{names[px]} px: not measured: {', '.join(missing)}")
    sec.table = table
    return sec


def sensitivity_section(rows: list[Row], out: Path) -> Section:
    """Each parameter's effect on time, stage peak and AP of the stages it touches (one at a time), judged
    against the benchmark's noise (:func:`cpbench.report.evidence.judge`)."""
    sec = Section("What each parameter buys or costs")
    effects = [e for e in changes.parameter_effects(rows) if e.time is not None]
    if not effects:
        sec.missing.append("no one-parameter-off measurements with a baseline; run: cpbench sweep params")
        return sec
    table = [["stage", "parameter", "size", "device", "time ratio", "verdict", "stage peak ratio", "AP@0.5 (default)"]]
    for e in effects:
        ap = f"{e.ap[1]:.3f} ({e.ap[0]:.3f})" if e.ap else ""
        table.append([changes.stage_name(e.stage), f"{e.param}={e.value}", e.size, e.device, f"{e.time.ratio:.2f}",
                      e.time.verdict, f"{e.peak.ratio:.2f}" if e.peak else "", ap])  # type: ignore[union-attr]
    sec.table = table
    top = changes.largest_size(effects)
    bars = [(f"{changes.stage_name(e.stage)}: {e.param}={e.value} ({e.size})", e.time.ratio,  # type: ignore[union-attr]
             e.peak.ratio if e.peak else None, f"AP {e.ap[1]:.3f} ({e.ap[0]:.3f})" if e.ap else "") for e in top]
    sec.figure = figures.sensitivity_png(bars, out / "sensitivity.png",
                                         "Parameter effects (one parameter off its default at a time, largest size measured)")
    best: dict[str, changes.ParamEffect] = {}
    quiet = 0
    for e in top:
        t = e.time
        if not (t.changed or (e.peak is not None and e.peak.changed)):  # type: ignore[union-attr]
            quiet += 1
            continue
        if e.param not in best or abs(math.log(max(t.ratio, 1e-9))) > abs(math.log(max(best[e.param].time.ratio, 1e-9))):  # type: ignore[union-attr]
            best[e.param] = e
    for e in sorted(best.values(), key=lambda e: -abs(math.log(max(e.time.ratio, 1e-9)))):  # type: ignore[union-attr]
        sec.statements.append(f"{e.describe()} ({size_text(e.size)}, {e.device}; {e.time.verdict}: {e.time.basis}).")  # type: ignore[union-attr]
    if quiet:
        sec.statements.append(f"{quiet} parameter values change neither time nor stage peak beyond their noise "
                              "(or were measured once: 'one sample' in the table).")
    return sec


def history_section(rows: list[Row], names: dict[str, str], out: Path, device: str = "cpu") -> Section:
    """Each stage's time and stage peak across Cellpose commits (commit-date order) at one size, in the
    asv environment that measured the most commits; only judged changes are called changes."""
    sec = Section("Across Cellpose commits and releases")
    h = changes.history(rows, names, device)
    if h is None:
        sec.missing.append("fewer than two commits measured in one environment; run e.g. "
                           "asv run --quick \"v3.1.0^!\" and another release")
        return sec
    table = [["stage", "measure", *h.labels]]
    lines: dict[str, list[float | None]] = {}
    marks: dict[str, list[int]] = defaultdict(list)
    for (key, measure), vals in h.values.items():
        base = key.split(" (")[0]
        name = changes.stage_name(base) + key[len(base):]
        scale, unit = (1.0, "s") if measure == TIME else (1e-6, "MB")
        table.append([name, f"{'time' if measure == TIME else 'stage peak'}, {unit}",
                      *("" if v is None else _s(v * scale) for v in vals)])
        if measure == TIME:
            lines[name] = vals
    for st in h.steps:
        if st.judgement.changed and st.measure == TIME:
            base = st.stage.split(" (")[0]
            marks[changes.stage_name(base) + st.stage[len(base):]].append(h.labels.index(st.after))
    sec.figure = figures.history_png(h.labels, lines, dict(marks), out / "history.png",
                                     f"Stage time across Cellpose commits at {size_text(h.size)} ({device}, {h.env})")
    sec.table = table
    judged = sorted(h.steps, key=lambda st: (not st.judgement.changed, -abs(math.log(st.judgement.ratio))))
    verdicts = defaultdict(int)
    for st in h.steps:
        verdicts[st.judgement.verdict] += 1
    sec.statements.append(
        f"{len(h.commits)} commits measured in asv environment {h.env} at {size_text(h.size)}; of the "
        f"{len(h.steps)} steps beyond asv's factor ({ASV_FACTOR:g}) from the previous commit measured, "
        + ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items())) + " (a change: asv's statistics on recorded "
        "samples, or beyond the benchmark's measured detection limit).")
    sec.statements += [st.describe() + "." for st in judged if st.judgement.changed]
    shown = [st for st in judged if not st.judgement.changed][:5]
    sec.statements += [st.describe() + "." for st in shown]
    changed = [st for st in judged if st.judgement.changed]
    if changed:
        sec.lead = changed[0].describe() + "."
    return sec


def device_section(rows: list[Row], out: Path) -> Section:
    """CPU against CUDA where both were measured at the same parameters."""
    sec = Section("CPU vs GPU")
    vals: dict[tuple[str, str, str], dict[str, float]] = defaultdict(dict)
    for r in rows:
        if r.measure == TIME and r.value is not None and "device" in r.params and not off_defaults(r):
            vals[(r.stage, r.params.get("size", ""), r.commit)][r.params["device"]] = r.value
    both = [(k, v) for k, v in sorted(vals.items()) if "cpu" in v and "cuda" in v]
    if not both:
        sec.missing.append("no stage measured on both CPU and CUDA: run the suite on a GPU machine "
                           "(asv run --launch-method spawn)")
        return sec
    names = dict(STAGE_ORDER)
    rows_ = [(f"{names.get(s, s)} {size}", v["cpu"], v["cuda"]) for (s, size, _), v in both]
    sec.figure = figures.device_png(rows_, out / "cpu_vs_gpu.png", "Wall time on CPU and CUDA")
    sec.table = [["stage size", "cpu s", "cuda s", "speed-up"]] + [
        [n, _s(c), _s(g), f"{c / g:.1f}x"] for n, c, g in rows_]
    top = max(rows_, key=lambda r: r[1] / r[2])
    sec.statements.append(f"The largest GPU speed-up: {top[0]}, {top[1] / top[2]:.1f}x ({_s(top[1])} s -> {_s(top[2])} s).")
    return sec


def fit_section(fits: dict[str, dict[str, CostFit | None]], rows: list[Row], ram: float | None, label: str,
                out: Path) -> Section:
    """Projected whole-image eval time and process peak for the challenge images, against the RAM: only
    from scaling laws (:func:`~cpbench.report.evidence.law_supported`), labelled beyond 4x the largest size
    measured, and no number beyond 20x."""
    sec = Section("Will it fit? Whole-image Cellpose on the challenge images")
    t = (fits.get(END_TO_END) or {}).get("time")
    mem = fit_cost(series(rows, END_TO_END, PROCESS_PEAK), "bytes")
    if t is None or mem is None:
        sec.missing.append("end-to-end eval measured at fewer than two sizes (time and process peak); "
                           "run: cpbench sweep scaling")
        return sec
    if not (law_supported(t) and law_supported(mem)):
        sec.statements.append(f"No whole-slide projection from these results: end-to-end eval {law_gap(t) or law_gap(mem)}. "
                              f"Largest size measured: {t.max_pixels / 1e6:.3g} MP, "
                              f"{max(v for _, v in series(rows, END_TO_END, TIME)):.3g} s.")
        sec.missing.append(f"whole-slide projections: {SCALING_SWEEP}")
        return sec
    table = [["image", "nuclear channel, MP", "extrapolation", "time, h (range)", "process peak, GB (range)",
              "fits in RAM"]]
    hours, gb, shown = [], [], []
    for img in IMAGES.values():
        px = img.shape[1] * img.shape[2]
        pt, pm = project(t, px), project(mem, px)
        if not projection_number(pt.extrapolation):
            table.append([img.name, f"{px / 1e6:.1f}", f"{pt.extrapolation:.1f}x", "not projected", "not projected", ""])
            sec.statements.append(f"{img.name} ({px / 1e6:.1f} MP): {pt.extrapolation:.2g}x the largest image measured, "
                                  f"beyond the {NUMBER_BEYOND:g}x within which a projection is given.")
            continue
        fits_ram = "" if ram is None else ("yes" if pm.high < ram else "no" if pm.low > ram else "uncertain")
        table.append([img.name, f"{px / 1e6:.1f}", f"{pt.extrapolation:.1f}x",
                      f"{pt.value / 3600:.2g} ({pt.low / 3600:.2g}-{pt.high / 3600:.2g})",
                      f"{pm.value / 1e9:.3g} ({pm.low / 1e9:.3g}-{pm.high / 1e9:.3g})", fits_ram])
        hours.append((pt.value / 3600, pt.low / 3600, pt.high / 3600))
        gb.append((pm.value / 1e9, pm.low / 1e9, pm.high / 1e9))
        shown.append(img.name)
        note = extrapolation_note(pt.extrapolation)
        sec.statements.append(
            f"{img.name} ({px / 1e6:.1f} MP, {pt.extrapolation:.2g}x the largest image measured): whole-image eval "
            f"~{pt.value / 3600:.2g} h ({pt.low / 3600:.2g}-{pt.high / 3600:.2g}) and a process peak of "
            f"~{pm.value / 1e9:.3g} GB ({pm.low / 1e9:.3g}-{pm.high / 1e9:.3g})"
            + ("" if ram is None else f"; RAM {ram / 1e9:.1f} GB: {fits_ram}") + (f" ({note})" if note else "") + ".")
    if ram is not None:
        limit = pixels_at(mem, ram)
        if limit and projection_number(limit / mem.max_pixels):
            sec.statements.insert(0, f"Whole-image eval first exceeds this machine's {ram / 1e9:.1f} GB of RAM at "
                                     f"~{limit / 1e6:.0f} MP (a {math.sqrt(limit):.0f} px square), by the fitted "
                                     f"{mem.per_pixel:.0f} bytes per pixel + {mem.fixed / 1e6:.0f} MB; beyond it, "
                                     "segment in blocks.")
        elif limit:
            sec.statements.insert(0, f"Whole-image eval stays within this machine's {ram / 1e9:.1f} GB of RAM up to the "
                                     f"largest size measured; where it would exceed it lies beyond {NUMBER_BEYOND:g}x "
                                     "that size and is not stated.")
    sec.statements.append(f"Models fitted on {t.n} sizes for time, {t.min_pixels / 1e6:.3g}-{t.max_pixels / 1e6:.3g} MP "
                          f"(fit error {_err(t.linear_error)}), and {mem.n} for the process peak, "
                          f"{mem.min_pixels / 1e6:.3g}-{mem.max_pixels / 1e6:.3g} MP (fit error {_err(mem.linear_error)}); "
                          "ranges span the linear and power-law models widened by their fit errors.")
    gpu = fit_cost(series(rows, END_TO_END, GPU_PEAK, "cuda"), "bytes")
    if gpu is None:
        sec.missing.append("GPU memory of end-to-end eval not measured at two sizes (needs a CUDA machine)")
    sec.table = table
    if shown:
        sec.figure = figures.fit_png(shown, hours, gb, None if ram is None else ram / 1e9, t.max_pixels / 1e6,
                                     out / "will_it_fit.png", f"Projected whole-image Cellpose, {label}")
    return sec
