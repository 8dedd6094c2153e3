"""Seam resolution on planted nuclei: blocks 'segment' their read windows from a ground truth (local
ids, in a shuffled order), exactly or with block-dependent outlines and offsets; every nucleus must
come out as one label, none cut, duplicated or dropped, nuclei on seams and corners included."""

from __future__ import annotations

import numpy as np
import pytest

from cpbench.errors import UserError
from cpbench.segment import blocks, stitch

SHAPE = (300, 340)
BLOCK, OVERLAP = 100, 20  # a 3 x 4 grid; nuclei of radius <= 7 px


def _centres(rng: np.random.Generator) -> list[tuple[float, float, float]]:
    """Nuclei exactly on seams and corners, plus scattered ones (y, x, radius in px)."""
    out = [(100.0, 50.0, 6.0), (100.0, 150.0, 7.0), (50.0, 100.0, 6.0), (200.0, 200.0, 6.5),  # seams
           (100.0, 100.0, 6.0), (200.0, 300.0, 7.0), (100.0, 300.0, 5.0)]  # corners
    while len(out) < 80:
        y, x = rng.uniform(8, SHAPE[0] - 8), rng.uniform(8, SHAPE[1] - 8)
        if all((y - a) ** 2 + (x - b) ** 2 > (r + 9) ** 2 for a, b, r in out):
            out.append((y, x, rng.uniform(4, 7)))
    return out


def _paint(window: blocks.Window, nuclei: list[tuple[float, float, float]], dy: float = 0.0, dx: float = 0.0,
           dr: float = 0.0, seed: int = 0) -> np.ndarray:
    """Labels of ``nuclei`` over ``window``, numbered 1..n in a shuffled order (local ids)."""
    y0, y1, x0, x1 = window
    yy, xx = np.mgrid[y0:y1, x0:x1]
    lab = np.zeros((y1 - y0, x1 - x0), np.int32)
    order = np.random.default_rng(seed).permutation(len(nuclei)) + 1
    for k, (y, x, r) in enumerate(nuclei):
        lab[((yy - y - dy) ** 2 + (xx - x - dx) ** 2 < (r + dr) ** 2) & (lab == 0)] = order[k]
    _, inv = np.unique(lab, return_inverse=True)  # local ids 1..n without gaps
    return inv.reshape(lab.shape).astype(np.int32)


def _one_label_each(truth: np.ndarray, out: np.ndarray) -> None:
    """Every true nucleus is one output label with IoU > 0.5 (AP@0.5's match) and no label is left over."""
    ids = np.unique(truth)[1:]
    assert len(np.unique(out)) - 1 == len(ids)
    for i in ids:
        got, n = np.unique(out[truth == i], return_counts=True)
        best = got[np.argmax(n)]
        assert best > 0, f"nucleus {i} dropped"
        inter = n.max()
        iou = inter / (np.count_nonzero(truth == i) + np.count_nonzero(out == best) - inter)
        assert iou > 0.5, f"nucleus {i}: IoU {iou:.2f}"


def test_grid_cores_tile_the_image_and_reads_are_clipped() -> None:
    g = blocks.make_grid(SHAPE, BLOCK, OVERLAP)
    cover = np.zeros(SHAPE, int)
    for b in g:
        cover[b.core[0]:b.core[1], b.core[2]:b.core[3]] += 1
        assert b.read[0] == max(b.core[0] - OVERLAP, 0) and b.read[3] == min(b.core[3] + OVERLAP, SHAPE[1])
    assert (cover == 1).all() and (g.rows, g.cols) == (3, 4)
    assert len(list(g.seams())) == 3 * 3 + 2 * 4 + 2 * 2 * 3  # right, below, two diagonals
    assert g.owner(99.9, 100.0) == (0, 1) and g.owner(300.0, -1.0) == (2, 0)
    assert blocks.auto_overlap(17.0) == 34


@pytest.mark.parametrize("block, overlap, words", [(100, 50, "at least 101 px"), (32, 0, "at least 64"),
                                                   (100, -1, "negative")])
def test_bad_grids_are_one_line_errors(block: int, overlap: int, words: str) -> None:
    with pytest.raises(UserError, match=words):
        blocks.make_grid(SHAPE, block, overlap)


