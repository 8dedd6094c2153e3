"""Tests of cpbench.stages on small synthetic inputs (no downloads, CPU).

They run the installed cellpose, whichever major version it is: `make test` runs them under
cellpose 3.1.1.3 (.venv) and again under 4.2.1.1 (.venv-cellpose4, the asv environments'
dependency set), where the network is Cellpose-SAM at random weights. The dispatch tests at the end
also check the other major version's calls against fakes with its signatures (version monkeypatched).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cpbench import stages as cs
from cpbench.stages import api

V3 = cs.cellpose_version()[0] == 3
N = 256 if V3 else 128  # 4.x: Cellpose-SAM at random weights takes ~9 s per 256-px tile on 2 cores


def _discs(n: int = N, count: int = 30, seed: int = 0) -> np.ndarray:
    """Label image with ``count`` non-touching discs of radius 6-11 px, labels 1..count."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n]
    labels = np.zeros((n, n), np.uint16)
    placed = 0
    while placed < count:
        r = rng.uniform(6, 11)
        cy, cx = rng.uniform(r + 2, n - r - 2, 2)
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        if (labels[d2 <= (r + 2) ** 2] > 0).any():
            continue
        placed += 1
        labels[d2 <= r * r] = placed
    return labels


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    return _discs()


@pytest.fixture(scope="module")
def image(labels: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(1)
    return ((labels > 0) * 3000 + rng.integers(100, 600, labels.shape)).astype(np.uint16)


@pytest.fixture(scope="module")
def flows(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return cs.ground_truth_flows(labels)


@pytest.fixture(scope="module")
def model() -> Any:
    return cs.random_model(seed=0)


# ---------------------------------------------------------------------------------- read/write


@pytest.fixture(scope="module")
def ome_tiff(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    import tifffile

    data = (np.arange(2 * 300 * 400, dtype=np.uint32) % 65521).astype(np.uint16).reshape(2, 300, 400)
    path = tmp_path_factory.mktemp("io") / "img.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tw:
        tw.write(data, tile=(128, 128), compression="zlib", subifds=1, metadata={"axes": "CYX"})
        tw.write(data[:, ::2, ::2], tile=(128, 128), compression="zlib", subfiletype=1)
    return path, data


def test_read_full_page_region_lazy(ome_tiff: tuple[Path, np.ndarray]) -> None:
    path, data = ome_tiff
    full = cs.read_full(path)
    assert full.shape == (2, 300, 400) and full.dtype == np.uint16
    np.testing.assert_array_equal(full, data)
    np.testing.assert_array_equal(cs.read_page(path, 1), data[1])
    np.testing.assert_array_equal(cs.read_region(path, 1, 130, 250, 40, 100), data[1, 130:170, 250:350])
    lazy = cs.read_lazy(path)
    assert not isinstance(lazy, np.ndarray) and lazy.shape == (2, 300, 400)
    np.testing.assert_array_equal(np.asarray(lazy[0, 10:20, 390:400]), data[0, 10:20, 390:400])


def test_read_region_does_not_decode_whole_page(
    ome_tiff: tuple[Path, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    import tifffile

    def no_full_page(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("read_region read a whole page")

    for cls in (tifffile.TiffPage, tifffile.TiffFrame, tifffile.TiffPageSeries):
        monkeypatch.setattr(cls, "asarray", no_full_page)
    path, data = ome_tiff
    np.testing.assert_array_equal(cs.read_region(path, 0, 0, 0, 16, 16), data[0, :16, :16])


def test_read_plain_2d_tiff(tmp_path: Path) -> None:
    import tifffile

    img = np.arange(50 * 60, dtype=np.uint16).reshape(50, 60)
    tifffile.imwrite(tmp_path / "p.tif", img)
    np.testing.assert_array_equal(cs.read_page(tmp_path / "p.tif"), img)
    np.testing.assert_array_equal(cs.read_region(tmp_path / "p.tif", 0, 5, 6, 7, 8), img[5:12, 6:14])
    with pytest.raises(IndexError):
        cs.read_page(tmp_path / "p.tif", 1)


@pytest.mark.parametrize("compression", ["zlib", None])
def test_write_masks_round_trip_no_temp(tmp_path: Path, labels: np.ndarray, compression: str | None) -> None:
    import tifffile

    out = cs.write_masks(tmp_path / "masks.tif", labels, compression=compression)
    assert out == tmp_path / "masks.tif"
    np.testing.assert_array_equal(tifffile.imread(out), labels)
    assert os.listdir(tmp_path) == ["masks.tif"]
    cs.write_masks(tmp_path / "tiled.tif", labels, tile=128)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "tiled.tif"), labels)


def test_write_masks_failure_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(Exception):
        cs.write_masks(tmp_path / "bad.tif", np.zeros((4, 4), np.uint16), compression="no-such-codec")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------- stages, 3.x


def test_version_and_defaults() -> None:
    v = cs.cellpose_version()
    assert v[:2] >= (3, 0) and all(isinstance(p, int) for p in v)
    assert (cs.default_bsize(), cs.default_diam_mean()) == ((224, 17.0) if V3 else (256, 30.0))


def test_every_stage_shapes_and_dtypes(image: np.ndarray, model: Any, tmp_path: Path) -> None:
    x = cs.convert(image)
    assert x.shape[:2] == (N, N) and x.ndim == 3 and (x.shape[2] == 2 if V3 else x.shape[2] in (1, 3))
    xn = cs.normalize(x)
    assert xn.dtype == np.float32 and xn is not x
    assert np.percentile(xn[..., 0], 1) == pytest.approx(0, abs=1e-3)
    assert np.percentile(xn[..., 0], 99) == pytest.approx(1, abs=1e-3)
    assert np.array_equal(x[..., 0], image.astype(x.dtype)), "normalize(inplace=False) changed its input"
    xt = cs.normalize(x, tile_norm_blocksize=64)
    assert xt.shape == x.shape and xt.dtype == np.float32

    diameter = cs.default_diam_mean() * 2  # half size: one network tile under 4.x
    assert cs.rescale_factor(diameter) == pytest.approx(0.5)
    xr = cs.rescale(xn, diameter=diameter)
    ny = N // 2
    assert xr.shape == (ny, ny, x.shape[2]) and xr.dtype == np.float32
    assert cs.rescale(xn, diameter=None) is xn

    dP, cellprob = cs.run_network(model, xr)
    assert dP.shape == (2, ny, ny) and cellprob.shape == (ny, ny)
    assert dP.dtype == np.float32 and cellprob.dtype == np.float32
    if V3 and cs.cellpose_version() < (3, 0, 1):  # 3.0.0's run_net has no batch_size
        with pytest.raises(NotImplementedError, match="batch_size"):
            cs.run_network(model.net, xr, batch_size=2)
        dP2, cp2 = cs.run_network(model.net, xr, bsize=128, tile_overlap=0.2)
        assert dP2.shape == dP.shape and cp2.shape == cellprob.shape
    elif V3:
        dP2, cp2 = cs.run_network(model.net, xr, bsize=128, tile_overlap=0.2, batch_size=2)
        assert dP2.shape == dP.shape and cp2.shape == cellprob.shape
    else:  # Cellpose-SAM's position embeddings are made for 256-px tiles
        with pytest.raises(NotImplementedError, match="256-px tiles"):
            cs.run_network(model, xr, bsize=128)

    dPf, cpf = cs.resample_flows(dP, cellprob, (N, N))
    assert dPf.shape == (2, N, N) and cpf.shape == (N, N)
    assert dPf.dtype == np.float32 and cpf.dtype == np.float32

    thr = float(np.median(cpf))
    p, inds = cs.follow_flows(dPf, cpf, cellprob_threshold=thr, niter=50)
    assert tuple(p.shape) == (2, int((cpf > thr).sum())) and len(inds) == 2
    masks = cs.get_masks(p, inds, (N, N))
    assert masks.shape == (N, N) and masks.dtype == np.uint16
    qc = cs.remove_bad_flow_masks(masks, dPf, flow_threshold=0.4)
    assert qc.shape == (N, N) and qc.max() <= masks.max()
    filled = cs.fill_holes_and_remove_small(qc, min_size=15)
    assert filled.shape == (N, N) and filled.dtype == np.uint16

    out = cs.eval_end_to_end(model, image, diameter=diameter)
    assert out.shape == (N, N) and np.issubdtype(out.dtype, np.unsignedinteger)


def test_ground_truth_flows(labels: np.ndarray, flows: tuple[np.ndarray, np.ndarray]) -> None:
    dP, cellprob = flows
    assert dP.shape == (2, N, N) and dP.dtype == np.float32
    assert cellprob.shape == (N, N) and cellprob.dtype == np.float32
    norm = np.sqrt((dP**2).sum(0))
    np.testing.assert_allclose(norm[labels > 0], cs.FLOW_SCALE, rtol=1e-3)  # unit flows x 5
    assert (norm[labels == 0] == 0).all()
    assert ((cellprob > 0) == (labels > 0)).all()


@pytest.mark.parametrize("interp", [True, False])
def test_mask_recovery_from_ground_truth(
    labels: np.ndarray, flows: tuple[np.ndarray, np.ndarray], interp: bool
) -> None:
    dP, cellprob = flows
    if not interp and not V3:
        with pytest.raises(NotImplementedError, match="interp=False"):
            cs.follow_flows(dP, cellprob, niter=200, interp=interp)
        return
    p, inds = cs.follow_flows(dP, cellprob, niter=200, interp=interp)
    masks = cs.get_masks(p, inds, labels.shape)
    masks = cs.remove_bad_flow_masks(masks, dP, flow_threshold=0.4)
    masks = cs.fill_holes_and_remove_small(masks, min_size=15)
    assert masks.max() == labels.max()
    ap = cs.average_precision(labels, masks)
    assert ap[0] == 1.0, ap


@pytest.mark.parametrize(
    ("niter", "flow_threshold", "cellprob_threshold", "min_size"),
    [(200, 0.4, 0.0, 15), (100, 0.0, 0.0, 15), (200, 0.4, 0.0, -1)],
)
def test_chain_reproduces_compute_masks(
    flows: tuple[np.ndarray, np.ndarray], niter: int, flow_threshold: float, cellprob_threshold: float, min_size: int
) -> None:
    from cellpose import dynamics

    dP, cellprob = flows
    ref = dynamics.compute_masks(
        dP, cellprob, niter=niter, flow_threshold=flow_threshold,
        cellprob_threshold=cellprob_threshold, min_size=min_size,
    )
    ref = ref[0] if isinstance(ref, tuple) else ref  # 3.0 returned (masks, p)
    p, inds = cs.follow_flows(dP, cellprob, cellprob_threshold, niter)
    masks = cs.get_masks(p, inds, cellprob.shape)
    masks = cs.remove_bad_flow_masks(masks, dP, flow_threshold)
    if min_size > 0:  # compute_masks fills holes only for min_size > 0
        masks = cs.fill_holes_and_remove_small(masks, min_size)
    assert masks.dtype == ref.dtype
    np.testing.assert_array_equal(masks, ref)
    chained = cs.masks_from_flows(dP, cellprob, niter, cellprob_threshold, flow_threshold, min_size)
    resized = dynamics.resize_and_compute_masks(
        dP, cellprob, niter=niter, flow_threshold=flow_threshold,
        cellprob_threshold=cellprob_threshold, min_size=min_size,
    )
    np.testing.assert_array_equal(chained, resized[0] if isinstance(resized, tuple) else resized)


#: the diameters eval rescales by: 3.x 17/30 and the size model's estimate; 4.x 0.5 (one tile) and none
_EVAL_DIAMETERS = [30.0, None] if V3 else [60.0, None]


def _skip_without_diam_labels(model: Any, diameter: float | None) -> None:
    if diameter is None and not hasattr(model, "diam_labels"):
        pytest.skip("cellpose 3.0.0's eval(diameter=None) reads diam_labels, which a model without weights "
                    "lacks (AttributeError inside cellpose)")


@pytest.mark.parametrize("diameter", _EVAL_DIAMETERS)
def test_stagewise_reproduces_eval_flows(image: np.ndarray, model: Any, diameter: float | None) -> None:
    """The stage chain 2-6 gives the very flows and cell probability eval computes."""
    _skip_without_diam_labels(model, diameter)
    ref = model.eval(image, diameter=diameter, compute_masks=False, **api.adapter().eval_extra)[1]
    if not V3 and api.adapter().resize_before_normalize:  # 4.0.x: resize, then normalize
        x = cs.normalize(cs.rescale(cs.convert(image).astype(np.float32), diameter))
    else:  # 3.x and 4.1+: normalize, then resize (in run_net)
        x = cs.rescale(cs.normalize(cs.convert(image)), diameter)
    dP, cellprob = cs.resample_flows(*cs.run_network(model, x), image.shape)
    # 3.0's eval(compute_masks=False) keeps the image axis: (2, 1, Y, X)
    np.testing.assert_allclose(dP, np.squeeze(ref[1]), atol=1e-4)
    np.testing.assert_allclose(cellprob, np.squeeze(ref[2]), atol=1e-4)


@pytest.mark.skipif(not V3, reason="a random Cellpose-SAM finds no masks to compare; its flows are compared above")
@pytest.mark.parametrize(("diameter", "flow_threshold"), [(30.0, 0.0), (30.0, 3.0), (None, 0.0)])
def test_stagewise_reproduces_eval(image: np.ndarray, model: Any, diameter: float | None, flow_threshold: float) -> None:
    _skip_without_diam_labels(model, diameter)
    # the random net's cellprob sits near 0; its median splits the image so that masks appear
    x = cs.rescale(cs.normalize(cs.convert(image)), diameter)
    thr = float(np.median(cs.run_network(model, x)[1]))
    kw: dict[str, Any] = dict(diameter=diameter, cellprob_threshold=thr, flow_threshold=flow_threshold, min_size=5)
    ref = cs.eval_end_to_end(model, image, **kw)
    assert ref.max() >= 5, "test needs masks to compare"
    np.testing.assert_array_equal(cs.segment_stagewise(model, image, **kw), ref)


@pytest.mark.skipif(not V3, reason="a random Cellpose-SAM finds no masks to compare")
def test_fixed_bounds_normalize_as_the_image_own_percentiles(image: np.ndarray, model: Any) -> None:
    """eval with ``lowhigh`` = the image's own 1st/99th percentiles segments as plain eval (a slide's
    block normalized like the slide); other bounds give other masks."""
    x = cs.rescale(cs.normalize(cs.convert(image)), 30.0)
    thr = float(np.median(cs.run_network(model, x)[1]))
    kw: dict[str, Any] = dict(diameter=30.0, cellprob_threshold=thr, flow_threshold=0.0, min_size=5)
    ref = cs.eval_end_to_end(model, image, **kw)
    lo, hi = (float(v) for v in np.percentile(image.astype(np.float32), [1.0, 99.0]))
    same = cs.eval_end_to_end(model, image, lowhigh=(lo, hi), **kw)
    assert ref.max() >= 5 and np.mean((same > 0) == (ref > 0)) > 0.999  # float64 bounds: last-bit rounding
    other = cs.eval_end_to_end(model, image, lowhigh=(lo, 3 * hi), **kw)
    assert np.mean((other > 0) == (ref > 0)) < 0.99
    np.testing.assert_array_equal(cs.eval_end_to_end(model, image, **kw), ref)  # nothing left behind in cellpose


def test_flow_qc_removes_inconsistent_mask(labels: np.ndarray, flows: tuple[np.ndarray, np.ndarray]) -> None:
    dP, _ = flows
    bad = dP.copy()
    bad[:, labels == 7] = 0.0  # object 7's predicted flows disagree with its shape
    kept = cs.remove_bad_flow_masks(labels, bad, flow_threshold=0.4)
    assert kept.max() > 0
    assert (kept[labels == 7] == 0).all()
    assert (kept[(labels > 0) & (labels != 7)] > 0).all()
    assert (labels == 7).any(), "remove_bad_flow_masks(inplace=False) changed its input"
    assert cs.remove_bad_flow_masks(labels, bad, flow_threshold=0) is labels  # 0 disables


def test_fill_holes_and_remove_small() -> None:
    m = np.zeros((40, 40), np.uint16)
    m[5:20, 5:20] = 1
    m[10:13, 10:13] = 0  # a hole
    m[30:33, 30:32] = 2  # 6 px
    before = m.copy()
    out = cs.fill_holes_and_remove_small(m, min_size=15)
    assert (out[5:20, 5:20] == 1).all() and out.max() == 1
    np.testing.assert_array_equal(m, before)
    assert cs.fill_holes_and_remove_small(m, min_size=0).max() == 2


def test_average_precision(labels: np.ndarray) -> None:
    np.testing.assert_array_equal(cs.average_precision(labels, labels), [1, 1, 1])
    np.testing.assert_array_equal(cs.average_precision(labels, np.zeros_like(labels), (0.5,)), [0])


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


@pytest.mark.skipif(not _cuda(), reason="no CUDA device")
def test_mask_recovery_on_cuda(labels: np.ndarray, flows: tuple[np.ndarray, np.ndarray]) -> None:
    dP, cellprob = flows
    masks = cs.masks_from_flows(dP, cellprob, device="cuda")
    assert cs.average_precision(labels, masks)[0] == 1.0


# ---------------------------------------------------------------------------------- dispatch, 4.x


@pytest.fixture
def as_v4(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setattr(api, "cellpose_version", lambda: (4, 2, 1, 1))
    return monkeypatch


def test_v4_defaults(as_v4: pytest.MonkeyPatch) -> None:
    assert cs.default_bsize() == 256 and cs.default_diam_mean() == 30.0
    assert cs.rescale_factor(15.0) == 2.0


def test_v4_missing_options_raise(as_v4: pytest.MonkeyPatch, image: np.ndarray) -> None:
    with pytest.raises(NotImplementedError, match="channels"):
        cs.convert(image, channels=[0, 0])
    dP = np.zeros((2, 8, 8), np.float32)
    with pytest.raises(NotImplementedError, match="interp"):
        cs.follow_flows(dP, np.ones((8, 8), np.float32), interp=False)


def test_v4_calls_use_v4_signatures(as_v4: pytest.MonkeyPatch) -> None:
    from cellpose import core, dynamics, transforms

    calls: dict[str, Any] = {}

    def convert_image(x: np.ndarray, channel_axis: Any = None, z_axis: Any = None, do_3D: bool = False) -> np.ndarray:
        calls["convert"] = True
        out = np.zeros((*x.shape, 3), x.dtype)
        out[..., 0] = x
        return out

    def run_net(net: Any, imgi: np.ndarray, batch_size: int = 8, augment: bool = False,
                tile_overlap: float = 0.1, bsize: int = 224, rsz: Any = None) -> tuple[np.ndarray, np.ndarray]:
        calls["bsize"], calls["rsz"] = bsize, rsz
        return np.zeros((*imgi.shape[:3], 3), np.float32), np.zeros((1, 256), np.float32)

    def follow_flows(dP: np.ndarray, inds: Any, niter: int = 200, device: Any = None) -> np.ndarray:
        calls["niter"] = niter
        return np.stack(inds).astype(np.float32)

    def masks_to_flows_gpu(masks: np.ndarray, device: Any = None, niter: Any = None) -> tuple[np.ndarray, Any]:
        calls["m2f"] = True
        return np.ones((2, *masks.shape)), None

    as_v4.setattr(transforms, "convert_image", convert_image)
    as_v4.setattr(core, "run_net", run_net)
    as_v4.setattr(dynamics, "follow_flows", follow_flows)
    as_v4.delattr(dynamics, "masks_to_flows", raising=False)  # gone in later 4.x
    as_v4.setattr(dynamics, "masks_to_flows_gpu", masks_to_flows_gpu)

    img = np.ones((20, 24), np.uint16)
    assert cs.convert(img).shape == (20, 24, 3) and calls["convert"]
    dP, cellprob = cs.run_network(object(), np.zeros((20, 24, 3), np.float32))
    assert dP.shape == (2, 20, 24) and cellprob.shape == (20, 24)
    assert calls["bsize"] == 256 and calls["rsz"] is None
    p, inds = cs.follow_flows(np.zeros((2, 20, 24), np.float32), np.ones((20, 24), np.float32), niter=7)
    assert calls["niter"] == 7 and p.shape == (2, 480)
    gt, cp = cs.ground_truth_flows(np.ones((20, 24), np.uint16))
    assert calls["m2f"] and gt.dtype == np.float32 and float(gt.max()) == cs.FLOW_SCALE


def test_v4_random_model_without_v4_network_skips(as_v4: pytest.MonkeyPatch) -> None:
    import importlib.util

    if (importlib.util.find_spec("cellpose.vit_sam") or importlib.util.find_spec("cellpose.vit")) and \
            importlib.util.find_spec("segment_anything"):
        pytest.skip("a 4.x network class is importable here")
    with pytest.raises(NotImplementedError, match="4.x network"):
        cs.random_model()


@pytest.mark.parametrize("version", [(2, 3, 2), (2, 4, 5), (5, 0, 0)])
def test_unsupported_versions_raise(monkeypatch: pytest.MonkeyPatch, version: tuple[int, ...], image: np.ndarray) -> None:
    monkeypatch.setattr(api, "cellpose_version", lambda: version)
    with pytest.raises(NotImplementedError, match="not supported"):
        cs.convert(image)
    with pytest.raises(NotImplementedError):
        cs.default_bsize()


def test_network_options_checked_before_running(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a release's run_net cannot do is refused up front (asv: a skip in setup, not a failure)."""
    cs.check_network_options(None, 8)
    for version, bad in [((4, 2, 1, 1), dict(bsize=224)), ((4, 0, 9), dict(bsize=128))]:
        monkeypatch.setattr(api, "cellpose_version", lambda v=version: v)
        with pytest.raises(NotImplementedError, match="256-px tiles"):
            cs.check_network_options(**bad)
        cs.check_network_options(256, 32)
