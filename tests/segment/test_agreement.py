"""Where blockwise labels err: a nucleus cut on a seam counts near the seam, a missed one inside a
core counts there (planted errors, known answers)."""

from __future__ import annotations

import numpy as np
import pytest

from cpbench.segment.agreement import near_seam, seam_errors, unmatched


def _discs(shape: tuple[int, int], centres: list[tuple[int, int]], r: int = 6) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    out = np.zeros(shape, np.uint32)
    for i, (y, x) in enumerate(centres, start=1):
        out[(yy - y) ** 2 + (xx - x) ** 2 <= r * r] = i
    return out


def test_errors_are_placed_by_the_seams() -> None:
    shape, block = (200, 300), 100  # core edges at y = 100 and x = 100, 200
    centres = [(100, 50), (30, 30), (150, 250), (50, 150), (170, 130)]  # the first on a seam
    truth = _discs(shape, centres)
    labels = truth.copy()
    x = np.mgrid[: shape[0], : shape[1]][1]
    labels[(truth == 1) & (x > 50)] = 9  # the seam nucleus split in two halves: missed, and two spurious labels
    labels[(truth == 1) & (x == 50)] = 0
    labels[truth == 4] = 0  # an interior nucleus missed
    assert list(unmatched(truth, labels)) == [1, 4] and list(unmatched(labels, truth)) == [1, 9]
    e = seam_errors(truth, labels, block, band=10)
    assert (e.truth_seam, e.fn_seam, e.fp_seam) == (1, 1, 2)
    assert (e.truth_core, e.fn_core, e.fp_core) == (4, 1, 0)
    assert e.rate("seam") == 3.0 and e.rate("core") == 0.25
    assert seam_errors(truth, truth, block, 10).rate("seam") == 0.0


def test_near_seam_uses_inner_core_edges_only() -> None:
    y = np.array([5.0, 95.0, 195.0, 50.0])
    x = np.array([50.0, 50.0, 50.0, 205.0])
    assert list(near_seam(y, x, (200, 300), 100, 10)) == [False, True, False, True]


def test_ap50_is_cellposes_average_precision_at_0_5() -> None:
    from cpbench import stages as cs
    from cpbench.segment.agreement import ap50

    rng = np.random.default_rng(1)
    shape = (160, 160)
    centres = [(int(y), int(x)) for y, x in rng.integers(8, 152, size=(60, 2))]
    truth = _discs(shape, centres, r=5)
    pred = _discs(shape, [(y + int(rng.integers(-3, 4)), x + int(rng.integers(-3, 4))) for y, x in centres[5:]], r=5)
    pred[pred == 7] = 0
    # ids 1..n without gaps: Cellpose counts the largest id as the number of objects
    truth, pred = (np.unique(a, return_inverse=True)[1].reshape(shape).astype(np.uint32) for a in (truth, pred))
    expected = float(cs.average_precision(truth, pred, (0.5,))[0])
    assert 0.1 < expected < 0.95  # shifted discs: some match, some do not
    assert ap50(truth, pred) == pytest.approx(expected, abs=1e-6)
    assert ap50(truth, truth) == 1.0