def test_exact_blocks_give_the_truth_back() -> None:
    """Blocks that see exactly the truth (cut at their window edges): the stitched labels are the truth,
    relabelled; seams report matches and nothing merged, dropped or duplicated."""
    nuclei = _centres(np.random.default_rng(0))
    truth = _paint((0, SHAPE[0], 0, SHAPE[1]), nuclei)
    g = blocks.make_grid(SHAPE, BLOCK, OVERLAP)
    out, res = stitch.stitch_in_memory(g, lambda b: _paint(b.read, nuclei, seed=b.row * 7 + b.col))
    pairs = np.unique(np.stack([truth.ravel(), out.ravel()]), axis=1)
    assert ((pairs[0] > 0) == (pairs[1] > 0)).all()  # same foreground
    assert len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]  # a bijection
    assert res.total == len(nuclei) and res.split == 0 and not any(res.cut_kept.values())
    assert sum(s.matched for s in res.seams) >= 7 + 3 * 2  # seam nuclei: 2 blocks each, corners 4
    assert sum(s.dropped + s.duplicated for s in res.seams) == 0


def test_blocks_that_disagree_still_give_one_label_per_nucleus() -> None:
    """Each block sees every nucleus 1 px off in y and x, in its own direction, and 1 px larger or smaller, so the
    two views of a seam nucleus have centroids on opposite sides of the seam (the centroid rule alone
    keeps both or neither); matching keeps exactly one."""
    nuclei = _centres(np.random.default_rng(1))
    truth = _paint((0, SHAPE[0], 0, SHAPE[1]), nuclei)
    g = blocks.make_grid(SHAPE, BLOCK, OVERLAP)

    def seg(b: blocks.Block) -> np.ndarray:
        sy, sx = (1 if b.row % 2 else -1), (1 if b.col % 2 else -1)
        return _paint(b.read, nuclei, dy=sy, dx=sx, dr=(b.row + b.col) % 2 - 0.5, seed=b.col)

    out, res = stitch.stitch_in_memory(g, seg)
    _one_label_each(truth, out)
    assert sum(s.merged for s in res.seams) > 0 and sum(s.rescued for s in res.seams) > 0
    assert sum(s.dropped + s.duplicated for s in res.seams) == 0


def test_centroid_rule_alone_would_duplicate_and_drop() -> None:
    """The check above can fail: without the seam matches the same blocks give duplicates and losses."""
    nuclei = _centres(np.random.default_rng(1))
    truth = _paint((0, SHAPE[0], 0, SHAPE[1]), nuclei)
    g = blocks.make_grid(SHAPE, BLOCK, OVERLAP)
    labels = {}
    for b in g:
        sy, sx = (1 if b.row % 2 else -1), (1 if b.col % 2 else -1)
        labels[b.index] = _paint(b.read, nuclei, dy=sy, dx=sx, seed=b.col)
    tables = {b.index: stitch.measure_objects(labels[b.index], b, g.shape) for b in g}
    res = stitch.resolve(g, tables, [])
    maps = {i: res.label_map(t) for i, t in tables.items()}
    out = np.zeros(SHAPE, np.uint32)
    for b in g:
        out[b.core[0]:b.core[1], b.core[2]:b.core[3]] = stitch.compose(g, b, labels.get, maps.__getitem__)[0]
    with pytest.raises(AssertionError):
        _one_label_each(truth, out)


def test_a_nucleus_wider_than_the_overlap_is_reported_cut() -> None:
    nuclei = [(100.0, 60.0, 30.0), (250.0, 250.0, 6.0)]
    g = blocks.make_grid(SHAPE, BLOCK, 10)
    _, res = stitch.stitch_in_memory(g, lambda b: _paint(b.read, nuclei))
    assert sum(res.cut_kept.values()) >= 1


def test_label_maps_are_sized_by_the_block_and_ids_are_raster_ordered() -> None:
    nuclei = _centres(np.random.default_rng(2))
    g = blocks.make_grid(SHAPE, BLOCK, OVERLAP)
    out, res = stitch.stitch_in_memory(g, lambda b: _paint(b.read, nuclei))
    first = [int(out[b.core[0]:b.core[1], b.core[2]:b.core[3]].max()) for b in g]
    assert res.offsets[(0, 0)] == 0 and list(res.offsets.values()) == sorted(res.offsets.values())
    t = stitch.measure_objects(_paint(g.at(1, 1).read, nuclei), g.at(1, 1), g.shape)
    assert len(res.label_map(t)) == int(t.ids.max()) + 1 and max(first) == res.total
