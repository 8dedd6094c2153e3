"""Fetch the challenge images from Synapse with synapseclient: resolve, check, download, verify, record.

Everything that talks to Synapse goes through synapseclient (4.x; developed against 4.14):

==========================================  =========================================================
``GET  {repo}/version``                     reachability probe, bounded retry with backoff
                                            (:data:`NETWORK_RETRY`), anonymous
``GET  {repo}/userProfile``                 ``Synapse.login()``: token from ``~/.synapseConfig``, then
                                            ``SYNAPSE_AUTH_TOKEN`` (synapseclient's own order); none =
                                            anonymous
``POST {repo}/entity/children``             list folder :data:`~cpbench.challenge.FOLDER_ID` (and its
                                            sub-folders, two levels at most) to find the files by name
``POST {repo}/entity/{id}/bundle2``         entity version, file handle (size, MD5, storage type),
                                            restriction information
``POST {file}/fileHandle/batch``            presigned URL; called by synapseclient's
                                            ``download_by_file_handle``
``GET  <presigned URL>``                    the bytes, by synapseclient's download machinery
==========================================  =========================================================

Downloads: synapseclient writes to ``<dest>/partial-downloads/<file>.synapse_download_<handle id>``
and checks the MD5 Synapse reports; cpbench then renames the file to ``<dest>/<file>`` (same file
system, atomic) and records it in ``<dest>/manifest.json``. By default the transfer is one stream
that synapseclient resumes with an HTTP ``Range`` request from the partial file, within a run (after
a dropped connection) and across runs (after Ctrl-C, a crash, a full disk). ``parallel=True`` uses
synapseclient's multi-threaded downloader instead (8 MiB ranged parts, for files over 8 MiB on S3):
faster on fast links, but synapseclient starts such a download over when it is interrupted.

The auth token is never printed, logged or written by cpbench; error messages are built from
status codes and Synapse's one-line reasons, and any known token text is redacted from them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cpbench.challenge import (
    DEFAULT_DEST,
    FOLDER_ID,
    ChallengeImage,
    entry_matches_file,
    manifest_entry,
    resolve_names,
    write_manifest_entry,
)
from cpbench.errors import UserError

if TYPE_CHECKING:
    from synapseclient import Synapse

#: sub-folder of the destination where unfinished downloads live until verified
PARTIAL_DIR = "partial-downloads"
#: lock file in the destination folder (empty; see _dest_lock)
LOCK_NAME = ".cpbench-fetch.lock"
#: free space kept beyond the bytes still to download, bytes
DISK_MARGIN_BYTES = 64 * 2**20
#: read size when hashing local files, bytes
MD5_BLOCK_BYTES = 8 * 2**20
#: listing bounds: pages per folder, folders visited, folder depth below FOLDER_ID
MAX_PAGES = 100
MAX_FOLDERS = 25
MAX_DEPTH = 2
PORTAL = "https://www.synapse.org/#!Synapse:"
TOKEN_HELP = (
    "create a personal access token with view and download scopes at "
    "https://www.synapse.org/#!PersonalAccessTokens: and put it in SYNAPSE_AUTH_TOKEN "
    "(or as authtoken under [authentication] in ~/.synapseConfig)"
)
_SYNAPSE_LOGGER = "synapseclient_default"


@dataclass(frozen=True)
class NetworkRetry:
    """Bounded retry with exponential backoff for the metadata calls (probe, listing, bundles).

    Passed to synapseclient as its ``retry_policy``: waits start at ``first_wait_s`` and double up to
    ``max_wait_s``; retrying stops once the waits add up to ``budget_s`` (all seconds). The transfer
    itself keeps synapseclient's own, longer retry, and its partial file, so it can ride out outages.
    """

    budget_s: float = 30.0
    first_wait_s: float = 0.5
    max_wait_s: float = 8.0

    def policy(self) -> dict[str, float]:
        """Keyword arguments for ``synapseclient.core.retry.with_retry_time_based_async``."""
        return {
            "retry_max_wait_before_failure": self.budget_s,
            "retry_base_wait": self.first_wait_s,
            "retry_max_back_off": self.max_wait_s,
        }


#: module-wide setting; tests shrink it
NETWORK_RETRY = NetworkRetry()


@dataclass(frozen=True)
class RemoteFile:
    """A challenge image as Synapse describes it."""

    image: ChallengeImage
    synapse_id: str
    version: int
    file_handle_id: str
    size_bytes: int  #: contentSize, bytes
    md5: str | None  #: contentMd5 (hex), None if Synapse has none
    storage: str  #: file handle concreteType, e.g. ``...S3FileHandle``
    unmet_terms: bool = False  #: the entity has access requirements this user has not met


@dataclass(frozen=True)
class LocalState:
    """What of a remote file is already in the destination folder."""

    #: "present" (recorded, unchanged), "unverified" (a file, not yet checked), "partial" (resumable),
    #: "scattered" (left by an interrupted --parallel download: not a prefix, cannot resume), "absent"
    status: str
    path: Path  #: the final file, or the partial file for "partial"
    partial_bytes: int = 0  #: bytes already in the partial file


@dataclass(frozen=True)
class FetchResult:
    """Outcome for one image."""

    remote: RemoteFile
    state: LocalState  #: before this run
    action: str  #: "listed" (dry run), "present", "verified", "downloaded", "resumed"
    path: Path | None  #: the verified local file (None for a dry run of an absent file)


@dataclass
class _Session:
    syn: Synapse
    user: str | None  #: None = anonymous
    token_source: str | None
    secrets: list[str] = field(default_factory=list)
    say: Callable[[str], None] = print

    def redact(self, text: str) -> str:
        """``text`` without known tokens and without URL query strings (presigned URLs are secrets too)."""
        for s in self.secrets:
            if s:
                text = text.replace(s, "<redacted>")
        return re.sub(r"(https?://[^\s?'\"]+)\?[^\s'\"]*", r"\1?<query removed>", text)


# ---------------------------------------------------------------------------------------------
# public entry point
# ---------------------------------------------------------------------------------------------


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
    """Fetch challenge images ``names`` (see :func:`cpbench.challenge.resolve_names`) into ``dest``.

    Already present and recorded → nothing is downloaded (``verify=True`` re-hashes it). A file
    present but not recorded is hashed and adopted if its MD5 matches Synapse's. A partial download
    is resumed. Free space is checked before a download starts. ``dry_run`` only resolves and
    reports. ``config_path`` is synapseclient's config file (default ``~/.synapseConfig``: endpoints,
    cache location, auth token). ``say`` receives one line per event.

    Raises :class:`UserError` with a one-line message for everything the user can fix. Runs its own
    event loop (``asyncio.run``), so call it from synchronous code. Ctrl-C cannot stop synapseclient's
    transfer thread; the ``cpbench fetch`` command therefore exits at once on Ctrl-C (see fetch_cli).
    """
    images = resolve_names(names)
    dest = Path(dest)
    if not dry_run:
        _ensure_writable(dest)
    config = Path(config_path).expanduser() if config_path else Path.home() / ".synapseConfig"
    with _quiet_synapse_info(), (contextlib.nullcontext() if dry_run else _dest_lock(dest)):
        return asyncio.run(_fetch(images, dest, dry_run, parallel, verify, quiet, config, say))


async def _fetch(
    images: list[ChallengeImage], dest: Path, dry_run: bool, parallel: bool, verify: bool, quiet: bool,
    config: Path, say: Callable[[str], None],
) -> list[FetchResult]:
    session = await _connect(config, quiet, say)
    remotes = await _resolve(session, images)
    if dry_run:
        results = [FetchResult(r, local_state(r, dest), "listed", None) for r in remotes]
        for line in dry_run_report(results, dest):
            say(line)
        return results
    return [await _fetch_one(session, r, dest, parallel, verify, quiet) for r in remotes]


# ---------------------------------------------------------------------------------------------
# connect: client, probe, login
# ---------------------------------------------------------------------------------------------


async def _connect(config: Path, quiet: bool, say: Callable[[str], None]) -> _Session:
    import synapseclient
    from cpbench import __version__

    agent: str | None = f"cpbench/{__version__}"
    if not re.fullmatch(r"[a-zA-Z0-9-]+/[0-9]+\.[0-9]+\.[0-9]+", agent):  # synapseclient rejects others
        agent = None
    try:
        syn = synapseclient.Synapse(configPath=str(config), skip_checks=True, silent=quiet, user_agent=agent)
    except ValueError as exc:  # unparsable config file; the message names the path only
        raise UserError(f"cannot read the Synapse config file {config}: {exc}; fix or remove it") from None
    source = _token_source(config)
    session = _Session(syn, None, source, _known_secrets(config), say)
    await _probe(session)
    session.user = _login(session)
    if session.user is None:
        say("Synapse: no auth token found (SYNAPSE_AUTH_TOKEN or ~/.synapseConfig); trying anonymous access")
    else:
        say(f"Synapse: logged in as {session.user} (token from {source})")
    return session


async def _probe(session: _Session) -> None:
    """Make sure the Synapse REST endpoint answers; bounded retry with backoff."""
    from synapseclient.core.exceptions import SynapseHTTPError

    try:
        await session.syn.rest_get_async("/version", retry_policy=NETWORK_RETRY.policy())
    except SynapseHTTPError as exc:
        status = _status(exc)
        if status is not None and status < 500 and status != 429:
            return  # it answered: reachable
        raise _to_user_error(session, exc, "Synapse") from None
    except Exception as exc:
        if _is_network_error(exc):
            raise _network_error(session, exc) from None
        raise


def _login(session: _Session) -> str | None:
    """Log in with synapseclient's credential chain; None when there is no token (anonymous)."""
    from synapseclient.core.exceptions import (
        SynapseAuthenticationError,
        SynapseHTTPError,
        SynapseNoCredentialsError,
    )

    syn = session.syn
    try:
        syn.login(silent=True)
    except SynapseNoCredentialsError:
        return None
    except SynapseAuthenticationError as exc:
        cause = exc.__cause__
        if isinstance(cause, SynapseHTTPError) and _status(cause) == 401:
            detail = "it is wrong or has expired"
        else:
            detail = _first_line(session.redact(str(exc)))
        raise UserError(
            f"Synapse rejected the auth token from {session.token_source or 'your configuration'} ({detail}); {TOKEN_HELP}"
        ) from None
    except Exception as exc:
        raise _to_user_error(session, exc, "Synapse login") from None
    creds = syn.credentials
    secret = getattr(creds, "secret", None)
    if secret:
        session.secrets.append(secret)
    return getattr(creds, "username", None) or getattr(creds, "displayname", None) or "(unknown user)"


