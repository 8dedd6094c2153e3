"""What every asv stage benchmark shares: the parameter grids and the measurement methods.

A benchmark class in ``benchmarks/`` subclasses :class:`Stage`, lists its ``params`` and
``param_names``, and implements ``prepare(*params)`` (load inputs; not measured) and
``run()`` (the stage: one library call). It then has, per parameter combination:

* ``time_stage``: wall time, seconds (CUDA synchronized inside the timed call);
* ``track_stage_peak_bytes``: peak host memory of the stage alone, bytes (VmHWM reset around
  ``run()`` after gc + malloc_trim; see :mod:`cpbench.measure.probes`);
* ``peakmem_stage``: whole-process peak, bytes (compare with ``bench_reference.peakmem_reference``);
* ``track_gpu_peak_bytes``: peak CUDA memory of the stage, bytes, in a sibling class made by
  :func:`gpu_memory` (CUDA parameters only, so it skips at once where there is no GPU).

Inputs are prepared in ``setup_cache`` (once per class and run: generation, network flows) and
cached on disk (:mod:`cpbench.measure.inputs`); ``setup`` only loads them. Every combination is guarded:
a prediction of its memory above what is available skips it with the reason.

Grids: quick by default; ``CPBENCH_FULL=1`` gives the full grids (same benchmarks).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from typing import Any, TypeVar

from cpbench.measure import probes

T = TypeVar("T")


#: environment variable that fixes the thread count of every pool the stages use
THREADS_ENV = "CPBENCH_THREADS"
#: threads when CPBENCH_THREADS is unset: the 2 cores of the machine the example results come from
DEFAULT_THREADS = 2
#: the least a sample of a short stage lasts, seconds
SHORT_SAMPLE_S = 0.05
#: what torch (intra-op, OpenMP), numpy's BLAS, numba and OpenCV (cellpose's resize) read at import time
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
               "OPENCV_FOR_THREADS_NUM")


def pin_threads() -> int:
    """Fix the threads of torch, numba, OpenCV, OpenMP and BLAS to ``$CPBENCH_THREADS`` (default 2) through
    the variables they read at import time; returns the count. Call before numpy/torch/numba are
    imported (benchmarks/__init__.py does): nothing about the host then changes what is measured,
    and ``bench_reference.track_threads`` records the count with every run."""
    text = os.environ.get(THREADS_ENV, str(DEFAULT_THREADS))
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{THREADS_ENV} must be a whole number >= 1, got {text!r}")
    for var in THREAD_VARS:
        os.environ[var] = text
    return int(text)


def full_mode() -> bool:
    """True when ``CPBENCH_FULL=1``: the larger parameter grids."""
    return os.environ.get("CPBENCH_FULL", "") == "1"


def grid(quick: Sequence[T], full: Sequence[T]) -> list[T]:
    """``full`` under ``CPBENCH_FULL=1``, else ``quick``."""
    return list(full if full_mode() else quick)


# ----- parameter grids (explicit: nothing about the machine changes what is measured) -------
SIZES = grid(["256", "512", "1024"], ["256", "512", "1024", "2048", "4096", "8192", "full"])
"""Side of the centred square crop, pixels, or ``full`` (the whole frame)."""
DATASETS = grid(["synthetic"], ["synthetic", "synthetic-bare", "synthetic-sparse", "synthetic-packed",
                                "exemplar-001", "LUNG-1-LN", "WD-76845-097"])
"""``synthetic`` (the typical slide), its density variants (inputs.DENSITIES: cpbench sweep density) and
the challenge images (once fetched)."""
DEVICES = ["cpu", "cuda"]
MODELS = grid(["reference", "random"], ["reference", "random", "nuclei", "cpsam"])
"""``random``: the release's own architecture at random weights (3.x CPnet, 4.x Cellpose-SAM): time
and memory only, the network of every release; ``reference`` (a CPnet) runs on 3.x only."""
DIAMETER = 13.0
"""Nucleus diameter given to Cellpose, pixels: the synthetic nuclei's mean (rescale 17/13)."""
DIAMETERS = grid([13.0, 30.0], [13.0, 17.0, 30.0])
BSIZES = grid(["default"], ["default", "224", "256"])
"""Network tile side, pixels; ``default``: the release's own (3.x 224, 4.x 256, the only one
Cellpose-SAM runs)."""
BATCH_SIZES = grid([8], [1, 8, 32])
TILE_OVERLAPS = grid([0.1], [0.1, 0.25, 0.5])
AUGMENTS = grid([False], [False, True])
NITERS = grid([200], [50, 100, 200, 400])
FLOW_THRESHOLDS = grid([0.4], [0.0, 0.4, 0.8])
CELLPROB_THRESHOLDS = grid([0.0], [-2.0, 0.0, 2.0])
MIN_SIZES = grid([15], [0, 15, 100])
FLOW_SOURCES = ["network", "ground_truth"]
COMPRESSIONS = grid(["none", "zlib"], ["none", "zlib", "zstd", "lzw"])
TILE_NORMS = grid([0], [0, 256])

