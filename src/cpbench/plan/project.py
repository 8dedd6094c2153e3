"""From sampled blocks to a whole run: per-block seconds and memory, wall time on 1..N workers, the
client's memory, the output's size, whole-image eval, and the block size and worker count that fit a
memory budget. The block-grid arithmetic (:func:`block_shapes`, :func:`makespan`) is shared with the
guidelines' "how to segment each challenge image" table.

Models (each fitted to the samples; their ranges come from the samples' spread):

* block seconds = fixed + rate(signal) x read pixels, the rate linear in the block's survey signal (least
  squares over windows of two sizes: measured here, a 512 px window cost 52 s per MP and a 2048 px block
  39, so a per-pixel rate alone overstates large blocks); a bare-glass block costs its read only (the
  histogram task's seconds per pixel). Range: the samples' largest relative residuals either way, at
  least :data:`MIN_SPREAD`;
* a worker's peak resident memory = its floor (the model loaded, nothing segmented) + bytes per read pixel
  x pixels, the line through the floor and the largest window sampled, give or take the largest sample
  off that line (at least :data:`MIN_SPREAD` of the largest peak);
* passes after the blocks (seams, compose, write) each read or write the slide's labels once: estimated
  at :data:`OTHER_PASSES` x the histogram's seconds per pixel (the labels are uint32, twice a uint16
  channel's bytes, over three passes): a labelled estimate, a few % of a run;
* the client: this process's own peak while planning (the same imports, a client, the scheduler), every
  block's object table (bytes per nucleus measured on the samples' tables, doubled for the label maps and
  the resolution's temporaries) and the label write's :data:`WRITE_CHUNKS` decoded block cores.

Units: seconds, bytes, pixels.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cpbench.plan.sample import Sample, Warmup

#: a range is at least this relative spread either way (the run-to-run noise of a shared VM is larger)
MIN_SPREAD = 0.05
#: the passes after the blocks, in histogram-pass equivalents (three passes over uint32 labels)
OTHER_PASSES = 6.0
#: a block size is recommended only within this many times the largest window sampled (pixels)
MAX_EXTRAPOLATION = 4.0
#: block sides a plan chooses from (px), unless --block names one
SIDES = (512, 1024, 2048, 4096, 8192)
#: the label write holds about this many decoded uint32 block cores at once (a core is one zarr chunk of the
#: work folder's labels, decoded whole for every 512 px tile written, beside the tile writer's buffers)
WRITE_CHUNKS = 2
#: a pyramid's levels add a third to the full level (1/4 + 1/16 + ...)
PYRAMID_FACTOR = 4.0 / 3.0


@dataclass(frozen=True)
class Range:
    """A predicted quantity with its range (same unit)."""

    value: float
    low: float
    high: float

    def scaled(self, f: float) -> Range:
        return Range(self.value * f, self.low * f, self.high * f)

    def plus(self, other: Range | float) -> Range:
        o = other if isinstance(other, Range) else Range(other, other, other)
        return Range(self.value + o.value, self.low + o.low, self.high + o.high)

    def as_dict(self, unit: str) -> dict[str, float | str]:
        return {"value": round(self.value, 3), "low": round(self.low, 3), "high": round(self.high, 3), "unit": unit}


def block_shapes(shape: tuple[int, int], side: int) -> list[tuple[int, int]]:
    """The core shapes (px) of a ``side`` px block grid over ``shape``, raster order (edge blocks smaller)."""
    def edges(n: int) -> list[int]:
        return [side] * (n // side) + ([n % side] if n % side else [])

    return [(h, w) for h in edges(shape[0]) for w in edges(shape[1])]


def makespan(seconds: Sequence[float], workers: int) -> float:
    """Seconds until ``workers`` finish tasks of ``seconds`` handed out longest first to the least busy
    worker (dask hands out in submission order; longest-first is the bound it approaches)."""
    loads = [0.0] * max(1, workers)
    for s in sorted(seconds, reverse=True):
        heapq.heapreplace(loads, loads[0] + s)
    return max(loads)


def _linear(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(intercept, slope) by least squares; the mean and 0 when x does not vary."""
    if len(x) < 2 or float(np.ptp(x)) < 1e-9:
        return float(np.mean(y)), 0.0
    slope, icpt = np.polyfit(x, y, 1)
    return float(icpt), float(slope)


