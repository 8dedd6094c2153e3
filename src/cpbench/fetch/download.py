"""``fetch()``: resolve the challenge images on Synapse, download what is missing, verify, record.

Downloads: synapseclient writes to ``<dest>/partial-downloads/<file>.synapse_download_<handle id>``
and checks the MD5 Synapse reports; cpbench then renames the file to ``<dest>/<file>`` (same file
system, atomic) and records it in ``<dest>/manifest.json``. By default the transfer is one stream
that synapseclient resumes with an HTTP ``Range`` request from the partial file, within a run (after
a dropped connection) and across runs (after Ctrl-C, a crash, a full disk). ``parallel=True`` uses
synapseclient's multi-threaded downloader instead (8 MiB ranged parts, for files over 8 MiB on S3):
faster on fast links, but synapseclient starts such a download over when it is interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import errno
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cpbench.errors import UserError
from cpbench.fetch import local
from cpbench.fetch.catalogue import (
    DEFAULT_DEST,
    FOLDER_ID,
    PORTAL,
    TOKEN_HELP,
    ChallengeImage,
    resolve_names,
    write_manifest_entry,
)
from cpbench.fetch.errors import to_user_error
from cpbench.fetch.local import (
    DISK_MARGIN_BYTES,
    PARTIAL_DIR,
    LocalState,
    drop_empty,
    drop_stale_partials,
    human_bytes,
    kept_note,
    local_state,
    md5_file,
    parallel_marker,
    partial_path,
    staged_path,
)
from cpbench.fetch.remote import RemoteFile, resolve_remote
from cpbench.fetch.session import Session, connect, quiet_synapse_info

__all__ = ["PARTIAL_DIR", "FetchResult", "dry_run_report", "fetch"]


@dataclass(frozen=True)
class FetchResult:
    """Outcome for one image."""

    remote: RemoteFile
    state: LocalState  #: before this run
    action: str  #: "listed" (dry run), "present", "verified", "downloaded", "resumed"
    path: Path | None  #: the verified local file (None for a dry run of an absent file)


def fetch(
    names: Sequence[str],
    dest: Path = DEFAULT_DEST,
    *,
    dry_run: bool = False,
    parallel: bool = False,
    verify: bool = False,
    quiet: bool = False,
    config_path: Path | None = None,
    say: Callable[[str], None] = print,
) -> list[FetchResult]:
    """Fetch challenge images ``names`` (see :func:`cpbench.fetch.catalogue.resolve_names`) into ``dest``.

    Already present and recorded → nothing is downloaded (``verify=True`` re-hashes it). A file
    present but not recorded is hashed and adopted if its MD5 matches Synapse's. A partial download
    is resumed. Free space is checked before a download starts. ``dry_run`` only resolves and
    reports. ``config_path`` is synapseclient's config file (default ``~/.synapseConfig``: endpoints,
    cache location, auth token). ``say`` receives one line per event.

    Raises :class:`UserError` with a one-line message for everything the user can fix. Runs its own
    event loop (``asyncio.run``), so call it from synchronous code. Ctrl-C cannot stop synapseclient's
    transfer thread; the ``cpbench fetch`` command therefore exits at once on Ctrl-C (see fetch/cli.py).
    """
    images = resolve_names(names)
    dest = Path(dest)
    if not dry_run:
        local.ensure_writable(dest)
    config = Path(config_path).expanduser() if config_path else Path.home() / ".synapseConfig"
    with quiet_synapse_info(), (contextlib.nullcontext() if dry_run else local.dest_lock(dest)):
        return asyncio.run(_fetch(images, dest, dry_run, parallel, verify, quiet, config, say))


async def _fetch(
    images: list[ChallengeImage], dest: Path, dry_run: bool, parallel: bool, verify: bool, quiet: bool,
    config: Path, say: Callable[[str], None],
) -> list[FetchResult]:
    session = await connect(config, quiet, say)
    remotes = await resolve_remote(session, images)
    if dry_run:
        results = [FetchResult(r, local_state(r, dest), "listed", None) for r in remotes]
        for line in dry_run_report(results, dest):
            say(line)
        return results
    return [await _fetch_one(session, r, dest, parallel, verify, quiet) for r in remotes]


def dry_run_report(results: list[FetchResult], dest: Path) -> list[str]:
    """Lines listing each image: name, Synapse id and version, size, local state."""
    lines = [f"{'NAME':<14} {'SYNAPSE ID':<12} {'VER':>3} {'SIZE':>10}  LOCAL ({dest})"]
    todo = 0
    for r in results:
        rem, st = r.remote, r.state
        if st.status == "present":
            where = f"present, verified  {st.path}"
        elif st.status == "unverified":
            where = f"present, not yet verified  {st.path}"
        elif st.status == "scattered":
            where = "interrupted --parallel download, will start over"
            todo += rem.size_bytes
        elif st.status == "partial":
            pct = 100.0 * st.partial_bytes / max(rem.size_bytes, 1)
            where = f"partial {human_bytes(st.partial_bytes)} ({pct:.0f}%), resumable  {st.path}"
            todo += rem.size_bytes - st.partial_bytes
        else:
            where = "absent"
            todo += rem.size_bytes
        if rem.unmet_terms:
            where += f"  [terms of use not accepted: {PORTAL}{rem.synapse_id}]"
        lines.append(
            f"{rem.image.name:<14} {rem.synapse_id:<12} {rem.version:>3} {human_bytes(rem.size_bytes):>10}  {where}"
        )
    probe = dest if dest.exists() else next((p for p in dest.parents if p.exists()), Path("."))
    lines.append(f"to download: {human_bytes(todo)}; free in {probe}: {human_bytes(local.free_bytes(probe))}")
    return lines


async def _fetch_one(session: Session, remote: RemoteFile, dest: Path, parallel: bool, verify: bool,
                     quiet: bool) -> FetchResult:
    say = session.say
    name = remote.image.name
    state = local_state(remote, dest)
    final = dest / remote.image.file_name
    if state.status == "present" and not verify:
        say(f"{name}: present and verified ({final}), nothing to download")
        return FetchResult(remote, state, "present", final)
    if state.status in ("present", "unverified"):
        md5 = md5_file(final, desc=f"verifying {final.name}", quiet=quiet)
        if remote.md5 is not None and md5 != remote.md5:
            raise UserError(
                f"{final} exists but its MD5 ({md5}) differs from Synapse's ({remote.md5}, "
                f"{remote.synapse_id} v{remote.version}); move or delete it, then run again"
            )
        _record(remote, dest, final, md5)
        say(f"{name}: present, MD5 matches Synapse ({final}), nothing to download")
        return FetchResult(remote, state, "verified", final)

    if remote.unmet_terms:
        if session.user is None:
            raise UserError(f"{remote.image.file_name} ({remote.synapse_id}) needs a Synapse login: {TOKEN_HELP}")
        raise UserError(
            f"{remote.image.file_name} ({remote.synapse_id}) has terms of use you have not accepted yet: "
            f"accept them at {PORTAL}{remote.synapse_id}, then run again"
        )
    drop_stale_partials(remote, dest, say)
    staged = staged_path(remote, dest)
    if staged.exists():  # finished by synapseclient in an earlier run that stopped before the rename
        if remote.md5 is not None and md5_file(staged, desc=f"verifying {staged.name}", quiet=quiet) == remote.md5:
            return _finish(session, remote, dest, staged, remote.md5, state, "downloaded")
        staged.unlink()

    part = partial_path(remote, dest)
    if state.status == "scattered":
        say(f"{name}: an interrupted --parallel download cannot be resumed; starting over")
        part.unlink(missing_ok=True)
        parallel_marker(remote, dest).unlink(missing_ok=True)
    have = part.stat().st_size if part.is_file() else 0
    resume = have > 0
    multi = parallel and not resume
    need = remote.size_bytes - (have if not multi else 0)
    free = local.free_bytes(dest)
    if need + DISK_MARGIN_BYTES > free:
        raise UserError(
            f"not enough free space in {dest} for {remote.image.file_name}: needs {human_bytes(need)} more "
            f"(+{human_bytes(DISK_MARGIN_BYTES)} margin), {human_bytes(free)} free; free some space or use --dest"
        )
    if resume:
        note = " (--parallel applies to fresh downloads only)" if parallel else ""
        say(f"{name}: resuming {remote.synapse_id} v{remote.version}: {human_bytes(have)} of "
            f"{human_bytes(remote.size_bytes)} already here{note}")
    else:
        how = "8 MiB parts in parallel" if multi else "single stream, resumable"
        say(f"{name}: downloading {remote.synapse_id} v{remote.version}, {human_bytes(remote.size_bytes)} ({how})")
    path = await _download(session, remote, dest, multi)
    md5 = remote.md5 or md5_file(path, desc=f"MD5 {path.name}", quiet=quiet)
    if remote.md5 is None:
        say(f"{name}: Synapse reports no MD5; recorded the local one ({md5})")
    return _finish(session, remote, dest, path, md5, state, "resumed" if resume else "downloaded")


async def _download(session: Session, remote: RemoteFile, dest: Path, multi: bool) -> Path:
    from synapseclient.core.download import download_by_file_handle
    from synapseclient.core.exceptions import SynapseMd5MismatchError

    syn = session.syn
    staged = staged_path(remote, dest)
    staged.parent.mkdir(parents=True, exist_ok=True)
    syn.multi_threaded = multi
    marker = parallel_marker(remote, dest)
    if multi:
        marker.touch()
    try:
        got = await download_by_file_handle(
            file_handle_id=remote.file_handle_id,
            synapse_id=remote.synapse_id,
            entity_type="FileEntity",
            destination=str(staged),
            synapse_client=syn,
        )
    except SynapseMd5MismatchError:
        for p in (staged, partial_path(remote, dest)):
            p.unlink(missing_ok=True)
        raise UserError(
            f"{remote.image.file_name}: the downloaded bytes do not match the MD5 Synapse reports "
            f"({remote.md5}); the bad file was removed; run again to download it afresh (report it if this repeats)"
        ) from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise UserError(
                f"the disk holding {dest} filled up while downloading {remote.image.file_name}; "
                f"{kept_note(remote, dest)}; free some space and run the same command to resume"
            ) from None
        raise to_user_error(session, exc, remote.image.file_name, remote, dest) from None
    except Exception as exc:
        raise to_user_error(session, exc, remote.image.file_name, remote, dest) from None
    finally:
        if multi:  # finished or failed in-process: synapseclient has removed or renamed its file
            partial_path(remote, dest).unlink(missing_ok=True)
            marker.unlink(missing_ok=True)
        drop_empty(staged.parent)  # only if nothing is left in it
    if not got or not Path(got).is_file():
        raise UserError(f"synapseclient did not download {remote.image.file_name} ({remote.synapse_id}); "
                        f"{kept_note(remote, dest)}; run again")
    return Path(got)


def _finish(session: Session, remote: RemoteFile, dest: Path, path: Path, md5: str, state: LocalState,
            action: str) -> FetchResult:
    final = dest / remote.image.file_name
    os.replace(path, final)
    drop_empty(path.parent)
    with contextlib.suppress(Exception):  # keep synapseclient's cache map pointing at the real file
        session.syn.cache.remove(remote.file_handle_id, path=str(path))
        session.syn.cache.add(remote.file_handle_id, str(final), md5)
    _record(remote, dest, final, md5)
    session.say(f"{remote.image.name}: {action} and verified (MD5 {md5}) -> {final}")
    return FetchResult(remote, state, action, final)


def _record(remote: RemoteFile, dest: Path, final: Path, md5: str) -> None:
    st = final.stat()
    now = datetime.datetime.now(tz=datetime.timezone.utc).replace(microsecond=0).isoformat()
    write_manifest_entry(dest, remote.image.name, {
        "file_name": remote.image.file_name,
        "path": final.name,
        "folder_id": FOLDER_ID,
        "synapse_id": remote.synapse_id,
        "version": remote.version,
        "file_handle_id": remote.file_handle_id,
        "size_bytes": st.st_size,
        "md5": md5,
        "mtime_ns": st.st_mtime_ns,
        "fetched_at": now,
    })
