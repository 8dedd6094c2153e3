"""Stage 1, read image: a whole slide (all channels / the nuclear page / lazily) and a region."""

import tifffile

from cpbench import stages as _cs
from cpbench.measure import inputs as _in
from cpbench.measure import suite as _b


def _slide(dataset: str):
    if dataset == _in.SYNTHETIC:
        return _in.synthetic_slide()
    if _in.is_synthetic(dataset):
        raise NotImplementedError(f"skipped: {dataset} exists as crops only (the slide is the typical density)")
    return _in.real_image(dataset)


class ReadSlide(_b.Stage):
    """imread_all: every channel (C, Y, X); page0: the nuclear page; zarr_page0: page 0 via aszarr."""

    version = "1"
    min_sample_s = _b.SHORT_SAMPLE_S
    params = (_b.DATASETS, ["imread_all", "page0", "zarr_page0"])
    param_names = ["dataset", "method"]

    def prepare(self, dataset: str, method: str) -> None:
        self.path, self.method = _slide(dataset), method
        with tifffile.TiffFile(self.path) as tf:
            self.shape = tf.series[0].shape

    def predicted_bytes(self) -> int:
        c, y, x = self.shape
        return 2 * y * x * (c if self.method == "imread_all" else 1)

    def run(self):
        if self.method == "imread_all":
            return _cs.read_full(self.path)
        if self.method == "page0":
            return _cs.read_page(self.path, 0)
        return _cs.read_lazy(self.path)[0][:]


class ReadRegion(_b.Stage):
    """A centred square of the nuclear page through the tiled zarr store (no whole-page read)."""

    version = "1"
    min_sample_s = _b.SHORT_SAMPLE_S
    params = (_b.DATASETS, _b.SIZES)
    param_names = ["dataset", "size"]

    def prepare(self, dataset: str, size: str) -> None:
        self.path = _slide(dataset)
        fy, fx = _in.frame_shape(dataset)
        h, w = _in.crop_shape(dataset, size)
        if h > fy or w > fx:
            raise NotImplementedError(f"skipped: {size} px is larger than the {dataset} frame")
        self.window = ((fy - h) // 2, (fx - w) // 2, h, w)

    def predicted_bytes(self) -> int:
        return 2 * self.window[2] * self.window[3]

    def run(self):
        return _cs.read_region(self.path, 0, *self.window)
