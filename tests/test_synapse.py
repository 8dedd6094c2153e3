"""cpbench fetch: the real synapseclient against a local fake Synapse (tests/fake_synapse.py).

Covers: dry run, the small (single stream) and multi-part (> 8 MiB, --parallel) download paths,
a dropped connection resumed within a run, an interrupted process resumed by the next run, MD5
mismatch, bad token, anonymous access, no access, a missing file name, disk-space refusal, an
unwritable destination, an unreachable network (bounded retry), and that the token never appears
in any output, log record or file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cpbench import challenge, cli, synapse
from cpbench.challenge import local_path

sys.path.insert(0, str(Path(__file__).parent))  # for any pytest import mode
from fake_synapse import DEFAULT_TOKEN, FakeFile, FakeSynapse, payload  # noqa: E402

MiB = 2**20
EXEMPLAR = "exemplar-001.ome.tif"
LUNG = "LUNG-1-LN_40X.ome.tif"
WD = "WD-76845-097.ome.tif"
LUNG_BYTES = 9 * MiB + 123_457  # > 8 MiB: two parts on the multi-part path
SYNAPSE_LOGGERS = ("synapseclient_default", "synapseclient_debug", "synapseclient_silent")
#: runs ``cpbench`` in a subprocess, with ``fetch`` registered whether or not cli.py lists it yet
CLI_CODE = (
    "import sys; from cpbench import cli; m = 'cpbench.fetch_cli'; "
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


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No real credentials or config; fetch registered; short network retry."""
    for var in ("SYNAPSE_AUTH_TOKEN", "SYNAPSE_PROFILE", "SYNAPSE_TOKEN_AWS_SSM_PARAMETER_NAME"):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    if "cpbench.fetch_cli" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, "cpbench.fetch_cli"))
    monkeypatch.setattr(synapse, "NETWORK_RETRY", synapse.NetworkRetry(budget_s=0.3, first_wait_s=0.02, max_wait_s=0.1))


