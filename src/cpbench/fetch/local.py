"""What of a remote file is already on local disk: final files, partial downloads, locks, space.

Unfinished downloads live in ``<dest>/partial-downloads/`` under synapseclient's own names until
they are verified and renamed to ``<dest>/<file>``. Sizes are bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cpbench.errors import UserError
from cpbench.fetch.catalogue import entry_matches_file, manifest_entry
from cpbench.io.files import unwritable_reason

if TYPE_CHECKING:
    from cpbench.fetch.remote import RemoteFile

#: sub-folder of the destination where unfinished downloads live until verified
PARTIAL_DIR = "partial-downloads"
#: lock file in the destination folder (empty; see dest_lock)
LOCK_NAME = ".cpbench-fetch.lock"
#: free space kept beyond the bytes still to download, bytes
DISK_MARGIN_BYTES = 64 * 2**20
#: read size when hashing local files, bytes
MD5_BLOCK_BYTES = 8 * 2**20


@dataclass(frozen=True)
class LocalState:
    """What of a remote file is already in the destination folder."""

    #: "present" (recorded, unchanged), "unverified" (a file, not yet checked), "partial" (resumable),
    #: "scattered" (left by an interrupted --parallel download: not a prefix, cannot resume), "absent"
    status: str
    path: Path  #: the final file, or the partial file for "partial"
    partial_bytes: int = 0  #: bytes already in the partial file


def partial_path(remote: RemoteFile, dest: Path) -> Path:
    """Where synapseclient keeps the unfinished download of ``remote`` (its own naming)."""
    return Path(dest) / PARTIAL_DIR / f"{remote.image.file_name}.synapse_download_{remote.file_handle_id}"


def parallel_marker(remote: RemoteFile, dest: Path) -> Path:
    """Present while synapseclient's multi-threaded downloader fills the partial file.

    That downloader writes 8 MiB parts at their offsets in any order, so what an interrupted parallel
    download leaves is not a prefix of the file and must not be resumed with a Range request.
    """
    return partial_path(remote, dest).with_name(partial_path(remote, dest).name + ".parallel")


def staged_path(remote: RemoteFile, dest: Path) -> Path:
    """Where a verified download waits before it is renamed to its final name."""
    return Path(dest) / PARTIAL_DIR / remote.image.file_name


def _entry_is_for(entry: dict[str, Any], remote: RemoteFile) -> bool:
    return entry.get("md5") == remote.md5 and entry.get("size_bytes") == remote.size_bytes


def local_state(remote: RemoteFile, dest: Path) -> LocalState:
    """What of ``remote`` is in ``dest`` (no hashing; see :class:`LocalState`)."""
    final = Path(dest) / remote.image.file_name
    if final.exists():
        entry = manifest_entry(remote.image.name, dest)
        if entry and _entry_is_for(entry, remote) and entry_matches_file(entry, final):
            return LocalState("present", final)
        return LocalState("unverified", final)
    part = partial_path(remote, dest)
    if part.is_file():
        if parallel_marker(remote, dest).exists():
            return LocalState("scattered", part, part.stat().st_size)
        return LocalState("partial", part, part.stat().st_size)
    return LocalState("absent", final)


def md5_file(path: Path, *, desc: str | None = None, quiet: bool = False) -> str:
    """Hex MD5 of a file, with a tqdm bar (bytes, rate) unless ``quiet``."""
    from tqdm import tqdm

    h = hashlib.md5(usedforsecurity=False)
    size = path.stat().st_size
    with open(path, "rb") as fh, tqdm(
        total=size, unit="B", unit_scale=True, desc=desc or f"MD5 {path.name}", disable=quiet, leave=False
    ) as bar:
        while block := fh.read(MD5_BLOCK_BYTES):
            h.update(block)
            bar.update(len(block))
    return h.hexdigest()


def free_bytes(path: Path) -> int:
    """Free space on the file system holding ``path``, bytes."""
    return shutil.disk_usage(path).free


def human_bytes(n: float) -> str:
    """``n`` bytes in decimal units (kB, MB, GB, TB), as tqdm shows rates."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def kept_note(remote: RemoteFile, dest: Path) -> str:
    """Half a sentence on what of an interrupted download of ``remote`` is kept for resuming."""
    part = partial_path(remote, dest)
    if part.is_file() and part.stat().st_size > 0 and not parallel_marker(remote, dest).exists():
        return (f"the partial download ({human_bytes(part.stat().st_size)} of "
                f"{human_bytes(remote.size_bytes)}) is kept at {part}")
    return "nothing was kept"


def ensure_writable(dest: Path) -> None:
    """Create ``dest`` if needed; :class:`UserError` naming the reason when files cannot be written there."""
    try:
        dest.mkdir(parents=True, exist_ok=True)
        reason = unwritable_reason(dest)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
    if reason is not None:
        raise UserError(f"cannot write to the destination {dest}: {reason}; pick a writable folder with --dest")


@contextlib.contextmanager
def dest_lock(dest: Path) -> Iterator[None]:
    """One ``cpbench fetch`` at a time per destination: two would write the same partial file.

    An advisory ``flock`` on ``dest/.cpbench-fetch.lock`` (POSIX); the OS releases it when the
    process ends, however it ends. Where ``fcntl`` is missing (Windows) there is no lock.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(dest / LOCK_NAME, "a") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UserError(
                f"another cpbench fetch is working in {dest}; wait for it to finish or stop it, then run again"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def drop_stale_partials(remote: RemoteFile, dest: Path, say: Callable[[str], None]) -> None:
    """Remove partial downloads of older versions (other file handles) of the same file."""
    folder = Path(dest) / PARTIAL_DIR
    keep = {partial_path(remote, dest).name, parallel_marker(remote, dest).name}
    for p in folder.glob(f"{remote.image.file_name}.synapse_download_*") if folder.is_dir() else []:
        if p.name not in keep:
            say(f"{remote.image.name}: removing the partial download of an older version ({p})")
            p.unlink(missing_ok=True)


def drop_empty(folder: Path) -> None:
    """Remove ``folder`` if it is empty; leave it otherwise."""
    with contextlib.suppress(OSError):
        folder.rmdir()
