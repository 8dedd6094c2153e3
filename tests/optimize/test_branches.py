"""Patches as branches of a history: git am on the release's tag, the same commit on every build, the
repository's own checkout untouched, and one-line errors for a patch that is misnamed, targets a release
the history lacks, or does not apply. Plus: the shipped patches are well-formed for their releases."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cpbench.cli import main
from cpbench.errors import UserError
from cpbench.optimize.branches import PATCH_DIR, build_branch, build_branches, patches, read_patch

ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
       "GIT_COMMITTER_EMAIL": "t@x", "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+0000",
       "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+0000"}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=ENV).stdout


@pytest.fixture()
def history(tmp_path: Path) -> tuple[Path, Path]:
    """A two-release history (v1.0, v1.1 on main) and a folder with one patch made on v1.0."""
    repo = tmp_path / "history"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "pkg").mkdir()
    (repo / "pkg" / "mod.py").write_text("def f():\n    return sum([1, 2, 3])\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "release 1.0")
    _git(repo, "tag", "v1.0")
    (repo / "pkg" / "other.py").write_text("x = 1\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "release 1.1")
    _git(repo, "tag", "v1.1")
    work = tmp_path / "work"
    _git(repo, "worktree", "add", "-q", "--detach", str(work), "v1.0")
    (work / "pkg" / "mod.py").write_text("def f():\n    return 6  # the same, faster\n")
    _git(work, "commit", "-qam", "mod: f without a list\n\nWhy: it is called in a loop.")
    folder = tmp_path / "patches"
    folder.mkdir()
    (folder / "fast-f.v1.0.patch").write_text(_git(work, "format-patch", "-1", "--stdout"))
    _git(repo, "worktree", "remove", "--force", str(work))
    return repo, folder


def test_a_patch_becomes_a_reproducible_branch_on_its_release(history: tuple[Path, Path], tmp_path: Path) -> None:
    repo, folder = history
    (patch,) = patches(folder)
    assert (patch.name, patch.release, patch.branch, patch.subject) == ("fast-f", "1.0", "opt/v1.0/fast-f",
                                                                        "mod: f without a list")
    head = _git(repo, "rev-parse", "HEAD")
    [(p, commit)] = build_branches(repo, folder)
    assert _git(repo, "rev-parse", "opt/v1.0/fast-f").strip() == commit
    assert _git(repo, "rev-parse", f"{commit}^").strip() == _git(repo, "rev-parse", "v1.0^{commit}").strip()
    assert "return 6" in _git(repo, "show", f"{commit}:pkg/mod.py")
    assert _git(repo, "rev-parse", "HEAD") == head and not _git(repo, "status", "--porcelain")  # checkout untouched
    assert build_branch(repo, p)[1] == commit  # rebuilt: the same commit
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    (other,) = patches(folder)
    assert build_branch(clone, other)[1] == commit  # another copy of the history: the same commit too


def test_bad_patches_are_one_line_errors(history: tuple[Path, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    repo, folder = history
    text = (folder / "fast-f.v1.0.patch").read_text()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "fast-f.patch").write_text(text)
    with pytest.raises(UserError, match="is named <name>.v<release>.patch"):
        read_patch(bad / "fast-f.patch")
    (bad / "fast-f.patch").unlink()
    (bad / "fast-f.v9.9.patch").write_text(text)
    assert main(["optimize", "--history", str(repo), "--patches", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "targets Cellpose 9.9, which the history" in err[0]
    (bad / "fast-f.v9.9.patch").unlink()
    (bad / "fast-f.v1.1.patch").write_text(text.replace("return sum([1, 2, 3])", "return sum([1, 2, 4])"))
    assert main(["optimize", "--history", str(repo), "--patches", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not apply to v1.1" in err[0]
    assert "opt/" not in _git(repo, "branch", "-a")  # nothing left behind
    assert not _git(repo, "worktree", "list").count("\n") > 1


def test_the_shipped_patches_are_format_patch_files_for_their_release() -> None:
    found = patches(PATCH_DIR)
    assert [p.branch for p in found] == ["opt/v4.2.1.1/flow-qc", "opt/v3.1.1.3/follow-flows",
                                         "opt/v3.1.1.3/network-layout"]
    for patch in found:
        text = patch.path.read_text()
        # one commit on the release, changing Cellpose's own package only
        assert f"Cellpose-Target: v{patch.release}" in text and text.count("\nFrom ") == 0
        assert text.count("diff --git ") == text.count("diff --git a/cellpose/") >= 1
