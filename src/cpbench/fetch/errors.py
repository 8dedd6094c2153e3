"""One-line :class:`~cpbench.errors.UserError` messages for what synapseclient and the network raise.

Messages are built from HTTP status codes and Synapse's one-line reasons, never from whole
exception texts (which hold URLs, and presigned URLs are secrets); known tokens are redacted.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from cpbench.errors import UserError
from cpbench.fetch.catalogue import FOLDER_ID, PORTAL, TOKEN_HELP
from cpbench.fetch.local import kept_note

if TYPE_CHECKING:
    from cpbench.fetch.remote import RemoteFile
    from cpbench.fetch.session import Session


def status_code(exc: BaseException) -> int | None:
    """HTTP status code carried by a synapseclient / requests / httpx exception, or None."""
    resp = getattr(exc, "response", None)
    code = getattr(resp, "status_code", None)
    return int(code) if code is not None else None


def first_line(text: str, limit: int = 200) -> str:
    """First non-empty line of ``text``, at most ``limit`` characters."""
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
        return first_line(reason)
    lines = [s for s in str(exc).splitlines() if s.strip()]
    return first_line(lines[1] if len(lines) > 1 else (lines[0] if lines else type(exc).__name__))


def is_network_error(exc: BaseException) -> bool:
    """Whether ``exc`` means the network failed (connection refused, reset, timed out), not Synapse."""
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


def network_error(session: Session, exc: BaseException, remote: RemoteFile | None = None,
                   dest: Path | None = None) -> UserError:
    """The one-line error for a failed connection: what was kept of a download, or where Synapse was tried."""
    where = session.syn.repoEndpoint
    reason = session.redact(_short_network_reason(exc))
    if remote is not None and dest is not None:
        return UserError(
            f"lost the connection while downloading {remote.image.file_name} ({reason}); "
            f"{kept_note(remote, dest)}; check the network and run the same command to resume"
        )
    r = session.retry
    return UserError(
        f"cannot reach Synapse at {where} ({reason}; retried with backoff for up to {r.budget_s:g} s); "
        "check the network or proxy, then run again"
    )


def to_user_error(session: Session, exc: BaseException, what: str, remote: RemoteFile | None = None,
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
    if is_network_error(exc):
        return network_error(session, exc, remote, dest)
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
        status = status_code(exc)
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
            extra = f"; {kept_note(remote, dest)}" if remote is not None and dest is not None else ""
            return UserError(
                f"Synapse is not answering ({status} {reason}) after retrying with backoff{extra}; try again later"
            )
        return UserError(f"Synapse refused a request for {what} ({status} {reason})")
    return UserError(f"{what}: {type(exc).__name__}: {session.redact(first_line(str(exc)))}")
