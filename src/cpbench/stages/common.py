"""Stages whose Cellpose calls are the same in 3.x and 4.x, and what the version adapters share.

Units: sizes in pixels. Labels are ``(Y, X)`` integer arrays, 0 = background.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# Network-output scale: cellpose nets predict 5x the unit flow field (training target
# ``5 * flows``); compute_masks divides by 5 and the flow QC compares ``dP / 5`` to unit flows.
FLOW_SCALE = 5.0
# Cell-probability logits of a perfect model (anything > cellprob_threshold=0 is "cell").
CELLPROB_INSIDE = 10.0
CELLPROB_OUTSIDE = -10.0

Device = Any  # torch.device | str | None (None = CPU)


def torch_device(device: Device) -> Any:
    """``torch.device`` for ``device`` (None = CPU)."""
    import torch

    return torch.device("cpu") if device is None else torch.device(device)


def scale_factor(diameter: float | None, diam_mean: float) -> float:
    """Resize factor ``diam_mean / diameter``; 1.0 when ``diameter`` is None or 0 (pixels / pixels)."""
    if not diameter:
        return 1.0
    return float(diam_mean / diameter)


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
    dev = torch_device(device)
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
    return np.asarray(dynamics.remove_bad_flow_masks(work, dP, threshold=flow_threshold, device=torch_device(device)))


def fill_holes_and_remove_small(masks: np.ndarray, min_size: int = 15, inplace: bool = False) -> np.ndarray:
    """Stage 10, ``utils.fill_holes_and_remove_small_masks``: fill holes, drop masks < ``min_size`` pixels.

    ``min_size`` <= 0 keeps all sizes (holes are still filled). cellpose may edit ``masks`` in
    place; ``inplace=False`` (default) works on a copy. Returns labels ``(Y, X)``, renumbered.
    """
    from cellpose import utils

    work = masks if inplace else masks.copy()
    return np.asarray(utils.fill_holes_and_remove_small_masks(work, min_size=min_size))


def average_precision(
    gt: np.ndarray, masks: np.ndarray, thresholds: Sequence[float] = (0.5, 0.75, 0.9)
) -> np.ndarray:
    """``metrics.average_precision`` of labels ``masks`` against ``gt``: AP = TP / (TP + FP + FN)
    at each IoU threshold; float32 array of ``len(thresholds)``."""
    from cellpose import metrics

    ap = metrics.average_precision(gt, masks, threshold=list(thresholds))[0]
    return np.asarray(ap, dtype=np.float32)


def net_of(model: Any) -> Any:
    """The torch network of a ``CellposeModel`` (or the network itself)."""
    return getattr(model, "net", model)


def split_network_output(yf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``core.run_net`` output ``(1, Y, X, nout)`` -> ``(dP (2, Y, X), cellprob (Y, X))``."""
    y = yf[0]
    return y[..., -3:-1].transpose(2, 0, 1), y[..., -1]
