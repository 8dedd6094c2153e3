"""The network-layout patch (src/cpbench/optimize/patches/network-layout.v3.1.1.3.patch) gives the release's own
label images: the installed Cellpose 3.1.1.3 copied, the patch applied to the copy with ``git apply``, and
whole-image eval (the reference model, diameter 13, Cellpose's defaults) run by both, each in a process of its
own, on every quick size and the densest 1024 px crop: the label images identical. The network's raw output on
a fixed batch differs from the MKL-DNN path's by float rounding only (relative 1e-5 at most; measured ~6e-7).
Under another release it skips (make test runs it under .venv's 3.1.1.3)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cpbench.optimize.branches import PATCH_DIR, read_patch
from cpbench.optimize.overlay import patched_copy

PATCH = PATCH_DIR / "network-layout.v3.1.1.3.patch"
INPUTS = [("synthetic", "256"), ("synthetic", "512"), ("synthetic", "1024"), ("synthetic-packed", "1024")]

RUN = """
import json, sys
import numpy as np, torch
import cellpose.core
from cpbench import stages as cs
from cpbench.measure import inputs
model = inputs.load_model("reference", "cpu")
x = np.random.default_rng(0).normal(0, 1, (8, 2, 224, 224)).astype(np.float32)
y, _ = cellpose.core._forward(model.net, x)
np.save(f"{sys.argv[1]}/forward.npy", y)
for dataset, size in json.loads(sys.argv[2]):
    img, _ = inputs.load_crop(dataset, size)
    np.save(f"{sys.argv[1]}/{dataset}-{size}.npy", cs.eval_end_to_end(model, img, diameter=13.0))
mkldnn_modules = sum(type(m).__name__.startswith("Mkldnn") for m in model.net.modules())
json.dump({"file": cellpose.core.__file__, "mkldnn": bool(model.net.mkldnn), "mkldnn_modules": mkldnn_modules},
          open(f"{sys.argv[1]}/out.json", "w"))
"""


def test_patched_network_gives_the_releases_label_images(tmp_path: Path, run_cellpose: Callable[..., dict]) -> None:
    from importlib.metadata import version

    patch = read_patch(PATCH)
    if version("cellpose") != patch.release:
        pytest.skip(f"the patch targets cellpose {patch.release}; this is {version('cellpose')}")
    copy = patched_copy(patch, tmp_path / "patched")  # git apply from the patch file alone
    stock = run_cellpose(RUN, tmp_path / "stock", [], INPUTS)
    patched = run_cellpose(RUN, tmp_path / "patch", [str(copy)], INPUTS)
    assert patched["file"].startswith(str(copy)) and not stock["file"].startswith(str(copy))
    assert stock["mkldnn"] and patched["mkldnn"]  # the CPU path the patch changes was the one taken
    assert stock["mkldnn_modules"] > 0 and patched["mkldnn_modules"] == 0  # the release converted the net in place
    ya, yb = (np.load(tmp_path / d / "forward.npy") for d in ("stock", "patch"))
    assert ya.shape == yb.shape and np.abs(ya - yb).max() <= 1e-5 * np.abs(ya).max()
    objects = 0
    for dataset, size in INPUTS:
        a, b = (np.load(tmp_path / d / f"{dataset}-{size}.npy") for d in ("stock", "patch"))
        assert np.array_equal(a, b), (dataset, size, int((a != b).sum()))
        objects += int(a.max())
    assert objects > 10000  # the crops hold nuclei and eval found them
