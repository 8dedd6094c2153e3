"""Stages 2-4: convert (channel layout), normalize (1-99 percentile), rescale (diam_mean / diameter)."""

from cpbench import stages as _cs
from cpbench.measure import inputs as _in
from cpbench.measure import suite as _b


class _Crop(_b.Stage):
    min_sample_s = _b.SHORT_SAMPLE_S  # 0.1 to 20 ms a call

    def load(self, dataset: str, size: str) -> None:
        self.img, _ = _in.load_crop(dataset, size)


class Convert(_Crop):
    version = "1"
    params = (_b.DATASETS, _b.SIZES)
    param_names = ["dataset", "size"]

    def prepare(self, dataset: str, size: str) -> None:
        self.load(dataset, size)

    def predicted_bytes(self) -> int:
        return 12 * self.img.size

    def run(self):
        return _cs.convert(self.img)


class Normalize(_Crop):
    """In place on the float32 converted image, as eval does (setup makes a fresh copy per sample)."""

    version = "1"
    params = (_b.DATASETS, _b.SIZES, _b.TILE_NORMS)
    param_names = ["dataset", "size", "tile_norm_blocksize"]

    def prepare(self, dataset: str, size: str, tile_norm_blocksize: int) -> None:
        self.load(dataset, size)
        self.x = _cs.convert(self.img)
        self.tile_norm = tile_norm_blocksize

    def predicted_bytes(self) -> int:
        return 24 * self.img.size

    def run(self):
        return _cs.normalize(self.x, tile_norm_blocksize=self.tile_norm, inplace=True)


class Rescale(_Crop):
    """Resize by 17 / diameter (the nuclei model's diam_mean over the given diameter)."""

    version = "1"
    params = (_b.DATASETS, _b.SIZES, _b.DIAMETERS)
    param_names = ["dataset", "size", "diameter"]

    def prepare(self, dataset: str, size: str, diameter: float) -> None:
        self.load(dataset, size)
        self.x = _cs.normalize(_cs.convert(self.img), inplace=True)
        self.diameter = diameter

    def predicted_bytes(self) -> int:
        f = _cs.rescale_factor(self.diameter, 17.0)
        return int(8 * self.img.size * (1 + f * f))

    def run(self):
        return _cs.rescale(self.x, self.diameter, 17.0)
