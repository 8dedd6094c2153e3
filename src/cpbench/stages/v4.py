"""Cellpose 4.x adapters, checked against running cellpose 4.2.1.1 (and read against every 4.x
release in the offline history, `cpbench cellpose-history`).

What 4.x changed from 3.x, as the stages see it:

- one network, Cellpose-SAM (a ViT-L encoder, 8-px patches, 256-px tiles, 3 outputs): class
  ``vit_sam.Transformer`` in 4.0-4.1, ``vit.CPSAM`` from 4.2 (whose ``CellposeModel`` also needs a
  ``backbone`` name and loads weights in bfloat16 by default). It cannot run with another tile size.
- ``convert_image`` makes 3 channels (no ``channels`` selection); the image is rescaled by
  ``30 / diameter`` (1 when no diameter is given: no size model).
- 4.0.x resizes the image in ``eval`` *before* normalizing it; from 4.1 ``eval`` normalizes first and
  ``run_net`` resizes (``rsz``), as 3.x did.
- ``dynamics.follow_flows`` has no ``interp`` switch (no numba path); ``masks_to_flows`` gave way to
  ``masks_to_flows_gpu`` (which runs on the CPU too).

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
    split_network_output,
    torch_device,
)
from cpbench.stages.v3 import Cellpose3

#: Cellpose-SAM's tile size, pixels: its position embeddings are made for it
SAM_BSIZE = 256


class Cellpose4(Cellpose3):
    """Adapter for cellpose 4.0.x (resize before normalize; network ``vit_sam.Transformer``)."""

    bsize = SAM_BSIZE
    diam_mean = 30.0  # 4.x eval rescales by 30 / diameter
    builtin_weights: dict[str, str] = {"cpsam": "cpsam"}
    runs_cpnet = False
    eval_extra: dict[str, Any] = {}  # no channels argument any more
    fixed_nchan: int | None = 3  # Cellpose-SAM: the first 3 channels of any input
    random_architecture = "Cellpose-SAM architecture (ViT-L encoder), random weights"
    #: 4.0.x: ``eval`` resizes the image before it normalizes it
    resize_before_normalize = True

    def load_weights(self, path: str, device: Any, nuclei_cpnet: bool, diam_mean: float) -> Any:
        from cellpose import models

        return models.CellposeModel(pretrained_model=path, device=device, gpu=device.type == "cuda")

    def convert(self, img: np.ndarray, channels: Sequence[int] | None) -> np.ndarray:
        if channels is not None:
            raise NotImplementedError("cellpose 4.x has no channel selection ('channels' is deprecated)")
        from cellpose import transforms

        return np.asarray(transforms.convert_image(img, channel_axis=None, z_axis=None, do_3D=False))

    def check_network_options(self, bsize: int | None, batch_size: int) -> None:
        if bsize is not None and bsize != SAM_BSIZE:
            raise NotImplementedError(f"cellpose 4.x runs Cellpose-SAM on {SAM_BSIZE}-px tiles only (bsize={bsize})")

    def run_network(
        self, model: Any, img: np.ndarray, bsize: int | None, tile_overlap: float, batch_size: int, augment: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        self.check_network_options(bsize, batch_size)
        from cellpose import core

        yf, _styles = core.run_net(
            net_of(model), img[np.newaxis], batch_size=batch_size, augment=augment,
            tile_overlap=tile_overlap, bsize=SAM_BSIZE, rsz=None,
        )
        return split_network_output(yf)

    def follow_flows(
        self, dP: np.ndarray, cellprob: np.ndarray, thr: float, niter: int, device: Device, interp: bool
    ) -> tuple[Any, tuple[np.ndarray, ...]]:
        if not interp:
            raise NotImplementedError("cellpose 4.x has no interp=False (numba) path in follow_flows")
        return super().follow_flows(dP, cellprob, thr, niter, device, interp)

    def _follow(
        self, flows: np.ndarray, inds: tuple[np.ndarray, ...], niter: int, device: Device, interp: bool
    ) -> tuple[Any, tuple[np.ndarray, ...]]:
        from cellpose import dynamics

        return dynamics.follow_flows(flows, inds=inds, niter=niter, device=torch_device(device)), inds

    def masks_to_flows(self, labels: np.ndarray, device: Device) -> np.ndarray:
        from cellpose import dynamics

        if hasattr(dynamics, "masks_to_flows"):
            return np.asarray(dynamics.masks_to_flows(labels, device=torch_device(device)))
        return np.asarray(dynamics.masks_to_flows_gpu(labels, device=torch_device(device))[0])

    def _network(self) -> tuple[Any, str | None]:
        """A random-weights Cellpose-SAM network (float32) and the backbone name 4.2's model needs."""
        import torch

        try:
            from cellpose.vit import CPSAM
        except ImportError:
            CPSAM = None  # noqa: N806 - 4.0/4.1
        try:
            if CPSAM is not None:
                return CPSAM(dtype=torch.float32), "sam_vitl"
            from cellpose.vit_sam import Transformer

            return Transformer(), None
        except ImportError as e:  # segment_anything missing
            raise NotImplementedError(f"cannot build a random cellpose 4.x network: {e}") from e

    def random_model(self, device: Any, nchan: int | None = None) -> Any:
        if nchan is not None and nchan != self.fixed_nchan:
            raise NotImplementedError(f"cellpose 4.x's Cellpose-SAM takes {self.fixed_nchan} input channels, not {nchan}")
        from cellpose import models

        net, backbone = self._network()
        model = object.__new__(models.CellposeModel)  # its __init__ insists on weights
        model.net = net.to(device)
        model.device = device
        model.gpu = device.type == "cuda"
        model.pretrained_model = None
        model.diam_mean = self.diam_mean
        if backbone is not None:
            model.backbone = backbone
        return model

    def _model_rescale(self, model: Any, diameter: float | None) -> float:
        return float(self.diam_mean / diameter) if diameter is not None and diameter > 0 else 1.0

    def stagewise(
        self, model: Any, img: np.ndarray, diameter: float | None, flow_threshold: float, cellprob_threshold: float,
        min_size: int, niter: int | None, bsize: int | None, tile_overlap: float, batch_size: int, augment: bool,
        tile_norm_blocksize: int, device: Device,
    ) -> np.ndarray:
        from cellpose import transforms

        x = self.convert(img, None)
        f = self._model_rescale(model, diameter)
        if f != 1.0 and self.resize_before_normalize:  # 4.0.x: resize -> normalize
            x = transforms.resize_image(x, Ly=int(x.shape[0] * f), Lx=int(x.shape[1] * f))
        x = normalize(x, tile_norm_blocksize=tile_norm_blocksize, inplace=True)
        if f != 1.0 and not self.resize_before_normalize:  # 4.1+: normalize -> resize in run_net
            x = transforms.resize_image(x, rsz=f)
        dP, cellprob = self.run_network(model, x, bsize, tile_overlap, batch_size, augment)
        dP, cellprob = resample_flows(dP, cellprob, img.shape[:2])
        n = int(200 / f) if niter is None or niter == 0 else niter
        return self.masks_from_flows(dP, cellprob, n, cellprob_threshold, flow_threshold, min_size, 0.4, device)


class Cellpose41(Cellpose4):
    """Adapter for cellpose 4.1 and later: ``eval`` normalizes, then ``run_net`` resizes."""

    resize_before_normalize = False
