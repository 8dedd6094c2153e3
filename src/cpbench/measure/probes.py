"""Measurement probes: per-stage peak host memory, GPU peak memory, timing, memory guards.

Units: memory in **bytes** (``int``), time in **seconds** (``float``). ``GB`` in messages is 1e9 bytes.

Per-stage host memory (:class:`StagePeak`, :func:`stage_peak_rss`) uses the Linux kernel's
resident-set high-water mark: write ``5`` to ``/proc/self/clear_refs`` (resets ``VmHWM`` to the
current ``VmRSS``), read ``VmRSS`` as the baseline, run the stage, read ``VmHWM``. The stage
peak is ``VmHWM - baseline``: the most resident memory the stage added on top of what was
already there, so inputs prepared before the stage (and alive during it) are excluded.

Pitfall (measured on this project, see shared/DESIGN.md): memory that was freed earlier in the
process but kept by the C allocator (glibc heap holes) is reused by the stage without raising
RSS, so a bare ``clear_refs``/``VmHWM`` delta under-reports a stage that runs after another
stage freed memory (seen: 256 MB reported for a 336 MB stage; in ``tests/measure/test_probes.py`` a
256 MiB stage after a freed 512 MiB one reads as ~0 without the trim). Therefore, before the
reset, :class:`StagePeak` runs ``gc.collect()`` and glibc ``malloc_trim(0)`` (through ctypes;
a no-op where the C library is not glibc), which hands those free pages back to the kernel, so
the result does not depend on what ran earlier in the process.

Where ``/proc/self/clear_refs`` cannot be written, the default method raises
:class:`ProbeUnavailable` (a ``NotImplementedError``, which asv treats as "skip" when raised in
``setup``). ``method="tracemalloc"`` is an explicit, documented fallback that sees only
allocations reported to :mod:`tracemalloc` (Python objects and NumPy buffers; not torch, not
OpenCV, not numba); the method used is recorded in :attr:`StagePeak.method`.
Nothing switches methods silently.

Caution: resetting ``VmHWM`` also lowers ``getrusage().ru_maxrss`` (checked here), which is what
asv's ``peakmem_*`` reads; use :class:`StagePeak` in ``track_*`` benchmarks only, never inside a
``peakmem_*`` benchmark or its setup.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

T = TypeVar("T")

Method = Literal["clear_refs", "tracemalloc"]

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_MEMINFO = Path("/proc/meminfo")

GB = 1e9
"""Bytes per GB in messages (decimal)."""


class ProbeUnavailable(NotImplementedError):
    """The requested measurement cannot be made on this machine (asv: skip when raised in setup)."""


# --------------------------------------------------------------------------------------------
# host memory
# --------------------------------------------------------------------------------------------


def _status_bytes(key: str) -> int:
    """Value of ``key`` (e.g. ``"VmRSS"``) from /proc/self/status, in bytes (the file says kB)."""
    with _STATUS.open() as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise ProbeUnavailable(f"{key} not found in {_STATUS}")


def rss_bytes() -> int:
    """Current resident set size of this process, bytes."""
    return _status_bytes("VmRSS")


def hwm_bytes() -> int:
    """Resident-set high-water mark of this process since start or the last reset, bytes."""
    return _status_bytes("VmHWM")


def clear_refs_available() -> bool:
    """True where ``/proc/self/clear_refs`` is writable (checked with ``os.access``, without
    resetting anything, so it is safe in ``peakmem_*`` setups)."""
    return os.access(_CLEAR_REFS, os.W_OK)


def _reset_hwm() -> None:
    with _CLEAR_REFS.open("w") as f:
        f.write("5")


def require_clear_refs() -> None:
    """Raise :class:`ProbeUnavailable` unless per-stage RSS can be measured here (for asv setup)."""
    if not clear_refs_available():
        raise ProbeUnavailable(
            f"skipped: {_CLEAR_REFS} is not writable here, so the per-stage RSS high-water mark "
            "cannot be reset (use StagePeak(method='tracemalloc') for Python/NumPy-only figures)"
        )


def _glibc_function(name: str, argtypes: list[Any]) -> Callable[..., int] | None:
    """The C library's function ``name`` with an int result; None where it has none (musl, macOS)."""
    try:
        fn = getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None
    fn.argtypes = argtypes
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


