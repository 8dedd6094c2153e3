"""Stage 11, write masks: a label image to TIFF with each compression (temp name, then rename)."""

import shutil
import tempfile
from pathlib import Path

import numpy as np

from cpbench import stages as _cs
from cpbench.measure import inputs as _in
from cpbench.measure import suite as _b


class WriteMasks(_b.Stage):
    """The ground-truth labels of the synthetic crop stand in for masks (uint16 as eval returns)."""

    version = "1"
    min_sample_s = _b.SHORT_SAMPLE_S
    params = (_b.SIZES, _b.COMPRESSIONS)
    param_names = ["size", "compression"]

    def prepare(self, size: str, compression: str) -> None:
        labels = _in.load_crop(_in.SYNTHETIC, size)[1]
        self.masks = labels.astype(np.uint16) if labels.max() < 2**16 else labels
        if getattr(self, "dir", None) is None:  # setup may prepare twice before a teardown
            self.dir = Path(tempfile.mkdtemp(prefix="cpbench-write-"))
        self.compression = compression

    def teardown(self, _cache, *params) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def predicted_bytes(self) -> int:
        return 3 * self.masks.nbytes

    def run(self):
        return _cs.write_masks(self.dir / "masks.tif", self.masks, compression=self.compression)
