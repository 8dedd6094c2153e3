"""How well blockwise labels agree: AP@0.5 against the ground truth or against whole-image eval of the
same image (files on disk; the arrays are read whole, so for the sizes where that fits)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile


def _labels(path: Path) -> np.ndarray:
    a = tifffile.imread(path, level=0)
    return a[0] if a.ndim == 3 else a


def ap50_files(truth: Path, labels: Path) -> float:
    """AP@0.5 of the label image ``labels`` against ``truth`` (both OME-TIFF)."""
    from cpbench import stages as cs

    return float(cs.average_precision(_labels(truth), _labels(labels), (0.5,))[0])


def ap50_against_whole_eval(image: Path, labels: Path, diameter: float | None, model: str = "reference",
                            channel: int = 0) -> float:
    """AP@0.5 of ``labels`` against whole-image ``CellposeModel.eval`` of ``image``'s ``channel``."""
    from cpbench import stages as cs
    from cpbench.models import registry

    with tifffile.TiffFile(image) as tf:
        shape = tf.series[0].shape
    img = cs.read_region(image, channel, 0, 0, shape[-2], shape[-1])
    whole = cs.eval_end_to_end(registry.load(model), img, diameter)
    return float(cs.average_precision(whole, _labels(labels), (0.5,))[0])