_MALLOC_TRIM = _glibc_function("malloc_trim", [ctypes.c_size_t])
_MALLOPT = _glibc_function("mallopt", [ctypes.c_int, ctypes.c_int])

#: glibc's initial mmap and trim thresholds, bytes (``mallopt(3)``: M_MMAP_THRESHOLD, M_TRIM_THRESHOLD)
MALLOC_THRESHOLD_BYTES = 128 * 1024
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def fix_malloc_thresholds(threshold: int = MALLOC_THRESHOLD_BYTES) -> bool:
    """Freeze glibc's mmap and trim thresholds at ``threshold`` bytes (default: glibc's initial
    128 KiB) for the rest of the process; returns whether it was done (glibc only).

    By default glibc *raises* both thresholds each time a large mmapped block is freed (up to
    32 MiB), so whether a freed array goes back to the kernel or stays in the heap for the next
    allocation depends on everything the process did before. Resident-memory peaks then differ
    from process to process (measured here: whole-image ``eval`` at 512 px, 676 to 779 MB over
    six calls). Frozen, every block above the threshold is its own mapping, returned when freed:
    the peak is the memory the stage really holds (the same call, three processes: 646.7 to
    647.1 MB). Used by the memory benchmarks only; timings keep glibc's default behaviour.
    """
    if _MALLOPT is None:
        return False
    return bool(_MALLOPT(_M_MMAP_THRESHOLD, threshold)) and bool(_MALLOPT(_M_TRIM_THRESHOLD, threshold))


def release_free_memory() -> bool:
    """``gc.collect()`` then glibc ``malloc_trim(0)``; returns whether a trim was made (glibc only)."""
    gc.collect()
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True


class StagePeak:
    """Context manager measuring the peak host memory a stage adds, in bytes.

    >>> with StagePeak() as peak:
    ...     stage()
    >>> peak.bytes          # VmHWM during the stage minus VmRSS just before it

    Args:
        trim: run ``gc.collect()`` + ``malloc_trim(0)`` before the reset (default, and required
            for results that do not depend on earlier stages; ``False`` only to show the pitfall).
        method: ``"clear_refs"`` (kernel RSS high-water mark, everything the process touches) or
            ``"tracemalloc"`` (explicit fallback: Python and NumPy allocations only).

    Attributes after the block: ``bytes`` (stage peak), ``baseline_bytes`` (RSS, or traced bytes,
    before the stage), ``peak_bytes`` (absolute high-water mark during the stage), ``method``,
    ``trimmed`` (whether malloc_trim ran). ``bytes`` is clamped at 0.
    """

    def __init__(self, trim: bool = True, method: Method = "clear_refs") -> None:
        if method not in ("clear_refs", "tracemalloc"):
            raise ValueError(f"unknown method {method!r}")
        self.trim = trim
        self.method: Method = method
        self.bytes = 0
        self.baseline_bytes = 0
        self.peak_bytes = 0
        self.trimmed = False
        self._started_tracing = False

    def __enter__(self) -> StagePeak:
        if self.trim:
            self.trimmed = release_free_memory()
        if self.method == "clear_refs":
            try:
                _reset_hwm()
            except OSError as e:
                raise ProbeUnavailable(
                    f"cannot reset the RSS high-water mark ({_CLEAR_REFS}: {e}); "
                    "use StagePeak(method='tracemalloc') for Python/NumPy-only figures"
                ) from e
            self.baseline_bytes = rss_bytes()
        else:
            if not tracemalloc.is_tracing():
                tracemalloc.start()
                self._started_tracing = True
            tracemalloc.reset_peak()
            self.baseline_bytes = tracemalloc.get_traced_memory()[0]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.method == "clear_refs":
            self.peak_bytes = hwm_bytes()
        else:
            self.peak_bytes = tracemalloc.get_traced_memory()[1]
            if self._started_tracing:
                tracemalloc.stop()
        self.bytes = max(0, self.peak_bytes - self.baseline_bytes)


