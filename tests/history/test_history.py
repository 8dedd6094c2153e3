"""The offline Cellpose history, built by the real pip and git from source distributions this test
makes (a local --find-links folder, --no-index: no network)."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import subprocess
import tarfile
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from cpbench.cli import main
from cpbench.errors import UserError
from cpbench.history.build import build_history, commit_of, releases

#: release -> its sdist's build time (not in version order: 3.1.1.3 was built after 4.0.1)
DATES = {"2.3.2": 1690000000, "3.0": 1707951600, "3.1.0": 1727000000, "4.0.1": 1746289200,
         "3.1.1.3": 1767976446, "4.1.0": 1750000000}


def _sdist(folder: Path, version: str, broken: bool = False) -> None:
    top = f"cellpose-{version}"
    files = {
        f"{top}/setup.py": f"from setuptools import setup\nsetup(name='cellpose', version='{version}', "
                           "packages=['cellpose'])\n",
        f"{top}/cellpose/__init__.py": f"RELEASE = {version!r}\n",
        f"{top}/cellpose.egg-info/PKG-INFO": "generated\n",
        f"{top}/docs/notes.md": f"notes of {version}\n",
    }
    if not broken:
        files[f"{top}/PKG-INFO"] = f"Metadata-Version: 2.1\nName: cellpose\nVersion: {version}\n"
    with tarfile.open(folder / f"{top}.tar.gz", "w:gz") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            data = text.encode()
            info.size, info.mtime = len(data), DATES[version]
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str]]:
    monkeypatch.setenv("PIP_NO_BUILD_ISOLATION", "0")  # pip's spelling of "no isolation": the sdists build offline
    links = tmp_path / "links"
    links.mkdir()
    for version in DATES:
        _sdist(links, version)
    return links, ["--no-index", "--find-links", str(links)]


def _log(repo: Path) -> list[str]:
    out = subprocess.run(["git", "-C", str(repo), "log", "--format=%H %cI %s", "main"], capture_output=True,
                         text=True, check=True).stdout
    return out.splitlines()


def test_one_tagged_dated_commit_per_release_in_version_order(index: tuple[Path, list[str]], tmp_path: Path) -> None:
    _, pip = index
    repo = tmp_path / "cellpose"
    history = build_history(repo, ">=3.0,<4.1", pip)
    assert [r.version for r in history] == ["3.0", "3.1.0", "3.1.1.3", "4.0.1"]  # 2.3.2 and 4.1.0 left out
    for r in history:
        assert r.date == datetime.fromtimestamp(DATES[r.version], tz=timezone.utc)  # the release's own date
        show = lambda path: subprocess.run(["git", "-C", str(repo), "show", f"v{r.version}:{path}"],  # noqa: E731
                                           capture_output=True, text=True)
        assert show("cellpose/__init__.py").stdout == f"RELEASE = {r.version!r}\n"  # the tag holds that release
        assert show("PKG-INFO").returncode != 0 and show("cellpose.egg-info/PKG-INFO").returncode != 0
    assert len(_log(repo)) == 4  # one commit per release, nothing else
    tags = subprocess.run(["git", "-C", str(repo), "describe", "--tags", "--exact-match", "main"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert tags == "v4.0.1"  # the branch ends at the newest release, tagged (setuptools_scm reads it)
    assert subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True,
                          check=True).stdout == ""


def test_rerun_adds_newer_releases_and_rewrites_nothing(index: tuple[Path, list[str]], tmp_path: Path) -> None:
    _, pip = index
    repo = tmp_path / "cellpose"
    first = build_history(repo, ">=3.0,<=3.1.0", pip)
    again = build_history(repo, ">=3.0,<=3.1.0", pip)
    assert again == first  # nothing new: nothing changes
    grown = build_history(repo, ">=3.0", pip)
    assert grown[:2] == first and [r.version for r in grown[2:]] == ["3.1.1.3", "4.0.1", "4.1.0"]
    assert len(_log(repo)) == 5


def test_an_older_missing_release_is_refused_and_the_history_kept(index: tuple[Path, list[str]],
                                                                  tmp_path: Path) -> None:
    _, pip = index
    repo = tmp_path / "cellpose"
    build_history(repo, ">=3.1.0,<=4.0.1", pip)
    before = _log(repo)
    with pytest.raises(UserError, match="3.0 older than the newest release.*grows forward"):
        build_history(repo, ">=3.0", pip)
    assert _log(repo) == before


def test_a_bad_release_leaves_nothing_half_built(index: tuple[Path, list[str]], tmp_path: Path) -> None:
    links, pip = index
    (links / "cellpose-4.0.1.tar.gz").unlink()
    _sdist(links, "4.0.1", broken=True)  # no PKG-INFO: not an sdist
    new = tmp_path / "new"
    with pytest.raises(UserError, match="cellpose-4.0.1.tar.gz is not a Python source distribution"):
        build_history(new, ">=3.0,<4.1", pip)
    assert not new.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".cellpose")] == []
    repo = tmp_path / "cellpose"
    build_history(repo, ">=3.0,<=3.1.0", pip)
    before = _log(repo)
    with pytest.raises(UserError):
        build_history(repo, ">=3.0,<4.1", pip)  # 3.1.1.3 is committed, then 4.0.1 fails
    assert [r.version for r in releases(repo)] == ["3.0", "3.1.0", "3.1.1.3"] and _log(repo)[1:] == before
    assert subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--ignored"], capture_output=True,
                          text=True, check=True).stdout == ""  # the work tree is the last complete release


def test_commit_of_a_release_and_of_the_installed_cellpose(index: tuple[Path, list[str]], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    _, pip = index
    repo = tmp_path / "cellpose"
    history = build_history(repo, ">=3.0", pip)
    assert commit_of(repo, "3.1.0") == history[1].commit
    monkeypatch.setattr("importlib.metadata.version", lambda name: "3.1.1.3")
    assert commit_of(repo, "installed") == history[2].commit
    with pytest.raises(UserError, match=r"cellpose 2.3.2 is not in .* \(it holds v3.0 to v4.1.0\)"):
        commit_of(repo, "2.3.2")
    with pytest.raises(UserError, match="no Cellpose history at .*cpbench cellpose-history"):
        commit_of(tmp_path / "nothing", "3.0")


def test_cli_lists_the_history_and_rejects_bad_input(index: tuple[Path, list[str]], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    _, pip = index
    repo = tmp_path / "cellpose"
    args = ["cellpose-history", "--out", str(repo), *[f"--pip-arg={a}" for a in pip]]
    assert main([*args, "--versions", ">=3.0"]) == 0
    out = capsys.readouterr().out
    assert "5 releases, 5 new" in out and "| v3.1.1.3 | 2026-01-09 16:34 |" in out
    assert "note: 4.0.1, 4.1.0 dated before" in out  # patch releases of 3.1 came after 4.0.1
    assert main([*args, "--versions", "3.0"]) == 2
    assert "is not a version range" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert main(["cellpose-history", "--out", str(tmp_path / "afile"), *[f"--pip-arg={a}" for a in pip]]) == 2
    assert "exists and is not a git repository" in capsys.readouterr().err
    assert main(["cellpose-history", "--out", str(tmp_path / "x"), "--pip-arg=--index-url=http://127.0.0.1:9/",
                 "--pip-arg=--no-cache-dir", "--pip-arg=--retries=0"]) == 2
    assert "pip could not list the releases of cellpose" in capsys.readouterr().err


class _Index(http.server.BaseHTTPRequestHandler):
    """A package index on 127.0.0.1: ``/simple/cellpose/`` as PEP 691 JSON (or only as PEP 503 HTML
    when ``json`` is off) and ``/files/NAME``; records who fetched each file."""

    links: Path
    json = True
    fetched: list[tuple[str, str]] = []

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        files = sorted(self.links.glob("*.tar.gz"))
        if self.path.rstrip("/") == "/simple/cellpose":
            if self.json and "application/vnd.pypi.simple.v1+json" in self.headers.get("Accept", ""):
                body = json.dumps({"meta": {"api-version": "1.0"}, "name": "cellpose", "files": [
                    {"filename": f.name, "url": f"/files/{f.name}",
                     "hashes": {"sha256": hashlib.sha256(f.read_bytes()).hexdigest()}} for f in files]}).encode()
                kind = "application/vnd.pypi.simple.v1+json"
            else:
                body = "".join(f'<a href="/files/{f.name}#sha256={hashlib.sha256(f.read_bytes()).hexdigest()}">'
                               f"{f.name}</a>\n" for f in files).encode()
                kind = "text/html"
        elif self.path.startswith("/files/") and (self.links / self.path[7:]).is_file():
            body, kind = (self.links / self.path[7:]).read_bytes(), "application/octet-stream"
            self.fetched.append((self.path[7:], self.headers.get("User-Agent", "")))
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def served(index: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch):
    """pip's default index is a server on 127.0.0.1 holding the test sdists (no config files, no
    find-links, no extra index: only that server answers)."""
    links, _ = index
    handler = type("Handler", (_Index,), {"links": links, "fetched": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for var in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{server.server_address[1]}/simple")
    yield handler
    server.shutdown()


def test_sdists_come_straight_from_pips_index_with_the_same_commits(served: type[_Index], index: tuple[Path, list[str]],
                                                                    tmp_path: Path) -> None:
    links, pip = index
    via_pip = build_history(tmp_path / "via-pip", ">=3.0,<4.1", pip)  # --find-links: pip fetches each file
    direct = build_history(tmp_path / "direct", ">=3.0,<4.1")
    assert direct == via_pip  # same commits, hashes and dates whichever route fetched the files
    assert sorted(name for name, _ in served.fetched) == [f"cellpose-{v}.tar.gz" for v in ("3.0", "3.1.0", "3.1.1.3", "4.0.1")]
    assert all(agent.startswith("Python-urllib") for _, agent in served.fetched)  # not pip: no metadata build


def test_an_index_without_json_falls_back_to_pip(served: type[_Index], tmp_path: Path) -> None:
    served.json = False
    history = build_history(tmp_path / "repo", ">=3.1,<4.0")
    assert [r.version for r in history] == ["3.1.0", "3.1.1.3"]
    assert {agent.split("/")[0] for _, agent in served.fetched} == {"pip"}


def test_a_file_whose_hash_differs_is_not_used(served: type[_Index], index: tuple[Path, list[str]],
                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cpbench.history import index as direct

    links, _ = index
    real = direct.sdist_links
    monkeypatch.setattr(direct, "sdist_links", lambda *a: {k: (u, "0" * 64) for k, (u, _) in real(*a).items()})
    history = build_history(tmp_path / "repo", "==3.1.0")  # the direct copy fails its check; pip's is used
    assert [r.version for r in history] == ["3.1.0"]
    assert [agent.split("/")[0] for _, agent in served.fetched] == ["Python-urllib", "pip"]


def _tar_with(path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        pkg = tarfile.TarInfo("cellpose-9.0/PKG-INFO")
        pkg.size = 0
        tar.addfile(pkg, io.BytesIO(b""))
        member.size = len(data) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return path


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize(("member", "why"), [
    (tarfile.TarInfo("/tmp/cpbench-evil"), "an absolute path"),
    (tarfile.TarInfo("cellpose-9.0/../../evil"), r"a path leaving the folder \(\.\.\)"),
    (_link("cellpose-9.0/passwd", "/etc/passwd"), "a link to an absolute path"),
    (_link("cellpose-9.0/up", "../../outside"), "a link leaving the folder"),
    (_link("cellpose-9.0/hard", "../outside", tarfile.LNKTYPE), "a hard link leaving the folder"),
])
def test_unpacking_refuses_members_that_leave_the_folder(tmp_path: Path, member: tarfile.TarInfo, why: str) -> None:
    from cpbench.history.build import unpack_sdist

    sdist = _tar_with(tmp_path / "cellpose-9.0.tar.gz", member, b"x")
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(UserError, match=f"cellpose-9.0.tar.gz holds .*{why}.*: refusing to unpack it"):
        unpack_sdist(sdist, dest)
    assert list(dest.iterdir()) == [] and not Path("/tmp/cpbench-evil").exists()


def test_unpacking_a_plain_sdist_works_on_this_python(tmp_path: Path) -> None:
    """On 3.11.2 (Debian 12's python3) and every Python before 3.11.4, tarfile has no extraction
    filters: ``extractall(filter=...)`` raised TypeError there. ``make test`` runs this under them."""
    from cpbench.history.build import unpack_sdist

    inner = _link("cellpose-9.0/docs/latest", "../README.md")  # a link inside the folder is fine
    sdist = _tar_with(tmp_path / "cellpose-9.0.tar.gz", inner)
    top, date = unpack_sdist(sdist, tmp_path)
    assert top == tmp_path / "cellpose-9.0" and (top / "PKG-INFO").is_file() and (top / "docs" / "latest").is_symlink()
