"""The work of one block or one seam, as a dask task runs it (top-level functions of a frozen
:class:`Plan`: picklable, and each re-runnable — a block whose table exists is not segmented again).

Work folder (``Plan.work``): ``labels.zarr`` (each block's read-window labels, local ids, one chunk a
block, padded with 0), ``tables/R_C.npz`` (its object table, written last: the block's done mark) and
``out.zarr`` (the global labels, one chunk a block core). Units: pixels; intensities in the image's units.
"""

from __future__ import annotations

import functools
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from cpbench.io.files import load_npz, save_npz
from cpbench.segment.blocks import Grid, Index, make_grid
from cpbench.segment.stitch import (
    Objects,
    SeamMatch,
    compose,
    match_seam,
    measure_objects,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Plan:
    """Everything a worker needs: the image and channel, the grid, the model, Cellpose's options,
    the whole-slide normalization bounds and the empty-block threshold (image units)."""

    image: str
    channel: int
    shape: tuple[int, int]
    block: int
    overlap: int
    work: str
    model: str = "reference"
    device: str = "cpu"
    diameter: float | None = None
    lowhigh: tuple[float, float] = (0.0, 1.0)
    empty_below: float = 0.0
    eval_kw: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    @property
    def grid(self) -> Grid:
        return make_grid(self.shape, self.block, self.overlap)

    @property
    def window(self) -> tuple[int, int]:
        """(Y, X) of a labels chunk: the largest read window, pixels (a block larger than the image,
        i.e. whole-image eval through the same path, reads the image and no more)."""
        side = self.block + 2 * self.overlap
        return min(side, self.shape[0]), min(side, self.shape[1])

    def table_path(self, idx: Index) -> Path:
        return Path(self.work) / "tables" / f"{idx[0]}_{idx[1]}.npz"


def create_stores(plan: Plan) -> None:
    """The work folder's zarr arrays (kept when they exist: a re-run resumes)."""
    import zarr

    work = Path(plan.work)
    (work / "tables").mkdir(parents=True, exist_ok=True)
    g = plan.grid
    core = (min(plan.block, plan.shape[0]), min(plan.block, plan.shape[1]))
    for name, shape, chunks in (("labels.zarr", (g.rows, g.cols, *plan.window), (1, 1, *plan.window)),
                                ("out.zarr", plan.shape, core)):
        if not (work / name).exists():
            zarr.create_array(store=str(work / name), shape=shape, chunks=chunks, dtype=np.uint32, fill_value=0)


def _store(plan: Plan, name: str) -> Any:
    import zarr

    return zarr.open_array(str(Path(plan.work) / name), mode="r+")


class DamagedTile(RuntimeError):
    """A tile of the slide that does not decode: the file is damaged there, and no retry or re-run helps."""


#: the work folder's log of every failed task's traceback (the console gets one line)
LOG_NAME = "segment.log"


def log_path(plan: Plan) -> Path:
    return Path(plan.work) / LOG_NAME


def _logged(fn: Callable[..., T]) -> Callable[..., T]:
    """A task that appends its traceback to the work folder's log when it fails, then fails as before."""
    @functools.wraps(fn)
    def task(plan: Plan, *args: Any) -> T:
        try:
            return fn(plan, *args)
        except Exception:
            try:
                with open(log_path(plan), "a") as f:
                    f.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()} {fn.__name__}{args!r}\n"
                            f"{traceback.format_exc()}\n")
            except OSError:
                pass  # the log is a courtesy; the failure itself still reaches the client
            raise
    return task


def read_block(plan: Plan, window: tuple[int, int, int, int]) -> np.ndarray:
    """One channel of the image over ``window`` (only the tiles it touches are read). A tile that does
    not decode is a :class:`DamagedTile` naming it (level, channel, pixel range)."""
    from cpbench import stages as cs

    y0, y1, x0, x1 = window
    try:
        return cs.read_region(plan.image, plan.channel, y0, x0, y1 - y0, x1 - x0)
    except Exception as exc:
        from cpbench.io.slide import damaged_tile

        try:
            tile = damaged_tile(Path(plan.image), plan.channel, window)
        except Exception:  # noqa: BLE001 - the file cannot even be opened now: report the first error
            tile = None
        if tile is None:
            raise
        ty0, ty1, tx0, tx1 = tile
        text = " ".join(str(exc).split())[:200]
        raise DamagedTile(f"{plan.image} is damaged at level 0, channel {plan.channel}, y {ty0}..{ty1}, "
                          f"x {tx0}..{tx1} px: that tile does not decode ({type(exc).__name__}: {text})") from exc


@_logged
def histogram_task(plan: Plan, idx: Index) -> np.ndarray:
    """Intensity counts of block ``idx``'s core (for the whole-slide percentiles)."""
    from cpbench.segment.normalize import histogram

    return histogram([read_block(plan, plan.grid.at(*idx).core)])


