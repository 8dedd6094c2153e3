"""The Cellpose stages dispatched by installed version: the only module that reads it.

The installed Cellpose major version is read once (:func:`cellpose_version`) and each call is
dispatched to the 3.x (:mod:`~cpbench.stages.v3`) or 4.x (:mod:`~cpbench.stages.v4`) adapter. A
stage or option that does not exist in a version raises ``NotImplementedError`` with a message
(asv turns that into a skip when raised in ``setup``). Which models a version can run is asked
here too (:func:`builtin_weights`, :func:`runs_cpnet_weights`, :func:`load_weights`), so that no
other package needs to know Cellpose versions.

Inputs are 2D, a single nuclear channel ``(Y, X)`` uint16. Units: sizes and diameters in pixels.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from importlib import metadata
from typing import Any

import numpy as np

from cpbench.stages.common import (
    CELLPROB_INSIDE,
    CELLPROB_OUTSIDE,
    FLOW_SCALE,
    Device,
    scale_factor,
    torch_device,
)
from cpbench.stages.v3 import Cellpose3
from cpbench.stages.v4 import Cellpose4, Cellpose41
from cpbench.stages.v30 import Cellpose30


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


def adapter() -> Cellpose3:
    """The adapter of the installed version; NotImplementedError (asv: skip) outside 3.0 to 4.x."""
    version = cellpose_version()
    if version[:1] == (3,):
        return _V3 if version >= (3, 1) else _V30
    if version[:1] == (4,):
        return _V4 if version[:2] == (4, 0) else _V41
    raise NotImplementedError(f"cellpose {'.'.join(map(str, version))} is not supported (3.0 to 4.x)")


# --------------------------------------------------------------------------------------------
# 2-10. stages (dispatched)
# --------------------------------------------------------------------------------------------


def default_bsize() -> int:
    """Network tile size of the installed version, pixels (3.x: 224, 4.x: 256)."""
    return adapter().bsize


def default_diam_mean() -> float:
    """Diameter the installed version rescales objects to, pixels (3.x nuclei: 17, 4.x: 30)."""
    return adapter().diam_mean


def convert(img: np.ndarray, channels: Sequence[int] | None = None) -> np.ndarray:
    """Stage 2, ``transforms.convert_image``: ``(Y, X)`` -> channels-last network input.

    3.x: ``(Y, X, 2)`` float32 (nuclear channel + zeros; ``channels`` as in cellpose 3, None =
    as ``eval`` does by default). 4.x: ``(Y, X, 3)`` in the input dtype, zero-padded;
    ``channels`` was removed in 4.x, so passing it raises NotImplementedError.
    """
    return adapter().convert(img, channels)


def rescale_factor(diameter: float | None, diam_mean: float | None = None) -> float:
    """Resize factor ``diam_mean / diameter`` (1.0 when ``diameter`` is None or 0).

    ``diam_mean`` None = the version's value (:func:`default_diam_mean`).
    """
    return scale_factor(diameter, default_diam_mean() if diam_mean is None else diam_mean)


def rescale(img: np.ndarray, diameter: float | None, diam_mean: float | None = None) -> np.ndarray:
    """Stage 4, ``transforms.resize_image``: resize ``(Y, X, C)`` by :func:`rescale_factor` (bilinear).

    Output ``(int(Y * f), int(X * f), C)``, same dtype; returned unchanged when the factor is 1.
    (3.x and 4.1+ resize inside ``core.run_net`` after normalization, 4.0.x in ``eval`` before
    it; the operation is the same.)
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
    return adapter().run_network(model, img, bsize, tile_overlap, batch_size, augment)


def check_network_options(bsize: int | None = None, batch_size: int = 8) -> None:
    """NotImplementedError (asv: skip, when called in ``setup``) when the installed version's
    :func:`run_network` cannot run with tiles of ``bsize`` pixels or ``batch_size`` tiles per pass
    (4.x: 256-px tiles only; 3.0.0: 8 tiles per pass)."""
    adapter().check_network_options(bsize, batch_size)


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
    return adapter().follow_flows(dP, cellprob, cellprob_threshold, niter, device, interp)

