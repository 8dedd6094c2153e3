"""End to end: CellposeModel.eval on a crop (stages 2-10), with its accuracy (AP@0.5)."""

from cpbench import stages as _cs
from cpbench.measure import inputs as _in
from cpbench.measure import probes as _probes
from cpbench.measure import studies as _studies
from cpbench.measure import suite as _b


class EndToEnd(_b.Accuracy, _b.DeviceStage):
    version = "1"
    params = (_b.DATASETS, _b.SIZES, _b.DEVICES, _b.MODELS, [_b.DIAMETER] if not _b.full_mode() else _b.DIAMETERS)
    param_names = ["dataset", "size", "device", "model", "diameter"]
    timeout = 4 * 3600.0 if _b.full_mode() else 1800.0
    rounds, repeat = _b.LONG_ROUNDS, _b.LONG_REPEAT
    memory_warmup = False

    def prepare(self, dataset, size, device, model, diameter) -> None:
        _b.require_device(device)
        _b.require_affordable_network(size, device)
        self.device = device
        self.img, self.gt = _in.load_crop(dataset, size)
        self.model = _in.load_model(model, device)
        self.diameter = diameter

    def predicted_bytes(self) -> int:
        f = _cs.rescale_factor(self.diameter, self.model.diam_mean)
        return _probes.predict_eval_bytes(int(self.img.size * max(f * f, 1.0)))

    def run(self):
        return _cs.eval_end_to_end(self.model, self.img, diameter=self.diameter)


EndToEndGPUMemory = _b.gpu_memory(EndToEnd, "EndToEndGPUMemory")


class FastSettings(_b.Accuracy, _b.DeviceStage):
    """Whole-image eval at each of Cellpose's fast settings (suite.FAST_SETTINGS; question 4): time,
    stage peak and AP@0.5 side by side, at diameter 13 (rescale 17/13: the network and, with
    ``resample_off``, mask recovery run on the image enlarged 1.7x in pixels)."""

    version = "1"
    params = (_b.STUDY_SIZES, _b.DEVICES, _b.STUDY_MODELS, _b.SETTINGS)
    param_names = ["size", "device", "model", "setting"]
    timeout = 4 * 3600.0 if _b.full_mode() else 1800.0
    rounds, repeat = _b.LONG_ROUNDS, _b.LONG_REPEAT
    memory_warmup = False

    def prepare(self, size, device, model, setting) -> None:
        _b.require_device(device)
        _b.require_affordable_network(size, device)
        self.device = device
        self.img, self.gt = _in.load_crop(_in.SYNTHETIC, size)
        self.model = _in.load_model(model, device)
        self.kw = dict(_b.FAST_SETTINGS[setting])
        if "bsize" in self.kw or "batch_size" in self.kw:
            _cs.check_network_options(self.kw.get("bsize"), self.kw.get("batch_size", 8))

    def predicted_bytes(self) -> int:
        f = _cs.rescale_factor(_b.DIAMETER, self.model.diam_mean)
        return _probes.predict_eval_bytes(int(self.img.size * max(f * f, 1.0)))

    def run(self):
        return _cs.eval_end_to_end(self.model, self.img, diameter=_b.DIAMETER, **self.kw)


class EndToEndChannels(_studies.ChannelStudy):
    """Whole-image eval with a CPnet of ``nchan`` input channels (random weights: time and memory of every
    stage, though mask recovery follows random flows) on the first ``nchan`` channels of the synthetic slide,
    unrescaled (measure.studies)."""

    def run(self):
        return _cs.eval_end_to_end(self.model, self.stack, diameter=self.model.diam_mean)


FastSettingsGPUMemory = _b.gpu_memory(FastSettings, "FastSettingsGPUMemory")
EndToEndChannelsGPUMemory = _b.gpu_memory(EndToEndChannels, "EndToEndChannelsGPUMemory")
