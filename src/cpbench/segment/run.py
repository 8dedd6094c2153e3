"""``cpbench segment``'s driver: the passes over the slide on a dask.distributed cluster.

1. histogram of the channel, block by block -> whole-slide 1st/99th percentiles (Cellpose's own
   normalization of the whole image) and the empty-block threshold;
2. Cellpose on every block's read window (one model per worker; empty blocks skipped; retried, then
   reported); labels and tables into the work folder;
3. seams matched pair by pair; 4. resolution on the client (tables of objects only);
5. each core composed and written; 6. the tiled pyramidal OME-TIFF streamed from it, atomically;
a seam report beside it. A re-run with the same work folder resumes from the blocks already done.
Units: pixels, seconds, bytes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from cpbench.errors import UserError
from cpbench.segment import tasks
from cpbench.segment.blocks import Index
from cpbench.segment.normalize import percentiles
from cpbench.segment.stitch import Resolution, resolve

#: a block whose brightest pixel normalizes below this (0 = the slide's 1st, 1 = its 99th percentile)
#: holds nothing Cellpose would find: it is skipped (bare glass)
EMPTY_BELOW = 0.05


#: failures that another run may not meet (a worker lost, memory, a timeout, the network): worth resuming
TRANSIENT = {"KilledWorker", "CommClosedError", "MemoryError", "TimeoutError", "ConnectionError",
             "ConnectionResetError", "BrokenPipeError", "FutureCancelledError", "CancelledError"}


class BlocksFailed(RuntimeError):
    """Blocks that failed after their retries (their indices and the first error); ``damaged``: the first
    error is a tile of the slide that does not decode; ``transient``: a re-run may succeed."""

    def __init__(self, text: str, damaged: bool = False, transient: bool = False) -> None:
        super().__init__(text)
        self.damaged, self.transient = damaged, transient


@dataclass
class Outcome:
    """What a run did: counts, seconds per pass, the seam totals."""

    blocks: int
    empty: int
    resumed: int
    objects: int
    labels: int
    clashes: int
    seconds: dict[str, float]
    seams: dict[str, int]
    workers: int


def _gather(client: Any, fn: Callable[..., Any], args: Iterable[tuple[Any, ...]], what: str,
            progress: bool, retries: int = 2) -> list[Any]:
    """Run ``fn(*a)`` for every ``a`` on the cluster, with retries and a progress bar; results in order.
    Failures after the retries are collected and raised together. ``client`` None runs them here, one
    after the other (the asv benchmarks: the whole work in the measured process)."""
    from tqdm import tqdm

    args = list(args)
    if client is None:
        results = []
        for a in tqdm(args, desc=what, unit="task", disable=not progress):
            for attempt in range(retries + 1):
                try:
                    results.append(fn(*a))
                    break
                except Exception as exc:  # noqa: BLE001 - retried, then reported like the cluster's
                    if attempt == retries:
                        raise _failed(what, 1, retries, a, exc) from exc
        return results
    from distributed import as_completed

    futures = [client.submit(fn, *a, retries=retries, pure=False) for a in args]
    order = {f.key: i for i, f in enumerate(futures)}
    out: list[Any] = [None] * len(futures)
    failed: list[tuple[Any, BaseException]] = []
    with tqdm(total=len(futures), desc=what, unit="task", disable=not progress) as bar:
        for fut in as_completed(futures):
            i = order[fut.key]
            if fut.status == "error":
                failed.append((args[i], fut.exception()))
            else:
                out[i] = fut.result()
            bar.update(1)
    if failed:
        where, exc = failed[0]
        raise _failed(what, len(failed), retries, where, exc)
    return out


def _failed(what: str, n: int, retries: int, args: tuple[Any, ...], exc: BaseException) -> BlocksFailed:
    """One line: how many ``what`` tasks failed, the first one's blocks (row, column) and its error; a
    damaged tile is said as such (the file, not the run, needs mending)."""
    blocks = " and ".join(str(tuple(int(v) for v in a)) for a in args if isinstance(a, tuple))
    text = " ".join(str(exc).split())  # one line, whatever the error printed
    if isinstance(exc, tasks.DamagedTile):
        return BlocksFailed(f"{text} (block {blocks}, {what})", damaged=True)
    return BlocksFailed(f"{n} {what} task(s) failed after {retries} retries, the first at block {blocks}: "
                        f"{type(exc).__name__}: {text}", transient=type(exc).__name__ in TRANSIENT)


def run(plan: tasks.Plan, client: Any, out: Path, progress: bool = True) -> tuple[Outcome, Resolution]:
    """All passes for ``plan`` on ``client``; writes ``out`` (OME-TIFF or OME-Zarr) and its seam report."""
    seconds: dict[str, float] = {}
    grid = plan.grid
    idxs = [b.index for b in grid]
    tasks.create_stores(plan)

    t0 = time.perf_counter()
    hists = _gather(client, tasks.histogram_task, ((plan, i) for i in idxs), "histogram", progress)
    lo, hi = percentiles(np.sum(hists, axis=0))
    plan = replace(plan, lowhigh=(lo, hi), empty_below=lo + EMPTY_BELOW * (hi - lo))
    seconds["histogram"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    done: list[tasks.BlockDone] = _gather(client, tasks.segment_task, ((plan, i) for i in idxs), "blocks", progress)
    seconds["blocks"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    pairs = [(a.index, b.index) for a, b in grid.seams()]
    matches = _gather(client, tasks.seam_task, ((plan, a, b) for a, b in pairs), "seams", progress)
    tables = {i: tasks.load_table(plan, i)[0] for i in idxs}
    res = resolve(grid, tables, matches)
    maps = {i: res.label_map(t) for i, t in tables.items()}
    del tables
    seconds["seams"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    near = {b.index: [b.index, *(n.index for n in grid.neighbours(b))] for b in grid}
    clashes = _gather(client, tasks.compose_task, ((plan, i, {n: maps[n] for n in near[i]}) for i in idxs),
                      "compose", progress)
    seconds["compose"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    write_labels(plan, out, progress)
    seconds["write"] = time.perf_counter() - t0
    totals = {k: sum(getattr(s, k) for s in res.seams) for k in ("matched", "merged", "rescued", "dropped",
                                                                 "duplicated")}
    workers = len({d.pid for d in done if not d.resumed})
    outcome = Outcome(len(idxs), sum(d.empty for d in done), sum(d.resumed for d in done),
                      sum(d.objects for d in done), res.total, int(sum(clashes)), seconds, totals, workers)
    write_seam_report(seam_report_path(out), plan, outcome, res, done)
    return outcome, res


def segment_here(image: Path, out: Path, block: int, diameter: float | None, model: str = "reference",
                 channel: int = 0) -> Outcome:
    """The whole run in this process, one task after the other (no cluster), with a fresh work
    folder beside ``out`` that is removed after: what the asv benchmarks time and measure."""
    import shutil

    work = out.with_name(f".{out.name}.work")
    shutil.rmtree(work, ignore_errors=True)
    plan = plan_for(image, channel, block, None, model, diameter, "cpu", work, {})
    try:
        outcome, _ = run(plan, None, out, progress=False)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return outcome


#: what ``--out`` may end with: a tiled pyramidal OME-TIFF, or an OME-Zarr (NGFF 0.4) folder
TIFF_SUFFIXES, ZARR_SUFFIXES = (".ome.tiff", ".ome.tif"), (".ome.zarr", ".zarr")


def write_labels(plan: tasks.Plan, out: Path, progress: bool) -> None:
    """Stream the work folder's global labels into ``out`` (atomic): a tiled pyramidal OME-TIFF (tiles
    of 512 px, zlib) or an OME-Zarr label image (chunks of 512 px), levels sampled (never averaged),
    with the slide's pixel size."""
    import zarr
    from tqdm import tqdm

    from cpbench.io.ometiff import Layout, auto_levels, describe, write_pyramid

    src = zarr.open_array(str(Path(plan.work) / "out.zarr"), mode="r")
    tile = 512
    levels = auto_levels(*plan.shape, tile)
    pixel_um = describe(Path(plan.image))["pixel_size_um"]
    if out.name.endswith(ZARR_SUFFIXES):
        from cpbench.io.omezarr import n_chunks, write_label_pyramid

        with tqdm(total=n_chunks(plan.shape, levels, tile), desc="write", unit="chunk", disable=not progress) as bar:
            write_label_pyramid(out, src, levels, chunk=tile, pixel_size_um=pixel_um, progress=bar)
        return
    layout = Layout((1, *plan.shape), tile, levels)
    total = sum(layout.n_tiles(k) for k in range(layout.levels + 1))
    with tqdm(total=total, desc="write", unit="tile", disable=not progress) as bar:
        write_pyramid(out, layout, np.dtype(np.uint32), lambda c, y0, x0, h, w: src[y0:y0 + h, x0:x0 + w],
                      channel_names=None, pixel_size_um=float(pixel_um or 1.0), compression="zlib", progress=bar,
                      reduce="nearest")


