"""Baseline for every peakmem_*: a benchmark process (imports of benchmarks/__init__.py) that does nothing."""


def peakmem_reference() -> None:
    """Whole-process peak of the imports alone, bytes."""


peakmem_reference.version = "1"  # type: ignore[attr-defined]
