"""Assemble ``guidelines.md`` / ``guidelines.html`` from asv result rows (see :mod:`cpbench.report.guidelines`)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from cpbench.report import advice
from cpbench.report import guidelines as g
from cpbench.report.answers import answers_section
from cpbench.report.density import density_section
from cpbench.report.document import Section, write_document
from cpbench.report.findings import MIN_EFFECT, rank, render
from cpbench.report.howto import howto_section
from cpbench.report.recorded import Profile, SegmentRun, profile_section, segment_section
from cpbench.report.results import Row
from cpbench.report.select import (
    commit_label,
    commit_names,
    devices,
    saved_commit_names,
    scaling_snapshot,
)
from cpbench.report.slide import SlideModel
from cpbench.report.studies import channel_section, fast_section


def machine_info(results_dirs: list[Path], machine: str) -> dict[str, str]:
    """asv's ``machine.json`` of ``machine`` (cpu, num_cpu, ram in bytes, os), from the first directory holding it."""
    for d in results_dirs:
        path = Path(d) / machine / "machine.json"
        if path.is_file():
            return {k: str(v) for k, v in json.loads(path.read_text()).items()}
    return {}


def _ram(info: dict[str, str]) -> float | None:
    text = info.get("ram", "")
    return float(text) if text.isdigit() else None


def describe_machine(info: dict[str, str], machine: str) -> str:
    """``machine vm (AMD EPYC, 2 CPUs, 25.3 GB RAM)`` from :func:`machine_info`."""
    ram = _ram(info)
    return (f"machine {machine} ({info.get('cpu', '?')}, {info.get('num_cpu', '?')} CPUs"
            + (f", {ram / 1e9:.1f} GB RAM" if ram else "") + ")")


def write_guidelines(rows: list[Row], results_dirs: list[Path], out: Path,
                     history_repo: Path = Path("data/cellpose"),
                     recorded: tuple[list[SegmentRun], list[Profile]] = ([], []),
                     optimizations: Path | None = None) -> tuple[Path, Path]:
    """Write the document and its figures into ``out``; returns (markdown, html) paths. ``recorded``: seam
    reports of cpbench segment runs and cpbench profile deep-dives to draw beside the asv results;
    ``optimizations``: the folder of our measured Cellpose patches (cpbench.optimize.report)."""
    out.mkdir(parents=True, exist_ok=True)
    names = {k: v for d in results_dirs for k, v in saved_commit_names(d).items()} | commit_names(history_repo)
    measured = sum(r.value is not None for r in rows)
    preamble = [
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by cpbench report from "
        f"{', '.join(str(d) for d in results_dirs)}: {measured} measured values, {len(rows) - measured} not "
        "measured (combinations a sweep did not select, skipped where a release, device, model or memory does not "
        "allow them, or failed).",
        "Every statement below is computed from these results; sizes are in pixels per side (full = the "
        "3138 x 2509 exemplar-001 frame), MP = megapixels, MB = 1e6 bytes, GB = 1e9 bytes.",
    ]
    commits = Counter(commit_label(r.commit, names) for r in rows if r.value is not None)
    preamble.append("Results per Cellpose commit: " + ", ".join(f"{c}: {n}" for c, n in sorted(commits.items())) + ".")
    sections: list[Section] = []
    snap = scaling_snapshot(rows)
    if snap is None:
        sections.append(Section("Scaling with image size", missing=["no stage measured at several sizes"]))
        return write_document(out, "Cellpose at whole-slide scale: guidelines", preamble, sections)
    info = machine_info(results_dirs, snap.machine)
    label = f"{describe_machine(info, snap.machine)}, Cellpose {commit_label(snap.commit, names)}"
    preamble.append(f"Scaling, breakdown and projections: {label}, asv environment {snap.env}.")
    snap_rows = snap.rows(rows)
    fits = {}
    for device in devices(snap_rows):
        sec, by = g.scaling_section(snap_rows, snap, label, out, device)
        sections.append(sec)
        if device == "cpu":
            fits = by
        sections.append(g.breakdown_section(snap_rows, label, out, device))
    machine_rows = [r for r in rows if r.machine == snap.machine]
    sections.append(g.sensitivity_section(machine_rows, out))
    sections.append(g.history_section(machine_rows, names, out))
    sections.append(g.device_section(machine_rows, out))
    sections.append(g.fit_section(fits, snap_rows, _ram(info), label, out))
    ctx = advice.context(label, _ram(info), snap_rows)
    opening = [answers_section(snap_rows, machine_rows, ctx, device) for device in devices(snap_rows)]
    found = [f for device in devices(snap_rows) for f in advice.findings(snap_rows, machine_rows, names, ctx, device)]
    major, minor = rank(found)
    ranked = Section("Guidelines, ranked by their effect on a whole-slide run", items=[render(f) for f in major])
    if not major:
        ranked.missing.append("nothing measured changes a run by 1 % or more; run: cpbench sweep scaling")
    howto = [howto_section(SlideModel(snap_rows, device), _ram(info), label) for device in devices(snap_rows)]
    optimized = []
    if optimizations is not None:
        from cpbench.optimize.report import guidelines_section

        optimized.append(guidelines_section(optimizations))
    below = Section(f"Findings below {MIN_EFFECT:.0%} of a run (not guidelines)",
                    statements=[f.claim for f in minor])
    studies = [sec for device in devices(snap_rows) for sec in (fast_section(machine_rows, out, device),
                                                                  channel_section(machine_rows, device))]
    runs = [segment_section(recorded[0], snap_rows, device) for device in devices(snap_rows)]
    return write_document(out, "Cellpose at whole-slide scale: guidelines", preamble,
                          [*opening, ranked, *howto, *optimized, *sections, density_section(machine_rows), *studies, *runs,
                           profile_section(recorded[1]), below])
