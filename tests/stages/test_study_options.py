"""What the two studies need from the stages: a CPnet at any input-channel count (3.x; 4.x's Cellpose-SAM
takes 3 and refuses others), and eval's ``resample`` passed through (mask recovery at network resolution)."""

from __future__ import annotations

import numpy as np
import pytest

from cpbench import stages as cs


def test_random_model_takes_the_channel_count_the_version_allows() -> None:
    fixed = cs.input_channels()
    if fixed is not None:  # 4.x
        assert fixed == 3
        with pytest.raises(NotImplementedError, match="takes 3 input channels, not 4"):
            cs.random_model("cpu", nchan=4)
        return
    for n in (1, 4, 8):
        model = cs.random_model("cpu", nchan=n)
        assert model.nchan == n and model.net.nbase[0] == n
        img = np.random.default_rng(0).uniform(0, 1000, (96, 96, n)).astype(np.float32)
        assert cs.eval_end_to_end(model, img[..., 0] if n == 1 else img, diameter=model.diam_mean).shape == (96, 96)


def test_eval_resample_off_recovers_masks_at_network_resolution() -> None:
    if not cs.runs_cpnet_weights():
        pytest.skip("the reference CPnet runs on 3.x only (4.x: Cellpose-SAM)")
    from cpbench.models import registry

    model = registry.load("reference")
    yy, xx = np.mgrid[:128, :128]
    img = np.zeros((128, 128), np.float32)
    for cy, cx in ((30, 30), (30, 90), (90, 60)):
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < 36] = 1000.0
    on = cs.eval_end_to_end(model, img, diameter=13.0)
    off = cs.eval_end_to_end(model, img, diameter=13.0, resample=False)
    assert on.shape == off.shape == (128, 128)
    assert on.max() == off.max() == 3  # the same nuclei, found either way
    assert not np.array_equal(on, off)  # but not the same pixels: mask recovery ran at another resolution
