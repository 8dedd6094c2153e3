"""``summary.md`` and ``summary.json`` of a deep-dive folder (see :mod:`cpbench.profile.run`)."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cpbench.profile.summary import Line, cpu_section, load_lines, memory_section

#: Scalene samples CPU time every 10 ms: a profile under this many seconds has too few samples to rank lines
MIN_PROFILED_S = 1.0


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def line_dict(ln: Line) -> dict[str, Any]:
    """A line as summary.json stores it."""
    return {**asdict(ln), "where": ln.where, "cpu": ln.cpu}


def run_facts(run: dict[str, Any], profile: dict[str, Any]) -> list[tuple[str, str]]:
    """(what, value) rows of the run table: what ran, where, how long with and without Scalene."""
    plain, prof = run["plain"], run["profiled"]
    v = plain["versions"]
    t_plain, t_prof = _median(plain["call_s"]), _median(prof["call_s"])
    elapsed = float(profile.get("elapsed_time_sec") or 0.0)
    rows = [
        ("benchmark", f"`{run['target']}`"),
        ("parameters", ", ".join(f"{k}={val}" for k, val in run["params"].items())),
        ("Cellpose", f"{v['cellpose']} ({v['cellpose_path']})"),
        ("torch", f"{v['torch']} (CUDA build: {v['torch_cuda_build']}), {v['torch_threads']} intra-op threads"),
        ("threads", f"{v['cpus']} CPUs available; OMP {v['threads_env'].get('OMP_NUM_THREADS')}, "
                    f"numba {v['threads_env'].get('NUMBA_NUM_THREADS')}; Python {v['python']}"),
        ("device", plain.get("device", "cpu")),
        ("calls profiled", f"{prof['repeats']} (after the benchmark's setup and one unprofiled warm-up call; "
                           "inputs prepared afresh before each call, outside the profile), until "
                           f"{run['min_seconds']:g} s or {run['max_repeats']} calls"),
        ("stage time, plain", f"{t_plain:.3g} s per call (median of {plain['repeats']})"),
        ("stage time under Scalene", f"{t_prof:.3g} s per call: **overhead {t_prof / t_plain:.2f}x**"),
        ("profiled time (Scalene)", f"{elapsed:.3g} s"),
        ("process peak, plain run", f"{plain['max_rss_bytes'] / 1e6:.0f} MB (whole process, setup included)"),
        ("Scalene", f"{run['scalene']}, mode {run['mode']}, `--profile-all --profile-only {run['profile_only']} "
                    f"{' '.join(run['scalene_options'])}`"),
    ]
    if profile.get("memory"):
        rows.append(("max footprint (Scalene)", f"{float(profile.get('max_footprint_mb') or 0):.0f} MB"))
    if "stage_peak_bytes" in plain:
        rows.append(("stage peak, plain run", f"{plain['stage_peak_bytes'] / 1e6:.0f} MB (the suite's probe, as "
                                              "track_stage_peak_bytes; one more call)"))
    return rows


def sampling_note(run: dict[str, Any], profile: dict[str, Any]) -> str | None:
    """A warning when the profiled part was too short to sample well, else None."""
    elapsed = float(profile.get("elapsed_time_sec") or 0.0)
    if elapsed >= MIN_PROFILED_S:
        return None
    n = run["profiled"]["repeats"]
    why = "--max-repeats" if n >= run.get("max_repeats", n) else "--min-seconds"
    return (f"**Too short to sample well:** {elapsed:.2f} s profiled (~{elapsed / 0.01:.0f} CPU samples) in "
            f"{n} calls (stopped by {why}); the shares below are coarse. Use a larger size or raise "
            "--max-repeats / --min-seconds.")


def threads_note(run: dict[str, Any], lines: list[Line]) -> str:
    """Where time in threads went, in plain words."""
    v = run["plain"]["versions"]
    py = run["plain"].get("python_threads", [])
    busy = max((ln.cores for ln in lines), default=0.0)
    native = (f"Native worker threads (torch: {v['torch_threads']}, numba: {v['threads_env'].get('NUMBA_NUM_THREADS')}, "
              "OpenCV) are not Python threads: their CPU time is counted at the Python line that started the "
              f"parallel call (its native share; 'cores' is the mean number of cores busy there, at most {busy:.2f} here).")
    if py:
        return (native + f" Python threads alive after the calls: {', '.join(py)}; Scalene samples every Python "
                "thread at its own line, so their time appears at the lines they run when those lie in the profiled "
                "files, and in the unattributed rest otherwise.")
    return native + " The stage started no Python threads that outlived it (none alive after the calls)."


def write_summary(folder: Path, run: dict[str, Any], profile: dict[str, Any]) -> Path:
    """Write ``summary.md`` and ``summary.json`` into ``folder``; returns the markdown's path."""
    cpus = int(run["plain"]["versions"].get("cpus") or 1)
    lines = load_lines(profile, cpus)
    md = [f"# Deep-dive: `{run['target']}`", "", "## The run", "", "| | |", "|---|---|"]
    md += [f"| {k} | {v} |" for k, v in run_facts(run, profile)]
    note = sampling_note(run, profile)
    if note:
        md += ["", note]
    md += ["", "## Threads", "", threads_note(run, lines), "", "## Where the time goes (CPU)", ""]
    md += cpu_section(lines)
    if run["mode"] != "cpu":
        md += ["", "## Where the memory goes", ""] + memory_section(lines)
    md += ["", "## Files", "", "- `profile.json`: Scalene's profile; `profile.html`: the same, self-contained "
           "(opens with no network); `run.json`: both runs' records; `driver.log`: the children's output."]
    (folder / "summary.md").write_text("\n".join(md) + "\n")
    cpu_total = sum(ln.cpu for ln in lines)
    data = {"run": run, "elapsed_s": profile.get("elapsed_time_sec"), "cpu_total": cpu_total,
            "max_footprint_mb": profile.get("max_footprint_mb"), "memory": bool(profile.get("memory")),
            "lines": [line_dict(ln) for ln in lines]}
    (folder / "summary.json").write_text(json.dumps(data, indent=1))
    return folder / "summary.md"
