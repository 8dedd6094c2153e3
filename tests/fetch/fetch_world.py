"""What the fetch tests share: the three images as small fakes, a World around a fake Synapse
(tests/fetch/fake_synapse.py) and the token-leak check."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fake_synapse import DEFAULT_TOKEN, FakeFile, FakeSynapse, payload

from cpbench import cli

MiB = 2**20
EXEMPLAR = "exemplar-001.ome.tif"
LUNG = "LUNG-1-LN_40X.ome.tif"
WD = "WD-76845-097.ome.tif"
LUNG_BYTES = 9 * MiB + 123_457  # > 8 MiB: two parts on the multi-part path
SYNAPSE_LOGGERS = ("synapseclient_default", "synapseclient_debug", "synapseclient_silent")
#: runs ``cpbench`` in a subprocess, with ``fetch`` registered whether or not cli.py lists it yet
CLI_CODE = (
    "import sys; from cpbench import cli; m = 'cpbench.fetch.cli'; "
    "cli.COMMAND_MODULES += () if m in cli.COMMAND_MODULES else (m,); sys.exit(cli.main(sys.argv[1:]))"
)


def challenge_files(**overrides: dict) -> list[FakeFile]:
    """The three images as small deterministic fakes; ``overrides[file name]`` sets FakeFile fields."""
    specs = [(EXEMPLAR, 300_000, "syn90000001", "1001"), (LUNG, LUNG_BYTES, "syn90000002", "1002"),
             (WD, 1_000_000, "syn90000003", "1003")]
    files = []
    for i, (name, size, syn_id, fh) in enumerate(specs):
        f = FakeFile(name, payload(size, seed=i + 1), syn_id, fh)
        for k, v in overrides.get(name, {}).items():
            setattr(f, k, v)
        files.append(f)
    return files


@dataclass
class World:
    """A fake Synapse, a config file pointing at it, a destination, and everything printed."""

    fake: FakeSynapse
    tmp: Path
    config: Path
    dest: Path
    capsys: pytest.CaptureFixture[str]
    monkeypatch: pytest.MonkeyPatch
    outputs: list[str] = field(default_factory=list)
    token_files: set[Path] = field(default_factory=set)  #: files the *test* wrote the token into

    def use_token(self, token: str | None = DEFAULT_TOKEN) -> None:
        if token is None:
            self.monkeypatch.delenv("SYNAPSE_AUTH_TOKEN", raising=False)
        else:
            self.monkeypatch.setenv("SYNAPSE_AUTH_TOKEN", token)

    def fetch(self, *args: str) -> tuple[int, str, str]:
        argv = ["fetch", *args, "--synapse-config", str(self.config)]
        if "--dest" not in args:
            argv += ["--dest", str(self.dest)]
        rc = cli.main(argv)
        out, err = self.capsys.readouterr()
        self.outputs += [out, err]
        return rc, out, err

    def run_cli(self, *args: str, env: dict[str, str] | None = None, **kw: object) -> subprocess.Popen[str]:
        argv = [sys.executable, "-c", CLI_CODE, "fetch", *args, "--dest", str(self.dest),
                "--synapse-config", str(self.config)]
        return subprocess.Popen(argv, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, **kw)

    def image(self, name: str) -> bytes:
        return (self.dest / name).read_bytes()

    def manifest(self) -> dict:
        return json.loads((self.dest / "manifest.json").read_text())


def attach_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Capture every log record, synapseclient's non-propagating loggers included, at DEBUG."""
    caplog.set_level(logging.DEBUG)
    loggers = [logging.getLogger(n) for n in SYNAPSE_LOGGERS]
    for lg in loggers:
        lg.addHandler(caplog.handler)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeHandler(caplog.handler)


def assert_no_token(tokens: list[str], texts: list[str], root: Path, skip: set[Path]) -> None:
    """No token in any text, nor in any file under ``root`` (except those in ``skip``)."""
    for token in tokens:
        for text in texts:
            assert token not in text
        for p in root.rglob("*"):
            if p.is_file() and p not in skip:
                assert token.encode() not in p.read_bytes(), f"token found in {p}"


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()