def _token_source(config: Path) -> str | None:
    """Where synapseclient will take the token from (its own order), for messages. Never the token."""
    try:
        from synapseclient.api.configuration_services import get_config_authentication

        if get_config_authentication(str(config), os.getenv("SYNAPSE_PROFILE") or "default").get("authtoken"):
            return str(config)
    except Exception:  # noqa: BLE001 - only for a message
        pass
    if os.getenv("SYNAPSE_AUTH_TOKEN"):
        return "SYNAPSE_AUTH_TOKEN"
    if os.getenv("SYNAPSE_TOKEN_AWS_SSM_PARAMETER_NAME"):
        return "the AWS SSM parameter in SYNAPSE_TOKEN_AWS_SSM_PARAMETER_NAME"
    return None


def _known_secrets(config: Path) -> list[str]:
    """Token strings that must never reach the output (redacted from any message we build)."""
    out = [os.getenv("SYNAPSE_AUTH_TOKEN") or ""]
    try:
        from synapseclient.api.configuration_services import get_config_file

        cfg = get_config_file(str(config))
        for section in cfg.sections():
            if cfg.has_option(section, "authtoken"):
                out.append(cfg.get(section, "authtoken"))
    except Exception:  # noqa: BLE001
        pass
    return [s for s in out if len(s) >= 4]