#: Cellpose's fast settings (question 4 of the challenge): name -> what ``eval`` gets that differs from its
#: defaults (``stages.eval_end_to_end``'s keywords). Each knob alone, then the knobs Cellpose documents as
#: speed-for-accuracy trades together (``fast``: no resampling, the fewest tile overlap 3.x allows, half the
#: iterations) and with one network tile per batch (the CPU's best batch in the parameter sweep).
FAST_SETTINGS: dict[str, dict[str, object]] = {
    "default": {},
    "resample_off": {"resample": False},
    "niter_100": {"niter": 100},
    "niter_50": {"niter": 50},
    "overlap_0.05": {"tile_overlap": 0.05},
    "augment": {"augment": True},
    "batch_1": {"batch_size": 1},
    "batch_32": {"batch_size": 32},
    "bsize_256": {"bsize": 256},
    "fast": {"resample": False, "tile_overlap": 0.05, "niter": 100},
    "fast_batch_1": {"resample": False, "tile_overlap": 0.05, "niter": 100, "batch_size": 1},
}
SETTINGS = grid(["default", "fast"], list(FAST_SETTINGS))
#: input channels of the CPnet in the channel study (question 5): 2 is the nuclei model's
NCHANS = grid([2, 4], [1, 2, 3, 4, 8])
#: trained models of the fast-settings study (random weights find no nuclei: no accuracy to trade)
STUDY_MODELS = grid(["reference"], ["reference", "nuclei", "cpsam"])
#: sizes of the two studies (fast settings, channels); the quick grid runs them at 256 px only
STUDY_SIZES = grid(["256"], SIZES)

#: each parameter's default value, as asv writes it (quotes removed): the value a stage is shown at
#: when another parameter or the size varies (tables, sweeps, report)
PARAM_DEFAULTS = {"dataset": "synthetic", "model": "reference", "bsize": "default", "batch_size": "8",
                  "tile_overlap": "0.1", "augment": "False", "niter": "200", "cellprob_threshold": "0.0",
                  "flow_threshold": "0.4", "min_size": "15", "flows": "network", "tile_norm_blocksize": "0",
                  "diameter": "13.0", "compression": "zlib", "block": "2048",
                  "setting": "default", "nchan": "2"}
#: parameters a study varies (its own sweep kind, cpbench sweep fast / channels): the scaling and
#: parameter sweeps leave the classes that have one out
STUDY_PARAMS = {"setting": "fast", "nchan": "channels"}


def asv_value(v: str) -> str:
    """A parameter value as asv writes it (``repr``: ``"'1024'"``, ``"8"``) without its quotes."""
    return v[1:-1] if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"" else v


