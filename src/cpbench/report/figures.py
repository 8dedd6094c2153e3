"""The guideline figures (PNG, matplotlib Agg): scaling with fitted models, per-size breakdown,
parameter sensitivity, history across Cellpose commits, CPU vs GPU, and "will it fit".

Every figure has labelled axes with units; each function writes ``out`` atomically and returns it.
Units on the axes: seconds, megabytes (1e6 bytes), megapixels (1e6 pixels), ratios.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cpbench.io.files import atomic_path
from cpbench.report.costmodel import CostFit

#: one colour per stage label, stable across figures
_CMAP = "tab20"


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, out: Path) -> Path:
    plt = _plt()
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return out


def _colour(i: int) -> Any:
    return _plt().get_cmap(_CMAP)(i % 20)


def scaling_png(series: dict[str, dict[str, list[tuple[int, float]]]], fits: dict[str, dict[str, CostFit | None]],
                out: Path, title: str) -> Path:
    """Log-log time (s) and stage peak (MB) against megapixels, points per stage and its fitted linear
    model (dashed). ``series[label][measure]`` = (pixels, value); ``fits`` likewise."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(14, 6))
    for ax, measure, scale, ylab in ((axes[0], "time", 1.0, "wall time per call, s"),
                                     (axes[1], "memory", 1e-6, "stage peak memory, MB")):
        for i, (label, by) in enumerate(series.items()):
            pts = by.get(measure) or []
            if not pts:
                continue
            mp = np.array([p for p, _ in pts]) / 1e6
            ax.plot(mp, [v * scale for _, v in pts], "o", color=_colour(i), label=label)
            fit = fits.get(label, {}).get(measure)
            if fit is not None:
                grid = np.geomspace(mp.min(), mp.max(), 30)
                ax.plot(grid, [max(fit.linear(g * 1e6), 1e-12) * scale for g in grid], "--", color=_colour(i), lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("image size, megapixels")
        ax.set_ylabel(ylab)
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    axes[1].legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                   title="points: measured; dashed: fixed + per-pixel fit", title_fontsize=8)
    fig.suptitle(title)
    return _save(fig, out)


def breakdown_png(sizes: Sequence[str], stages: Sequence[str], seconds: dict[str, list[float]],
                  peaks_mb: dict[str, list[float]], process_mb: list[float | None], out: Path, title: str) -> Path:
    """100 %-stacked bars per size: each stage's share of the summed stage time (left) and of the summed
    stage peaks (right; peaks do not add: the sum is an upper bound of what runs one after the other),
    the totals written above the bars (s, MB) and the end-to-end process peak beside them.
    ``seconds[stage][i]`` is at ``sizes[i]`` (0 where not measured)."""
    plt = _plt()
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(14, 6))
    x = np.arange(len(sizes))
    for ax, data, unit in ((ax_t, seconds, "s"), (ax_m, peaks_mb, "MB")):
        total = np.sum([np.array(data.get(st, [0.0] * len(sizes)), dtype=float) for st in stages], axis=0)
        bottom = np.zeros(len(sizes))
        for i, st in enumerate(stages):
            vals = np.array(data.get(st, [0.0] * len(sizes)), dtype=float)
            share = np.divide(100 * vals, total, out=np.zeros_like(vals), where=total > 0)
            ax.bar(x, share, bottom=bottom, color=_colour(i), label=st, width=0.7)
            bottom += share
        for xi, t in zip(x, total):
            ax.text(xi, 101, f"{t:.3g} {unit}", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(x, sizes)
        ax.set_ylim(0, 115)
        ax.set_xlabel("image size (side, pixels; full = whole frame)")
    for xi, v in zip(x, process_mb):
        if v:
            ax_m.text(xi, 106, f"eval:\n{v:.0f} MB", ha="center", va="bottom", fontsize=7, color="dimgray",
                      linespacing=0.9)
    ax_t.set_ylabel("share of summed stage time, % (total above, s)")
    ax_m.set_ylabel("share of summed stage peaks, % (total above, MB)")
    handles, labels = ax_m.get_legend_handles_labels()
    ax_m.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(title)
    return _save(fig, out)


def sensitivity_png(bars: list[tuple[str, float, float | None, str]], out: Path, title: str) -> Path:
    """Horizontal bars: time ratio and stage-peak ratio against the default, one row per
    "stage: parameter=value"; ``bars`` = (row label, time ratio, memory ratio or None, note such as AP)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(12, max(3.0, 0.38 * len(bars) + 1.5)))
    y = np.arange(len(bars))
    # bars grow from 1 (no effect) to the ratio, left when the change saves, right when it costs
    ax.barh(y - 0.2, [b[1] - 1 for b in bars], left=1, height=0.4, color="tab:blue", label="time / default time")
    ax.barh(y + 0.2, [(b[2] or 1.0) - 1 for b in bars], left=1, height=0.4, color="tab:orange",
            label="stage peak / default peak")
    for yi, b in zip(y, bars):
        if b[3]:
            ax.text(max(b[1], b[2] or 0) * 1.05, yi, b[3], va="center", fontsize=8)
    ax.axvline(1.0, color="k", lw=1)
    ax.set_yticks(y, [b[0] for b in bars], fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("ratio to the default parameters (log; 1 = no effect)")
    ax.set_ylabel("stage: parameter=value (image size, px)")
    ax.invert_yaxis()
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    fig.suptitle(title)
    return _save(fig, out)


def history_png(labels: Sequence[str], lines: dict[str, list[float | None]], marks: dict[str, list[int]],
                out: Path, title: str, ylabel: str = "wall time per call, s") -> Path:
    """One line per stage over commits in date order (``labels``); ``marks[stage]`` = indices of
    commits where the stage changed beyond noise (red rings)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(8.0, 0.7 * len(labels) + 5), 6))
    x = np.arange(len(labels))
    for i, (stage, vals) in enumerate(lines.items()):
        pts = [(xi, v) for xi, v in zip(x, vals) if v]
        if not pts:
            continue
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=_colour(i), label=stage)
        ring = [(x[j], vals[j]) for j in marks.get(stage, []) if vals[j]]
        if ring:
            ax.plot([p[0] for p in ring], [p[1] for p in ring], "o", ms=13, mfc="none", mec="red", mew=2)
    ax.plot([], [], "o", ms=13, mfc="none", mec="red", mew=2, label="changed beyond noise")
    ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=8)
    ax.set_xlabel("Cellpose commit (by commit date)")
    ax.set_ylabel(ylabel)
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(title)
    return _save(fig, out)


