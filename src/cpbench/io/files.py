"""Writing files safely: atomic replacement, free-space and writability checks, npz caches.

Every file cpbench writes goes through :func:`atomic_path`: it is written under a hidden
temporary name beside its final name and renamed at the end, so a final name only ever holds a
whole file, and an error leaves nothing behind. Sizes are bytes.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import secrets
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from cpbench.errors import UserError


def _new_partial(path: Path) -> Path:
    """Create an empty, hidden ``.NAME.<random>.partial`` beside ``path`` and return its path.

    Created with mode 0o666 so that the user's umask decides the final mode, as for
    ``open(path, "w")`` (``tempfile.mkstemp`` would make it 0600: unreadable to colleagues).
    """
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"could not create a unique temporary file beside {path}")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path`` (hidden, ending ``.partial``, unique per call);
    rename it to ``path`` on success, delete it on error. A final name only ever holds a whole file.

    The file gets the mode ``open(path, "w")`` would give under the current umask (0644 with 022)."""
    path = Path(path)
    tmp = _new_partial(path)
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


def check_new_output(out: Path, overwrite: bool) -> None:
    """One-line errors for ``--out`` that exists (without ``overwrite``), lies in a missing folder, or in
    a folder this process cannot write in."""
    if out.exists() and not overwrite:
        raise UserError(f"{out} exists: pass --overwrite to replace it, or choose another --out")
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: the folder {out.parent} does not exist; create it first")
    reason = unwritable_reason(out.parent)
    if reason:
        raise UserError(f"--out {out}: cannot write in {out.parent} ({reason}); choose another --out")


def unwritable_reason(directory: Path) -> str | None:
    """None when a file can be created in ``directory``; otherwise the operating system's reason."""
    try:
        with tempfile.TemporaryFile(dir=directory):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write ``arrays`` to an uncompressed ``.npz`` at ``path``, atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def load_npz(path: Path, *names: str) -> tuple[np.ndarray, ...]:
    """The arrays ``names`` of the ``.npz`` at ``path``, read into memory, in that order."""
    with np.load(path) as z:
        return tuple(z[n] for n in names)


def _tar_member_problem(member: tarfile.TarInfo) -> str | None:
    """Why ``member`` must not be extracted (it would write or point outside the folder, or it is a
    device), or None. Names are POSIX paths relative to the folder being extracted into."""
    name = member.name
    if name.startswith("/") or os.path.isabs(name):
        return "an absolute path"
    if ".." in posixpath.normpath(name).split("/"):
        return "a path leaving the folder (..)"
    if member.issym() or member.islnk():
        kind, target = ("a link", member.linkname) if member.issym() else ("a hard link", member.linkname)
        if target.startswith("/") or os.path.isabs(target):
            return f"{kind} to an absolute path ({target})"
        # a symbolic link resolves from its own folder, a hard link from the archive's top
        base = posixpath.dirname(name) if member.issym() else ""
        if posixpath.normpath(posixpath.join(base, target)).split("/")[0] == "..":
            return f"{kind} leaving the folder ({target})"
    if member.isdev():
        return "a device or pipe"
    return None


def extract_tar(tar: tarfile.TarFile, dest: Path, what: str) -> None:
    """Extract every member of ``tar`` into ``dest``, refusing (:class:`UserError`, nothing extracted)
    an archive with a member that has an absolute path, leaves ``dest`` through ``..``, is a link
    pointing outside ``dest``, or is a device. The same checks on every Python; where the standard
    library has extraction filters (3.10.12+, 3.11.4+, 3.12) its ``"data"`` filter applies as well.
    ``what`` names the archive in the message."""
    members = tar.getmembers()
    for member in members:
        problem = _tar_member_problem(member)
        if problem:
            raise UserError(f"{what} holds {member.name!r}, {problem}: refusing to unpack it; "
                            "get the archive from a trusted index")
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, members=members, filter="data")
    else:  # checked above; no setuid/setgid bits from an archive
        tar.extractall(dest, members=members)
        for member in members:
            if member.isfile() and member.mode & 0o6000:
                os.chmod(Path(dest) / member.name, member.mode & 0o777)
