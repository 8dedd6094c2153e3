"""Cellpose 4.x adapter, written against the 4.x source (MouseLand/cellpose 4.0.x/4.1 era).

Only its dispatch is tested (the version monkeypatched, cellpose functions replaced by fakes with
the 4.x signatures); it has not been run against an installed 4.x. Known from DESIGN.md and not
yet reflected here: 4.2.1.1 has no ``vit_sam`` module (the network is ``cellpose.vit.CPSAM``).
Units: sizes in pixels, diameters in pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cpbench.stages.common import (
    Device,
    net_of,
    normalize,
    resample_flows,
    scale_factor,
    split_network_output,
    torch_device,
)
from cpbench.stages.v3 import Cellpose3


class Cellpose4(Cellpose3):
    """Adapter for cellpose 4.x — written against the 4.x source only, never run (see module doc)."""

    bsize = 256
    diam_mean = 30.0  # 4.x eval always rescales by 30 / diameter
    builtin_weights: dict[str, str] = {"cpsam": "cpsam"}
    runs_cpnet = False
    eval_extra: dict[str, Any] = {}  # no channels argument any more
    random_architecture = "Cellpose-SAM architecture, random weights"

    def load_weights(self, path: str, device: Any, nuclei_cpnet: bool, diam_mean: float) -> Any:
        from cellpose import models

        return models.CellposeModel(pretrained_model=path, device=device, gpu=device.type == "cuda")

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
            net_of(model), img[np.newaxis], batch_size=batch_size, augment=augment,
            tile_overlap=tile_overlap, bsize=self.bsize if bsize is None else bsize,
        )
        return split_network_output(yf)

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
        p = dynamics.follow_flows(dP * iscell / 5.0, inds=inds, niter=niter, device=torch_device(device))
        return p, inds

    def masks_to_flows(self, labels: np.ndarray, device: Device) -> np.ndarray:
        from cellpose import dynamics

        if hasattr(dynamics, "masks_to_flows"):
            return np.asarray(dynamics.masks_to_flows(labels, device=torch_device(device)))
        return np.asarray(dynamics.masks_to_flows_gpu(labels, device=torch_device(device))[0])

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

    def stagewise(
        self, model: Any, img: np.ndarray, diameter: float | None, flow_threshold: float, cellprob_threshold: float,
        min_size: int, niter: int | None, bsize: int | None, tile_overlap: float, batch_size: int, augment: bool,
        tile_norm_blocksize: int, device: Device,
    ) -> np.ndarray:
        # order of CellposeModel.eval 4.x: convert -> resize (30 / diameter) -> normalize -> net -> resample
        x = self.convert(img, None)
        f = scale_factor(diameter, self.diam_mean)
        if f != 1.0:
            from cellpose import transforms

            x = transforms.resize_image(x, Ly=int(x.shape[0] * f), Lx=int(x.shape[1] * f))
        x = normalize(x, tile_norm_blocksize=tile_norm_blocksize, inplace=True)
        dP, cellprob = self.run_network(model, x, bsize, tile_overlap, batch_size, augment)
        dP, cellprob = resample_flows(dP, cellprob, img.shape[:2])
        n = int(200 / f) if niter is None or niter == 0 else niter
        return self.masks_from_flows(dP, cellprob, n, cellprob_threshold, flow_threshold, min_size, 0.4, device)