def _attach(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
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


@pytest.fixture
def make_world(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
               caplog: pytest.LogCaptureFixture) -> Iterator:
    """Factory: ``make_world(files=..., **FakeSynapse options)``; checks for token leaks at the end."""
    made: list[World] = []
    log_ctx = _attach(caplog)
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


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# ---------------------------------------------------------------------------------------------
# names and local state (no network)
# ---------------------------------------------------------------------------------------------


def test_unknown_name_lists_valid_ones_without_network(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc = cli.main(["fetch", "exemplar-002", "--dest", str(tmp_path / "d"),
                   "--synapse-config", str(tmp_path / "none")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("cpbench: error: unknown image 'exemplar-002'")
    for name in ("exemplar-001", "LUNG-1-LN", "WD-76845-097", "all"):
        assert name in err
    assert not (tmp_path / "d").exists()


def test_resolve_names() -> None:
    assert [i.name for i in challenge.resolve_names(["all"])] == list(challenge.NAMES)
    assert [i.name for i in challenge.resolve_names(["lung-1-ln", LUNG, "exemplar-001"])] == ["LUNG-1-LN", "exemplar-001"]
    assert challenge.IMAGES["WD-76845-097"].shape == (40, 27120, 26139)
    assert challenge.FOLDER_ID == "syn26848688"


# ---------------------------------------------------------------------------------------------
# happy paths
# ---------------------------------------------------------------------------------------------


def test_dry_run_lists_ids_sizes_presence_and_downloads_nothing(make_world) -> None:
    w = make_world()
    rc, out, _ = w.fetch("all", "--dry-run")
    assert rc == 0
    for f in w.fake.files:
        line = next(line for line in out.splitlines() if line.startswith(challenge.resolve_names([f.name])[0].name))
        assert f.synapse_id in line and "absent" in line
    assert "300.0 kB" in out and "9.6 MB" in out and "to download: 10.9 MB" in out
    assert not w.dest.exists()
    assert w.fake.bucket_requests() == []
    assert not [r for r in w.fake.requests if r.path.endswith("fileHandle/batch")]

    assert w.fetch("exemplar-001")[0] == 0
    rc, out, _ = w.fetch("all", "--dry-run")
    line = next(line for line in out.splitlines() if line.startswith("exemplar-001"))
    assert "present, verified" in line and str(w.dest / EXEMPLAR) in line


def test_small_download_verified_recorded_then_nothing_downloaded(make_world) -> None:
    w = make_world()
    assert local_path("exemplar-001", w.dest) is None
    rc, out, err = w.fetch("exemplar-001")
    assert rc == 0, err
    f = w.fake.file(EXEMPLAR)
    assert w.image(EXEMPLAR) == f.data
    assert f"exemplar-001\t{w.dest / EXEMPLAR}" in out  # the local path is printed
    assert "Downloading files" in err and "B/s" in err  # synapseclient's bar: size and rate
    entry = w.manifest()["files"]["exemplar-001"]
    assert entry["synapse_id"] == f.synapse_id and entry["version"] == 1
    assert entry["size_bytes"] == len(f.data) and entry["md5"] == md5(f.data)
    assert entry["path"] == EXEMPLAR and entry["fetched_at"].endswith("+00:00")
    assert local_path("exemplar-001", w.dest) == w.dest / EXEMPLAR
    assert not (w.dest / synapse.PARTIAL_DIR).exists()
    # synapseclient's own cache map now points at the final file
    cache_map = json.loads((w.tmp / "synapse-cache" / "1" / "1001" / ".cacheMap").read_text())
    assert list(cache_map) == [str(w.dest / EXEMPLAR)]
    # the requests synapseclient made, in order, with the token on the repo and never on the bucket
    paths = [r.path for r in w.fake.requests]
    assert paths[:3] == ["/repo/v1/version", "/repo/v1/userProfile", "/repo/v1/entity/children"]
    assert "/repo/v1/entity/syn90000001/bundle2" in paths and "/file/v1/fileHandle/batch" in paths
    assert all(r.auth == "valid" for r in w.fake.requests if r.server == "repo" and r.path != "/repo/v1/version")
    assert [r.auth for r in w.fake.bucket_requests()] == ["none"]

    n = len(w.fake.bucket_requests())
    rc, out, _ = w.fetch("exemplar-001")
    assert rc == 0 and "present and verified" in out
    assert len(w.fake.bucket_requests()) == n  # nothing downloaded


def test_multipart_parallel_download(make_world) -> None:
    w = make_world()
    rc, out, err = w.fetch("LUNG-1-LN", "--parallel")
    assert rc == 0, err
    assert "8 MiB parts in parallel" in out
    assert w.image(LUNG) == w.fake.file(LUNG).data
    ranges = sorted(r.range for r in w.fake.bucket_requests(LUNG) if r.range)
    assert ranges == [f"bytes=0-{8 * MiB - 1}", f"bytes={8 * MiB}-{LUNG_BYTES - 1}"]


def test_large_file_single_stream_by_default(make_world) -> None:
    w = make_world()
    rc, out, err = w.fetch("LUNG-1-LN")
    assert rc == 0, err
    assert "single stream, resumable" in out
    assert [r.range for r in w.fake.bucket_requests(LUNG)] == [None]
    assert w.image(LUNG) == w.fake.file(LUNG).data


def test_quiet_has_no_progress_bars(make_world) -> None:
    w = make_world()
    rc, _, err = w.fetch("exemplar-001", "--quiet")
    assert rc == 0 and "Downloading files" not in err and err == ""


def test_files_found_in_subfolder_and_across_pages(make_world) -> None:
    files = challenge_files(**{WD: {"parent_id": "syn90000010"}})
    w = make_world(files, folders={"syn90000010": ("large images", challenge.FOLDER_ID)}, page_size=1)
    rc, _, err = w.fetch("WD-76845-097")
    assert rc == 0, err
    assert w.image(WD) == w.fake.file(WD).data
    listings = [r.body for r in w.fake.requests if r.path == "/repo/v1/entity/children"]
    assert {b["parentId"] for b in listings} == {challenge.FOLDER_ID, "syn90000010"}
    assert any("nextPageToken" in b for b in listings)


def test_anonymous_where_the_data_allows(make_world) -> None:
    w = make_world(token=None, require_auth=False)
    rc, out, err = w.fetch("exemplar-001")
    assert rc == 0, err
    assert "anonymous" in out
    assert {r.auth for r in w.fake.requests} == {"none"}


def test_token_from_synapse_config(make_world) -> None:
    w = make_world(token=None)
    w.config = w.fake.write_config(w.tmp / "synapseConfig-token", token=DEFAULT_TOKEN)
    w.token_files.add(w.config)
    rc, out, err = w.fetch("exemplar-001")
    assert rc == 0, err
    assert f"token from {w.config}" in out
    assert any(r.auth == "valid" for r in w.fake.requests)


def test_existing_file_is_adopted_when_md5_matches(make_world) -> None:
    w = make_world()
    w.dest.mkdir()
    (w.dest / EXEMPLAR).write_bytes(w.fake.file(EXEMPLAR).data)
    rc, out, _ = w.fetch("exemplar-001")
    assert rc == 0 and "MD5 matches Synapse" in out
    assert w.fake.bucket_requests() == []
    assert local_path("exemplar-001", w.dest) == w.dest / EXEMPLAR


def test_existing_different_file_is_refused_and_kept(make_world) -> None:
    w = make_world()
    w.dest.mkdir()
    (w.dest / EXEMPLAR).write_bytes(b"not the image")
    rc, _, err = w.fetch("exemplar-001")
    assert rc == 2 and "exists but its MD5" in err and "move or delete it" in err
    assert (w.dest / EXEMPLAR).read_bytes() == b"not the image"
    assert w.fake.bucket_requests() == []


def test_verify_rehashes_a_file_the_manifest_trusts(make_world) -> None:
    w = make_world()
    assert w.fetch("exemplar-001")[0] == 0
    path = w.dest / EXEMPLAR
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF  # same size, same mtime: only a hash can tell
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert w.fetch("exemplar-001")[0] == 0  # trusted
    rc, _, err = w.fetch("exemplar-001", "--verify")
    assert rc == 2 and "differs from Synapse's" in err


def test_local_path_is_none_when_file_changed(make_world) -> None:
    w = make_world()
    assert w.fetch("exemplar-001")[0] == 0
    with open(w.dest / EXEMPLAR, "ab") as fh:
        fh.write(b"x")
    assert local_path("exemplar-001", w.dest) is None
    assert local_path("LUNG-1-LN", w.dest) is None


# ---------------------------------------------------------------------------------------------
# interruptions and resume
# ---------------------------------------------------------------------------------------------


def test_dropped_connection_is_resumed_within_the_run(make_world) -> None:
    w = make_world(challenge_files(**{LUNG: {"drop_after": 5_000_000}}))
    rc, _, err = w.fetch("LUNG-1-LN")
    assert rc == 0, err
    reqs = w.fake.bucket_requests(LUNG)
    assert len(reqs) == 2 and reqs[0].range is None
    start = int(reqs[1].range.removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= 5_000_000  # synapseclient asked for the rest only
    assert w.image(LUNG) == w.fake.file(LUNG).data


def test_interrupted_process_is_resumed_by_the_next_run(make_world) -> None:
    w = make_world(challenge_files(**{LUNG: {"stall_after": 5_000_000}}))
    part = w.dest / synapse.PARTIAL_DIR / f"{LUNG}.synapse_download_1002"
    proc = w.run_cli("LUNG-1-LN", env={"SYNAPSE_AUTH_TOKEN": DEFAULT_TOKEN})
    try:
        for _ in range(600):  # the server stalls after 5 MB; synapseclient writes 2 MiB blocks
            if part.is_file() and part.stat().st_size >= 4 * MiB:
                break
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        assert part.is_file() and part.stat().st_size >= 4 * MiB, "download did not start"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    w.outputs += [out, err]
    assert proc.returncode == 130
    assert "interrupted" in err and "resume" in err and str(w.dest / synapse.PARTIAL_DIR) in err
    assert not (w.dest / LUNG).exists()
    have = part.stat().st_size
    assert 0 < have < LUNG_BYTES

    rc, out, _ = w.fetch("all", "--dry-run")
    assert rc == 0 and "resumable" in next(line for line in out.splitlines() if line.startswith("LUNG-1-LN"))

    w.fake.release.set()
    rc, out, err = w.fetch("LUNG-1-LN")
    assert rc == 0, err
    assert "resuming" in out and "resumed and verified" in out
    assert w.fake.bucket_requests(LUNG)[-1].range == f"bytes={have}-"
    assert w.image(LUNG) == w.fake.file(LUNG).data
    assert not part.exists() and not part.parent.exists()
    assert w.manifest()["files"]["LUNG-1-LN"]["md5"] == md5(w.fake.file(LUNG).data)


def test_interrupted_parallel_download_starts_over(make_world) -> None:
    """synapseclient's multi-part partial is not a prefix of the file: never resume it with Range."""
    # GET 1 is the downloader's size probe; GET 2 is the first 8 MiB part to be asked for: it stalls
    w = make_world(challenge_files(**{LUNG: {"stall_after": MiB, "fault_on_get": 2}}))
    part = w.dest / synapse.PARTIAL_DIR / f"{LUNG}.synapse_download_1002"
    proc = w.run_cli("LUNG-1-LN", "--parallel", env={"SYNAPSE_AUTH_TOKEN": DEFAULT_TOKEN})
    try:
        for _ in range(600):  # until the part that does not stall has been written at its offset
            if part.is_file() and part.stat().st_size > 0 or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert part.is_file() and part.stat().st_size > 0, "download did not start"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    w.outputs += [out, err]
    assert proc.returncode == 130
    rc, out, _ = w.fetch("LUNG-1-LN", "--dry-run")
    assert rc == 0 and "will start over" in out

    w.fake.release.set()
    n = len(w.fake.bucket_requests(LUNG))
    rc, out, err = w.fetch("LUNG-1-LN")
    assert rc == 0, err
    assert "cannot be resumed; starting over" in out
    assert [r.range for r in w.fake.bucket_requests(LUNG)[n:]] == [None]  # from the start, one stream
    assert w.image(LUNG) == w.fake.file(LUNG).data
    assert not (w.dest / synapse.PARTIAL_DIR).exists()


def test_complete_partial_is_finished_without_refetching(make_world) -> None:
    w = make_world()
    part = w.dest / synapse.PARTIAL_DIR / f"{EXEMPLAR}.synapse_download_1001"
    part.parent.mkdir(parents=True)
    part.write_bytes(w.fake.file(EXEMPLAR).data)
    rc, _, err = w.fetch("exemplar-001")
    assert rc == 0, err
    assert [r.range for r in w.fake.bucket_requests()] == ["bytes=300000-"]  # answered 416, as S3 does
    assert w.image(EXEMPLAR) == w.fake.file(EXEMPLAR).data


def test_partial_of_an_older_version_is_removed(make_world) -> None:
    w = make_world()
    old = w.dest / synapse.PARTIAL_DIR / f"{EXEMPLAR}.synapse_download_999"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"old")
    rc, out, _ = w.fetch("exemplar-001")
    assert rc == 0 and "older version" in out and not old.exists()


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["single-stream", "parallel"])
def test_md5_mismatch_removes_the_bad_file(make_world, mode: str) -> None:
    w = make_world(challenge_files(**{LUNG: {"corrupt": True}}))
    rc, _, err = w.fetch("LUNG-1-LN", *(["--parallel"] if mode == "parallel" else []))
    assert rc == 2
    msg = err.split("cpbench: error: ", 1)[1]  # after synapseclient's progress bars
    assert msg.count("\n") == 1 and "MD5" in msg and "bad file was removed" in msg
    assert not (w.dest / LUNG).exists()
    assert not (w.dest / synapse.PARTIAL_DIR).exists()
    assert "LUNG-1-LN" not in challenge.read_manifest(w.dest)["files"]


def test_bad_token(make_world) -> None:
    bad = "cpbench-wrong-token-0123456789abcdef"
    w = make_world(token=bad)
    rc, out, err = w.fetch("exemplar-001")
    assert rc == 2
    assert err.startswith("cpbench: error: Synapse rejected the auth token from SYNAPSE_AUTH_TOKEN")
    assert "PersonalAccessTokens" in err
    assert bad not in out + err
    assert w.fake.bucket_requests() == []


def test_anonymous_without_access_is_told_to_log_in(make_world) -> None:
    w = make_world(token=None)
    rc, _, err = w.fetch("exemplar-001")
    assert rc == 2 and "needs a Synapse login" in err and "SYNAPSE_AUTH_TOKEN" in err


def test_no_access(make_world) -> None:
    w = make_world(no_access=True)
    rc, _, err = w.fetch("exemplar-001")
    assert rc == 2 and "has no access" in err and "syn26848688" in err


def test_missing_file_name(make_world) -> None:
    w = make_world([f for f in challenge_files() if f.name != WD])
    rc, _, err = w.fetch("all")
    assert rc == 2
    assert f"{WD} not found in Synapse folder syn26848688" in err and EXEMPLAR in err
    assert w.fake.bucket_requests() == []  # resolved everything before downloading anything


def test_not_enough_disk_refuses_before_downloading(make_world) -> None:
    w = make_world(challenge_files(**{WD: {"size": 10**15}}))  # 1 PB reported
    rc, _, err = w.fetch("WD-76845-097")
    assert rc == 2 and "not enough free space" in err and "1000.0 TB" in err
    assert w.fake.bucket_requests() == []
    assert not (w.dest / WD).exists() and not (w.dest / synapse.PARTIAL_DIR).exists()


def test_disk_check_counts_the_partial(make_world, monkeypatch: pytest.MonkeyPatch) -> None:
    w = make_world()
    part = w.dest / synapse.PARTIAL_DIR / f"{LUNG}.synapse_download_1002"
    part.parent.mkdir(parents=True)
    part.write_bytes(w.fake.file(LUNG).data[: 8 * MiB])
    monkeypatch.setattr(synapse, "free_bytes", lambda p: synapse.DISK_MARGIN_BYTES + 2 * MiB)
    rc, out, err = w.fetch("LUNG-1-LN")  # 1.1 MiB still to get: fits
    assert rc == 0, err
    monkeypatch.setattr(synapse, "free_bytes", lambda p: synapse.DISK_MARGIN_BYTES + 2 * MiB)
    rc, _, err = w.fetch("exemplar-001", "--dest", str(w.tmp / "other"))  # 0.3 MB: fits
    assert rc == 0, err
    monkeypatch.setattr(synapse, "free_bytes", lambda p: 0)
    rc, _, err = w.fetch("WD-76845-097")
    assert rc == 2 and "not enough free space" in err


@pytest.mark.parametrize("where", ["a-file", "under-a-file"])
def test_destination_not_writable(make_world, where: str) -> None:
    w = make_world()
    blocker = w.tmp / "blocker"
    blocker.write_text("x")
    dest = blocker if where == "a-file" else blocker / "data"
    rc, _, err = w.fetch("exemplar-001", "--dest", str(dest))
    assert rc == 2 and err.startswith(f"cpbench: error: cannot write to the destination {dest}") and "--dest" in err
    assert w.fake.requests == []  # refused before touching the network


def test_network_unreachable_after_bounded_retry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    base = f"http://127.0.0.1:{port}"
    cfg = tmp_path / "synapseConfig"
    cfg.write_text(f"[endpoints]\nrepoEndpoint = {base}/repo/v1\nauthEndpoint = {base}/auth/v1\n"
                   f"fileHandleEndpoint = {base}/file/v1\nportalEndpoint = {base}/\n")
    rc = cli.main(["fetch", "exemplar-001", "--dest", str(tmp_path / "d"), "--synapse-config", str(cfg)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith(f"cpbench: error: cannot reach Synapse at {base}/repo/v1 (Connection refused")
    assert "retried with backoff" in err and err.count("\n") == 1


def test_unavailable_synapse_is_retried_with_a_bound(make_world) -> None:
    w = make_world(version_failures=2)
    assert w.fetch("exemplar-001")[0] == 0
    assert [r.path for r in w.fake.requests].count("/repo/v1/version") == 3

    w2 = make_world(version_failures=10**6)
    rc, _, err = w2.fetch("exemplar-001")
    assert rc == 2 and "Synapse is not answering (503" in err
    probes = [r.path for r in w2.fake.requests].count("/repo/v1/version")
    assert 2 <= probes <= 50


# ---------------------------------------------------------------------------------------------
# secrets
# ---------------------------------------------------------------------------------------------


def test_token_never_in_output_logs_or_files(make_world, caplog: pytest.LogCaptureFixture) -> None:
    """Downloads (both paths), errors and synapseclient's debug mode: the token shows up nowhere.

    (The make_world fixture repeats this scan for every test that uses it.)
    """
    w = make_world(challenge_files(**{WD: {"corrupt": True}}))
    w.config = w.fake.write_config(w.tmp / "synapseConfig-debug", cache_dir=w.tmp / "synapse-cache")
    with open(w.config, "a") as fh:
        fh.write("\n[debug]\n")  # synapseclient's verbose mode: request details in its messages
    assert w.fetch("exemplar-001")[0] == 0
    assert w.fetch("LUNG-1-LN", "--parallel")[0] == 0
    assert w.fetch("WD-76845-097")[0] == 2  # MD5 mismatch
    assert w.fetch("all", "--dry-run")[0] == 0
    no_access = make_world(no_access=True)
    assert no_access.fetch("exemplar-001")[0] == 2
    # the token was really used (so the scan below is not vacuous) ...
    assert sum(r.auth == "valid" for r in w.fake.requests) >= 5
    assert caplog.records  # ... and logging was really captured
    texts = w.outputs + no_access.outputs + [caplog.text] + [r.getMessage() for r in caplog.records]
    assert_no_token([DEFAULT_TOKEN], texts, w.tmp, set())


def test_disk_full_during_download_keeps_the_partial(make_world, monkeypatch: pytest.MonkeyPatch) -> None:
    import synapseclient.core.download as download

    w = make_world()
    part = w.dest / synapse.PARTIAL_DIR / f"{LUNG}.synapse_download_1002"
    part.parent.mkdir(parents=True)
    part.write_bytes(w.fake.file(LUNG).data[:MiB])

    async def disk_full(**kw: object) -> str:
        raise OSError(28, "No space left on device")  # what synapseclient lets through (not retried)

    monkeypatch.setattr(download, "download_by_file_handle", disk_full)
    rc, _, err = w.fetch("LUNG-1-LN")
    assert rc == 2 and "filled up" in err and "kept at" in err and "resume" in err
    assert part.stat().st_size == MiB


def test_one_fetch_at_a_time_per_destination(make_world) -> None:
    import fcntl

    w = make_world()
    w.dest.mkdir()
    with open(w.dest / synapse.LOCK_NAME, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        rc, _, err = w.fetch("exemplar-001")
        assert rc == 2 and "another cpbench fetch is working in" in err
        assert w.fetch("exemplar-001", "--dry-run")[0] == 0  # a dry run does not need the lock
    assert w.fetch("exemplar-001")[0] == 0


def test_unreadable_synapse_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "synapseConfig"
    cfg.write_text("[endpoints\nrepoEndpoint = nowhere\n")
    rc = cli.main(["fetch", "exemplar-001", "--dest", str(tmp_path / "d"), "--synapse-config", str(cfg)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith(f"cpbench: error: cannot read the Synapse config file {cfg}")