def seam_report_path(out: Path) -> Path:
    """``LABELS.ome.tif`` or ``LABELS.ome.zarr`` -> ``LABELS.seams.json``."""
    name = out.name
    for suffix in (*TIFF_SUFFIXES, *ZARR_SUFFIXES):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return out.with_name(name + ".seams.json")


def write_seam_report(path: Path, plan: tasks.Plan, outcome: Outcome, res: Resolution,
                      done: list[tasks.BlockDone] | None = None) -> None:
    """The run, every block's seconds and objects (what a projection to a larger slide or cluster
    starts from) and every seam's counts, as JSON (atomic)."""
    from cpbench.io.files import write_text

    def idx(i: Index) -> list[int]:
        return [int(i[0]), int(i[1])]

    doc = {
        "image": plan.image, "channel": plan.channel, "shape": list(plan.shape), "block": plan.block,
        "overlap": plan.overlap, "model": plan.model, "diameter": plan.diameter, "lowhigh": list(plan.lowhigh),
        "device": plan.device, "eval": dict(plan.eval_kw), "outcome": asdict(outcome), "split": res.split,
        "cut_kept": sum(res.cut_kept.values()),
        "blocks": [{"index": idx(d.index), "seconds": round(d.seconds, 3), "objects": d.objects, "empty": d.empty,
                    "resumed": d.resumed, "read": list(plan.grid.at(*d.index).read_shape), "pid": d.pid,
                    "worker_peak_bytes": d.peak_bytes} for d in done or []],
        # peaks, bytes: each worker's high-water mark (the largest its blocks saw), summed over the workers
        # (an upper bound of their peak together), and this process's (the client: seams, write)
        "peak_bytes": {"workers": sum(max((d.peak_bytes for d in done or [] if d.pid == pid), default=0)
                                      for pid in {d.pid for d in done or []}),
                       "client": tasks.process_peak_bytes()},
        "seams": [{"a": idx(s.a), "b": idx(s.b), "matched": s.matched, "merged": s.merged, "rescued": s.rescued,
                   "dropped": s.dropped, "duplicated": s.duplicated} for s in res.seams],
    }
    write_text(path, json.dumps(doc, indent=1) + "\n")


