"""The patched copy of the installed Cellpose (what the deep-dives and the whole-slide runs put first on
PYTHONPATH): the shipped patch for this release applies to a copy and leaves the installed files alone; a
patch for another release, or one that does not apply, is a one-line error with no copy left behind. And
the whole-slide comparison of two label images counts the pixels that differ."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
import tifffile

from cpbench.errors import UserError
from cpbench.optimize.branches import Patch, patches
from cpbench.optimize.overlay import installed_cellpose, patched_copy
from cpbench.optimize.slide import same_labels


def test_the_shipped_patch_applies_to_a_copy_of_the_installed_release(tmp_path: Path) -> None:
    mine = [p for p in patches() if p.release == version("cellpose")]
    if not mine:
        pytest.skip(f"no shipped patch targets the installed cellpose {version('cellpose')}")
    _, pkg = installed_cellpose()
    before = (pkg / "dynamics.py").read_text()
    dest = patched_copy(mine[0], tmp_path / "overlay")
    assert (dest / "cellpose" / "dynamics.py").read_text() != before
    assert (pkg / "dynamics.py").read_text() == before  # the installed release is untouched
    assert patched_copy(mine[0], dest) == dest  # again over the same folder: a fresh copy, applied once


def test_wrong_release_or_a_patch_that_does_not_apply_is_one_line(tmp_path: Path) -> None:
    real = patches()[0]
    with pytest.raises(UserError, match=f"targets Cellpose 0.0, but this Python has {version('cellpose')}"):
        patched_copy(Patch(real.path, real.name, "0.0", real.subject), tmp_path / "a")
    bad = tmp_path / "nope.v1.patch"
    bad.write_text("--- a/cellpose/nothing.py\n+++ b/cellpose/nothing.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n")
    with pytest.raises(UserError, match="does not apply to the installed Cellpose"):
        patched_copy(Patch(bad, "nope", version("cellpose"), "s"), tmp_path / "b")
    assert not (tmp_path / "b" / "cellpose").exists()


def test_label_images_are_compared_pixel_for_pixel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cpbench.optimize.slide as slide

    monkeypatch.setattr(slide, "BAND", 7)  # several bands, the last one short
    lab = np.random.default_rng(0).integers(0, 50, (30, 20), dtype=np.int32)
    tifffile.imwrite(tmp_path / "a.ome.tif", lab, tile=(16, 16))
    other = lab.copy()
    other[29, 19] += 1
    other[3, 0] += 1
    tifffile.imwrite(tmp_path / "b.ome.tif", other, tile=(16, 16))
    assert same_labels(tmp_path / "a.ome.tif", tmp_path / "a.ome.tif", lab.shape) == (True, 0)
    assert same_labels(tmp_path / "a.ome.tif", tmp_path / "b.ome.tif", lab.shape) == (False, 2)
