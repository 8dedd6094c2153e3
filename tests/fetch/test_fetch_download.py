"""cpbench fetch, the paths that work: names, dry run, downloads, adoption of existing files, and
resuming interrupted downloads. The real synapseclient against a local fake Synapse (fake_synapse.py)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from fake_synapse import DEFAULT_TOKEN
from fetch_world import (
    EXEMPLAR,
    LUNG,
    LUNG_BYTES,
    WD,
    MiB,
    challenge_files,
    md5,
)

from cpbench import cli
from cpbench.fetch import catalogue as challenge
from cpbench.fetch import local
from cpbench.fetch.catalogue import local_path

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
    assert not (w.dest / local.PARTIAL_DIR).exists()
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
    part = w.dest / local.PARTIAL_DIR / f"{LUNG}.synapse_download_1002"
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
    assert "interrupted" in err and "resume" in err and str(w.dest / local.PARTIAL_DIR) in err
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
    part = w.dest / local.PARTIAL_DIR / f"{LUNG}.synapse_download_1002"
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
    assert not (w.dest / local.PARTIAL_DIR).exists()


def test_complete_partial_is_finished_without_refetching(make_world) -> None:
    w = make_world()
    part = w.dest / local.PARTIAL_DIR / f"{EXEMPLAR}.synapse_download_1001"
    part.parent.mkdir(parents=True)
    part.write_bytes(w.fake.file(EXEMPLAR).data)
    rc, _, err = w.fetch("exemplar-001")
    assert rc == 0, err
    assert [r.range for r in w.fake.bucket_requests()] == ["bytes=300000-"]  # answered 416, as S3 does
    assert w.image(EXEMPLAR) == w.fake.file(EXEMPLAR).data


def test_partial_of_an_older_version_is_removed(make_world) -> None:
    w = make_world()
    old = w.dest / local.PARTIAL_DIR / f"{EXEMPLAR}.synapse_download_999"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"old")
    rc, out, _ = w.fetch("exemplar-001")
    assert rc == 0 and "older version" in out and not old.exists()


@pytest.mark.parametrize("mode", ["single-stream", "parallel"])
def test_fetched_files_are_readable_by_group_and_others(make_world, umask022: None, mode: str) -> None:
    """Under umask 022 the downloaded image and the manifest are 0644, as a plain download would be."""
    import stat

    w = make_world()
    args = ("exemplar-001", "LUNG-1-LN") + (("--parallel",) if mode == "parallel" else ())
    assert w.fetch(*args)[0] == 0
    for p in (w.dest / EXEMPLAR, w.dest / LUNG, w.dest / "manifest.json"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, f"{p.name}: {oct(stat.S_IMODE(p.stat().st_mode))}"


def test_synapseclient_is_within_the_range_pyproject_allows() -> None:
    """The installed synapseclient is one pyproject.toml allows; under `make test-synapse-min` it is
    exactly the lowest allowed (CPBENCH_EXPECT_SYNAPSECLIENT), so these tests prove that end works."""
    import re
    from importlib import metadata

    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    low, high = re.search(r'"synapseclient>=([0-9.]+),<([0-9.]+)"', text).groups()  # type: ignore[union-attr]
    installed = metadata.version("synapseclient")

    def key(v: str) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", v)[:3]) + (0,) * (3 - len(re.findall(r"\d+", v)[:3]))

    assert key(low) <= key(installed) < key(high), f"synapseclient {installed} outside >={low},<{high}"
    expected = os.environ.get("CPBENCH_EXPECT_SYNAPSECLIENT")
    if expected is not None:
        assert key(installed) == key(expected), f"expected synapseclient {expected}, got {installed}"
