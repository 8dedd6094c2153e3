"""Writing files safely: atomic replacement, free-space and writability checks, npz caches.

Every file cpbench writes goes through :func:`atomic_path`: it is written under a hidden
temporary name beside its final name and renamed at the end, so a final name only ever holds a
whole file, and an error leaves nothing behind. Sizes are bytes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from cpbench.errors import UserError


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path`` (hidden, ending ``.partial``, unique per call);
    rename it to ``path`` on success, delete it on error. A final name only ever holds a whole file."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_free_space(directory: Path, needed: int) -> None:
    """Raise :class:`UserError` if ``directory``'s file system has less than ``needed`` bytes free."""
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise UserError(
            f"not enough disk space in {directory}: the output needs about {needed / 1e9:.2f} GB, "
            f"{free / 1e9:.2f} GB are free; free some space or write elsewhere with --out"
        )


def unwritable_reason(directory: Path) -> str | None:
    """None when a file can be created in ``directory``; otherwise the operating system's reason."""
    try:
        with tempfile.TemporaryFile(dir=directory):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write ``arrays`` to an uncompressed ``.npz`` at ``path``, atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def load_npz(path: Path, *names: str) -> tuple[np.ndarray, ...]:
    """The arrays ``names`` of the ``.npz`` at ``path``, read into memory, in that order."""
    with np.load(path) as z:
        return tuple(z[n] for n in names)
