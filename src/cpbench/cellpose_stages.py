"""One function per stage of Cellpose 2D segmentation; the only module that knows Cellpose versions.

Stage map (shared/DESIGN.md) and the public function for each stage::

    1  read image        read_full / read_page / read_region / read_lazy
    2  convert           convert
    3  normalize         normalize
    4  rescale           rescale                (factor: rescale_factor)
    5  network           run_network
    6  resample flows    resample_flows
    7  follow flows      follow_flows
    8  masks             get_masks
    9  flow QC           remove_bad_flow_masks
    10 fill holes        fill_holes_and_remove_small
    11 write masks       write_masks
       end to end        eval_end_to_end        (CellposeModel.eval; segment_stagewise chains 2-10)

Inputs are 2D, a single nuclear channel ``(Y, X)`` uint16; every function works on numpy arrays
and returns the stage's natural output. Units: sizes in pixels, memory in bytes, diameters in
pixels. Helpers the benchmarks need: :func:`ground_truth_flows`, :func:`random_model`,
:func:`average_precision`.

The installed Cellpose major version is read once (:func:`cellpose_version`) and each call is
dispatched to the 3.x or 4.x adapter. A stage or option that does not exist in a version raises
``NotImplementedError`` with a message (asv turns that into a skip when raised in ``setup``).

What was checked how:

* **3.x adapter** — checked against running code, cellpose 3.1.1.2 (tests/test_cellpose_stages.py:
  every stage runs; the stage chain reproduces ``dynamics.compute_masks`` and
  ``CellposeModel.eval`` exactly).
* **4.x adapter** — written against the cellpose 4.x *source only* (MouseLand/cellpose, 4.0.x/4.1
  era: ``transforms.convert_image(x, channel_axis, z_axis, do_3D)`` padding to 3 channels,
  resize by ``30 / diameter`` *before* ``normalize_img``, ``core.run_net`` without ``rsz`` and
  bsize 256, ``dynamics.follow_flows(dP, inds, niter, device)`` without ``interp`` (torch
  ``grid_sample`` only; the numba path is gone), ``get_masks_torch``, ``remove_bad_flow_masks``,
  ``masks_to_flows_gpu``, ``vit_sam.Transformer``). It has not been run against an installed 4.x
  (that install pulls a ~6 GB CUDA torch); only its dispatch is tested, with the version
  monkeypatched and cellpose functions replaced by fakes that have the 4.x signatures.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

# Network-output scale: cellpose nets predict 5x the unit flow field (training target
# ``5 * flows``); compute_masks divides by 5 and the flow QC compares ``dP / 5`` to unit flows.
FLOW_SCALE = 5.0
# Cell-probability logits of a perfect model (anything > cellprob_threshold=0 is "cell").
CELLPROB_INSIDE = 10.0
CELLPROB_OUTSIDE = -10.0

Device = Any  # torch.device | str | None (None = CPU)


# --------------------------------------------------------------------------------------------
# version detection and dispatch
# --------------------------------------------------------------------------------------------


@functools.cache
def _installed_version() -> tuple[int, ...]:
    try:
        text = metadata.version("cellpose")
    except metadata.PackageNotFoundError:  # pragma: no cover - cellpose is a dependency
        import cellpose.version

        text = str(cellpose.version.version)
    return tuple(int(p) for p in re.findall(r"\d+", text)[:4])


def cellpose_version() -> tuple[int, ...]:
    """Installed cellpose version as integers, e.g. ``(3, 1, 1, 2)`` (read once per process)."""
    return _installed_version()


def _adapter() -> _Cellpose3 | _Cellpose4:
    major = cellpose_version()[0]
    if major == 3:
        return _V3
    if major == 4:
        return _V4
    raise NotImplementedError(f"cellpose {'.'.join(map(str, cellpose_version()))} is not supported (3.x, 4.x)")


def _torch_device(device: Device) -> Any:
    import torch

    return torch.device("cpu") if device is None else torch.device(device)


# --------------------------------------------------------------------------------------------
# 1. read (version independent)
# --------------------------------------------------------------------------------------------


def read_full(path: str | os.PathLike[str]) -> np.ndarray:
    """Read series 0, full resolution, all channels into memory (``tifffile.imread``); ``(C, Y, X)`` or ``(Y, X)``."""
    import tifffile

    return np.asarray(tifffile.imread(path, series=0, level=0))


def read_page(path: str | os.PathLike[str], channel: int = 0) -> np.ndarray:
    """Read one full-resolution plane (page ``channel`` of series 0) into memory; ``(Y, X)``."""
    import tifffile

    with tifffile.TiffFile(path) as tf:
        series = tf.series[0]
        if series.ndim == 2 and channel != 0:
            raise IndexError(f"{path} has one plane, channel {channel} does not exist")
        return np.asarray(series.pages[channel].asarray())


def read_region(path: str | os.PathLike[str], channel: int, y0: int, x0: int, h: int, w: int) -> np.ndarray:
    """Read the ``h`` x ``w`` pixel region at ``(y0, x0)`` of one channel; ``(h, w)``.

    Goes through the zarr view of series 0, level 0 (``aszarr``), so only the tiles (or strips)
    that overlap the region are read and decoded, never the whole page.
    """
    import tifffile
    import zarr

    with tifffile.TiffFile(path) as tf:
        arr = zarr.open(tf.series[0].aszarr(level=0), mode="r")
        index = (slice(y0, y0 + h), slice(x0, x0 + w))
        out = arr[index] if arr.ndim == 2 else arr[(channel, *index)]
        return np.asarray(out)


def read_lazy(path: str | os.PathLike[str]) -> Any:
    """Open series 0, level 0 as a lazy ``zarr.Array`` (nothing is read until indexed).

    The array keeps the TIFF file open through its store until it is garbage collected.
    """
    import tifffile
    import zarr

    return zarr.open(tifffile.imread(path, aszarr=True, series=0, level=0), mode="r")


# --------------------------------------------------------------------------------------------
# 2-10. stages (dispatched)
# --------------------------------------------------------------------------------------------


def default_bsize() -> int:
    """Network tile size of the installed version, pixels (3.x: 224, 4.x: 256)."""
    return _adapter().bsize


def default_diam_mean() -> float:
    """Diameter the installed version rescales objects to, pixels (3.x nuclei: 17, 4.x: 30)."""
    return _adapter().diam_mean


def convert(img: np.ndarray, channels: Sequence[int] | None = None) -> np.ndarray:
    """Stage 2, ``transforms.convert_image``: ``(Y, X)`` -> channels-last network input.

    3.x: ``(Y, X, 2)`` float32 (nuclear channel + zeros; ``channels`` as in cellpose 3, None =
    as ``eval`` does by default). 4.x: ``(Y, X, 3)`` in the input dtype, zero-padded;
    ``channels`` was removed in 4.x, so passing it raises NotImplementedError.
    """
    return _adapter().convert(img, channels)


def normalize(
    img: np.ndarray,
    tile_norm_blocksize: int = 0,
    percentile: tuple[float, float] = (1.0, 99.0),
    invert: bool = False,
    inplace: bool = False,
) -> np.ndarray:
    """Stage 3, ``transforms.normalize_img``: 1st..99th percentile -> 0..1 per channel; float32.

    ``tile_norm_blocksize`` > 0 normalizes in blocks of that many pixels. cellpose normalizes a
    float32 input in place; ``inplace=False`` (default) works on a copy so the input survives
    (benchmarks that want exactly eval's memory pass ``inplace=True``).
    """
    if not inplace and img.dtype == np.float32:
        img = img.copy()
    from cellpose import transforms

    return np.asarray(
        transforms.normalize_img(
            img, normalize=True, invert=invert, percentile=percentile, tile_norm_blocksize=tile_norm_blocksize
        )
    )


def rescale_factor(diameter: float | None, diam_mean: float | None = None) -> float:
    """Resize factor ``diam_mean / diameter`` (1.0 when ``diameter`` is None or 0).

    ``diam_mean`` None = the version's value (:func:`default_diam_mean`).
    """
    if not diameter:
        return 1.0
    return float((default_diam_mean() if diam_mean is None else diam_mean) / diameter)


def rescale(img: np.ndarray, diameter: float | None, diam_mean: float | None = None) -> np.ndarray:
    """Stage 4, ``transforms.resize_image``: resize ``(Y, X, C)`` by :func:`rescale_factor` (bilinear).

    Output ``(int(Y * f), int(X * f), C)``, same dtype; returned unchanged when the factor is 1.
    (3.x resizes inside ``core.run_net`` after normalization, 4.x in ``eval`` before it; the
    operation is the same.)
    """
    f = rescale_factor(diameter, diam_mean)
    if f == 1.0:
        return img
    from cellpose import transforms

    return np.asarray(transforms.resize_image(img, Ly=int(img.shape[0] * f), Lx=int(img.shape[1] * f)))


def run_network(
    model: Any,
    img: np.ndarray,
    bsize: int | None = None,
    tile_overlap: float = 0.1,
    batch_size: int = 8,
    augment: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Stage 5, ``core.run_net`` on a normalized, rescaled ``(Y, X, C)`` image.

    ``model`` is a ``CellposeModel`` or its ``.net``. Tiles of ``bsize`` pixels (None = version
    default), ``tile_overlap`` fraction, ``batch_size`` tiles per forward pass. Returns
    ``(dP (2, Y, X) float32, cellprob (Y, X) float32)`` at network resolution (views into the
    network output, as in cellpose).
    """
    return _adapter().run_network(model, img, bsize, tile_overlap, batch_size, augment)


def resample_flows(dP: np.ndarray, cellprob: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Stage 6: bilinear resize of flows and cell probability to ``shape = (Y, X)`` pixels.

    Returns ``(dP (2, Y, X) float32, cellprob (Y, X) float32)``; inputs returned as they are when
    already of that size (``eval(resample=True)`` does the same).
    """
    Ly, Lx = int(shape[0]), int(shape[1])
    if dP.shape[1:] == (Ly, Lx):
        return dP, cellprob
    from cellpose import transforms

    dPr = transforms.resize_image(np.ascontiguousarray(dP.transpose(1, 2, 0)), Ly=Ly, Lx=Lx)
    cpr = transforms.resize_image(np.ascontiguousarray(cellprob), Ly=Ly, Lx=Lx)
    return dPr.transpose(2, 0, 1), cpr


def follow_flows(
    dP: np.ndarray,
    cellprob: np.ndarray,
    cellprob_threshold: float = 0.0,
    niter: int = 200,
    device: Device = None,
    interp: bool = True,
) -> tuple[Any, tuple[np.ndarray, ...]]:
    """Stage 7, ``dynamics.follow_flows`` as ``compute_masks`` calls it.

    Pixels with ``cellprob > cellprob_threshold`` follow ``dP * mask / 5`` for ``niter`` Euler
    steps. CPU 3.x: numba (``interp=True`` bilinear, ``False`` nearest); CUDA or 4.x: torch
    ``grid_sample`` (4.x has no ``interp=False``). Returns ``(p, inds)``: final positions
    ``(2, N)`` (float32 numpy on 3.x CPU, a torch tensor otherwise) and the ``(y, x)`` index
    arrays of the N pixels that moved. ``dP`` must be float32 on the 3.x numba path.
    """
    return _adapter().follow_flows(dP, cellprob, cellprob_threshold, niter, device, interp)


def get_masks(
    p: Any,
    inds: tuple[np.ndarray, ...],
    shape: tuple[int, int],
    max_size_fraction: float = 0.4,
    device: Device = None,
) -> np.ndarray:
    """Stage 8, ``dynamics.get_masks_torch``: cluster final positions into labels.

    ``shape`` = ``(Y, X)`` pixels; masks larger than ``max_size_fraction`` of the image are
    dropped. Returns labels ``(Y, X)`` uint16 (uint32 from 65536 masks on), 0 = background.
    """
    import torch
    from cellpose import dynamics

    shape = (int(shape[0]), int(shape[1]))
    if len(inds[0]) == 0:
        return np.zeros(shape, np.uint16)
    dev = _torch_device(device)
    pt = p.int() if torch.is_tensor(p) else torch.from_numpy(p).to(dev, dtype=torch.int)
    if pt.device.type == "mps":
        pt = pt.to(torch.device("cpu"))
    mask = dynamics.get_masks_torch(pt, inds, shape, max_size_fraction=max_size_fraction)
    if mask.max() < 2**16 and mask.dtype != np.uint16:
        mask = mask.astype(np.uint16)
    return np.asarray(mask)


def remove_bad_flow_masks(
    masks: np.ndarray,
    dP: np.ndarray,
    flow_threshold: float | None = 0.4,
    device: Device = None,
    inplace: bool = False,
) -> np.ndarray:
    """Stage 9, ``dynamics.remove_bad_flow_masks``: drop masks whose flows disagree with ``dP``.

    A mask is removed when the mean squared error between its own flow field and ``dP / 5``
    exceeds ``flow_threshold``; None or <= 0 disables the stage (input returned). cellpose edits
    ``masks`` in place; ``inplace=False`` (default) works on a copy. Returns labels ``(Y, X)``.
    """
    if flow_threshold is None or flow_threshold <= 0 or masks.max() == 0:
        return masks
    from cellpose import dynamics

    work = masks if inplace else masks.copy()
    return np.asarray(dynamics.remove_bad_flow_masks(work, dP, threshold=flow_threshold, device=_torch_device(device)))


def fill_holes_and_remove_small(masks: np.ndarray, min_size: int = 15, inplace: bool = False) -> np.ndarray:
    """Stage 10, ``utils.fill_holes_and_remove_small_masks``: fill holes, drop masks < ``min_size`` pixels.

    ``min_size`` <= 0 keeps all sizes (holes are still filled). cellpose may edit ``masks`` in
    place; ``inplace=False`` (default) works on a copy. Returns labels ``(Y, X)``, renumbered.
    """
    from cellpose import utils

    work = masks if inplace else masks.copy()
    return np.asarray(utils.fill_holes_and_remove_small_masks(work, min_size=min_size))


# --------------------------------------------------------------------------------------------
# 11. write (version independent)
# --------------------------------------------------------------------------------------------


def write_masks(
    path: str | os.PathLike[str],
    masks: np.ndarray,
    compression: str | None = "zlib",
    tile: int | None = None,
) -> Path:
    """Write a label image as TIFF; returns the final path.

    ``compression``: a tifffile codec name (``"zlib"``, ``"zstd"``, ``"lzw"``) or None/"none";
    ``tile``: tile edge in pixels (multiple of 16) or None for strips. Written to a temporary
    name in the same directory and renamed at the end, so ``path`` only ever holds a complete file.
    """
    import tifffile

    from cpbench.ometiff import atomic_path

    path = Path(path)
    codec = None if compression in (None, "none") else compression
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, masks, compression=codec, tile=None if tile is None else (tile, tile))
    return path


# --------------------------------------------------------------------------------------------
# end to end
# --------------------------------------------------------------------------------------------


def eval_end_to_end(
    model: Any,
    img: np.ndarray,
    diameter: float | None = None,
    flow_threshold: float = 0.4,
    cellprob_threshold: float = 0.0,
    min_size: int = 15,
    niter: int | None = None,
    bsize: int | None = None,
    tile_overlap: float = 0.1,
    batch_size: int = 8,
    augment: bool = False,
    tile_norm_blocksize: int = 0,
) -> np.ndarray:
    """``CellposeModel.eval`` on one ``(Y, X)`` image; returns labels ``(Y, X)``.

    ``diameter`` in pixels (None = no rescaling), ``niter`` None = cellpose's default
    (200 / rescale factor), ``bsize`` None = version default.
    """
    return _adapter().eval(
        model, img, diameter, flow_threshold, cellprob_threshold, min_size, niter,
        bsize, tile_overlap, batch_size, augment, tile_norm_blocksize,
    )


def segment_stagewise(
    model: Any,
    img: np.ndarray,
    diameter: float | None = None,
    flow_threshold: float = 0.4,
    cellprob_threshold: float = 0.0,
    min_size: int = 15,
    niter: int | None = None,
    bsize: int | None = None,
    tile_overlap: float = 0.1,
    batch_size: int = 8,
    augment: bool = False,
    tile_norm_blocksize: int = 0,
    device: Device = None,
) -> np.ndarray:
    """Stages 2-10 chained in the installed version's order; same arguments and result as
    :func:`eval_end_to_end` (checked equal on 3.1.1.2). ``device`` None = the model's device."""
    if device is None:
        device = getattr(model, "device", None)
    return _adapter().stagewise(
        model, img, diameter, flow_threshold, cellprob_threshold, min_size, niter,
        bsize, tile_overlap, batch_size, augment, tile_norm_blocksize, device,
    )


def masks_from_flows(
    dP: np.ndarray,
    cellprob: np.ndarray,
    niter: int = 200,
    cellprob_threshold: float = 0.0,
    flow_threshold: float = 0.4,
    min_size: int = 15,
    max_size_fraction: float = 0.4,
    device: Device = None,
) -> np.ndarray:
    """Stages 7-10 chained (mask recovery from full-resolution flows); labels ``(Y, X)``."""
    p, inds = follow_flows(dP, cellprob, cellprob_threshold, niter, device)
    masks = get_masks(p, inds, cellprob.shape, max_size_fraction, device)
    del p
    masks = remove_bad_flow_masks(masks, dP, flow_threshold, device, inplace=True)
    return fill_holes_and_remove_small(masks, min_size, inplace=True)


# --------------------------------------------------------------------------------------------
# helpers for benchmarks
# --------------------------------------------------------------------------------------------


def ground_truth_flows(labels: np.ndarray, device: Device = None) -> tuple[np.ndarray, np.ndarray]:
    """Network output of a perfect model for ``labels`` ``(Y, X)`` (0 = background).

    Returns ``(dP (2, Y, X) float32, cellprob (Y, X) float32)``: ``dP`` = ``FLOW_SCALE`` (5) x
    the unit flows of ``dynamics.masks_to_flows`` (the scale the network is trained to, so the
    flow QC keeps every mask), ``cellprob`` = +10 inside objects, -10 outside. float32 because
    the 3.x numba path of :func:`follow_flows` requires it.
    """
    flows = _adapter().masks_to_flows(labels, device)
    dP = (np.asarray(flows, dtype=np.float32) * np.float32(FLOW_SCALE)).astype(np.float32, copy=False)
    cellprob = np.where(labels > 0, np.float32(CELLPROB_INSIDE), np.float32(CELLPROB_OUTSIDE)).astype(np.float32)
    return dP, cellprob


def random_model(device: Device = None, seed: int = 0) -> Any:
    """A ``CellposeModel`` with the version's architecture and random weights (no download).

    3.x: ``CellposeModel(pretrained_model=False, diam_mean=17., nchan=2)`` (the nuclei CPnet).
    4.x: ``CellposeModel(pretrained_model=None)`` raises, so the model object is assembled around
    ``vit_sam.Transformer()`` (SAM ViT-L, float32, random init) without calling ``__init__``
    (source-only; see the module docstring). ``seed`` seeds torch for the weights.
    """
    import torch

    torch.manual_seed(seed)
    return _adapter().random_model(_torch_device(device))


def average_precision(
    gt: np.ndarray, masks: np.ndarray, thresholds: Sequence[float] = (0.5, 0.75, 0.9)
) -> np.ndarray:
    """``metrics.average_precision`` of labels ``masks`` against ``gt``: AP = TP / (TP + FP + FN)
    at each IoU threshold; float32 array of ``len(thresholds)``."""
    from cellpose import metrics

    ap = metrics.average_precision(gt, masks, threshold=list(thresholds))[0]
    return np.asarray(ap, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# adapters
# --------------------------------------------------------------------------------------------


def _net(model: Any) -> Any:
    return getattr(model, "net", model)


def _split_network_output(yf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``core.run_net`` output ``(1, Y, X, nout)`` -> ``(dP (2, Y, X), cellprob (Y, X))``."""
    y = yf[0]
    return y[..., -3:-1].transpose(2, 0, 1), y[..., -1]


class _Cellpose3:
    """Adapter for cellpose 3.x (checked against running cellpose 3.1.1.2)."""

    bsize = 224
    diam_mean = 17.0  # the nuclei model; CellposeModel's own default is 30

    def convert(self, img: np.ndarray, channels: Sequence[int] | None) -> np.ndarray:
        from cellpose import transforms

        chans = None if channels is None else list(channels)
        return np.asarray(transforms.convert_image(img, chans, channel_axis=None, z_axis=None, do_3D=False, nchan=2))

    def run_network(
        self, model: Any, img: np.ndarray, bsize: int | None, tile_overlap: float, batch_size: int, augment: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        from cellpose import core

        yf, _styles = core.run_net(
            _net(model), img[np.newaxis], batch_size=batch_size, augment=augment,
            tile_overlap=tile_overlap, bsize=self.bsize if bsize is None else bsize, rsz=None,
        )
        return _split_network_output(yf)

    def follow_flows(
        self, dP: np.ndarray, cellprob: np.ndarray, thr: float, niter: int, device: Device, interp: bool
    ) -> tuple[Any, tuple[np.ndarray, ...]]:
        from cellpose import dynamics

        iscell = cellprob > thr
        inds = np.nonzero(iscell)
        if len(inds[0]) == 0:
            return np.zeros((2, 0), np.float32), inds
        p = dynamics.follow_flows(dP * iscell / 5.0, inds=inds, niter=niter, interp=interp, device=_torch_device(device))
        return p, inds

    def masks_to_flows(self, labels: np.ndarray, device: Device) -> np.ndarray:
        from cellpose import dynamics

        return np.asarray(dynamics.masks_to_flows(labels, device=_torch_device(device)))

    def random_model(self, device: Any) -> Any:
        from cellpose import models

        return models.CellposeModel(
            pretrained_model=False, diam_mean=17.0, nchan=2, device=device, gpu=device.type == "cuda"
        )

    def eval(
        self, model: Any, img: np.ndarray, diameter: float | None, flow_threshold: float, cellprob_threshold: float,
        min_size: int, niter: int | None, bsize: int | None, tile_overlap: float, batch_size: int, augment: bool,
        tile_norm_blocksize: int,
    ) -> np.ndarray:
        masks = model.eval(
            img, diameter=diameter, flow_threshold=flow_threshold, cellprob_threshold=cellprob_threshold,
            min_size=min_size, bsize=self.bsize if bsize is None else bsize, tile_overlap=tile_overlap,
            batch_size=batch_size, augment=augment, niter=niter, channels=None,
            normalize={"tile_norm_blocksize": tile_norm_blocksize},
        )[0]
        return np.asarray(masks)

    def _model_rescale(self, model: Any, diameter: float | None) -> float:
        if diameter is not None and diameter > 0:
            return float(model.diam_mean / diameter)
        return float(model.diam_mean / model.diam_labels)

    def stagewise(
        self, model: Any, img: np.ndarray, diameter: float | None, flow_threshold: float, cellprob_threshold: float,
        min_size: int, niter: int | None, bsize: int | None, tile_overlap: float, batch_size: int, augment: bool,
        tile_norm_blocksize: int, device: Device,
    ) -> np.ndarray:
        # order of CellposeModel.eval 3.1: convert -> normalize -> (resize inside run_net) -> net -> resample
        f = self._model_rescale(model, diameter)
        x = normalize(self.convert(img, None), tile_norm_blocksize=tile_norm_blocksize, inplace=True)
        if f != 1.0:
            from cellpose import transforms

            x = transforms.resize_image(x, rsz=f)
        dP, cellprob = self.run_network(model, x, bsize, tile_overlap, batch_size, augment)
        dP, cellprob = resample_flows(dP, cellprob, img.shape[:2])
        n = int(200.0 / f) if niter is None or niter == 0 else niter  # eval(resample=True): 200 / rescale
        return masks_from_flows(dP, cellprob, n, cellprob_threshold, flow_threshold, min_size, 0.4, device)


class _Cellpose4(_Cellpose3):
    """Adapter for cellpose 4.x — written against the 4.x source only, never run (see module doc)."""

    bsize = 256
    diam_mean = 30.0  # 4.x eval always rescales by 30 / diameter

    def convert(self, img: np.ndarray, channels: Sequence[int] | None) -> np.ndarray:
        if channels is not None:
            raise NotImplementedError("cellpose 4.x has no channel selection ('channels' is deprecated)")
        from cellpose import transforms

        return np.asarray(transforms.convert_image(img, channel_axis=None, z_axis=None, do_3D=False))

    def run_network(
        self, model: Any, img: np.ndarray, bsize: int | None, tile_overlap: float, batch_size: int, augment: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        from cellpose import core

        yf, _styles = core.run_net(
            _net(model), img[np.newaxis], batch_size=batch_size, augment=augment,
            tile_overlap=tile_overlap, bsize=self.bsize if bsize is None else bsize,
        )
        return _split_network_output(yf)

    def follow_flows(
        self, dP: np.ndarray, cellprob: np.ndarray, thr: float, niter: int, device: Device, interp: bool
    ) -> tuple[Any, tuple[np.ndarray, ...]]:
        if not interp:
            raise NotImplementedError("cellpose 4.x has no interp=False (numba) path in follow_flows")
        from cellpose import dynamics

        iscell = cellprob > thr
        inds = np.nonzero(iscell)
        if len(inds[0]) == 0:
            return np.zeros((2, 0), np.float32), inds
        p = dynamics.follow_flows(dP * iscell / 5.0, inds=inds, niter=niter, device=_torch_device(device))
        return p, inds

    def masks_to_flows(self, labels: np.ndarray, device: Device) -> np.ndarray:
        from cellpose import dynamics

        if hasattr(dynamics, "masks_to_flows"):
            return np.asarray(dynamics.masks_to_flows(labels, device=_torch_device(device)))
        return np.asarray(dynamics.masks_to_flows_gpu(labels, device=_torch_device(device))[0])

    def random_model(self, device: Any) -> Any:
        import inspect

        import torch
        from cellpose import models

        try:
            from cellpose.vit_sam import Transformer
        except ImportError as e:  # segment_anything missing, or the 4.x layout changed
            raise NotImplementedError(f"cannot build a random cellpose 4.x network: {e}") from e
        kwargs = {"dtype": torch.float32} if "dtype" in inspect.signature(Transformer).parameters else {}
        model = object.__new__(models.CellposeModel)
        model.net = Transformer(**kwargs).to(device)
        model.device = device
        model.gpu = device.type == "cuda"
        model.pretrained_model = None
        model.diam_mean = self.diam_mean
        return model

    def eval(
        self, model: Any, img: np.ndarray, diameter: float | None, flow_threshold: float, cellprob_threshold: float,
        min_size: int, niter: int | None, bsize: int | None, tile_overlap: float, batch_size: int, augment: bool,
        tile_norm_blocksize: int,
    ) -> np.ndarray:
        masks = model.eval(
            img, diameter=diameter, flow_threshold=flow_threshold, cellprob_threshold=cellprob_threshold,
            min_size=min_size, bsize=self.bsize if bsize is None else bsize, tile_overlap=tile_overlap,
            batch_size=batch_size, augment=augment, niter=niter,
            normalize={"tile_norm_blocksize": tile_norm_blocksize},
        )[0]
        return np.asarray(masks)

    def stagewise(
        self, model: Any, img: np.ndarray, diameter: float | None, flow_threshold: float, cellprob_threshold: float,
        min_size: int, niter: int | None, bsize: int | None, tile_overlap: float, batch_size: int, augment: bool,
        tile_norm_blocksize: int, device: Device,
    ) -> np.ndarray:
        # order of CellposeModel.eval 4.x: convert -> resize (30 / diameter) -> normalize -> net -> resample
        x = self.convert(img, None)
        f = rescale_factor(diameter, self.diam_mean)
        if f != 1.0:
            from cellpose import transforms

            x = transforms.resize_image(x, Ly=int(x.shape[0] * f), Lx=int(x.shape[1] * f))
        x = normalize(x, tile_norm_blocksize=tile_norm_blocksize, inplace=True)
        dP, cellprob = self.run_network(model, x, bsize, tile_overlap, batch_size, augment)
        dP, cellprob = resample_flows(dP, cellprob, img.shape[:2])
        n = int(200 / f) if niter is None or niter == 0 else niter
        return masks_from_flows(dP, cellprob, n, cellprob_threshold, flow_threshold, min_size, 0.4, device)


_V3 = _Cellpose3()
_V4 = _Cellpose4()