# ---------------------------------------------------------------------------------------------
# resolve: find the files by name, read their file handles
# ---------------------------------------------------------------------------------------------


async def _list_children(session: _Session, parent: str) -> list[dict[str, Any]]:
    body: dict[str, Any] = {
        "parentId": parent, "includeTypes": ["file", "folder"], "sortBy": "NAME", "sortDirection": "ASC",
    }
    out: list[dict[str, Any]] = []
    for _ in range(MAX_PAGES):
        resp = await session.syn.rest_post_async(
            "/entity/children", body=json.dumps(body), retry_policy=NETWORK_RETRY.policy()
        )
        out.extend(resp.get("page") or [])
        token = resp.get("nextPageToken")
        if not token:
            return out
        body["nextPageToken"] = token
    raise UserError(f"the listing of Synapse folder {parent} did not end after {MAX_PAGES} pages; report it")


async def _find_files(session: _Session, wanted: set[str]) -> dict[str, dict[str, Any]]:
    """Children of FOLDER_ID (breadth first, sub-folders down to MAX_DEPTH) whose names are wanted."""
    found: dict[str, dict[str, Any]] = {}
    seen_names: list[str] = []
    queue: list[tuple[str, int]] = [(FOLDER_ID, 0)]
    visited = 0
    while queue and visited < MAX_FOLDERS and not wanted <= found.keys():
        parent, depth = queue.pop(0)
        visited += 1
        for child in await _list_children(session, parent):
            name = str(child.get("name", ""))
            kind = str(child.get("type", ""))
            if kind.endswith("FileEntity"):
                seen_names.append(name)
                if name in wanted and name not in found:
                    found[name] = child
            elif kind.endswith("Folder") and depth < MAX_DEPTH:
                queue.append((str(child["id"]), depth + 1))
    missing = sorted(wanted - found.keys())
    if missing:
        have = ", ".join(sorted(seen_names)[:12]) or "no files"
        raise UserError(
            f"{', '.join(missing)} not found in Synapse folder {FOLDER_ID} (it has: {have}); "
            f"the folder may have changed: check {PORTAL}{FOLDER_ID}"
        )
    return found


