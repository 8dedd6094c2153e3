"""Benchmark inputs: cached once, consistent with the synthetic scene, skip cleanly when absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cpbench.measure import inputs
from cpbench.synth.params import SceneParams
from cpbench.synth.scene import Scene


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CPBENCH_DATA", str(tmp_path))
    return tmp_path


def test_synthetic_crop_is_the_slide_centre_with_renumbered_labels() -> None:
    img, labels = inputs.load_crop("synthetic", "256")
    assert img.shape == (256, 256) and img.dtype == np.uint16 and labels is not None
    fy, fx = inputs.frame_shape("synthetic")
    scene = Scene((1, fy, fx), SceneParams(seed=inputs.SYNTH_SEED))
    np.testing.assert_array_equal(img, scene.render(0, (fy - 256) // 2, (fx - 256) // 2, 256, 256))
    ids = np.unique(labels)
    assert ids[0] == 0 and np.array_equal(ids, np.arange(len(ids))), "labels are 0..n"
    assert len(ids) > 50


def test_density_variants_hold_fewer_or_more_nuclei_in_the_same_frame() -> None:
    cells = {}
    for d in inputs.DENSITIES:
        img, labels = inputs.load_crop(d, "256")
        assert img.shape == (256, 256) and labels is not None and inputs.frame_shape(d) == inputs.frame_shape("synthetic")
        cells[d] = (len(np.unique(labels)) - 1, float((labels > 0).mean()))
    order = ["synthetic-bare", "synthetic-sparse", "synthetic", "synthetic-packed"]
    assert [cells[d] for d in order] == sorted(cells.values()), cells  # nuclei and cell pixels grow with density
    assert cells["synthetic-bare"][0] <= 5 and cells["synthetic-packed"][1] > 1.5 * cells["synthetic"][1], cells
    typical = inputs.load_crop("synthetic", "256")[0]
    assert not np.array_equal(typical, inputs.load_crop("synthetic-packed", "256")[0])


def test_a_crop_larger_than_the_frame_has_the_truth_of_all_its_nuclei(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inputs, "SYNTH_FRAME", (12, 200, 180))
    path, lab = inputs.nuclear_crop("synthetic", "256")
    assert path.name == f"synthetic-256x256-v{inputs.BIG_CROP_VERSION}.ome.tif"
    img, labels = inputs.load_crop("synthetic", "256")
    assert labels is not None
    scene = Scene((1, 256, 256), SceneParams(seed=inputs.SYNTH_SEED))
    np.testing.assert_array_equal(img, scene.render(0, 0, 0, 256, 256))
    for q in (labels[:128, :128], labels[:128, 128:], labels[128:, :128], labels[128:, 128:]):
        assert len(np.unique(q)) > 10, "every quadrant's nuclei are in the truth"
    bright = img > np.percentile(img, 90)
    assert (labels > 0)[bright].mean() > 0.9  # the brightest pixels are nuclei of the truth


def test_crops_are_made_once(data_dir: Path) -> None:
    path, lab = inputs.nuclear_crop("synthetic", "256")
    stamp = path.stat().st_mtime_ns
    again, _ = inputs.nuclear_crop("synthetic", "256")
    assert again == path and path.stat().st_mtime_ns == stamp
    assert not list(data_dir.rglob("*.partial"))


def test_real_dataset_absent_skips_with_the_fix() -> None:
    with pytest.raises(NotImplementedError, match="cpbench fetch exemplar-001"):
        inputs.nuclear_crop("exemplar-001", "256")
    with pytest.raises(NotImplementedError, match="does not fit"):
        inputs.crop_shape("exemplar-001", "8192")


def test_network_flows_are_cached_and_found_nuclei() -> None:
    dP, cellprob = inputs.flows("synthetic", "256", "network", "reference", 13.0)
    assert dP.shape == (2, 256, 256) and dP.dtype == np.float32 and cellprob.shape == (256, 256)
    _, labels = inputs.load_crop("synthetic", "256")
    assert labels is not None
    inside = (cellprob > 0)[labels > 0].mean()
    outside = (cellprob > 0)[labels == 0].mean()
    assert inside > 0.8 and outside < 0.2, "the reference model's cell probability follows the nuclei"
    dP_net, _ = inputs.network_flows("synthetic", "256", "reference", 13.0, full_size=False)
    assert dP_net.shape[1] == int(256 * 17 / 13)  # network resolution: rescaled by diam_mean / diameter
    gt_dP, gt_cp = inputs.flows("synthetic", "256", "ground_truth", "reference", 13.0)
    assert ((gt_cp > 0) == (labels > 0)).all()


def test_mask_stage_inputs_are_the_chain_of_the_stages() -> None:
    from cpbench import stages as cs

    made = inputs.mask_stage_inputs("synthetic", "256", "ground_truth")
    dP, cellprob = inputs.flows("synthetic", "256", "ground_truth", "reference", 13.0)
    p, inds = cs.follow_flows(dP, cellprob, 0.0, 200)
    np.testing.assert_array_equal(made["p"], np.asarray(p))
    masks = cs.get_masks(p, inds, cellprob.shape)
    np.testing.assert_array_equal(made["masks"], masks)
    np.testing.assert_array_equal(made["qc_masks"], cs.remove_bad_flow_masks(masks, dP, 0.4))
    _, labels = inputs.load_crop("synthetic", "256")
    assert cs.average_precision(labels, made["qc_masks"], (0.5,))[0] > 0.95  # a perfect model's flows