_MODELS: dict[tuple[str, str], Any] = {}


def worker_model(name: str, device: str) -> Any:
    """The model, loaded once per worker process (every block of the worker reuses it)."""
    key = (name, device)
    if key not in _MODELS:
        import warnings

        import torch

        # Cellpose 3.1's get_masks builds a sparse tensor: torch warns once per process, on every worker
        warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")
        from cpbench.models import registry

        torch.set_num_threads(int(os.environ.get("CPBENCH_THREADS", "2")))
        _MODELS[key] = registry.load(name, device=device, download=False)
    return _MODELS[key]


@dataclass(frozen=True)
class BlockDone:
    """A block's outcome: objects found, skipped as empty, resumed from an earlier run, seconds, and the
    peak resident memory of the worker process that ran it so far, bytes (its high-water mark)."""

    index: Index
    objects: int
    empty: bool
    resumed: bool
    seconds: float
    pid: int
    peak_bytes: int = 0


def process_peak_bytes() -> int:
    """This process's peak resident set so far, bytes (Linux ``ru_maxrss`` is in KiB)."""
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def load_table(plan: Plan, idx: Index) -> tuple[Objects, bool]:
    """Block ``idx``'s object table and whether the block was empty."""
    ids, area, cy, cx, cut, empty = load_npz(plan.table_path(idx), "ids", "area", "cy", "cx", "cut", "empty")
    return Objects(idx, ids, area, cy, cx, cut.astype(bool)), bool(empty)


@_logged
def segment_task(plan: Plan, idx: Index) -> BlockDone:
    """Segment block ``idx``'s read window (unless done before or empty), store labels, then table.

    Afterwards the heap pages the block freed go back to the operating system (``malloc_trim``), so
    that a worker's RSS does not creep up block after block through fragmentation (measured, 1 worker:
    1.90, 2.00, 2.16 GB after 4, 16, 25 blocks of 2048 px)."""
    from cpbench.measure.probes import release_free_memory

    try:
        return _segment(plan, idx)
    finally:
        release_free_memory()


def _segment(plan: Plan, idx: Index) -> BlockDone:
    start = time.perf_counter()
    if plan.table_path(idx).exists():
        t, empty = load_table(plan, idx)
        return BlockDone(idx, len(t.ids), empty, True, 0.0, os.getpid(), process_peak_bytes())
    blk = plan.grid.at(*idx)
    img = read_block(plan, blk.read)
    empty = bool(img.max(initial=0) < plan.empty_below)
    if empty:
        labels = np.zeros(img.shape, np.uint32)
    else:
        from cpbench import stages as cs

        model = worker_model(plan.model, plan.device)
        labels = cs.eval_end_to_end(model, img, plan.diameter, lowhigh=plan.lowhigh,
                                    **dict(plan.eval_kw)).astype(np.uint32)
        h, w = labels.shape
        _store(plan, "labels.zarr")[idx[0], idx[1], :h, :w] = labels
    t = measure_objects(labels, blk, plan.shape)
    save_npz(plan.table_path(idx), ids=t.ids, area=t.area, cy=t.cy, cx=t.cx, cut=t.cut, empty=np.array(empty))
    return BlockDone(idx, len(t.ids), empty, False, time.perf_counter() - start, os.getpid(),
                     process_peak_bytes())


def stored_labels(plan: Plan, idx: Index) -> np.ndarray:
    """Block ``idx``'s read-window labels (local ids) from the work folder."""
    h, w = plan.grid.at(*idx).read_shape
    return np.asarray(_store(plan, "labels.zarr")[idx[0], idx[1], :h, :w])


@_logged
def seam_task(plan: Plan, a: Index, b: Index) -> SeamMatch:
    """Match the objects of two touching blocks."""
    g = plan.grid
    ta, _ = load_table(plan, a)
    tb, _ = load_table(plan, b)
    if not len(ta.ids) or not len(tb.ids):  # nothing to match
        return SeamMatch(a, b, np.zeros((0, 2), np.int64), np.zeros(0), np.zeros((0, 2), np.int64))
    return match_seam(g.at(*a), stored_labels(plan, a), ta, g.at(*b), stored_labels(plan, b), tb)


@_logged
def compose_task(plan: Plan, idx: Index, maps: dict[Index, np.ndarray]) -> int:
    """Write block ``idx``'s core of the global labels from the maps of it and its neighbours; returns
    the pixels two kept objects claimed."""
    g = plan.grid
    blk = g.at(*idx)
    # a block that keeps nothing paints nothing: its labels are not read (nor its table)
    core, clashes = compose(g, blk, lambda i: stored_labels(plan, i) if maps[i].any() else None, maps.__getitem__)
    y0, y1, x0, x1 = blk.core
    _store(plan, "out.zarr")[y0:y1, x0:x1] = core
    return clashes
