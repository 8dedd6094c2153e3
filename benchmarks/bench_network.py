"""Stage 5, the network (core.run_net): tiles of bsize, tile_overlap, batch_size, augment; CPU and GPU."""

from cpbench import stages as _cs
from cpbench.measure import inputs as _in
from cpbench.measure import probes as _probes
from cpbench.measure import studies as _studies
from cpbench.measure import suite as _b


class Network(_b.DeviceStage):
    """Input: the crop converted, normalized and rescaled by 17 / 13 (as eval does at diameter 13)."""

    version = "1"
    params = (_b.DATASETS, _b.SIZES, _b.DEVICES, _b.MODELS, _b.BSIZES, _b.BATCH_SIZES, _b.TILE_OVERLAPS,
              _b.AUGMENTS)
    param_names = ["dataset", "size", "device", "model", "bsize", "batch_size", "tile_overlap", "augment"]
    timeout = 4 * 3600.0 if _b.full_mode() else 1800.0
    rounds, repeat = _b.LONG_ROUNDS, _b.LONG_REPEAT
    memory_warmup = False

    def prepare(self, dataset, size, device, model, bsize, batch_size, tile_overlap, augment) -> None:
        _b.require_device(device)
        _b.require_affordable_network(size, device)
        _cs.check_network_options(_b.bsize_value(bsize), batch_size)
        self.device = device
        img, _ = _in.load_crop(dataset, size)
        self.model = _in.load_model(model, device)
        self.x = _in.network_input(img, _b.DIAMETER, self.model.diam_mean)
        self.args = (_b.bsize_value(bsize), tile_overlap, batch_size, augment)

    def predicted_bytes(self) -> int:
        return _probes.predict_eval_bytes(self.x.shape[0] * self.x.shape[1])

    def run(self):
        bsize, tile_overlap, batch_size, augment = self.args
        return _cs.run_network(self.model, self.x, bsize=bsize, tile_overlap=tile_overlap,
                               batch_size=batch_size, augment=augment)


NetworkGPUMemory = _b.gpu_memory(Network, "NetworkGPUMemory")


class InputChannels(_studies.ChannelStudy):
    """Stage 5 with a CPnet of ``nchan`` input channels (random weights: time and memory only) on the first
    ``nchan`` channels of the synthetic slide, normalized, unrescaled (measure.studies)."""

    def prepare(self, size, device, nchan) -> None:
        super().prepare(size, device, nchan)
        self.x = _cs.normalize(self.stack.astype("float32"), inplace=True)

    def run(self):
        return _cs.run_network(self.model, self.x)


InputChannelsGPUMemory = _b.gpu_memory(InputChannels, "InputChannelsGPUMemory")
