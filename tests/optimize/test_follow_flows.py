"""The follow_flows patch (src/cpbench/optimize/patches/follow-flows.v3.1.1.3.patch) reaches the release's own
positions on the suite's inputs: the installed Cellpose 3.1.1.3 copied, the patch applied to the copy with
``git apply``, and ``follow_flows`` (niter 200 and 50, the masked network flows eval follows) run by both on
every quick size and the densest 1024 px crop, then the release's ``get_masks_torch`` on both (as
``compute_masks`` calls it: the positions as int). The positions are the release's to the bit (the
arithmetic is map_coordinates' as numba compiles it, step for step; the issue asks 1e-3 px), the masks identical,
and a child forked after the call runs it again (no OpenMP threads left behind). Under another
release it skips (make test runs it under .venv's 3.1.1.3)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from cpbench.optimize.branches import PATCH_DIR, read_patch
from cpbench.optimize.overlay import patched_copy

PATCH = PATCH_DIR / "follow-flows.v3.1.1.3.patch"
INPUTS = [("synthetic", "256"), ("synthetic", "512"), ("synthetic", "1024"), ("synthetic-packed", "1024")]


def _patched(tmp_path: Path) -> ModuleType:
    """The release's dynamics.py with the patch applied, loaded beside the installed one."""
    copy = patched_copy(read_patch(PATCH), tmp_path / "patched")  # git apply from the patch file alone
    spec = importlib.util.spec_from_file_location("cellpose.dynamics_patched", copy / "cellpose" / "dynamics.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # numba's cache=True pickles the module's name: it must be importable
    spec.loader.exec_module(mod)
    return mod


def test_patched_follow_flows_reaches_the_releases_positions_and_masks(tmp_path: Path) -> None:
    from importlib.metadata import version

    patch = read_patch(PATCH)
    if version("cellpose") != patch.release:
        pytest.skip(f"the patch targets cellpose {patch.release}; this is {version('cellpose')}")
    import cellpose.dynamics as stock
    import torch

    from cpbench.measure import inputs

    patched = _patched(tmp_path)
    assert hasattr(patched, "steps_interp_points") and not hasattr(stock, "steps_interp_points")
    moved = 0
    for dataset, size in INPUTS:
        dP, cellprob = inputs.flows(dataset, size, "network", "reference", 13.0)
        iscell = cellprob > 0.0
        inds = np.nonzero(iscell)
        flows = dP * iscell / 5.0  # as eval's compute_masks passes them
        for niter in (200, 50):
            a = stock.follow_flows(flows, inds, niter=niter)
            b = patched.follow_flows(flows, inds, niter=niter)
            assert a.shape == b.shape == (2, len(inds[0])) and b.dtype == a.dtype == np.float32
            assert np.array_equal(a, b), (dataset, size, niter, float(np.abs(a - b).max()))
            ma, mb = (stock.get_masks_torch(torch.from_numpy(p).int(), inds, flows.shape[1:]) for p in (a, b))
            assert np.array_equal(ma, mb), (dataset, size, niter)
            moved += int((np.abs(a - np.asarray(inds, np.float32)) > 1).sum())
    assert moved > 10000  # the points really travelled (the flows are not zero)
    # a process may fork after the patched follow_flows ran (asv's forkserver, multiprocessing, dask): numba's
    # parallel=True left GNU OpenMP threads behind, and every forked child aborted; the patch's threads end
    pid = os.fork()
    if pid == 0:  # the child: the same call again
        os._exit(0 if np.array_equal(patched.follow_flows(flows, inds, niter=50), b) else 3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
