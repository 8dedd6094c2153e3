"""``reports/optimizations.md``: per patch what changed and why, the gain per stage (asv continuous of the
release against its branch, judged as the guidelines judge: asv's statistics on recorded samples), the
lines that changed (two deep-dives and their comparison), the effect at whole-slide scale (cpbench segment
with and without the patch, labels compared pixel for pixel), the identity tests, and the patch itself.

Everything is read from :data:`OPT_DIR` (committed; ``make optimizations`` fills it from this machine's
runs): ``results/`` (asv results and ``commits.json``, the name of each commit: ``v<release>`` or the
branch), ``profiles/<patch>/{release,patched}/`` (deep-dive folders), ``slides/<patch>.*.json``
(:func:`cpbench.optimize.slide.measure` records). What is missing is said, with the command that makes it.

Units: seconds, bytes (shown as MB), pixels.
"""

from __future__ import annotations

import ast
import json
import statistics
from pathlib import Path
from typing import Any

from cpbench.optimize.branches import Patch, patches
from cpbench.optimize.config import CONFIG
from cpbench.profile.compare import compare, load_run
from cpbench.report.changes import stage_name
from cpbench.report.document import Section
from cpbench.report.evidence import judge
from cpbench.report.recorded import blocks_of
from cpbench.report.slide import slide_pixels
from cpbench.report.results import Row, deduplicate, load_rows
from cpbench.report.select import AP, PROCESS_PEAK, STAGE_PEAK, TIME, off_defaults, saved_commit_names

OPT_DIR = Path("reports/optimizations")
#: which benchmarks measure each patch's stages (asv --bench), by patch name
TARGETS = {"flow-qc": r"^bench_masks\.(FlowQC|MaskRecovery)\.", "follow-flows": r"^bench_masks\.(FollowFlows|MaskRecovery)\.",
           "network-layout": r"^bench_(network\.Network|eval\.EndToEnd)\.(time_stage|track_stage_peak_bytes|track_ap50)"
                             r"\('synthetic', '[0-9]+', 'cpu', 'reference'"}
MEASURES = {TIME: "time", STAGE_PEAK: "stage peak", PROCESS_PEAK: "process peak", AP: "AP@0.5"}
ROOT = Path(__file__).resolve().parents[3]


def _fmt(value: float, measure: str) -> str:
    if measure == AP:
        return f"{value:.3f}"
    if measure in (STAGE_PEAK, PROCESS_PEAK):
        return f"{value / 1e6:.0f} MB"
    return f"{value:.3g} s"


def message(patch: Patch) -> tuple[str, str]:
    """(body of the patch's message, its diffstat): what changed and why, as git format-patch wrote it."""
    text = patch.path.read_text()
    head, _, rest = text.partition("\n---\n")
    body = head.split("\n\n", 1)[1] if "\n\n" in head else ""
    stat = rest.split("\ndiff --git ", 1)[0].strip()
    return body.strip(), stat


def commits(names: dict[str, str], patch: Patch) -> tuple[str | None, str | None]:
    """(release commit, branch commit) among the results' commit names."""
    by_name = {n: c for c, n in names.items()}
    return by_name.get(f"v{patch.release}"), by_name.get(patch.branch)


def gains(rows: list[Row], base: str, head: str) -> list[dict[str, Any]]:
    """One entry per benchmark and parameters measured on both commits: values, ratio, verdict."""
    at: dict[tuple, dict[str, Row]] = {}
    for r in rows:
        if r.commit in (base, head) and r.value is not None and r.measure in MEASURES:
            at.setdefault((r.benchmark, tuple(sorted(r.params.items()))), {})[r.commit] = r
    out = []
    for (bench, _), pair in sorted(at.items(), key=lambda kv: (kv[0][0].rsplit(".", 1)[0], kv[0][1], kv[0][0])):
        if base not in pair or head not in pair:
            continue
        b, a = pair[base], pair[head]
        j = judge(b, a)
        faster = a.value < b.value  # type: ignore[operator]
        verdict = ("no change" if not j.changed else ("better" if faster else "worse") if b.measure != AP
                   else ("higher" if not faster else "lower"))
        out.append({"stage": stage_name(b.stage), "measure": b.measure, "size": b.params.get("size", ""),
                    "other": ", ".join(f"{k}={b.params[k]}" for k in off_defaults(b, ("size", "device", "flows"))) or "defaults",
                    "flows": b.params.get("flows", ""), "before": b.value, "after": a.value, "ratio": j.ratio,
                    "verdict": verdict, "basis": j.basis})
    return out