def device_png(rows: list[tuple[str, float, float]], out: Path, title: str) -> Path:
    """Grouped bars: seconds on the CPU and on CUDA per "stage size" row (log)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(12, max(3.0, 0.4 * len(rows) + 1.5)))
    y = np.arange(len(rows))
    ax.barh(y - 0.2, [r[1] for r in rows], height=0.4, label="cpu", color="tab:gray")
    ax.barh(y + 0.2, [r[2] for r in rows], height=0.4, label="cuda", color="tab:green")
    ax.set_yticks(y, [r[0] for r in rows], fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("wall time per call, s (log)")
    ax.set_ylabel("stage and image size (side, px)")
    ax.invert_yaxis()
    ax.legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, out)


def fit_png(names: Sequence[str], hours: Sequence[tuple[float, float, float]], gb: Sequence[tuple[float, float, float]],
            ram_gb: float | None, measured_max_mp: float, out: Path, title: str) -> Path:
    """Projected whole-image time (h) and process peak (GB) per image, with ranges (error bars) and
    the machine's RAM as a line. ``hours``/``gb`` = (value, low, high)."""
    plt = _plt()
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(13, 5))
    x = np.arange(len(names))
    for ax, vals, colour in ((ax_t, hours, "tab:blue"), (ax_m, gb, "tab:orange")):
        v = np.array([t[0] for t in vals])
        err = np.array([[t[0] - t[1] for t in vals], [t[2] - t[0] for t in vals]])
        ax.bar(x, v, yerr=err, color=colour, capsize=6, width=0.6)
        ax.set_xticks(x, names)
        ax.set_yscale("log")
        ax.set_xlabel("image (nuclear channel, whole frame)")
        ax.grid(True, axis="y", which="both", alpha=0.3)
    ax_t.set_ylabel("projected wall time of whole-image eval, hours")
    ax_m.set_ylabel("projected process peak memory, GB")
    if ram_gb:
        ax_m.axhline(ram_gb, color="red", lw=2, label=f"this machine's RAM: {ram_gb:.1f} GB")
        ax_m.legend(fontsize=8)
    fig.suptitle(f"{title}\n(fitted on images up to {measured_max_mp:.1f} megapixels; bars: range of two models)")
    return _save(fig, out)


def fast_png(by_size: dict[str, list[Any]], out: Path, title: str) -> Path:
    """Each fast setting (``report.studies.Setting``) as a point: time as a multiple of the default's (x, log)
    against AP@0.5 (y), one colour per size, the setting's name beside it."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for i, (size, settings) in enumerate(by_size.items()):
        pts = [(s.time.ratio, s.ap, s.name) for s in settings if s.ap is not None]
        if not pts:
            continue
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], color=_colour(2 * i), label=f"{size} px", zorder=3)
        for x, y, name in pts:
            ax.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.axvline(1.0, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("whole-image eval time, x the default's (left is faster)")
    ax.set_ylabel("AP@0.5 against the truth")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return _save(fig, out)