@dataclass(frozen=True)
class Costs:
    """The fitted models (see the module's docstring)."""

    fixed: float  # seconds a block costs whatever its pixels
    rate: tuple[float, float]  # block seconds per read pixel = rate[0] + rate[1] * signal, over ``fixed``
    spread: tuple[float, float]  # relative (low, high) of a prediction, e.g. (-0.08, 0.12)
    read_rate: float  # histogram task's seconds per pixel
    nuclei: tuple[float, float]  # nuclei per read pixel, linear in signal
    cell: tuple[float, float]  # cell pixels per read pixel, linear in signal
    label_bytes: tuple[float, float]  # zlib bytes of labels per pixel, linear in signal
    memory: tuple[float, float]  # worker peak = memory[0] + memory[1] * read pixels, bytes
    memory_excess: float  # the largest measured peak above the line, bytes
    largest_sampled: int  # pixels of the largest window sampled
    table_bytes_per_nucleus: float

    def block_seconds(self, signal: float, pixels: int, empty: bool) -> float:
        if empty:
            return self.read_rate * pixels
        per_px = max(self.rate[0] + self.rate[1] * signal, 0.1 * self.rate[0] if self.rate[0] > 0 else 1e-9)
        return self.fixed + per_px * pixels

    def per_pixel(self, model: tuple[float, float], signal: float) -> float:
        return max(model[0] + model[1] * signal, 0.0)

    def worker_peak(self, pixels: int) -> Range:
        v = self.memory[0] + self.memory[1] * pixels
        return Range(v, v - self.memory_excess, v + self.memory_excess)


def _lstsq(cols: list[np.ndarray], y: np.ndarray) -> np.ndarray:
    """Least-squares coefficients of ``y`` on the columns ``cols`` (minimum-norm where they are dependent)."""
    return np.linalg.lstsq(np.stack(cols, axis=1), y, rcond=None)[0]


def fit(warm: Warmup, samples: Sequence[Sample], table_bytes_per_nucleus: float) -> Costs:
    """The models from the samples (windows of two sizes; the warm-up only gives the floor)."""
    sig = np.array([s.signal for s in samples])
    px = np.array([s.pixels for s in samples], float)
    secs = np.array([s.seconds for s in samples])
    sizes = len(set(px.tolist()))
    if sizes >= 2 and len(samples) >= 3:
        # seconds = fixed + (a + b * signal) * pixels
        c0, a, b = (float(v) for v in _lstsq([np.ones_like(px), px, sig * px], secs))
        if c0 < 0:  # a negative fixed cost is noise: per-pixel only
            c0, (a, b) = 0.0, (float(v) for v in _lstsq([px, sig * px], secs))
    else:
        c0, (a, b) = 0.0, _linear(sig, secs / px)
    pred = c0 + (a + b * sig) * px
    rel = pred / secs - 1.0
    spread = (min(-MIN_SPREAD, float(rel.min())), max(MIN_SPREAD, float(rel.max())))
    if sizes >= 2:
        # through the worker's floor (model loaded, nothing segmented) and the largest window: small windows
        # carry a fixed share of their own (measured here: a 436 px window 124 MB over the floor, a 1076 px
        # one 225 MB, a 2074 px block 776 MB), which this line puts on the pixels, erring high
        big = samples[int(np.argmax(px))]
        mem = (float(warm.floor_bytes), max(0.0, (big.peak_bytes - warm.floor_bytes) / big.pixels))
    else:
        allp = [warm.sample, *samples]
        mem = _linear(np.array([s.pixels for s in allp], float), np.array([s.peak_bytes for s in allp], float))
    peaks = np.array([s.peak_bytes for s in samples], float)
    excess = max(0.0, float((peaks - (mem[0] + mem[1] * px)).max()), MIN_SPREAD * float(peaks.max()))
    return Costs(
        fixed=c0, rate=(a, b), spread=spread,
        read_rate=float(np.sum([s.histogram_seconds for s in samples]) / np.sum(px)),
        nuclei=_linear(sig, np.array([s.nuclei for s in samples]) / px),
        cell=_linear(sig, np.array([s.cell_pixels for s in samples]) / px),
        label_bytes=_linear(sig, np.array([s.label_bytes for s in samples]) / px),
        memory=mem, memory_excess=excess, largest_sampled=int(px.max()),
        table_bytes_per_nucleus=table_bytes_per_nucleus,
    )


@dataclass(frozen=True)
class Block:
    """A block of the planned grid as the survey sees it: read shape (px), signal, bare glass."""

    read: tuple[int, int]
    signal: float
    empty: bool

    @property
    def pixels(self) -> int:
        return self.read[0] * self.read[1]


@dataclass(frozen=True)
class RunPrediction:
    """One run: a grid of blocks on ``workers`` workers."""

    block: int
    workers: int
    blocks: int
    empty: int
    wall: Range  # seconds
    block_seconds: Range  # sum over the blocks, seconds (one worker's work)
    worker_peak: Range  # bytes, one worker
    client_peak: Range  # bytes
    total_peak: Range  # bytes, client + every worker and its nanny
    nuclei: float
    output_bytes: float
    extrapolation: float  # the largest read window / the largest window sampled


@dataclass(frozen=True)
class Machine:
    """Where the run goes: cores, torch threads per worker, the device, what starting costs (seconds:
    the cluster, a worker's model load and first call) and the client's own resident memory (bytes)."""

    cores: int
    threads: int
    device: str
    cluster_seconds: float
    worker_start_seconds: float
    client_bytes: int
    nanny_bytes: int

    def slowdown(self, workers: int) -> float:
        """How much longer each block takes when ``workers`` share this machine: cores shared by more
        threads than there are; on a GPU, workers share the one device (no gain assumed beyond one)."""
        if self.device.split(":")[0] == "cuda":
            return float(workers)
        return max(1.0, workers * self.threads / max(self.cores, 1))


