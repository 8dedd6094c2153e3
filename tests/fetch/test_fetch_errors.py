"""cpbench fetch, the paths that fail: MD5 mismatch, bad or missing token, no access, missing file,
no disk space, unwritable destination, unreachable network, and that the token never leaks."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from fake_synapse import DEFAULT_TOKEN
from fetch_world import (
    EXEMPLAR,
    LUNG,
    WD,
    MiB,
    assert_no_token,
    challenge_files,
)

from cpbench import cli
from cpbench.fetch import catalogue as challenge
from cpbench.fetch import local


@pytest.mark.parametrize("mode", ["single-stream", "parallel"])
def test_md5_mismatch_removes_the_bad_file(make_world, mode: str) -> None:
    w = make_world(challenge_files(**{LUNG: {"corrupt": True}}))
    rc, _, err = w.fetch("LUNG-1-LN", *(["--parallel"] if mode == "parallel" else []))
    assert rc == 2
    msg = err.split("cpbench: error: ", 1)[1]  # after synapseclient's progress bars
    assert msg.count("\n") == 1 and "MD5" in msg and "bad file was removed" in msg
    assert not (w.dest / LUNG).exists()
    assert not (w.dest / local.PARTIAL_DIR).exists()
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
    assert not (w.dest / WD).exists() and not (w.dest / local.PARTIAL_DIR).exists()


def test_disk_check_counts_the_partial(make_world, monkeypatch: pytest.MonkeyPatch) -> None:
    w = make_world()
    part = w.dest / local.PARTIAL_DIR / f"{LUNG}.synapse_download_1002"
    part.parent.mkdir(parents=True)
    part.write_bytes(w.fake.file(LUNG).data[: 8 * MiB])
    monkeypatch.setattr(local, "free_bytes", lambda p: local.DISK_MARGIN_BYTES + 2 * MiB)
    rc, out, err = w.fetch("LUNG-1-LN")  # 1.1 MiB still to get: fits
    assert rc == 0, err
    monkeypatch.setattr(local, "free_bytes", lambda p: local.DISK_MARGIN_BYTES + 2 * MiB)
    rc, _, err = w.fetch("exemplar-001", "--dest", str(w.tmp / "other"))  # 0.3 MB: fits
    assert rc == 0, err
    monkeypatch.setattr(local, "free_bytes", lambda p: 0)
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
    part = w.dest / local.PARTIAL_DIR / f"{LUNG}.synapse_download_1002"
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
    with open(w.dest / local.LOCK_NAME, "a") as fh:
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