def get_masks(
    p: Any,
    inds: tuple[np.ndarray, ...],
    shape: tuple[int, int],
    max_size_fraction: float = 0.4,
    device: Device = None,
) -> np.ndarray:
    """Stage 8: cluster the final positions of :func:`follow_flows` into labels.

    3.1+: ``dynamics.get_masks_torch`` on the N positions; 3.0: ``dynamics.get_masks`` (numpy
    histogram) on the full field of positions, rebuilt from them. ``shape`` = ``(Y, X)`` pixels;
    masks larger than ``max_size_fraction`` of the image are dropped (3.0: 0.4 only). Returns
    labels ``(Y, X)`` uint16 (uint32 from 65536 masks on), 0 = background.
    """
    return adapter().get_masks(p, inds, shape, max_size_fraction, device)


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
    lowhigh: tuple[float, float] | None = None,
    resample: bool = True,
) -> np.ndarray:
    """``CellposeModel.eval`` on one ``(Y, X)`` image (or ``(Y, X, C)``, C the model's input
    channels); returns labels ``(Y, X)``.

    ``diameter`` in pixels (None = no rescaling), ``niter`` None = cellpose's default
    (200 / rescale factor), ``bsize`` None = version default. ``lowhigh``: intensities (the
    image's units) that normalize to 0 and 1, instead of the image's own 1st/99th percentiles
    (a block of a slide normalized like the whole slide; ``tile_norm_blocksize`` is then unused).
    ``resample`` False: mask recovery runs on the flows at the network's resolution (the image
    rescaled by ``diam_mean / diameter``) and the labels are resized to the image after; True
    (Cellpose's default) resizes the flows to the image first.
    """
    return adapter().eval(
        model, img, diameter, flow_threshold, cellprob_threshold, min_size, niter,
        bsize, tile_overlap, batch_size, augment, tile_norm_blocksize, lowhigh, resample,
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
    return adapter().stagewise(
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
    return adapter().masks_from_flows(dP, cellprob, niter, cellprob_threshold, flow_threshold, min_size,
                                      max_size_fraction, device)


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
    flows = adapter().masks_to_flows(labels, device)
    dP = (np.asarray(flows, dtype=np.float32) * np.float32(FLOW_SCALE)).astype(np.float32, copy=False)
    cellprob = np.where(labels > 0, np.float32(CELLPROB_INSIDE), np.float32(CELLPROB_OUTSIDE)).astype(np.float32)
    return dP, cellprob


def random_model(device: Device = None, seed: int = 0, nchan: int | None = None) -> Any:
    """A ``CellposeModel`` with the version's architecture and random weights (no download).

    3.x: ``CellposeModel(pretrained_model=False, diam_mean=17., nchan=nchan)`` (the nuclei CPnet at
    ``nchan`` input channels, default 2). 4.x: ``CellposeModel`` insists on weights, so the model object
    is assembled around Cellpose-SAM (``vit_sam.Transformer()`` in 4.0-4.1, ``vit.CPSAM(dtype=float32)``
    from 4.2; ViT-L, random init) without calling ``__init__``; it takes 3 channels, so another
    ``nchan`` raises NotImplementedError. ``seed`` seeds torch for the weights.
    """
    import torch

    torch.manual_seed(seed)
    return adapter().random_model(torch_device(device), nchan)


def input_channels() -> int | None:
    """Input channels the version's architecture takes whatever the model (4.x: 3), or None when a
    model may have any number (3.x: ``nchan``)."""
    return adapter().fixed_nchan


# --------------------------------------------------------------------------------------------
# which models this version runs (for cpbench.models)
# --------------------------------------------------------------------------------------------


def builtin_weights() -> dict[str, str]:
    """Builtin models of the installed version: name -> weights file name in Cellpose's model directory."""
    return dict(adapter().builtin_weights)


def runs_cpnet_weights() -> bool:
    """Whether the installed version runs CPnet weights (the 3.x architecture of cpbench's reference model)."""
    return bool(adapter().runs_cpnet)


def random_architecture() -> str:
    """One line naming the architecture :func:`random_model` builds in the installed version."""
    return str(adapter().random_architecture)


def load_weights(path: str, device: Device = None, nuclei_cpnet: bool = False, diam_mean: float = 17.0) -> Any:
    """A ``CellposeModel`` from a weights file, loaded by Cellpose itself (``pretrained_model=path``).

    ``nuclei_cpnet``: the file holds the 2-channel nuclei CPnet, rescaled to ``diam_mean`` px (3.x).
    """
    return adapter().load_weights(path, torch_device(device), nuclei_cpnet, diam_mean)


_V3 = Cellpose3()
_V30 = Cellpose30()
_V4 = Cellpose4()
_V41 = Cellpose41()
