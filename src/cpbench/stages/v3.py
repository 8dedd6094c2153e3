"""Cellpose 3.1 adapter: how each stage is called in cellpose 3.1 (checked against running 3.1.1.x).

3.0.x differs in three stages: :mod:`cpbench.stages.v30`.

Units: sizes in pixels, diameters in pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cpbench.stages.common import (
    Device,
    fill_holes_and_remove_small,
    get_masks,
    net_of,
    normalize,
    remove_bad_flow_masks,
    resample_flows,
    split_network_output,
    torch_device,
)


class Cellpose3:
    """Adapter for cellpose 3.x (checked against running cellpose 3.1.1.2).

    Its methods are the version-specific halves of the functions in :mod:`cpbench.stages.api`, with
    the same arguments and units; :class:`~cpbench.stages.v4.Cellpose4` overrides what 4.x changed.
    """

    bsize = 224
    diam_mean = 17.0  # the nuclei model; CellposeModel's own default is 30

    #: builtin weights of this major version: model name -> file name in Cellpose's model directory
    builtin_weights: dict[str, str] = {"nuclei": "nucleitorch_0"}
    #: whether the CPnet architecture (cpbench's reference weights) runs under this version
    runs_cpnet = True
    #: version-specific keyword arguments of ``CellposeModel.eval`` (3.x: nuclear channel only)
    eval_extra: dict[str, Any] = {"channels": None}
    #: input channels every model of the version takes (None: a CPnet's own ``nchan``)
    fixed_nchan: int | None = None
    #: what ``random_model`` builds
    random_architecture = "CPnet nuclei architecture (nbase [2, 32, 64, 128, 256], 3 outputs), random weights"

    def load_weights(self, path: str, device: Any, nuclei_cpnet: bool, diam_mean: float) -> Any:
        """``CellposeModel(pretrained_model=path)``; ``nuclei_cpnet``: the 2-channel nuclei CPnet."""
        from cellpose import models

        kw = {"diam_mean": diam_mean, "nchan": 2} if nuclei_cpnet else {}
        return models.CellposeModel(pretrained_model=path, device=device, gpu=device.type == "cuda", **kw)

    def get_masks(
        self, p: Any, inds: tuple[np.ndarray, ...], shape: tuple[int, int], max_size_fraction: float, device: Device
    ) -> np.ndarray:
        return get_masks(p, inds, shape, max_size_fraction, device)

    def masks_from_flows(
        self, dP: np.ndarray, cellprob: np.ndarray, niter: int, cellprob_threshold: float, flow_threshold: float,
        min_size: int, max_size_fraction: float, device: Device,
    ) -> np.ndarray:
        p, inds = self.follow_flows(dP, cellprob, cellprob_threshold, niter, device, True)
        masks = self.get_masks(p, inds, cellprob.shape, max_size_fraction, device)
        del p
        masks = remove_bad_flow_masks(masks, dP, flow_threshold, device, inplace=True)
        return fill_holes_and_remove_small(masks, min_size, inplace=True)

    def convert(self, img: np.ndarray, channels: Sequence[int] | None) -> np.ndarray:
        from cellpose import transforms

        chans = None if channels is None else list(channels)
        return np.asarray(transforms.convert_image(img, chans, channel_axis=None, z_axis=None, do_3D=False, nchan=2))

    def check_network_options(self, bsize: int | None, batch_size: int) -> None:
        """NotImplementedError when this version's ``run_net`` cannot run with these options."""

    def run_network(
        self, model: Any, img: np.ndarray, bsize: int | None, tile_overlap: float, batch_size: int, augment: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        from cellpose import core

        yf, _styles = core.run_net(
            net_of(model), img[np.newaxis], batch_size=batch_size, augment=augment,
            tile_overlap=tile_overlap, bsize=self.bsize if bsize is None else bsize, rsz=None,
        )
        return split_network_output(yf)

    def follow_flows(
        self, dP: np.ndarray, cellprob: np.ndarray, thr: float, niter: int, device: Device, interp: bool
    ) -> tuple[Any, tuple[np.ndarray, ...]]:
        iscell = cellprob > thr
        inds = np.nonzero(iscell)
        if len(inds[0]) == 0:
            return np.zeros((2, 0), np.float32), inds
        return self._follow(dP * iscell / 5.0, inds, niter, device, interp)

    def _follow(
        self, flows: np.ndarray, inds: tuple[np.ndarray, ...], niter: int, device: Device, interp: bool
    ) -> tuple[Any, tuple[np.ndarray, ...]]:
        """``dynamics.follow_flows`` on the masked, unscaled flows of the ``inds`` cell pixels."""
        from cellpose import dynamics

        return dynamics.follow_flows(flows, inds=inds, niter=niter, interp=interp, device=torch_device(device)), inds

    def masks_to_flows(self, labels: np.ndarray, device: Device) -> np.ndarray:
        from cellpose import dynamics

        return np.asarray(dynamics.masks_to_flows(labels, device=torch_device(device)))

    def random_model(self, device: Any, nchan: int | None = None) -> Any:
        from cellpose import models

        return models.CellposeModel(
            pretrained_model=False, diam_mean=17.0, nchan=2 if nchan is None else nchan, device=device,
            gpu=device.type == "cuda",
        )

    def eval(
        self, model: Any, img: np.ndarray, diameter: float | None, flow_threshold: float, cellprob_threshold: float,
        min_size: int, niter: int | None, bsize: int | None, tile_overlap: float, batch_size: int, augment: bool,
        tile_norm_blocksize: int, lowhigh: tuple[float, float] | None = None, resample: bool = True,
    ) -> np.ndarray:
        norm: dict[str, Any] = {"tile_norm_blocksize": tile_norm_blocksize}
        if lowhigh is not None:
            # normalized here as normalize_img does with percentiles, (x - low) / (high - low) in float32,
            # and eval told not to: its normalize["lowhigh"] would also shift the empty second channel
            # that convert_image adds (-low / (high - low) everywhere: 538 nuclei found instead of 992).
            # A dict, not normalize=False: eval writes a bool into the module's normalize_default, and
            # every later eval of the process then skips normalization (3.0-4.x; 0 nuclei found after)
            img = (img.astype(np.float32) - float(lowhigh[0])) / float(lowhigh[1] - lowhigh[0])
            norm = {"normalize": False}
        masks = model.eval(
            img, diameter=diameter, flow_threshold=flow_threshold, cellprob_threshold=cellprob_threshold,
            min_size=min_size, bsize=self.bsize if bsize is None else bsize, tile_overlap=tile_overlap,
            batch_size=batch_size, augment=augment, niter=niter, normalize=norm, resample=resample,
            **self.eval_extra,
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
        return self.masks_from_flows(dP, cellprob, n, cellprob_threshold, flow_threshold, min_size, 0.4, device)