def _machines(results: Path, rows: list[Row], commit: str) -> str:
    """``machine vm (Intel(R) Xeon(R) Processor, 2 CPUs, 25.3 GB RAM)`` for the machines that measured ``commit``."""
    from cpbench.report.build import describe_machine, machine_info

    return ", ".join(describe_machine(machine_info([results], m), m)
                     for m in sorted({r.machine for r in rows if r.commit == commit}))


def _identity(patch: Patch) -> str:
    test = ROOT / "tests" / "optimize" / f"test_{patch.name.replace('-', '_')}.py"
    if not test.is_file():
        return f"No identity test found ({test.relative_to(ROOT)})."
    doc = ast.get_docstring(ast.parse(test.read_text())) or ""
    where = "make test-cellpose4" if patch.release.startswith("4") else "make test"
    return f"`{test.relative_to(ROOT)}` (in `{where}`, so in CI): " + " ".join(doc.split())


def _profiles(folder: Path, patch: Patch) -> list[str]:
    a_dir, b_dir = folder / "release", folder / "patched"
    if not (a_dir / "summary.json").is_file() or not (b_dir / "summary.json").is_file():
        return [f"Not profiled: `tools/optimize_measure.sh {patch.name}` runs `cpbench profile STAGE --param "
                f"size=1024 --mode both` under the release and with the patched copy first on PYTHONPATH, into {folder}."]
    a, b = load_run(a_dir), load_run(b_dir)
    sa, sb = (statistics.median(x["run"]["plain"]["call_s"]) for x in (a, b))
    calls = [x["run"]["profiled"]["repeats"] for x in (a, b)]
    mb = [sum(ln["malloc_mb"] for ln in x["lines"]) / n for x, n in zip((a, b), calls)]
    lines = [f"`{a['run']['target']}`, Scalene {a['run']['scalene']} ({a['run']['mode']} mode), release then "
             f"patched: stage time (plain runs, median per call) **{sa:.3g} s -> {sb:.3g} s (x{sa / sb:.2f} faster)**"]
    if a["memory"] and b["memory"]:
        lines[0] += (f"; allocated per call (Scalene's samples) **{mb[0]:.0f} MB -> {mb[1]:.0f} MB "
                     f"(x{mb[1] / mb[0]:.2f})**" if mb[0] else "")
    lines += ["", "| line (release) | line (patched) | match | source | release s | patched s | release MB | patched MB |",
              "|---|---|---|---|---:|---:|---:|---:|"]
    for r in compare(a, b, top=6):
        text = r["text"].replace("|", "\\|")
        lines.append(f"| {r['where_a'] or 'absent'} | {r['where_b'] or 'absent'} | {r['how']} | `{text}` | "
                     f"{r['s_a']:.3g} | {r['s_b']:.3g} | {r['mb_a']:.0f} | {r['mb_b']:.0f} |")
    lines += ["", f"The deep-dives: `{a_dir}`, `{b_dir}` (summary.md in each; compare.md beside them)."]
    return lines


def _frame(rec: dict[str, Any]) -> str:
    """``synthetic full`` (the synthetic slide's whole frame) as ``synthetic exemplar-001``."""
    return "synthetic exemplar-001" if rec["slide"] == "synthetic full" else rec["slide"]


