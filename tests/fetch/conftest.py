"""Fixtures of the fetch tests: isolation from real credentials, and a fake-Synapse world factory."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # fake_synapse and fetch_world, for any pytest import mode
from fake_synapse import DEFAULT_TOKEN, FakeFile, FakeSynapse  # noqa: E402
from fetch_world import World, assert_no_token, attach_logs, challenge_files  # noqa: E402

from cpbench import cli  # noqa: E402
from cpbench.fetch import session  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No real credentials or config; fetch registered; short network retry."""
    for var in ("SYNAPSE_AUTH_TOKEN", "SYNAPSE_PROFILE", "SYNAPSE_TOKEN_AWS_SSM_PARAMETER_NAME"):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    if "cpbench.fetch.cli" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, "cpbench.fetch.cli"))
    monkeypatch.setattr(session, "NETWORK_RETRY", session.NetworkRetry(budget_s=0.3, first_wait_s=0.02, max_wait_s=0.1))


@pytest.fixture
def make_world(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
               caplog: pytest.LogCaptureFixture) -> Iterator:
    """Factory: ``make_world(files=..., **FakeSynapse options)``; checks for token leaks at the end."""
    made: list[World] = []
    log_ctx = attach_logs(caplog)
    next(log_ctx)

    def make(files: list[FakeFile] | None = None, token: str | None = DEFAULT_TOKEN, **opts: object) -> World:
        fake = FakeSynapse(files if files is not None else challenge_files(), **opts)
        fake.start()
        config = fake.write_config(tmp_path / f"synapseConfig{len(made)}", cache_dir=tmp_path / "synapse-cache")
        w = World(fake, tmp_path, config, tmp_path / "data", capsys, monkeypatch)
        w.use_token(token)
        made.append(w)
        return w

    yield make
    for w in made:
        w.fake.stop()
    with pytest.raises(StopIteration):
        next(log_ctx)
    texts = [o for w in made for o in w.outputs] + [caplog.text]
    texts += [r.getMessage() for r in caplog.records]
    skip = {p for w in made for p in w.token_files}
    assert_no_token([DEFAULT_TOKEN], texts, tmp_path, skip)