def predict(costs: Costs, blocks: Sequence[Block], side: int, workers: int, machine: Machine) -> RunPrediction:
    """Wall time, memory, nuclei and output size of one run (see the module's docstring)."""
    secs = [costs.block_seconds(b.signal, b.pixels, b.empty) for b in blocks]
    px = sum(b.pixels for b in blocks)
    hist = costs.read_rate * px
    slow = machine.slowdown(workers)
    lo, hi = 1.0 + costs.spread[0], 1.0 + costs.spread[1]
    span = makespan(secs, workers) * slow
    passes = (hist / workers) * slow + OTHER_PASSES * hist
    start = machine.cluster_seconds + machine.worker_start_seconds
    wall = Range(start + passes + span, start + passes + span * lo, start + passes + span * hi)
    total = sum(secs)
    live = [b for b in blocks if not b.empty]
    nuclei = sum(costs.per_pixel(costs.nuclei, b.signal) * b.pixels for b in live)
    out = PYRAMID_FACTOR * sum(costs.per_pixel(costs.label_bytes, b.signal) * b.pixels for b in live)
    biggest = max((b.pixels for b in live), default=0)
    worker = costs.worker_peak(biggest)
    core = min(side, max(b.read[0] for b in blocks)) * min(side, max(b.read[1] for b in blocks))
    client_v = machine.client_bytes + WRITE_CHUNKS * 4 * core + 2 * costs.table_bytes_per_nucleus * nuclei
    client = Range(client_v, machine.client_bytes, client_v * (1 + MIN_SPREAD))
    total_peak = all_processes(worker, client, machine.client_bytes, costs.memory[0], machine.nanny_bytes, workers)
    return RunPrediction(side, workers, len(blocks), len(blocks) - len(live), wall, Range(total, total * lo, total * hi),
                         worker, client, total_peak, nuclei, out, biggest / max(costs.largest_sampled, 1))


def all_processes(worker: Range, client: Range, client_base: float, floor: float, nanny: float, workers: int) -> Range:
    """Peak of every process together, bytes: the larger of the blocks' phase (the workers at their peak,
    the client at its base) and the write's (the client at its peak, the workers at their floor). Their
    peaks fall in different passes, so adding them would overstate the run."""
    blocks = worker.plus(nanny).scaled(workers).plus(client_base)
    write = client.plus((floor + nanny) * workers)
    return blocks if blocks.value >= write.value else write


def whole_image(costs: Costs, shape: tuple[int, int], signal: float, machine: Machine) -> tuple[Range, Range, float]:
    """Whole-image eval (one block the size of the slide, the same path): (seconds, peak bytes of the
    process, extrapolation factor in pixels over the largest window sampled)."""
    px = shape[0] * shape[1]
    s = costs.block_seconds(signal, px, False)
    t = Range(s, s * (1 + costs.spread[0]), s * (1 + costs.spread[1])).plus(machine.worker_start_seconds)
    return t, costs.worker_peak(px), px / max(costs.largest_sampled, 1)


def fits(pred: RunPrediction, memory: float) -> bool:
    """Whether the run's high end of peak memory (every process) stays within ``memory`` bytes."""
    return pred.total_peak.high <= memory


def worker_floor(costs: Costs, machine: Machine, warm: Warmup) -> float:
    """The least memory a run can have, bytes: the client and one worker (its nanny too) that holds
    the model and a small block (the warm-up's peak)."""
    return machine.client_bytes + machine.nanny_bytes + max(warm.sample.peak_bytes, warm.floor_bytes)


def local_workers(machine: Machine) -> int:
    """Workers that do not share cores: cores // threads (one on a GPU), at least 1."""
    if machine.device.split(":")[0] == "cuda":
        return 1
    return max(1, machine.cores // max(machine.threads, 1))


def side_candidates(overlap: int, largest_sampled: int, given: int | None) -> list[int]:
    """Block sides to consider: ``given``, else those of :data:`SIDES` whose read window stays within
    :data:`MAX_EXTRAPOLATION` x the largest window sampled (the smallest of them at least)."""
    if given is not None:
        return [given]
    ok = [s for s in SIDES if s > 2 * overlap and (s + 2 * overlap) ** 2 <= MAX_EXTRAPOLATION * largest_sampled]
    return ok or [min(s for s in SIDES if s > 2 * overlap)]


def human_seconds(s: float) -> str:
    """``42 s``, ``12.5 min``, ``3.1 h``."""
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2g} h"


def human_bytes(b: float) -> str:
    """``850 MB``, ``1.9 GB``."""
    return f"{b / 1e6:.0f} MB" if b < 1e9 else f"{b / 1e9:.3g} GB"