def add_to_seam_report(path: Path, **fields: Any) -> None:
    """Add ``fields`` to the seam report at ``path`` (atomic)."""
    from cpbench.io.files import write_text

    doc = json.loads(path.read_text())
    doc.update(fields)
    write_text(path, json.dumps(doc, indent=1) + "\n")


def check_output(out: Path, overwrite: bool) -> None:
    """One-line errors for an output that cannot be written."""
    from cpbench.io.files import check_new_output

    if not out.name.endswith(TIFF_SUFFIXES + ZARR_SUFFIXES):
        raise UserError(f"--out {out}: give a name ending .ome.tif (tiled pyramidal OME-TIFF) or .ome.zarr "
                        "(OME-Zarr label image)")
    check_new_output(out, overwrite)


def describe_outcome(o: Outcome) -> str:
    """A few lines for the terminal."""
    secs = ", ".join(f"{k} {v:.1f} s" for k, v in o.seconds.items())
    s = o.seams
    return (f"{o.blocks} blocks ({o.empty} empty, {o.resumed} resumed) on {o.workers} worker(s): {o.labels} labels "
            f"from {o.objects} block objects; seams: {s['matched']} matched, {s['merged']} merged, "
            f"{s['rescued']} rescued, {s['dropped']} dropped, {s['duplicated']} duplicated; {secs}")


#: network tiles per batch on CPU unless ``eval_kw`` says otherwise: asv's parameter slice (1024 px, this VM)
#: measured batch_size 1 at 0.64x the network time and 0.33x the stage peak of Cellpose's default 8
CPU_BATCH_SIZE = 1


def plan_for(image: Path, channel: int, block: int, overlap: int | None, model: str, diameter: float | None,
             device: str, work: Path, eval_kw: dict[str, Any]) -> tasks.Plan:
    """A :class:`tasks.Plan` after checking the image, channel and sizes (one-line errors). ``eval_kw``:
    ``CellposeModel.eval`` options; on CPU ``batch_size`` is :data:`CPU_BATCH_SIZE` unless given."""
    from cpbench.io.slide import open_slide
    from cpbench.segment.blocks import auto_overlap, make_grid

    slide = open_slide(image, channel, integer=True)  # one line for a file that cannot be segmented
    yx = slide.shape
    if slide.tile is None:
        import sys

        print(f"note: {image} is stored in strips, not tiles: every block reads whole rows of the slide (the "
              f"channel is {slide.channel_bytes / 1e9:.3g} GB decoded); a tiled pyramidal OME-TIFF reads only "
              "its blocks", file=sys.stderr)
    ov = auto_overlap(diameter or 17.0) if overlap is None else overlap
    make_grid(yx, block, ov)  # the size checks
    if "batch_size" not in eval_kw and device.split(":")[0] == "cpu":
        eval_kw = {**eval_kw, "batch_size": CPU_BATCH_SIZE}
    return tasks.Plan(str(image), channel, yx, block, ov, str(work), model, device, diameter,
                      eval_kw=tuple(sorted(eval_kw.items())))
