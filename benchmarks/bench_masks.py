"""Stages 6-10, mask recovery: resample flows, follow_flows, get_masks, flow QC, fill holes / min size.

Input flows: ``network`` (what the reference model produced for the crop, cached) or
``ground_truth`` (masks_to_flows of the true labels: a perfect model). Each stage's input is the
previous stages' output at default parameters, made once and cached (inputs.mask_stage_inputs).
MaskRecovery chains stages 7-10 and also tracks accuracy (AP@0.5 against the ground truth).
"""

import numpy as _np

from cpbench import stages as _cs
from cpbench.measure import inputs as _in
from cpbench.measure import probes as _probes
from cpbench.measure import suite as _b

_SOURCES = (_b.DATASETS, _b.SIZES, _b.FLOW_SOURCES)
_SOURCE_NAMES = ["dataset", "size", "flows"]


class _Flows(_b.DeviceStage):
    timeout = 4 * 3600.0 if _b.full_mode() else 1800.0

    def load(self, dataset: str, size: str, flows: str, device: str = "cpu") -> None:
        _b.require_device(device)
        self.device = device
        self.dP, self.cellprob = _in.flows(dataset, size, flows, "reference", _b.DIAMETER)
        self.shape = self.cellprob.shape

    def predicted_bytes(self) -> int:
        return _probes.predict_masks_bytes(self.cellprob.size)


class ResampleFlows(_b.Stage):
    """Stage 6: network-resolution flows (rescaled by 17/13) back to the crop's size."""

    version = "1"
    min_sample_s = _b.SHORT_SAMPLE_S
    params = (_b.DATASETS, _b.SIZES)
    param_names = ["dataset", "size"]

    def prepare(self, dataset: str, size: str) -> None:
        self.shape = _in.crop_shape(dataset, size)
        self.dP, self.cellprob = _in.network_flows(dataset, size, "reference", _b.DIAMETER, full_size=False)

    def predicted_bytes(self) -> int:
        return 24 * self.shape[0] * self.shape[1]

    def run(self):
        return _cs.resample_flows(self.dP, self.cellprob, self.shape)


class FollowFlows(_Flows):
    version = "1"
    params = (*_SOURCES, _b.NITERS, _b.CELLPROB_THRESHOLDS, _b.DEVICES)
    param_names = [*_SOURCE_NAMES, "niter", "cellprob_threshold", "device"]

    def prepare(self, dataset, size, flows, niter, cellprob_threshold, device) -> None:
        self.load(dataset, size, flows, device)
        self.niter, self.threshold = niter, cellprob_threshold

    def run(self):
        return _cs.follow_flows(self.dP, self.cellprob, self.threshold, self.niter, self.device)


class GetMasks(_Flows):
    version = "1"
    min_sample_s = _b.SHORT_SAMPLE_S
    params = (*_SOURCES, _b.DEVICES)
    param_names = [*_SOURCE_NAMES, "device"]

    def prepare(self, dataset, size, flows, device) -> None:
        self.load(dataset, size, flows, device)
        made = _in.mask_stage_inputs(dataset, size, flows, "reference", _b.DIAMETER)
        self.p, self.inds = made["p"], made["inds"]

    def run(self):
        return _cs.get_masks(self.p, self.inds, self.shape, device=self.device)


class FlowQC(_Flows):
    """remove_bad_flow_masks, in place as eval runs it (setup makes fresh masks per sample)."""

    version = "1"
    params = (*_SOURCES, _b.FLOW_THRESHOLDS, _b.DEVICES)
    param_names = [*_SOURCE_NAMES, "flow_threshold", "device"]

    def prepare(self, dataset, size, flows, flow_threshold, device) -> None:
        self.load(dataset, size, flows, device)
        self.masks = _in.mask_stage_inputs(dataset, size, flows, "reference", _b.DIAMETER)["masks"]
        self.threshold = flow_threshold

    def run(self):
        return _cs.remove_bad_flow_masks(self.masks, self.dP, self.threshold, self.device, inplace=True)


class FillHoles(_Flows):  # CPU only in Cellpose: no GPU sibling
    """fill_holes_and_remove_small_masks on the masks after flow QC (CPU only in Cellpose)."""

    version = "1"
    min_sample_s = _b.SHORT_SAMPLE_S
    params = (*_SOURCES, _b.MIN_SIZES)
    param_names = [*_SOURCE_NAMES, "min_size"]

    def prepare(self, dataset, size, flows, min_size) -> None:
        self.load(dataset, size, flows)
        self.masks = _in.mask_stage_inputs(dataset, size, flows, "reference", _b.DIAMETER)["qc_masks"]
        self.min_size = min_size

    def run(self):
        return _cs.fill_holes_and_remove_small(self.masks, self.min_size, inplace=True)


class MaskRecovery(_b.Accuracy, _Flows):
    """Stages 7-10 chained, with the accuracy of the result (AP@0.5 vs ground truth)."""

    version = "1"
    params = (*_SOURCES, _b.NITERS, _b.FLOW_THRESHOLDS, _b.CELLPROB_THRESHOLDS, _b.MIN_SIZES, _b.DEVICES)
    param_names = [*_SOURCE_NAMES, "niter", "flow_threshold", "cellprob_threshold", "min_size", "device"]

    def prepare(self, dataset, size, flows, niter, flow_threshold, cellprob_threshold, min_size, device) -> None:
        self.load(dataset, size, flows, device)
        self.gt = _in.load_crop(dataset, size)[1]
        self.kw = dict(niter=niter, flow_threshold=flow_threshold, cellprob_threshold=cellprob_threshold,
                       min_size=min_size, device=device)

    def run(self):
        return _cs.masks_from_flows(self.dP, self.cellprob, **self.kw)


FollowFlowsGPUMemory = _b.gpu_memory(FollowFlows, "FollowFlowsGPUMemory")
GetMasksGPUMemory = _b.gpu_memory(GetMasks, "GetMasksGPUMemory")
FlowQCGPUMemory = _b.gpu_memory(FlowQC, "FlowQCGPUMemory")
MaskRecoveryGPUMemory = _b.gpu_memory(MaskRecovery, "MaskRecoveryGPUMemory")


class CellDensity:
    """What each synthetic input holds (question 3: do dense cells cost more?): true nuclei per megapixel
    and the fraction of pixels inside a nucleus, of the crop's ground truth. No timing: the mask stages'
    benchmarks at the same dataset and size are the cost; these are its explanatory variables."""

    version = "1"
    params = (_b.DATASETS, _b.SIZES)
    param_names = ["dataset", "size"]

    def setup(self, dataset: str, size: str) -> None:
        if not _in.is_synthetic(dataset):
            raise NotImplementedError(f"skipped: {dataset} has no ground truth")
        labels = _in.load_crop(dataset, size)[1]
        self.pixels = labels.size
        self.nuclei = len(_np.unique(labels)) - (1 if (labels == 0).any() else 0)
        self.cell_pixels = int((labels > 0).sum())

    def track_nuclei_per_mp(self, dataset: str, size: str) -> float:
        return self.nuclei / self.pixels * 1e6

    track_nuclei_per_mp.unit = "nuclei per megapixel"  # type: ignore[attr-defined]

    def track_cell_fraction(self, dataset: str, size: str) -> float:
        return self.cell_pixels / self.pixels

    track_cell_fraction.unit = "fraction of pixels in a nucleus"  # type: ignore[attr-defined]
