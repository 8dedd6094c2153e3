"""How well blockwise labels agree: AP@0.5 against the ground truth or against whole-image eval of the
same image, and where the errors lie: near a seam or inside a block core (files on disk; the arrays
are read whole, so for the sizes where that fits). Units: pixels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from cpbench.segment.stitch import moments


def read_label_image(path: Path) -> np.ndarray:
    """Level 0 of a label OME-TIFF, whole, as (Y, X)."""
    a = tifffile.imread(path, level=0)
    return a[0] if a.ndim == 3 else a


def ap50(truth: np.ndarray, labels: np.ndarray) -> float:
    """AP@0.5 = TP / (TP + FP + FN), a match being IoU >= 0.5 (as Cellpose's ``metrics.average_precision``;
    at 0.5 a match is one to one). Computed from the pixel pairs, not from a dense objects x objects
    matrix (Cellpose's needs 4 bytes per pair: 3.4 GB for 26 000 x 33 000 nuclei, 90 GB at 8192 px)."""
    ids_t, ids_l, it, iou = _overlaps(truth, labels)
    tp = len(np.unique(it[iou >= 0.5]))
    fn, fp = len(ids_t) - tp, len(ids_l) - tp
    return tp / (tp + fp + fn) if tp + fp + fn else 1.0


def ap50_files(truth: Path, labels: Path) -> float:
    """AP@0.5 of the label image ``labels`` against ``truth`` (both OME-TIFF)."""
    return ap50(read_label_image(truth), read_label_image(labels))


def ap50_against_whole_eval(image: Path, labels: Path, diameter: float | None, model: str = "reference",
                            channel: int = 0) -> float:
    """AP@0.5 of ``labels`` against whole-image ``CellposeModel.eval`` of ``image``'s ``channel``."""
    from cpbench import stages as cs
    from cpbench.models import registry

    with tifffile.TiffFile(image) as tf:
        shape = tf.series[0].shape
    img = cs.read_region(image, channel, 0, 0, shape[-2], shape[-1])
    whole = cs.eval_end_to_end(registry.load(model), img, diameter)
    return ap50(whole, read_label_image(labels))


def _overlaps(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ids of ``a`` and of ``b`` (sorted, 0 excluded), and for every pair of objects that share pixels
    the id in ``a`` and the pair's IoU."""
    ids_a, area_a = np.unique(a[a > 0], return_counts=True)
    ids_b, area_b = np.unique(b[b > 0], return_counts=True)
    both = (a > 0) & (b > 0)
    pa, pb = a[both].astype(np.int64), b[both].astype(np.int64)
    if not len(pa):
        return ids_a, ids_b, np.zeros(0, np.int64), np.zeros(0)
    base = int(pb.max()) + 1
    keys, inter = np.unique(pa * base + pb, return_counts=True)
    ia, ib = keys // base, keys % base
    iou = inter / (area_a[np.searchsorted(ids_a, ia)] + area_b[np.searchsorted(ids_b, ib)] - inter)
    return ids_a, ids_b, ia, iou


def unmatched(a: np.ndarray, b: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Ids of label image ``a`` that no object of ``b`` overlaps with IoU > ``threshold``."""
    ids_a, _, ia, iou = _overlaps(a, b)
    return np.setdiff1d(ids_a, ia[iou > threshold])


def _centroids(labels: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    all_ids, _, cy, cx = moments(labels)
    rows = np.searchsorted(all_ids, ids)
    return cy[rows], cx[rows]


def near_seam(cy: np.ndarray, cx: np.ndarray, shape: tuple[int, int], block: int, band: int) -> np.ndarray:
    """Whether each point lies within ``band`` px of a block core edge inside the image."""
    def near(c: np.ndarray, side: int) -> np.ndarray:
        edges = np.arange(block, side, block, dtype=np.float64)
        if not len(edges):
            return np.zeros(c.shape, bool)
        return np.abs(c[:, None] - edges[None, :]).min(axis=1) <= band
    return near(cy, shape[0]) | near(cx, shape[1])


@dataclass(frozen=True)
class SeamErrors:
    """Errors at IoU 0.5 against the truth, split by where the object's centroid lies: ``truth``
    nuclei, missed (``fn``) and spurious labels (``fp``), near a seam and inside the cores."""

    truth_seam: int
    fn_seam: int
    fp_seam: int
    truth_core: int
    fn_core: int
    fp_core: int

    def rate(self, where: str) -> float:
        """(missed + spurious) per true nucleus, near the seams (``seam``) or inside the cores (``core``)."""
        t, fn, fp = (getattr(self, f"{k}_{where}") for k in ("truth", "fn", "fp"))
        return (fn + fp) / t if t else float("nan")


def seam_errors(truth: np.ndarray, labels: np.ndarray, block: int, band: int) -> SeamErrors:
    """Where ``labels`` err against ``truth`` (same shape): within ``band`` px of a block core edge of a
    ``block`` px grid, or elsewhere. Applied to whole-image eval with the same grid, it says whether the
    seams add errors."""
    t_ids = np.unique(truth)[1:]
    fn = unmatched(truth, labels)
    fp = unmatched(labels, truth)
    ty, tx = _centroids(truth, t_ids)
    t_near = near_seam(ty, tx, truth.shape, block, band)
    fn_near = t_near[np.searchsorted(t_ids, fn)]
    py, px = _centroids(labels, fp)
    fp_near = near_seam(py, px, labels.shape, block, band)
    return SeamErrors(int(t_near.sum()), int(fn_near.sum()), int(fp_near.sum()), int((~t_near).sum()),
                      int((~fn_near).sum()), int((~fp_near).sum()))