async def _resolve(session: _Session, images: list[ChallengeImage]) -> list[RemoteFile]:
    what = f"Synapse folder {FOLDER_ID}"
    try:
        found = await _find_files(session, {img.file_name for img in images})
        out = []
        for img in images:
            what = f"{img.file_name} ({found[img.file_name]['id']})"
            out.append(await _describe(session, img, str(found[img.file_name]["id"])))
        return out
    except UserError:
        raise
    except Exception as exc:
        raise _to_user_error(session, exc, what) from None


async def _describe(session: _Session, img: ChallengeImage, syn_id: str) -> RemoteFile:
    request = {"includeEntity": True, "includeFileHandles": True, "includeRestrictionInformation": True}
    bundle = await session.syn.rest_post_async(
        f"/entity/{syn_id}/bundle2", body=json.dumps(request), retry_policy=NETWORK_RETRY.policy()
    )
    entity = bundle.get("entity") or {}
    fh_id = str(entity.get("dataFileHandleId", ""))
    handle = next((h for h in bundle.get("fileHandles") or [] if str(h.get("id")) == fh_id), None)
    if handle is None:
        if session.user is None:
            raise UserError(f"{img.file_name} ({syn_id}) needs a Synapse login to download: {TOKEN_HELP}")
        raise UserError(
            f"your Synapse account cannot see the file of {img.file_name} ({syn_id}); "
            f"request access at {PORTAL}{syn_id}"
        )
    restriction = bundle.get("restrictionInformation") or {}
    return RemoteFile(
        image=img,
        synapse_id=syn_id,
        version=int(entity.get("versionNumber") or 0),
        file_handle_id=fh_id,
        size_bytes=int(handle.get("contentSize") or 0),
        md5=handle.get("contentMd5") or None,
        storage=str(handle.get("concreteType", "")).rsplit(".", 1)[-1],
        unmet_terms=bool(restriction.get("hasUnmetAccessRequirement")),
    )


# ---------------------------------------------------------------------------------------------
# local state
# ---------------------------------------------------------------------------------------------


def partial_path(remote: RemoteFile, dest: Path) -> Path:
    """Where synapseclient keeps the unfinished download of ``remote`` (its own naming)."""
    return Path(dest) / PARTIAL_DIR / f"{remote.image.file_name}.synapse_download_{remote.file_handle_id}"


def _parallel_marker(remote: RemoteFile, dest: Path) -> Path:
    """Present while synapseclient's multi-threaded downloader fills the partial file.

    That downloader writes 8 MiB parts at their offsets in any order, so what an interrupted parallel
    download leaves is not a prefix of the file and must not be resumed with a Range request.
    """
    return partial_path(remote, dest).with_name(partial_path(remote, dest).name + ".parallel")


def _staged_path(remote: RemoteFile, dest: Path) -> Path:
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
        if _parallel_marker(remote, dest).exists():
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
    lines.append(f"to download: {human_bytes(todo)}; free in {probe}: {human_bytes(free_bytes(probe))}")
    return lines


# ---------------------------------------------------------------------------------------------
# fetch one image
# ---------------------------------------------------------------------------------------------


