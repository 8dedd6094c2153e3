"""Cellpose 3.0.x adapter, checked against running cellpose 3.0 and 3.0.11.

What 3.1 changed from 3.0, as the stages see it (3.0 is the older side):

- ``dynamics.follow_flows(dP, mask=None, niter, interp, device)`` takes no pixel indices: it moves
  every pixel whose flow is above 1e-3 and returns the **full field** of positions ``(2, Y, X)``;
  3.1 takes the indices of the cell pixels and returns ``(2, N)``.
- ``dynamics.get_masks(p, iscell)`` clusters the full field with ``numpy.histogramdd`` (3.1:
  ``get_masks_torch`` on the N positions, sparse tensors) and always drops masks larger than 40 %
  of the image (no ``max_size_fraction``).
- ``core.run_net`` returns ``(Y, X, 3)`` for one image (3.1: ``(1, Y, X, 3)``) and has no ``rsz``;
  3.0.0 has no ``batch_size`` either (8 tiles per pass, fixed).

So that the mask stages of every release read the same cached inputs, :meth:`follow_flows` returns
what 3.1 returns: the final positions of the cell pixels ``(2, N)`` and their indices; the pixels
3.0 did not move (cell pixels whose flow is below 1e-3) are returned where they started, as 3.0's
full field has them. :meth:`get_masks` puts the N positions back into the full field 3.0's
``get_masks`` takes (one ``(2, Y, X)`` float32 grid: 8 bytes per pixel) before calling it.

Units: sizes in pixels, diameters in pixels.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import numpy as np

from cpbench.stages.common import (
    Device,
    fill_holes_and_remove_small,
    net_of,
    remove_bad_flow_masks,
    torch_device,
)
from cpbench.stages.v3 import Cellpose3

#: the one size limit 3.0's get_masks applies (fraction of the image)
MAX_SIZE_FRACTION_30 = 0.4


@functools.cache
def _run_net_takes_batch_size() -> bool:
    """Whether the installed ``core.run_net`` has ``batch_size`` (3.0.1 on; read once, not per timed call)."""
    from cellpose import core

    return "batch_size" in inspect.signature(core.run_net).parameters


class Cellpose30(Cellpose3):
    """Adapter for cellpose 3.0.x: 3.1's stages, except network output, follow flows and get masks."""

    def check_network_options(self, bsize: int | None, batch_size: int) -> None:
        if batch_size != 8 and not _run_net_takes_batch_size():
            raise NotImplementedError("cellpose 3.0.0's run_net has no batch_size (8 tiles per pass)")

    def run_network(
        self, model: Any, img: np.ndarray, bsize: int | None, tile_overlap: float, batch_size: int, augment: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        from cellpose import core

        self.check_network_options(bsize, batch_size)
        kw: dict[str, Any] = {"batch_size": batch_size} if _run_net_takes_batch_size() else {}
        y, _style = core.run_net(
            net_of(model), img, augment=augment, tile_overlap=tile_overlap,
            bsize=self.bsize if bsize is None else bsize, **kw,
        )
        return y[..., -3:-1].transpose(2, 0, 1), y[..., -1]

    def _follow(
        self, flows: np.ndarray, inds: tuple[np.ndarray, ...], niter: int, device: Device, interp: bool
    ) -> tuple[Any, tuple[np.ndarray, ...]]:
        from cellpose import dynamics

        p, moved = dynamics.follow_flows(flows, niter=niter, interp=interp, device=torch_device(device))
        if moved is None:  # 3.0 gives up below 5 moving pixels; compute_masks then returns no masks
            empty = np.zeros(0, np.int64)
            return np.zeros((2, 0), np.float32), (empty, empty)
        return np.ascontiguousarray(p[:, inds[0], inds[1]]), inds

    def get_masks(
        self, p: Any, inds: tuple[np.ndarray, ...], shape: tuple[int, int], max_size_fraction: float, device: Device
    ) -> np.ndarray:
        if max_size_fraction != MAX_SIZE_FRACTION_30:
            raise NotImplementedError("cellpose 3.0's get_masks always drops masks over 0.4 of the image "
                                      "(no max_size_fraction)")
        from cellpose import dynamics

        shape = (int(shape[0]), int(shape[1]))
        if len(inds[0]) == 0:
            return np.zeros(shape, np.uint16)
        full = np.stack(np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")).astype(np.float32)
        full[:, inds[0], inds[1]] = np.asarray(p, dtype=np.float32)
        iscell = np.zeros(shape, bool)
        iscell[inds] = True
        mask = dynamics.get_masks(full, iscell=iscell)
        return mask.astype(np.uint16) if mask.max() < 2**16 else mask.astype(np.uint32)

    def masks_from_flows(
        self, dP: np.ndarray, cellprob: np.ndarray, niter: int, cellprob_threshold: float, flow_threshold: float,
        min_size: int, max_size_fraction: float, device: Device,
    ) -> np.ndarray:
        # compute_masks 3.0: follow flows, get masks, flow QC (only when a mask exists), fill holes
        p, inds = self.follow_flows(dP, cellprob, cellprob_threshold, niter, device, True)
        if len(inds[0]) == 0:
            return np.zeros(cellprob.shape, np.uint16)
        masks = self.get_masks(p, inds, cellprob.shape, max_size_fraction, device)
        del p
        masks = remove_bad_flow_masks(masks, dP, flow_threshold, device, inplace=True)
        return fill_holes_and_remove_small(masks, min_size, inplace=True)

    def eval(
        self, model: Any, img: np.ndarray, diameter: float | None, flow_threshold: float, cellprob_threshold: float,
        min_size: int, niter: int | None, bsize: int | None, tile_overlap: float, batch_size: int, augment: bool,
        tile_norm_blocksize: int, lowhigh: tuple[float, float] | None = None, resample: bool = True,
    ) -> np.ndarray:
        if batch_size != 8:  # 3.0's _run_cp does not pass eval's batch_size on to run_net
            raise NotImplementedError("cellpose 3.0's eval runs 8 tiles per pass whatever batch_size says")
        return super().eval(model, img, diameter, flow_threshold, cellprob_threshold, min_size, niter, bsize,
                            tile_overlap, batch_size, augment, tile_norm_blocksize, lowhigh, resample)