#: the finest stage peak the memory probe resolves here, bytes. Measured on this machine: the same
#: get_masks call at 256 px read 1.7 to 2.6 MB from one call to the next, at 512 px 7.3 to 10.7 MB,
#: in one thread as in two (the resident-set counters are page- and batch-granular and the kernel
#: reclaims pages in the background). A peak is therefore the least of several calls where calls
#: are cheap, and a smaller peak reads as this value: asv's 10 % rule must not see a few pages.
MEMORY_RESOLUTION_BYTES = 4 * 2**20
#: calls of a short stage whose least peak is its stage peak
MEMORY_CALLS = 5
#: a stage that is not short is called again for its stage peak (up to MEMORY_CALLS calls) while its
#: calls so far took less than this, seconds: a single call of a 50 ms stage (mask recovery at 256 px)
#: read 4.2 or 4.8 MB from one asv process to the next, a 15 % "change" of the same code
MEMORY_CHEAP_S = 1.0

#: rounds and repeat of the whole-network stages (seconds a call even at 512 px): 4 processes of
#: a warm-up and 1-2 samples (their spread between processes is small: torch's convolutions)
LONG_ROUNDS, LONG_REPEAT = 4, (1, 2, 40.0)


def calls_per_sample(call_s: float, min_sample_s: float, max_number: int) -> int:
    """Calls per sample so that a sample lasts at least ``min_sample_s`` seconds given one call of
    ``call_s`` seconds; between 1 and ``max_number``."""
    if call_s <= 0:
        return max_number
    return max(1, min(max_number, math.ceil(min_sample_s / call_s)))


def version_number(version: str) -> float:
    """A release as one number for asv's track benchmarks: ``major + minor/100 + patch/10000``
    (``"2.13.0+cpu"`` -> 2.13, ``"12.8"`` -> 12.08); local labels and pre-release tags are dropped."""
    from packaging.version import Version

    major, minor, patch = (*Version(version).release, 0, 0)[:3]
    return round(major + minor / 100 + patch / 10000, 4)


def torch_build() -> tuple[float, float]:
    """(torch's version, the CUDA version its build targets or 0 for a CPU-only build), each as
    :func:`version_number`: which torch measured a result (a CUDA build runs on the CPU too)."""
    import torch

    return version_number(torch.__version__), version_number(torch.version.cuda or "0")


#: comma-separated sizes: prepare_suite makes inputs for these only (cpbench sweep sets it; a benchmark
#: still makes a missing input in its setup)
PREPARE_SIZES_ENV = "CPBENCH_PREPARE_SIZES"


def prepare_suite() -> None:
    """Make every cached input the current grid needs: the synthetic slide, the crops and their
    ground truth, network flows (reference model, default settings) and ground-truth flows
    (only the sizes in ``$CPBENCH_PREPARE_SIZES`` when it is set).
    Combinations that cannot be made here (an image not fetched, weights absent) are left out;
    their benchmarks skip with the reason."""
    from tqdm import tqdm

    from cpbench.measure import inputs

    inputs.synthetic_slide()
    only = [x for x in os.environ.get(PREPARE_SIZES_ENV, "").split(",") if x]
    combos = [(d, s) for d in DATASETS for s in SIZES if not only or s in only]
    for dataset, size in tqdm(combos, desc="benchmark inputs", unit="crop"):
        try:
            inputs.nuclear_crop(dataset, size)
            inputs.network_flows(dataset, size, "reference", DIAMETER)
            inputs.mask_stage_inputs(dataset, size, "network", "reference", DIAMETER)
            if inputs.is_synthetic(dataset):
                inputs.mask_stage_inputs(dataset, size, "ground_truth", "reference", DIAMETER)
        except NotImplementedError:
            continue


#: the largest crop side (pixels) the quick grid runs Cellpose-SAM at on a CPU
SAM_QUICK_MAX_SIZE = 256


def bsize_value(bsize: str) -> int | None:
    """The ``bsize`` parameter as ``run_network`` takes it: None for ``default``, else pixels."""
    return None if bsize == "default" else int(bsize)