def _slides(records: list[dict[str, Any]], patch: Patch) -> list[str]:
    if not records:
        return [f"Not measured at whole-slide scale: `tools/optimize_measure.sh {patch.name}` runs `cpbench optimize "
                f"--whole-slide SLIDE --patch {patch.name}`."]
    frames = [r for r in records if r.get("kind") == "mask_recovery"]
    records = [r for r in records if r.get("kind") != "mask_recovery"]
    out: list[str] = []
    for rec in frames:
        rel, pat = rec["runs"]["release"], rec["runs"]["patched"]
        same = "identical" if rec["labels_identical"] else f"{rec['pixels_differing']} pixels differ"
        out += [f"Mask recovery (follow_flows, get_masks, flow QC, fill holes at Cellpose's defaults) on the reference "
                f"model's flows for the whole {_frame(rec)} frame ({rec['shape'][0]} x {rec['shape'][1]} px, "
                f"{rec['shape'][0] * rec['shape'][1] / 1e6:.1f} MP), each in a process of its own, median of "
                f"{len(rel['seconds'])} calls after a warm-up: **{rel['median_s']:.3g} s -> {pat['median_s']:.3g} s "
                f"(x{rel['median_s'] / pat['median_s']:.2f} faster)**, {rel['labels']} nuclei, labels {same}.", ""]
        mp = rec["shape"][0] * rec["shape"][1] / 1e6
        per_mp = (rel["median_s"] - pat["median_s"]) / mp
        proj = ", ".join(f"{name} ({slide_pixels(name) / 1e6:.0f} MP): {per_mp * slide_pixels(name) / 1e6 / 60:.0f} min"
                         for name in ("LUNG-1-LN", "WD-76845-097"))
        out += [f"Saved per megapixel of nuclear channel: {per_mp:.2f} s; at this density that would come to {proj} "
                "of mask recovery on one such process (a projection by pixels, not a run).", ""]
    if not records:
        return out
    out += ["| slide | MP | block | blocks | workers | release wall | patched wall | saved | per block (median) | "
            "labels |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    notes = []
    for rec in records:
        rel, pat = rec["runs"]["release"], rec["runs"]["patched"]
        wr, wp = rel["command_wall_s"], pat["command_wall_s"]
        br = statistics.median(b["seconds"] for b in rel["blocks"])
        bp = statistics.median(b["seconds"] for b in pat["blocks"])
        mp = rec["shape"][0] * rec["shape"][1] / 1e6
        same = "identical" if rec["labels_identical"] else f"{rec['pixels_differing']} pixels differ"
        out.append(f"| {rec['slide']} | {mp:.1f} | {rel['block']} | {rel['outcome']['blocks']} | "
                   f"{rel['outcome']['workers']} | {wr:.0f} s | {wp:.0f} s | {wr - wp:.0f} s ({1 - wp / wr:.0%}) | "
                   f"{br:.1f} s -> {bp:.1f} s | {same} |")
        per_mp = (sum(b["seconds"] for b in rel["blocks"]) - sum(b["seconds"] for b in pat["blocks"])) / mp
        proj = ", ".join(f"{name} ({slide_pixels(name) / 1e6:.0f} MP, {blocks_of(name, rel['block'])} blocks): "
                         f"{per_mp * slide_pixels(name) / 1e6 / 60:.0f} worker-min" for name in ("LUNG-1-LN", "WD-76845-097"))
        notes.append(f"Block time saved per megapixel: {per_mp:.2f} s (the blocks' seconds summed); at this slide's "
                     f"density and block size that would come to {proj} (a projection by pixels, not a run).")
    return out + [""] + notes


def section(patch: Patch, rows: list[Row], names: dict[str, str], folder: Path,
            table: list[dict[str, Any]]) -> list[str]:
    """The Markdown section of one patch; ``table``: its :func:`gains`."""
    body, stat = message(patch)
    base, head = commits(names, patch)
    md = [f"## {patch.name}: {patch.subject}", "",
          f"Targets Cellpose {patch.release} (tag `v{patch.release}`{f', {base[:7]}' if base else ''}); branch "
          f"`{patch.branch}`{f' ({head[:7]})' if head else ''}, built by `cpbench optimize` (`git am` on the tag: "
          f"the same commit on every machine). File: `{patch.path.relative_to(ROOT)}`.", "",
          "### What changed and why", "", body, "", "```", stat, "```", "", "### Gain per stage (asv continuous)", ""]
    if base and head:
        md += [f"`asv --config {CONFIG} continuous v{patch.release} {patch.branch} --bench "
               f"'{TARGETS.get(patch.name, '.')}'` ({_machines(folder / 'results', rows, head)}). "
               "Verdicts as the guidelines give them: asv's statistics on the recorded samples (time), asv's factor "
               "beyond the probe's resolution (memory).", "",
               "| stage | measure | size | flows | parameters | release | patched | patched/release | verdict |",
               "|---|---|---:|---|---|---:|---:|---:|---|"]
        md += [f"| {g['stage']} | {MEASURES[g['measure']]} | {g['size']} | {g['flows']} | {g['other']} | "
               f"{_fmt(g['before'], g['measure'])} | {_fmt(g['after'], g['measure'])} | {g['ratio']:.2f} | {g['verdict']} |"
               for g in table]
        worse = [g for g in table if g["verdict"] in ("worse", "lower")]
        better = [g for g in table if g["verdict"] == "better"]
        named = "; ".join(f"{g['stage']} {MEASURES[g['measure']]} at {g['size']}" for g in worse)
        md += ["", f"{len(better)} of {len(table)} measurements better, "
               + ("none worse." if not worse else f"{len(worse)} worse: {named}.")]
    else:
        md += [f"Not measured: no asv results of both `v{patch.release}` and `{patch.branch}` in the results "
               f"(`cpbench optimize --asv-config {CONFIG}`, then `asv --config {CONFIG} continuous v{patch.release} "
               f"{patch.branch}`, as `tools/optimize_measure.sh {patch.name}` does; `make optimizations` copies them here)."]
    md += ["", "### The lines that changed (Scalene deep-dives)", "", *_profiles(folder / "profiles" / patch.name, patch)]
    records = [json.loads(p.read_text()) for p in sorted((folder / "slides").glob(f"{patch.name}.*.json"))]
    md += ["", "### At whole-slide scale (cpbench segment, with and without the patch)", "", *_slides(records, patch)]
    md += ["", "### Identity", "", _identity(patch), "", "### The patch (`git am` / `git apply` it as it is)", "",
           "```diff", patch.path.read_text().rstrip(), "```", ""]
    return md


def write(folder: Path = OPT_DIR, out: Path = Path("reports/optimizations.md")) -> Path:
    """Write the document ``out`` from ``folder``; returns ``out``."""
    from cpbench.io.files import write_text

    results = folder / "results"
    rows = deduplicate(load_rows(results)) if (results / "benchmarks.json").is_file() else []
    names = saved_commit_names(results) if results.is_dir() else {}
    found = patches()
    md = ["# Optimizations of Cellpose, proven with cpbench", "",
          f"Generated by `make optimizations` from `{folder}`. Each patch is one `git format-patch` file: it "
          "applies to its release from the file alone and is ready to send upstream. Each is measured against "
          "its release with stock asv, profiled line by line, run on a whole slide, and checked for the "
          "release's own output by a test in CI.", "",
          "| patch | release | what | asv: better / measured | worse |", "|---|---|---|---:|---|"]
    tables = {}
    for p in found:
        base, head = commits(names, p)
        g = tables[p.name] = gains(rows, base, head) if base and head else []
        worse = sum(x["verdict"] in ("worse", "lower") for x in g)
        md.append(f"| {p.name} | {p.release} | {p.subject} | "
                  f"{sum(x['verdict'] == 'better' for x in g)} / {len(g)} | {worse if g else 'not measured'} |")
    md.append("")
    for p in found:
        md += section(p, rows, names, folder, tables[p.name])
    return write_text(out, "\n".join(md) + "\n")


def _headline(g: list[dict[str, Any]]) -> str:
    """The time changes of each stage at its largest size measured (network flows where both were measured)."""
    best: dict[str, dict[str, Any]] = {}
    for x in g:
        if x["measure"] != TIME or x["flows"] == "ground_truth":
            continue
        if x["stage"] not in best or int(x["size"] or 0) > int(best[x["stage"]]["size"] or 0):
            best[x["stage"]] = x
    return "; ".join(f"{x['stage']} x{x['ratio']:.2f} at {x['size']} px ({x['verdict']})" for x in best.values())


def guidelines_section(folder: Path = OPT_DIR) -> Section:
    """The guidelines document's account of the patches measured in ``folder`` (one statement each, with
    the whole-slide run when there is one); what is missing is named."""
    results = folder / "results"
    sec = Section("Optimizations of Cellpose proven with this suite")
    if not (results / "benchmarks.json").is_file():
        sec.missing.append(f"no patch measured in {folder}: tools/optimize_measure.sh, then make optimizations")
        return sec
    rows = deduplicate(load_rows(results))
    names = saved_commit_names(results)
    for p in patches():
        base, head = commits(names, p)
        g = gains(rows, base, head) if base and head else []
        if not g:
            sec.missing.append(f"{p.name} ({p.release}): not measured (tools/optimize_measure.sh {p.name})")
            continue
        worse = [x for x in g if x["verdict"] in ("worse", "lower")]
        text = (f"`{p.name}` on Cellpose {p.release} ({p.subject}): {_headline(g)}; "
                f"{'nothing worse' if not worse else f'{len(worse)} measurements worse'} of {len(g)} "
                f"(asv continuous, {_machines(results, rows, head)})")
        for path in sorted((folder / "slides").glob(f"{p.name}.*.json")):
            rec = json.loads(path.read_text())
            same = "labels identical" if rec["labels_identical"] else f"{rec['pixels_differing']} label pixels differ"
            if rec.get("kind") == "mask_recovery":
                wr, wp = (rec["runs"][k]["median_s"] for k in ("release", "patched"))
                text += f"; mask recovery of the whole {_frame(rec)} frame: {wr:.3g} s -> {wp:.3g} s, {same}"
                continue
            wr, wp = (rec["runs"][k]["command_wall_s"] for k in ("release", "patched"))
            text += f"; cpbench segment of {rec['slide']}: {wr:.0f} s -> {wp:.0f} s, {same}"
        sec.statements.append(text + ". Details, the lines changed and the patch: optimizations.md.")
    return sec
