"""End to end: CellposeModel.eval on a crop (stages 2-10), with its accuracy (AP@0.5)."""

from cpbench import stages as _cs
from cpbench.measure import inputs as _in
from cpbench.measure import probes as _probes
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