async def _fetch_one(session: _Session, remote: RemoteFile, dest: Path, parallel: bool, verify: bool,
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
    _drop_stale_partials(remote, dest, say)
    staged = _staged_path(remote, dest)
    if staged.exists():  # finished by synapseclient in an earlier run that stopped before the rename
        if remote.md5 is not None and md5_file(staged, desc=f"verifying {staged.name}", quiet=quiet) == remote.md5:
            return _finish(session, remote, dest, staged, remote.md5, state, "downloaded")
        staged.unlink()

    part = partial_path(remote, dest)
    if state.status == "scattered":
        say(f"{name}: an interrupted --parallel download cannot be resumed; starting over")
        part.unlink(missing_ok=True)
        _parallel_marker(remote, dest).unlink(missing_ok=True)
    have = part.stat().st_size if part.is_file() else 0
    resume = have > 0
    multi = parallel and not resume
    need = remote.size_bytes - (have if not multi else 0)
    free = free_bytes(dest)
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


async def _download(session: _Session, remote: RemoteFile, dest: Path, multi: bool) -> Path:
    from synapseclient.core.download import download_by_file_handle
    from synapseclient.core.exceptions import SynapseMd5MismatchError

    syn = session.syn
    staged = _staged_path(remote, dest)
    staged.parent.mkdir(parents=True, exist_ok=True)
    syn.multi_threaded = multi
    marker = _parallel_marker(remote, dest)
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
                f"{_kept(remote, dest)}; free some space and run the same command to resume"
            ) from None
        raise _to_user_error(session, exc, remote.image.file_name, remote, dest) from None
    except Exception as exc:
        raise _to_user_error(session, exc, remote.image.file_name, remote, dest) from None
    finally:
        if multi:  # finished or failed in-process: synapseclient has removed or renamed its file
            partial_path(remote, dest).unlink(missing_ok=True)
            marker.unlink(missing_ok=True)
        _drop_empty(staged.parent)  # only if nothing is left in it
    if not got or not Path(got).is_file():
        raise UserError(f"synapseclient did not download {remote.image.file_name} ({remote.synapse_id}); "
                        f"{_kept(remote, dest)}; run again")
    return Path(got)


def _finish(session: _Session, remote: RemoteFile, dest: Path, path: Path, md5: str, state: LocalState,
            action: str) -> FetchResult:
    final = dest / remote.image.file_name
    os.replace(path, final)
    _drop_empty(path.parent)
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


def _drop_stale_partials(remote: RemoteFile, dest: Path, say: Callable[[str], None]) -> None:
    """Remove partial downloads of older versions (other file handles) of the same file."""
    folder = Path(dest) / PARTIAL_DIR
    keep = {partial_path(remote, dest).name, _parallel_marker(remote, dest).name}
    for p in folder.glob(f"{remote.image.file_name}.synapse_download_*") if folder.is_dir() else []:
        if p.name not in keep:
            say(f"{remote.image.name}: removing the partial download of an older version ({p})")
            p.unlink(missing_ok=True)


def _drop_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()


def _kept(remote: RemoteFile, dest: Path) -> str:
    part = partial_path(remote, dest)
    if part.is_file() and part.stat().st_size > 0 and not _parallel_marker(remote, dest).exists():
        return (f"the partial download ({human_bytes(part.stat().st_size)} of "
                f"{human_bytes(remote.size_bytes)}) is kept at {part}")
    return "nothing was kept"


def _ensure_writable(dest: Path) -> None:
    try:
        dest.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".cpbench-write-test.", dir=dest)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UserError(f"cannot write to the destination {dest}: {reason}; pick a writable folder with --dest") from None


@contextlib.contextmanager
def _dest_lock(dest: Path) -> Iterator[None]:
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


@contextlib.contextmanager
def _quiet_synapse_info() -> Iterator[None]:
    """Hide synapseclient's INFO chatter (we report ourselves); keep its warnings and progress bars."""
    import synapseclient.core.logging_setup  # noqa: F401 - configures the logger; must come first

    logger = logging.getLogger(_SYNAPSE_LOGGER)
    old = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(old)


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------


def _status(exc: BaseException) -> int | None:
    resp = getattr(exc, "response", None)
    code = getattr(resp, "status_code", None)
    return int(code) if code is not None else None


def _first_line(text: str, limit: int = 200) -> str:
    line = next((s.strip() for s in str(text).splitlines() if s.strip()), "")
    return line[:limit]


