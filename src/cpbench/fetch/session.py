"""The Synapse session: synapseclient client, reachability probe, login, and secrets kept out of messages.

Everything the fetch capability asks of Synapse goes through synapseclient (4.x; developed against
4.14):

==========================================  =========================================================
``GET  {repo}/version``                     reachability probe, bounded retry with backoff
                                            (:data:`NETWORK_RETRY`), anonymous
``GET  {repo}/userProfile``                 ``Synapse.login()``: token from ``~/.synapseConfig``, then
                                            ``SYNAPSE_AUTH_TOKEN`` (synapseclient's own order); none =
                                            anonymous
``POST {repo}/entity/children``             list folder :data:`~cpbench.fetch.catalogue.FOLDER_ID` (and its
                                            sub-folders, two levels at most) to find the files by name
``POST {repo}/entity/{id}/bundle2``         entity version, file handle (size, MD5, storage type),
                                            restriction information
``POST {file}/fileHandle/batch``            presigned URL; called by synapseclient's
                                            ``download_by_file_handle``
``GET  <presigned URL>``                    the bytes, by synapseclient's download machinery
==========================================  =========================================================

Downloads and their resumption: :mod:`cpbench.fetch.download`.

The auth token is never printed, logged or written by cpbench; error messages are built from
status codes and Synapse's one-line reasons, and any known token text is redacted from them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cpbench.errors import UserError
from cpbench.fetch.catalogue import TOKEN_HELP
from cpbench.fetch.errors import (
    first_line,
    is_network_error,
    network_error,
    status_code,
    to_user_error,
)

if TYPE_CHECKING:
    from synapseclient import Synapse

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


#: module-wide setting; tests shrink it
NETWORK_RETRY = NetworkRetry()


@dataclass
class Session:
    """A synapseclient client with who is logged in, the retry bounds and the secrets to redact."""

    syn: Synapse
    user: str | None  #: None = anonymous
    token_source: str | None  #: where the token came from, for messages (never the token)
    retry: NetworkRetry  #: bounds of the metadata calls' retries
    secrets: list[str] = field(default_factory=list)
    say: Callable[[str], None] = print

    def redact(self, text: str) -> str:
        """``text`` without known tokens and without URL query strings (presigned URLs are secrets too)."""
        for s in self.secrets:
            if s:
                text = text.replace(s, "<redacted>")
        return re.sub(r"(https?://[^\s?'\"]+)\?[^\s'\"]*", r"\1?<query removed>", text)


async def connect(config: Path, quiet: bool, say: Callable[[str], None]) -> Session:
    """A logged-in (or anonymous) session with the Synapse named in ``config``; says who, never the token."""
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
    session = Session(syn, None, source, NETWORK_RETRY, _known_secrets(config), say)
    await _probe(session)
    session.user = _login(session)
    if session.user is None:
        say("Synapse: no auth token found (SYNAPSE_AUTH_TOKEN or ~/.synapseConfig); trying anonymous access")
    else:
        say(f"Synapse: logged in as {session.user} (token from {source})")
    return session


async def _probe(session: Session) -> None:
    """Make sure the Synapse REST endpoint answers; bounded retry with backoff."""
    from synapseclient.core.exceptions import SynapseHTTPError

    try:
        await session.syn.rest_get_async("/version", retry_policy=session.retry.policy())
    except SynapseHTTPError as exc:
        status = status_code(exc)
        if status is not None and status < 500 and status != 429:
            return  # it answered: reachable
        raise to_user_error(session, exc, "Synapse") from None
    except Exception as exc:
        if is_network_error(exc):
            raise network_error(session, exc) from None
        raise


def _login(session: Session) -> str | None:
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
        if isinstance(cause, SynapseHTTPError) and status_code(cause) == 401:
            detail = "it is wrong or has expired"
        else:
            detail = first_line(session.redact(str(exc)))
        raise UserError(
            f"Synapse rejected the auth token from {session.token_source or 'your configuration'} ({detail}); {TOKEN_HELP}"
        ) from None
    except Exception as exc:
        raise to_user_error(session, exc, "Synapse login") from None
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


@contextlib.contextmanager
def quiet_synapse_info() -> Iterator[None]:
    """Hide synapseclient's INFO chatter (we report ourselves); keep its warnings and progress bars."""
    import synapseclient.core.logging_setup  # noqa: F401 - configures the logger; must come first

    logger = logging.getLogger(_SYNAPSE_LOGGER)
    old = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(old)
