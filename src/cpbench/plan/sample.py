"""Sampled blocks, segmented on a warm worker of the cluster that will run the slide, through
``cpbench segment``'s own block task (:func:`cpbench.segment.tasks.segment_task`: same reading, model,
normalization, options and label storage), one at a time, each measured: seconds, the worker process's
peak resident memory during the block (high-water mark reset before it), nuclei, cell pixels, the
compressed size of its labels, and the seconds of its histogram task (the first pass of a run).

Two sizes are sampled: windows of one side in every signal stratum (what density costs) and one window
of a larger side (how the cost grows with the block: each block has a fixed cost besides its pixels).
Before the samples the worker loads the model and segments one small window (the warm-up): the
seconds a worker needs before its first block, and the worker's floor (its resident memory holding
torch, Cellpose and the model). Units: seconds, bytes, pixels.
"""

from __future__ import annotations

import os
import time
import zlib
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from cpbench.segment import tasks
from cpbench.segment.blocks import Index

#: side of the warm-up window's core, pixels (a small image: it costs little and gives the memory
#: line a second point far below the sampled windows)
WARMUP_SIDE = 256


@dataclass(frozen=True)
class Sample:
    """One segmented window: its grid index, read shape (px), signal (survey), block seconds
    (``segment_task``'s own), histogram seconds, the worker's peak RSS during it (bytes), its GPU
    peak (bytes, 0 on CPU), nuclei (objects of the read window), cell pixels and zlib bytes of its labels."""

    index: Index
    read: tuple[int, int]
    signal: float
    seconds: float
    histogram_seconds: float
    peak_bytes: int
    gpu_peak_bytes: int
    nuclei: int
    cell_pixels: int
    label_bytes: int

    @property
    def pixels(self) -> int:
        return self.read[0] * self.read[1]


@dataclass(frozen=True)
class Warmup:
    """What a worker costs before its first block: model load and first-call seconds, its floor
    (RSS after the warm-up, freed memory returned), its nanny's RSS (bytes; 0 without a nanny) and the
    warm-up window as a :class:`Sample`."""

    load_seconds: float
    first_seconds: float
    floor_bytes: int
    nanny_bytes: int
    sample: Sample


def _measure(plan: tasks.Plan, idx: Index, signal: float) -> Sample:
    from cpbench.measure.probes import StagePeak

    cuda = plan.device.split(":")[0] == "cuda"
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats(plan.device)
    with StagePeak() as peak:
        t0 = time.perf_counter()
        tasks.histogram_task(plan, idx)
        hist_s = time.perf_counter() - t0
        done = tasks.segment_task(plan, idx)
    gpu = 0
    if cuda:
        import torch

        gpu = int(torch.cuda.max_memory_allocated(plan.device))
    labels = tasks.stored_labels(plan, idx)
    return Sample(idx, labels.shape, signal, done.seconds, hist_s, peak.peak_bytes, gpu, done.objects,
                  int(np.count_nonzero(labels)), len(zlib.compress(labels.tobytes(), 6)))


def warmup_task(plan: tasks.Plan, idx: Index, signal: float) -> Warmup:
    """On the worker: load the model (timed), then segment block ``idx`` of ``plan`` (a small grid)."""
    from cpbench.measure.probes import release_free_memory, rss_bytes

    t0 = time.perf_counter()
    tasks.worker_model(plan.model, plan.device)
    load = time.perf_counter() - t0
    first = _measure(plan, idx, signal)
    release_free_memory()
    nanny = 0
    try:
        import psutil

        parent = psutil.Process(os.getppid())
        if "python" in parent.name().lower():  # a dask nanny (a worker started by hand has a shell)
            nanny = int(parent.memory_info().rss)
    except Exception:  # noqa: BLE001 - the nanny's memory is a detail; 0 when it cannot be read
        nanny = 0
    return Warmup(load, first.seconds, rss_bytes(), nanny, first)


def sample_task(plan: tasks.Plan, idx: Index, signal: float) -> Sample:
    """On the worker: block ``idx`` of ``plan``'s grid, measured."""
    return _measure(plan, idx, signal)


def run_samples(client: Any, jobs: list[tuple[tasks.Plan, Index, float]], warm: tuple[tasks.Plan, Index, float],
                progress: bool = True) -> tuple[Warmup, list[Sample]]:
    """The warm-up, then every job (a plan, the index of a block of its grid, the block's survey signal),
    one at a time on one worker of ``client`` (the same process throughout, so every sample after the
    warm-up finds the model loaded)."""
    from tqdm import tqdm

    for plan in {id(j[0]): j[0] for j in (*jobs, warm)}.values():
        tasks.create_stores(plan)
    worker = sorted(client.scheduler_info()["workers"])[0]

    def run(fn: Any, *args: Any) -> Any:
        return client.submit(fn, *args, workers=[worker], allow_other_workers=False, pure=False).result()

    with tqdm(total=len(jobs) + 1, desc="sampled blocks", unit="block", disable=not progress) as bar:
        w = run(warmup_task, *warm)
        bar.update(1)
        out = []
        for job in jobs:
            out.append(run(sample_task, *job))
            bar.update(1)
    return w, out


def sized(plan: tasks.Plan, side: int, name: str) -> tasks.Plan:
    """``plan`` with blocks of ``side`` px, in a work folder of its own (``name`` inside ``plan``'s)."""
    return replace(plan, block=side, work=os.path.join(plan.work, name))


def warmup_plan(plan: tasks.Plan, near: Index) -> tuple[tasks.Plan, Index]:
    """A plan of :data:`WARMUP_SIDE` px blocks in its own work folder and the block of it at the centre
    of ``plan``'s block ``near``."""
    small = sized(plan, max(WARMUP_SIDE, 2 * plan.overlap + 64), "warmup")
    y0, y1, x0, x1 = plan.grid.at(*near).core
    return small, small.grid.owner((y0 + y1) / 2, (x0 + x1) / 2)
