"""Pictures of the stage table: how each stage's time and memory grow with image size."""

from __future__ import annotations

from pathlib import Path

from cpbench.io.files import atomic_path
from cpbench.measure.suite import MEMORY_RESOLUTION_BYTES


def stage_costs_png(table: list[dict[str, object]], out: Path, device: str, title: str = "") -> Path:
    """Two log-log panels against megapixels: median seconds and stage peak MB, one line per stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(13, 5.5))
    stages = list(dict.fromkeys(str(t["stage"]) for t in table))
    cmap = plt.get_cmap("tab20")
    for i, st in enumerate(stages):
        pts = [t for t in table if t["stage"] == st and t["pixels"]]
        mp = [t["pixels"] / 1e6 for t in pts]  # type: ignore[operator]
        style = dict(marker="o", color=cmap(i % 20), label=st, lw=2 if "end to end" in st or "network" in st else 1)
        secs = [(x, t["seconds"]) for x, t in zip(mp, pts) if t["seconds"]]
        mem = [(x, t["peak_bytes"] / 1e6) for x, t in zip(mp, pts) if t.get("bytes_per_pixel")]  # type: ignore[operator]  # above the probe resolution
        if secs:
            ax_t.plot(*zip(*secs), **style)
        if mem:
            ax_m.plot(*zip(*mem), **style)
    for ax, ylab in ((ax_t, "median wall time, s"), (ax_m, "stage peak memory, MB")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("image size, megapixels")
        ax.set_ylabel(ylab)
        ax.grid(True, which="both", alpha=0.3)
    # every stage has a time; not every one a peak above the probe's resolution
    handles, labels = ax_t.get_legend_handles_labels()
    ax_m.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                title=f"memory: peaks above {MEMORY_RESOLUTION_BYTES / 2**20:g} MiB", title_fontsize=8)
    fig.suptitle(title or f"Cellpose stage costs on {device}")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return out
