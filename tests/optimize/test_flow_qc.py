"""The flow-QC patch (src/cpbench/optimize/patches/flow-qc.v4.2.1.1.patch) reaches the release's own
decisions on the suite's inputs: the installed Cellpose 4.2.1.1 copied, the patch applied to the copy with
``git apply``, and ``remove_bad_flow_masks`` run by both on every quick size and the densest 1024 px crop, at
flow_threshold 0.4 and 0.8 and at thresholds through the middle of the flow errors (where a decision could
flip). Runs in make test-cellpose4 (the release the patch targets); under another release it skips."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cpbench.optimize.branches import PATCH_DIR, read_patch
from cpbench.optimize.overlay import patched_copy

PATCH = PATCH_DIR / "flow-qc.v4.2.1.1.patch"
INPUTS = [("synthetic", "256"), ("synthetic", "512"), ("synthetic", "1024"), ("synthetic-packed", "1024")]

RUN = """
import json, sys
import numpy as np, torch
import cellpose.dynamics as dyn
from cpbench.measure import inputs
out = {"file": dyn.__file__}
for (dataset, size), thresholds in json.loads(sys.argv[2]):
    got = inputs.mask_stage_inputs(dataset, size, "ground_truth", "reference", 13.0)
    dP, _ = inputs.flows(dataset, size, "ground_truth", "reference", 13.0)
    err = dyn.flow_error(got["masks"].copy(), dP, torch.device("cpu"))[0]
    out[f"{dataset}-{size}-err"] = err.tolist()
    for thr in thresholds:
        qc = dyn.remove_bad_flow_masks(got["masks"].copy(), dP, threshold=thr, device=torch.device("cpu"))
        np.save(f"{sys.argv[1]}/{dataset}-{size}-{thr}.npy", qc)
json.dump(out, open(f"{sys.argv[1]}/out.json", "w"))
"""


def test_patched_flow_qc_removes_exactly_the_releases_masks(tmp_path: Path, run_cellpose: Callable[..., dict]) -> None:
    from importlib.metadata import version

    patch = read_patch(PATCH)
    if version("cellpose") != patch.release:
        pytest.skip(f"the patch targets cellpose {patch.release} (make test-cellpose4 runs it); "
                    f"this is {version('cellpose')}")
    copy = patched_copy(patch, tmp_path / "patched")  # git apply from the patch file alone, on the release's files

    # the thresholds: the release's defaults and where the errors are (a quarter, half, three quarters removed)
    first = run_cellpose(RUN, tmp_path / "errors", [], [[list(k), []] for k in INPUTS])
    plan = [[list(k), sorted({0.4, 0.8, *np.quantile(first[f"{k[0]}-{k[1]}-err"], [0.25, 0.5, 0.75]).round(6).tolist()})]
            for k in INPUTS]
    stock = run_cellpose(RUN, tmp_path / "stock", [], plan)
    patched = run_cellpose(RUN, tmp_path / "patch", [str(copy)], plan)
    assert patched["file"].startswith(str(copy)) and not stock["file"].startswith(str(copy))
    removed = 0
    for (dataset, size), thresholds in plan:
        a, b = np.array(stock[f"{dataset}-{size}-err"]), np.array(patched[f"{dataset}-{size}-err"])
        assert a.shape == b.shape and np.allclose(a, b, rtol=1e-12, atol=1e-14)
        for thr in thresholds:
            qa, qb = (np.load(tmp_path / d / f"{dataset}-{size}-{thr}.npy") for d in ("stock", "patch"))
            assert np.array_equal(qa, qb), (dataset, size, thr)
            removed += int(a.size - qa.max())
    assert removed > 1000  # the thresholds through the errors made the stage remove masks