def require_affordable_network(size: str, device: str) -> None:
    """NotImplementedError (asv: skip) for Cellpose-SAM on a CPU above :data:`SAM_QUICK_MAX_SIZE`
    in the quick grid: ~9 s per 256-px tile on 2 cores, and at diameter 13 a 512-px crop is
    36 tiles (5 minutes a call); ``CPBENCH_FULL=1`` runs every size."""
    from cpbench import stages as cs

    if (not full_mode() and device == "cpu" and not cs.runs_cpnet_weights() and size.isdigit()
            and int(size) > SAM_QUICK_MAX_SIZE):
        raise NotImplementedError(f"skipped: Cellpose-SAM on the CPU runs at {SAM_QUICK_MAX_SIZE} px only in the "
                                  "quick grid (~9 s per 256-px tile); CPBENCH_FULL=1 runs every size")


def require_device(device: str) -> None:
    """NotImplementedError (asv: skip) when ``device`` is not available here."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise NotImplementedError("skipped: no CUDA device here")


class Stage:
    """Base class of the asv stage benchmarks (see the module docstring)."""

    number = 1  # calls per sample; stages with min_sample_s set it per process (see setup)
    # 6 processes (rounds) a benchmark, each a whole suite apart, 1 to 2 samples each, no more samples
    # after 20 s. On this shared VM the speed of the host drifts over seconds (a numpy loop: 0.46 to
    # 0.66 ms from one half second to the next), so the samples of one process agree with each other
    # but processes differ by up to +-20 %: the median of a run is only as steady as the number of
    # processes under it. (asv's default: 2 rounds.)
    rounds = 6
    repeat = (1, 2, 20.0)
    # exactly one warm-up call per process before the samples (asv stops warming up once this much
    # time has passed, after at least one call): lazy imports, numba cache loads and torch's thread
    # pool start are paid there, not in the first sample. --quick sets it to 0 (one sample, no warm-up).
    warmup_time = 1e-6
    #: seconds a sample should last at least; 0: one call per sample. A stage with a value here gets
    #: ``number`` = enough calls (at most ``max_number``), from one untimed call in the process's
    #: first setup, which is also its warm-up (even under --quick). asv_runner re-runs
    #: setup before each of those calls and times the calls alone, so a sample is ``number`` fresh
    #: calls: a 1 ms stage is no longer timed by one call at the scheduler's mercy.
    min_sample_s = 0.0
    max_number = 20
    #: make one unmeasured call before the stage peak (a process's first call of a mask stage
    #: reads 1.5 to 4.5 MB more: numba's cache loads). Off for the whole-network stages: a call
    #: lasts seconds to minutes, and their first-call costs are small beside peaks of 100s of MB.
    memory_warmup = True
    timeout = 1800.0  # seconds, for the largest quick case with headroom; full mode: see subclasses
    device = "cpu"

    # --- to implement -----------------------------------------------------------------
    def prepare(self, *params: Any) -> None:
        """Load the inputs for ``params`` into ``self`` (not measured)."""
        raise NotImplementedError

    def run(self) -> Any:
        """The stage: one library call on the prepared inputs."""
        raise NotImplementedError

    def predicted_bytes(self) -> int:
        """Peak host bytes the stage is expected to need (memory guard); 0 = no guard."""
        return 0

    # --- asv protocol -----------------------------------------------------------------
    def setup_cache(self) -> str:
        # asv keys setup_cache by where it is defined, so this one runs once for the whole suite;
        # it must return something other than None for asv to pass it to setup and benchmarks
        prepare_suite()
        from cpbench.measure.inputs import data_dir

        return str(data_dir())

    setup_cache.timeout = 7200.0  # type: ignore[attr-defined]  # seconds; full grids render 8192² crops

    def setup(self, _cache: Any, *params: Any) -> None:
        self.prepare(*params)
        predicted = self.predicted_bytes()
        if predicted:
            probes.memory_guard(predicted)
        if self.min_sample_s > 0 and getattr(self, "_calibrated", None) != params:
            self._calibrated = params
            self.number = calls_per_sample(probes.timed(self._call), self.min_sample_s, self.max_number)
            self.warmup_time = 0.0  # that call was the warm-up
            self.prepare(*params)  # the untimed call may have changed its inputs in place

    def _call(self) -> Any:
        sync = probes._synchronizer(self.device)
        out = self.run()
        sync()
        return out

    def time_stage(self, _cache: Any, *params: Any) -> None:
        self._call()

    def peakmem_stage(self, _cache: Any, *params: Any) -> None:
        probes.fix_malloc_thresholds()  # repeatable peaks (see there); time_stage keeps glibc's default
        self._call()

    def track_stage_peak_bytes(self, _cache: Any, *params: Any) -> int:
        """Stage peak, bytes: the least of several calls, inputs prepared afresh for each — for short
        stages ``number`` calls, at least :data:`MEMORY_CALLS`; for the others up to
        :data:`MEMORY_CALLS` while the calls so far took under :data:`MEMORY_CHEAP_S` seconds (one
        call of a slow stage) — and at least :data:`MEMORY_RESOLUTION_BYTES`. Every call measured is
        a warm one: short stages made their untimed call in ``setup``; the others make one here when
        ``memory_warmup`` is set."""
        probes.fix_malloc_thresholds()
        short = self.min_sample_s > 0
        if not short and self.memory_warmup:
            self._call()  # numba cache loads and lazy buffers of a first call are not the stage's
            self.prepare(*params)
        peaks: list[int] = []
        spent = 0.0
        while True:
            if peaks:
                self.prepare(*params)
            start = time.perf_counter()
            with probes.StagePeak() as peak:
                self._call()
            spent += time.perf_counter() - start
            peaks.append(peak.bytes)
            if len(peaks) >= (max(self.number, MEMORY_CALLS) if short else MEMORY_CALLS):
                break
            if not short and spent >= MEMORY_CHEAP_S:
                break
        return max(min(peaks), MEMORY_RESOLUTION_BYTES)

    track_stage_peak_bytes.unit = "bytes"  # type: ignore[attr-defined]


class DeviceStage(Stage):
    """A stage that runs on CPU or CUDA: ``prepare`` sets ``self.device``. Its GPU peak memory is
    measured by the class :func:`gpu_memory` derives from it, so that CPU-only runs do not pay a
    setup per combination just to skip it."""


def _track_gpu_peak_bytes(self: Stage, _cache: Any, *params: Any) -> int:
    """Peak CUDA memory allocated by the stage, bytes (torch's caching allocator)."""
    return probes.cuda_peak_bytes(self._call, self.device)[1]


_track_gpu_peak_bytes.unit = "bytes"  # type: ignore[attr-defined]


def gpu_memory(cls: type[DeviceStage], name: str) -> type[DeviceStage]:
    """A benchmark class with only ``track_gpu_peak_bytes`` of stage ``cls``, on its CUDA params.

    Assign it to a module attribute called ``name`` in the benchmark file."""
    params = list(cls.params)  # type: ignore[attr-defined]
    params[list(cls.param_names).index("device")] = [d for d in DEVICES if d.startswith("cuda")]  # type: ignore[attr-defined]
    ns: dict[str, Any] = {
        "__doc__": f"GPU peak memory of {cls.__name__} (CUDA only).",
        "__module__": cls.__module__,
        "__qualname__": name,
        "params": tuple(params),
        "time_stage": None, "peakmem_stage": None, "track_stage_peak_bytes": None, "track_ap50": None,
        "track_gpu_peak_bytes": _track_gpu_peak_bytes,
    }
    return type(name, (cls,), ns)


class Accuracy:
    """Mixin: ``track_ap50``, AP@0.5 of ``self.run()``'s labels against ``self.gt`` (skipped when None)."""

    gt: Any = None

    def track_ap50(self, _cache: Any, *params: Any) -> float:
        if self.gt is None:
            from asv_runner.benchmarks.mark import SkipNotImplemented

            raise SkipNotImplemented("no ground truth for this dataset")
        from cpbench.stages import average_precision

        return float(average_precision(self.gt, self.run(), (0.5,))[0])  # type: ignore[attr-defined]

    track_ap50.unit = "AP@0.5"  # type: ignore[attr-defined]