def _reason(exc: BaseException) -> str:
    """Synapse's one-line reason for an HTTP error (not the whole message, which has URLs)."""
    resp = getattr(exc, "response", None)
    try:
        reason = resp.json().get("reason") if resp is not None else None
    except Exception:  # noqa: BLE001
        reason = None
    if reason:
        return _first_line(reason)
    lines = [s for s in str(exc).splitlines() if s.strip()]
    return _first_line(lines[1] if len(lines) > 1 else (lines[0] if lines else type(exc).__name__))


def _is_network_error(exc: BaseException) -> bool:
    import httpx
    import requests

    return isinstance(exc, (httpx.TransportError, requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                            ConnectionError, TimeoutError))


def _short_network_reason(exc: BaseException) -> str:
    """A few words on why a connection failed, e.g. "Connection refused" (from the OS error inside)."""
    inner: BaseException | None = exc
    for _ in range(10):  # bounded walk down the exception chain
        if inner is None:
            break
        if isinstance(inner, OSError) and inner.errno is not None:
            if inner.errno > 0:
                return os.strerror(inner.errno)
            if inner.strerror:
                return str(inner.strerror)
        inner = inner.__cause__ or inner.__context__
    m = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(exc))
    if m:
        return m.group(1).strip()
    name = type(exc).__name__
    return {"ConnectTimeout": "connection timed out", "ReadTimeout": "read timed out",
            "RemoteProtocolError": "the server closed the connection",
            "ChunkedEncodingError": "the connection broke off"}.get(name, name)


def _network_error(session: _Session, exc: BaseException, remote: RemoteFile | None = None,
                   dest: Path | None = None) -> UserError:
    where = session.syn.repoEndpoint
    reason = session.redact(_short_network_reason(exc))
    if remote is not None and dest is not None:
        return UserError(
            f"lost the connection while downloading {remote.image.file_name} ({reason}); "
            f"{_kept(remote, dest)}; check the network and run the same command to resume"
        )
    r = NETWORK_RETRY
    return UserError(
        f"cannot reach Synapse at {where} ({reason}; retried with backoff for up to {r.budget_s:g} s); "
        "check the network or proxy, then run again"
    )


def _to_user_error(session: _Session, exc: BaseException, what: str, remote: RemoteFile | None = None,
                   dest: Path | None = None) -> UserError:
    """One-line UserError for a synapseclient / network exception while working on ``what``."""
    from synapseclient.core.exceptions import (
        SynapseAuthenticationError,
        SynapseAuthorizationError,
        SynapseFileNotFoundError,
        SynapseHTTPError,
    )

    anonymous = session.user is None
    login_msg = f"{what} needs a Synapse login: {TOKEN_HELP}"
    syn_id = remote.synapse_id if remote else FOLDER_ID
    if _is_network_error(exc):
        return _network_error(session, exc, remote, dest)
    if isinstance(exc, SynapseAuthenticationError):  # 401/403 without credentials
        return UserError(login_msg)
    if isinstance(exc, SynapseAuthorizationError):  # file handle batch: UNAUTHORIZED
        if anonymous:
            return UserError(login_msg)
        return UserError(
            f"your Synapse account may not download {what}: the token needs the download scope and any terms of "
            f"use must be accepted at {PORTAL}{syn_id}"
        )
    if isinstance(exc, SynapseFileNotFoundError):
        return UserError(f"Synapse has no file for {what} any more (file handle not found); report it")
    if isinstance(exc, SynapseHTTPError):
        status = _status(exc)
        reason = session.redact(_reason(exc))
        if status == 401:
            return UserError(
                f"Synapse rejected the auth token from {session.token_source or 'your configuration'} "
                f"({reason}); {TOKEN_HELP}"
            )
        if status == 403:
            if anonymous:
                return UserError(login_msg)
            return UserError(f"your Synapse account has no access to {what} ({reason}); request access at {PORTAL}{syn_id}")
        if status == 404:
            return UserError(f"{what} was not found on Synapse ({reason}); check {PORTAL}{syn_id}")
        if status is not None and (status >= 500 or status == 429):
            extra = f"; {_kept(remote, dest)}" if remote is not None and dest is not None else ""
            return UserError(
                f"Synapse is not answering ({status} {reason}) after retrying with backoff{extra}; try again later"
            )
        return UserError(f"Synapse refused a request for {what} ({status} {reason})")
    return UserError(f"{what}: {type(exc).__name__}: {session.redact(_first_line(str(exc)))}")
