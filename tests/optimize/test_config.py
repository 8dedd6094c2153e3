"""The asv config for patched or forked commits: the project's config with another repo, branches and
results folder (comments, env and build commands kept), and one-line errors before anything is written.
asv itself builds and measures a branch through such a config in tests/history/test_asv_env.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from cpbench.cli import main
from cpbench.errors import UserError
from cpbench.optimize.config import RESULTS_DIR, write_config

ROOT = Path(__file__).resolve().parents[2]


def _repo(path: Path, *branches: str) -> Path:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    (path / "f").write_text("x\n")
    subprocess.run(["git", "-C", str(path), "add", "f"], check=True)
    subprocess.run(["git", "-C", str(path), "commit", "-qm", "one"], check=True, env={**os.environ, **env})
    for b in branches:
        subprocess.run(["git", "-C", str(path), "branch", b], check=True)
    return path


def _load(path: Path) -> dict:
    return json.loads(re.sub(r"^\s*//.*$", "", path.read_text(), flags=re.M))


def test_the_config_is_the_projects_with_another_repo_branches_and_results(tmp_path: Path) -> None:
    conf = tmp_path / "asv.conf.json"
    conf.write_text((ROOT / "asv.conf.json").read_text())
    fork = _repo(tmp_path / "fork", "faster")
    out = write_config(tmp_path / "asv.fork.json", fork, ["main", "faster"], conf=conf)
    new, old = _load(out), _load(conf)
    assert (new["repo"], new["branches"], new["results_dir"]) == (str(fork), ["main", "faster"], RESULTS_DIR)
    assert {k: v for k, v in new.items() if k not in ("repo", "branches", "results_dir")} == \
        {k: v for k, v in old.items() if k not in ("repo", "branches", "results_dir")}  # env, builds: the project's
    assert "// airspeed velocity configuration" in out.read_text()  # comments kept
    assert not RESULTS_DIR.startswith(".asv/results")  # make example copies .asv/results*: not patched commits


def test_bad_forks_are_one_line_errors_and_write_nothing(tmp_path: Path) -> None:
    conf = tmp_path / "asv.conf.json"
    conf.write_text((ROOT / "asv.conf.json").read_text())
    fork = _repo(tmp_path / "fork")
    out = tmp_path / "asv.fork.json"
    with pytest.raises(UserError, match="has no branch faster; create it there"):
        write_config(out, fork, ["main", "faster"], conf=conf)
    with pytest.raises(UserError, match="is not a git checkout"):
        write_config(out, tmp_path / "nothing", ["main"], conf=conf)
    with pytest.raises(UserError, match="write the config beside"):
        write_config(tmp_path / "elsewhere" / "asv.fork.json", fork, ["main"], conf=conf)
    with pytest.raises(UserError, match="at least one branch"):
        write_config(out, fork, [], conf=conf)
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


def test_the_command_line_checks_its_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fork = _repo(tmp_path / "fork", "faster")
    assert main(["optimize", "--repo", str(fork), "--branch", "faster"]) == 2  # no --asv-config
    assert "add --asv-config FILE" in capsys.readouterr().err
    assert main(["optimize", "--asv-config", str(tmp_path / "asv.fork.json"), "--repo", str(fork)]) == 2
    assert "--branch NAME" in capsys.readouterr().err
    assert not (tmp_path / "asv.fork.json").exists()
