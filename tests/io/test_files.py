"""cpbench.io.files: atomic writes that leave nothing half-written, with the mode the user's umask
gives (not mkstemp's 0600), and every writer of cpbench going through them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from cpbench.io.files import atomic_path, load_npz, save_npz, write_text

READABLE = stat.S_IRGRP | stat.S_IROTH


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077, 0o002], ids=lambda u: f"umask{u:03o}")
def test_atomic_path_gives_the_mode_of_a_plain_open(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        with open(tmp_path / "plain.txt", "w") as fh:
            fh.write("x")
        with atomic_path(tmp_path / "atomic.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "atomic.txt") == _mode(tmp_path / "plain.txt") == 0o666 & ~umask


def test_atomic_path_failure_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "out.bin") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_temporaries_are_unique_and_hidden(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "a.txt") as t1, atomic_path(tmp_path / "a.txt") as t2:
        assert t1 != t2 and t1.name.startswith(".a.txt.") and t1.name.endswith(".partial")
        t1.write_text("1")
        t2.write_text("2")
    # the inner block is renamed first, the outer one last: the last to finish wins
    assert (tmp_path / "a.txt").read_text() == "1" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_text_and_npz_round_trip(tmp_path: Path) -> None:
    write_text(tmp_path / "t.md", "héllo\n")
    save_npz(tmp_path / "a.npz", x=np.arange(3), y=np.ones((2, 2)))
    assert (tmp_path / "t.md").read_text(encoding="utf-8") == "héllo\n"
    x, y = load_npz(tmp_path / "a.npz", "x", "y")
    assert x.tolist() == [0, 1, 2] and y.shape == (2, 2)


def test_every_writer_makes_group_and_other_readable_files(tmp_path: Path, umask022: None,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Under umask 022 every file cpbench writes is 0644: slides, labels, previews, masks, caches,
    manifests and report files (a colleague on a shared server can read them)."""
    from cpbench.fetch.catalogue import write_manifest_entry
    from cpbench.measure import inputs
    from cpbench.report.plots import stage_costs_png
    from cpbench.stages import write_masks
    from cpbench.synth.preview import write_preview
    from cpbench.synth.writer import generate

    s = generate(tmp_path / "slide.ome.tif", (2, 96, 80), progress=False)
    written = [Path(s["image"]), Path(s["labels"])]
    written.append(write_preview(written[0], tmp_path / "slide.preview.png", written[1], crop=48))
    written.append(write_masks(tmp_path / "masks.tif", np.ones((32, 32), np.uint16)))
    written.append(write_manifest_entry(tmp_path, "exemplar-001", {"path": "x"}))
    save_npz(tmp_path / "c.npz", a=np.zeros(2))
    written.append(tmp_path / "c.npz")
    written.append(write_text(tmp_path / "table.md", "| a |\n"))
    table = [{"stage": "2 convert", "pixels": 65536, "seconds": 0.1, "peak_bytes": 1e6}]
    written.append(stage_costs_png(table, tmp_path / "costs.png", "cpu"))
    monkeypatch.setenv("CPBENCH_DATA", str(tmp_path / "data"))
    written += [p for p in inputs.nuclear_crop("synthetic", "256") if p is not None]
    for p in written:
        assert p.is_file(), p
        assert _mode(p) == 0o644, f"{p.name}: {oct(_mode(p))}"
        assert _mode(p) & READABLE == READABLE
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith(".partial") or p.name.startswith(".")]
    assert leftovers == []
