"""Render a synthetic slide on several processes, with the same pixels and labels as one process.

A :class:`~cpbench.synth.scene.Scene` is a pure function of its shape and parameters, so every worker
process builds its own copy and renders whole tiles; the parent only writes them, in order. Two passes:
the nuclei count of every placement block (its rows split among the workers; the counts give every
nucleus its global id), then the tiles. At most ``2 x workers`` tiles are in flight, so memory stays
flat with image size. Processes, not threads: nuclei placement is Python code that holds the GIL.
Measured, one channel: 4096 px 11.2 s on 1 process, 9.9 s on 2 (a 2-core VM); 16384 px 114.5 s on 2;
the WD-76845-097 size (708.9 MP) 306 s on the 16 CPUs of an H100 machine (2.3 MP/s, as 2 processes here:
what bounds it there was not found).
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import numpy as np

from cpbench.synth.params import SceneParams
from cpbench.synth.scene import Scene

_SCENE: Scene | None = None  # the worker process's own scene


#: below this many pixels (all channels) one process renders: starting the pools costs ~1.5 s each
PARALLEL_FROM_PIXELS = 16_000_000


def default_workers(shape: tuple[int, int, int]) -> int:
    """Processes ``cpbench synth`` uses by default for a (C, Y, X) image: the CPUs this process may run
    on, or 1 for an image under :data:`PARALLEL_FROM_PIXELS`."""
    if shape[0] * shape[1] * shape[2] < PARALLEL_FROM_PIXELS:
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _init(shape: tuple[int, int, int], params: SceneParams, counts: np.ndarray | None) -> None:
    global _SCENE
    _SCENE = Scene(shape, params)
    if counts is not None:
        _SCENE.set_block_counts(counts)


def _row_counts(i: int) -> np.ndarray:
    assert _SCENE is not None
    return _SCENE.block_counts_row(i)


def _render(scene: Scene, ch: int, y0: int, x0: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray | None]:
    """A tile's pixels, and for channel 0 its ground-truth labels (from the same geometry)."""
    if ch != 0:
        return scene.render(ch, y0, x0, h, w), None
    lab = np.zeros((h, w), np.uint32)
    return scene.render(ch, y0, x0, h, w, labels_out=lab), lab


def _tile(ch: int, y0: int, x0: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray | None]:
    assert _SCENE is not None
    return _render(_SCENE, ch, y0, x0, h, w)


def _pool(workers: int, shape: tuple[int, int, int], params: SceneParams,
          counts: np.ndarray | None) -> ProcessPoolExecutor:
    # spawn: the parent holds zarr's and tqdm's threads, which a forked child must not inherit
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init, initargs=(shape, params, counts))


def count_blocks(scene: Scene, workers: int, progress: Any = None) -> int:
    """Count the nuclei of every placement block of ``scene`` on ``workers`` processes and give the
    scene the counts (its nuclei ids); return the number of nuclei in the image. ``progress``: a
    tqdm-like object advanced once per block row."""
    if workers <= 1:
        return scene.count_nuclei(progress)
    rows = scene.n_block_rows
    with _pool(workers, scene.shape, scene.params, None) as ex:
        chunk = max(1, rows // (4 * workers))  # contiguous rows share the candidates of their neighbours
        out = []
        for r in ex.map(_row_counts, range(rows), chunksize=chunk):
            out.append(r)
            if progress is not None:
                progress.update(1)
    scene.set_block_counts(np.stack(out))
    return scene.count_nuclei()


def render_tiles(scene: Scene, workers: int, tiles: Iterator[tuple[int, int, int, int, int]],
                 on_labels: Callable[[int, int, np.ndarray], None]) -> Iterator[tuple[Any, np.ndarray]]:
    """Yield ``(tile, pixels)`` for the tiles of ``tiles`` ((channel, y0, x0, h, w), px) in order, computed
    in this process (``workers`` 1) or on ``workers`` processes; channel 0's ground-truth labels go to
    ``on_labels(y0, x0, labels)``. ``scene`` must have its counts (:func:`count_blocks`)."""
    assert scene.block_counts is not None
    if workers <= 1:
        for t in tiles:
            img, lab = _render(scene, *t)
            if lab is not None:
                on_labels(t[1], t[2], lab)
            yield t, img
        return
    with _pool(workers, scene.shape, scene.params, scene.block_counts) as ex:
        pending: deque[tuple[tuple[int, int, int, int, int], Future[Any]]] = deque()

        def take() -> tuple[Any, np.ndarray]:
            t, fut = pending.popleft()
            img, lab = fut.result()
            if lab is not None:
                on_labels(t[1], t[2], lab)
            return t, img

        for t in tiles:
            pending.append((t, ex.submit(_tile, *t)))
            if len(pending) >= 2 * workers:
                yield take()
        while pending:
            yield take()
