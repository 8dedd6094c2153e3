"""Baselines and settings every other benchmark is read against: the process with only the imports
(peakmem_reference, the baseline of every peakmem_*) and the thread counts the stages run with."""


def peakmem_reference() -> None:
    """Whole-process peak of the imports alone, bytes."""


peakmem_reference.version = "1"  # type: ignore[attr-defined]


def track_threads() -> int:
    """Intra-op threads torch uses in a benchmark process (fixed by $CPBENCH_THREADS)."""
    import torch

    return int(torch.get_num_threads())


track_threads.unit = "threads"  # type: ignore[attr-defined]
track_threads.version = "1"  # type: ignore[attr-defined]


def track_numba_threads() -> int:
    """Threads numba's parallel loops use in a benchmark process (fixed by $CPBENCH_THREADS)."""
    import numba

    return int(numba.get_num_threads())


track_numba_threads.unit = "threads"  # type: ignore[attr-defined]
track_numba_threads.version = "1"  # type: ignore[attr-defined]


def track_opencv_threads() -> int:
    """Threads OpenCV's parallel loops use (cv2.resize in rescale; fixed by $CPBENCH_THREADS)."""
    import cv2

    return int(cv2.getNumThreads())


track_opencv_threads.unit = "threads"  # type: ignore[attr-defined]
track_opencv_threads.version = "1"  # type: ignore[attr-defined]


def track_torch_version() -> float:
    """The torch that measured the results, as major + minor/100 + patch/10000 (2.13 = 2.13.0)."""
    from cpbench.measure.suite import torch_build

    return torch_build()[0]


track_torch_version.unit = "version"  # type: ignore[attr-defined]
track_torch_version.version = "1"  # type: ignore[attr-defined]


def track_torch_cuda_build() -> float:
    """The CUDA version torch was built for (12.08 = 12.8), 0 for a CPU-only build: a CUDA build
    also runs on the CPU, and its CPU kernels and memory footprint are not the CPU build's."""
    from cpbench.measure.suite import torch_build

    return torch_build()[1]


track_torch_cuda_build.unit = "CUDA version (0: CPU build)"  # type: ignore[attr-defined]
track_torch_cuda_build.version = "1"  # type: ignore[attr-defined]