def stage_peak_rss(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, int]:
    """Run ``fn(*args, **kwargs)`` and return ``(result, stage peak bytes)``.

    The stage peak is measured by :class:`StagePeak` with its defaults (trim, ``clear_refs``):
    bytes of resident memory the call added above the RSS just before it. Raises
    :class:`ProbeUnavailable` where ``/proc/self/clear_refs`` is not writable.
    """
    with StagePeak() as peak:
        result = fn(*args, **kwargs)
    return result, peak.bytes


def available_memory_bytes() -> int:
    """Host memory a new allocation can get without swapping, bytes.

    ``MemAvailable`` from /proc/meminfo, lowered to the cgroup's remaining allowance
    (v2 ``memory.max - memory.current`` or v1 ``limit_in_bytes - usage_in_bytes``) where a
    limit is set.
    """
    avail = None
    with _MEMINFO.open() as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
                break
    if avail is None:
        raise ProbeUnavailable(f"MemAvailable not found in {_MEMINFO}")
    left = _cgroup_left_bytes()
    return avail if left is None else min(avail, left)


def _cgroup_left_bytes() -> int | None:
    pairs = [
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ]
    for limit_path, usage_path in pairs:
        try:
            limit_text = Path(limit_path).read_text().strip()
            usage = int(Path(usage_path).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit_text == "max" or int(limit_text) >= 2**60:
            return None
        return max(0, int(limit_text) - usage)
    return None


# --------------------------------------------------------------------------------------------
# GPU
# --------------------------------------------------------------------------------------------


def _is_cuda(device: Any) -> bool:
    return device is not None and str(device).startswith("cuda")


def _cuda_device(device: Any) -> Any:
    """torch.device for a CUDA ``device``; ProbeUnavailable for CPU/MPS or when CUDA is absent."""
    if not _is_cuda(device):
        raise ProbeUnavailable(f"skipped: device {device!r} is not a CUDA device")
    import torch

    if not torch.cuda.is_available():
        raise ProbeUnavailable("skipped: CUDA is not available in this torch build/machine")
    return torch.device(device)


def cuda_peak_bytes(fn: Callable[..., T], device: Any, *args: Any, **kwargs: Any) -> tuple[T, int]:
    """Run ``fn(*args, **kwargs)`` on ``device`` and return ``(result, stage GPU peak bytes)``.

    Stage GPU peak = ``torch.cuda.max_memory_allocated`` during the call minus
    ``memory_allocated`` just before it (tensors made before the call are excluded), after
    ``synchronize()`` + ``reset_peak_memory_stats()``; the call is synchronized before reading.
    Counts memory of torch's caching allocator only (not cuDNN workspaces outside it, not other
    processes). Raises :class:`ProbeUnavailable` (a NotImplementedError) for non-CUDA devices.
    """
    dev = _cuda_device(device)
    import torch

    torch.cuda.synchronize(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    before = torch.cuda.memory_allocated(dev)
    result = fn(*args, **kwargs)
    torch.cuda.synchronize(dev)
    return result, max(0, torch.cuda.max_memory_allocated(dev) - before)


def available_gpu_memory_bytes(device: Any) -> int:
    """Free memory on CUDA ``device`` (``torch.cuda.mem_get_info``), bytes; ProbeUnavailable on CPU."""
    dev = _cuda_device(device)
    import torch

    free, _total = torch.cuda.mem_get_info(dev)
    return int(free)


# --------------------------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------------------------


def _synchronizer(device: Any) -> Callable[[], None]:
    """A function that waits for queued work on ``device``: ``torch.cuda.synchronize`` or a no-op."""
    if not _is_cuda(device):
        return lambda: None
    dev = _cuda_device(device)
    import torch

    return lambda: torch.cuda.synchronize(dev)


def timed(fn: Callable[..., Any], device: Any = None, *args: Any, **kwargs: Any) -> float:
    """Wall-clock seconds of ``fn(*args, **kwargs)``; on CUDA the GPU work is synchronized inside.

    For a CUDA ``device`` queued GPU work is finished (``torch.cuda.synchronize``) before the
    clock starts and again before it stops, so asynchronous kernels are counted (CUDA requested
    but absent: :class:`ProbeUnavailable`). CPU/None: ``time.perf_counter`` around the call.
    """
    sync = _synchronizer(device)
    sync()
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    sync()
    return time.perf_counter() - t0


# --------------------------------------------------------------------------------------------
# memory model and guard
# --------------------------------------------------------------------------------------------

# Bytes per **full-resolution** image pixel. Measured on this project (2 cores, cellpose
# 3.1.1.2, torch 2.13 CPU); the tests check them with generous bounds.
MASKS_BYTES_PER_PIXEL = 60
"""Peak added by mask recovery (follow_flows + get_masks + flow QC + fill holes) from flows
already in memory. DESIGN.md measured ~60 B/px; tests/measure/test_probes.py measures ~75 B/px on a
1 MP image with half its pixels inside nuclei (bound checked: 0.25x..2x)."""

EVAL_BYTES_PER_PIXEL = 90
"""Growth of the whole-process peak of ``CellposeModel.eval`` per image pixel at rescale
17/30 (~0.57); DESIGN.md measured ~90 B/px on a 7.9 MP frame."""

EVAL_FIXED_BYTES = 1_000_000_000
"""Image-size-independent part of an eval process: interpreter + torch + cellpose (~0.53 GB
here) + network activations of one batch of tiles. Measured here (random nuclei net, every
pixel through the dynamics): process peak 0.97 GB at 0.26 MP, 1.31 GB at 1.05 MP, 1.39 GB at
4.2 MP; the model (1.0 GB + 90 B/px) x MARGIN covers all three (test at 0.26 MP)."""

MARGIN = 1.25
"""Safety factor applied to predictions in :func:`memory_guard`."""


def predict_masks_bytes(n_pixels: int) -> int:
    """Predicted peak bytes of the mask-recovery stages on an image of ``n_pixels`` pixels."""
    return int(MASKS_BYTES_PER_PIXEL * n_pixels)


def predict_eval_bytes(n_pixels: int) -> int:
    """Predicted whole-process peak bytes of an end-to-end 2D eval of ``n_pixels`` pixels."""
    return int(EVAL_FIXED_BYTES + EVAL_BYTES_PER_PIXEL * n_pixels)


def memory_guard(
    predicted_bytes: int,
    device: Any = None,
    available_bytes: int | None = None,
    margin: float = MARGIN,
) -> None:
    """Raise ``NotImplementedError`` (asv: skip) if ``predicted_bytes * margin`` will not fit.

    The message reads ``"skipped: predicted X GB > available Y GB"`` with X including the
    margin. ``available_bytes`` defaults to :func:`available_memory_bytes` (host) or, for a
    CUDA ``device``, :func:`available_gpu_memory_bytes`.
    """
    if available_bytes is None:
        available_bytes = available_gpu_memory_bytes(device) if _is_cuda(device) else available_memory_bytes()
    need = predicted_bytes * margin
    if need > available_bytes:
        where = f" on {device}" if _is_cuda(device) else ""
        raise NotImplementedError(
            f"skipped: predicted {need / GB:.2f} GB > available {available_bytes / GB:.2f} GB{where}"
        )
