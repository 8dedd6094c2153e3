"""Blockwise whole-slide segmentation (`cpbench segment`) on the same crops as whole-image eval
(bench_eval.EndToEnd): time, stage peak, process peak (the input stays on disk: blocks are read from
the tiled OME-TIFF), AP@0.5 against the ground truth and against whole-image eval. In this process,
one block after the other (the cluster adds workers, not a different algorithm)."""

import shutil
import tempfile
from pathlib import Path

from cpbench.measure import inputs as _in
from cpbench.measure import probes as _probes
from cpbench.measure import suite as _b

# 1024 px and 256 px blocks: the density sweep (cpbench sweep density: 512, 1024 and 2048 px in 256 px blocks)
SIZES = _b.grid(["512"], ["512", "1024", "2048", "4096", "8192", "16384"])
BLOCKS = _b.grid(["256"], ["256", "1024", "2048"])


class Blockwise(_b.Stage):
    # 2: batch size 1 on CPU (cpbench.segment.run.CPU_BATCH_SIZE); version 1's results ran Cellpose's 8
    version = "2"
    params = (_b.DATASETS, SIZES, BLOCKS)
    param_names = ["dataset", "size", "block"]
    timeout = 8 * 3600.0 if _b.full_mode() else 1800.0
    rounds, repeat = _b.LONG_ROUNDS, _b.LONG_REPEAT
    memory_warmup = False

    def prepare(self, dataset, size, block) -> None:
        if int(block) >= int(size):
            raise NotImplementedError(f"skipped: a {block} px block holds the whole {size} px crop")
        self.image, self.truth = _in.nuclear_crop(dataset, size)
        self.block = int(block)
        self.dir = Path(tempfile.mkdtemp(prefix="cpbench-segment-"))
        self.out = self.dir / "labels.ome.tif"

    def teardown(self, *params) -> None:
        # asv tears down a combination whose setup skipped it too: there is no folder then
        if getattr(self, "dir", None) is not None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def run(self):
        from cpbench.segment.run import segment_here

        self.out.unlink(missing_ok=True)
        return segment_here(self.image, self.out, self.block, _b.DIAMETER)

    def track_ap50(self, _cache, *params) -> float:
        """AP@0.5 of the blockwise labels against the ground truth."""
        from cpbench.segment.agreement import ap50_files

        if self.truth is None:  # a real slide (full grid)
            from asv_runner.benchmarks.mark import SkipNotImplemented

            raise SkipNotImplemented("no ground truth for this dataset")
        self.run()
        return ap50_files(self.truth, self.out)

    track_ap50.unit = "AP@0.5"

    def track_agreement_ap50(self, _cache, *params) -> float:
        """AP@0.5 of the blockwise labels against whole-image eval of the same crop (skipped where
        whole-image eval does not fit in memory)."""
        from cpbench.segment.agreement import ap50_against_whole_eval

        img_px = int(params[1]) ** 2
        _probes.memory_guard(_probes.predict_eval_bytes(int(img_px * (17.0 / _b.DIAMETER) ** 2)))
        self.run()
        return ap50_against_whole_eval(self.image, self.out, _b.DIAMETER)

    track_agreement_ap50.unit = "AP@0.5"
