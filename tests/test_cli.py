"""The command line as a user meets it first, in a subprocess of the installed ``cpbench``: help,
a small synthetic slide, ``info`` on it. ``make test-pythons`` runs this file and the history tests
under every other Python the project supports (the oldest, 3.11.2, is Debian 12's own)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def _cpbench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("cpbench", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "cpbench.cli"]
    return subprocess.run([*cmd, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_help_lists_every_sub_command(tmp_path: Path) -> None:
    res = _cpbench("--help", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    for command in ("synth", "info", "fetch", "report", "cellpose-history", "sweep", "profile", "segment", "plan"):
        assert command in res.stdout


def test_synth_writes_a_small_slide_that_info_reads(tmp_path: Path) -> None:
    out = tmp_path / "small.ome.tif"
    res = _cpbench("synth", "--shape", "4,600,500", "--seed", "3", "--out", str(out), "--workers", "1",
                   cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert out.is_file() and out.with_name("small.labels.ome.tif").is_file()
    info = _cpbench("info", str(out), cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    assert "600" in info.stdout and "500" in info.stdout and "DNA_1" in info.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.labels.ome.tif", "small.ome.tif",
                                                         "small.preview.png"]  # nothing half-written


@pytest.mark.parametrize("args", [("synth", "--shape", "4,10"), ("info", "missing.ome.tif")])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    res = _cpbench(*args, cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 or res.stderr.startswith("usage:"), res.stderr


def test_free_space_stops_with_one_line_naming_the_need_and_the_folder(tmp_path: Path) -> None:
    tool = Path(__file__).resolve().parents[1] / "tools" / "free_space.py"
    res = subprocess.run([sys.executable, str(tool), str(tmp_path / "new" / "env"), "1e9", "an environment"],
                         capture_output=True, text=True)
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1
    assert res.stderr.startswith("not enough disk space for an environment: it needs about 1e+09 GB in ")
    assert str(tmp_path / "new" / "env") in res.stderr and not (tmp_path / "new").exists()
    ok = subprocess.run([sys.executable, str(tool), str(tmp_path), "1e9", "x", "--unless-importable", "json"])
    assert ok.returncode == 0  # already made: nothing large follows
    assert subprocess.run([sys.executable, str(tool), str(tmp_path), "0.001", "x"]).returncode == 0
