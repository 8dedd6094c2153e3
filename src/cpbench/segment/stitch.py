"""Seam resolution: one label per nucleus across overlapping blocks, from small per-block tables.

Each block segments its read window and numbers its objects 1..n (local ids). A nucleus near a seam is
then seen by up to four blocks. The rule, in three steps, needs only one block's labels or one pair's
overlap at a time, and tables sized by the objects (never by the image or the largest id):

1. ``measure_objects``: per block, each object's area (pixels), centroid (image coordinates) and
   whether the read window cuts it (it touches a window edge that is not the image's edge).
2. ``match_seam``: per pair of touching blocks, the objects of the two that overlap in the shared
   window, matched when they share more than half of the smaller one's pixels (a piece of a nucleus
   cut by one window matches the whole one; two views that disagree on the outline by a few pixels
   match although their IoU may be under 0.5; one object matching two is a split/merge disagreement).
3. ``resolve``: matched objects are joined into groups (one nucleus seen by several blocks). A group
   is kept once, by the block whose core holds the mean centroid of its uncut members (else the
   uncut member nearest to that point; a group of cut pieces only is kept by the owner of their mean
   centroid if it is among them, else left to the owner's own view); an object matched by no
   neighbour is kept by the block whose core holds its own centroid. Global ids: each block's kept objects, numbered in raster order of
   the blocks, from a prefix sum of per-block counts; a block's map is sized by its own local ids.

``compose`` then paints one block's core from its own and its neighbours' kept objects.
Units: pixels; ids are integers, 0 = background.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from cpbench.segment.blocks import Block, Grid, Index, intersect, local

#: two predictions are one nucleus when they share more than this fraction of the smaller one's pixels
MIN_OVERLAP = 0.5


@dataclass(frozen=True)
class Objects:
    """One block's objects, by local id (sorted): area in pixels, centroid in image coordinates,
    and whether the block's read window cuts the object."""

    block: Index
    ids: np.ndarray
    area: np.ndarray
    cy: np.ndarray
    cx: np.ndarray
    cut: np.ndarray

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """Positions of local ``ids`` in this table."""
        return np.searchsorted(self.ids, ids)


def measure_objects(labels: np.ndarray, blk: Block, shape: tuple[int, int]) -> Objects:
    """The table of ``labels`` (the block's read window, local ids) for a ``shape`` (Y, X) image."""
    if labels.shape != blk.read_shape:
        raise ValueError(f"labels {labels.shape} do not cover block {blk.index}'s window {blk.read_shape}")
    ids, a, cy, cx = moments(labels)
    edges = []
    y0, y1, x0, x1 = blk.read
    if y0 > 0:
        edges.append(labels[0, :])
    if y1 < shape[0]:
        edges.append(labels[-1, :])
    if x0 > 0:
        edges.append(labels[:, 0])
    if x1 < shape[1]:
        edges.append(labels[:, -1])
    cut_ids = np.unique(np.concatenate(edges)) if edges else np.zeros(0, labels.dtype)
    return Objects(blk.index, ids, a, cy + y0, cx + x0, np.isin(ids, cut_ids))


def moments(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ids present in ``labels`` (sorted, 0 excluded), their areas (pixels) and centroids (row, column
    in ``labels``' own coordinates)."""
    flat = labels.ravel()
    n = int(flat.max(initial=0)) + 1
    area = np.bincount(flat, minlength=n)
    h, w = labels.shape
    ysum = np.bincount(flat, weights=np.repeat(np.arange(h, dtype=np.float64), w), minlength=n)
    xsum = np.bincount(flat, weights=np.tile(np.arange(w, dtype=np.float64), h), minlength=n)
    ids = np.flatnonzero(area)
    ids = ids[ids > 0]
    a = area[ids]
    return ids.astype(np.int64), a.astype(np.int64), ysum[ids] / a, xsum[ids] / a


@dataclass(frozen=True)
class SeamMatch:
    """Objects of blocks ``a`` and ``b`` that overlap in their shared window: ``matched`` pairs
    (local id in a, local id in b) sharing more than :data:`MIN_OVERLAP` of the smaller one, with
    their IoU, and ``touching`` pairs that share fewer pixels."""

    a: Index
    b: Index
    matched: np.ndarray  # (k, 2) int64
    iou: np.ndarray  # (k,) float64
    touching: np.ndarray  # (m, 2) int64


def match_seam(a: Block, la: np.ndarray, oa: Objects, b: Block, lb: np.ndarray, ob: Objects) -> SeamMatch:
    """Match the objects of two touching blocks over the window their read windows share."""
    win = intersect(a.read, b.read)
    empty = np.zeros((0, 2), np.int64)
    if win is None:
        return SeamMatch(a.index, b.index, empty, np.zeros(0), empty)
    xa = la[local(win, a.read)].ravel()
    xb = lb[local(win, b.read)].ravel()
    both = (xa > 0) & (xb > 0)
    pa, pb = xa[both].astype(np.int64), xb[both].astype(np.int64)
    if not len(pa):
        return SeamMatch(a.index, b.index, empty, np.zeros(0), empty)
    base = int(pb.max()) + 1
    keys, inter = np.unique(pa * base + pb, return_counts=True)
    ia, ib = keys // base, keys % base
    area_a, area_b = oa.area[oa.rows(ia)], ob.area[ob.rows(ib)]
    iou = inter / (area_a + area_b - inter)
    hit = inter > MIN_OVERLAP * np.minimum(area_a, area_b)
    return SeamMatch(a.index, b.index, np.stack([ia[hit], ib[hit]], 1), iou[hit],
                     np.stack([ia[~hit], ib[~hit]], 1))


@dataclass
class SeamReport:
    """What happened on one seam (pair of touching blocks), counts of nuclei:
    ``matched`` seen by both blocks (one label); of them ``merged`` that the centroid rule alone
    would have kept twice and ``rescued`` that it would have dropped; ``dropped`` seen whole by one
    block only, in the other's core, where the other saw nothing (the owner's view wins: no label);
    ``duplicated`` kept by both blocks while sharing pixels (less than half of the smaller: two
    nuclei that touch, or views that disagree widely)."""

    a: Index
    b: Index
    matched: int = 0
    merged: int = 0
    rescued: int = 0
    dropped: int = 0
    duplicated: int = 0


@dataclass
class Resolution:
    """The outcome: kept local ids per block (sorted), each block's first global id minus one
    (``offsets``), the seam reports, disagreements inside groups, and objects kept although cut."""

    kept: dict[Index, np.ndarray]
    offsets: dict[Index, int]
    seams: list[SeamReport]
    total: int
    split: int = 0
    cut_kept: dict[Index, int] = field(default_factory=dict)

    def label_map(self, objects: Objects) -> np.ndarray:
        """Local id -> global id (uint32, 0 = not kept) for one block; sized by its largest local id."""
        kept = self.kept[objects.block]
        size = int(objects.ids[-1]) + 1 if len(objects.ids) else 1
        m = np.zeros(size, np.uint32)
        m[kept] = self.offsets[objects.block] + 1 + np.arange(len(kept), dtype=np.uint32)
        return m


class _Groups:
    """Union-find over (block, local id) nodes: the matched predictions of one nucleus."""

    def __init__(self) -> None:
        self.parent: dict[tuple[Index, int], tuple[Index, int]] = {}

    def find(self, n: tuple[Index, int]) -> tuple[Index, int]:
        root = n
        while self.parent.setdefault(root, root) != root:
            root = self.parent[root]
        while self.parent[n] != root:
            self.parent[n], n = root, self.parent[n]
        return root

    def union(self, a: tuple[Index, int], b: tuple[Index, int]) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self) -> list[list[tuple[Index, int]]]:
        out: dict[tuple[Index, int], list[tuple[Index, int]]] = {}
        for n in self.parent:
            out.setdefault(self.find(n), []).append(n)
        return [sorted(g) for g in out.values()]


def _distance_to_core(grid: Grid, idx: Index, y: float, x: float) -> float:
    y0, y1, x0, x1 = grid.at(*idx).core
    return float(np.hypot(max(y0 - y, 0.0, y - (y1 - 1)), max(x0 - x, 0.0, x - (x1 - 1))))


def resolve(grid: Grid, tables: Mapping[Index, Objects], seams: Iterable[SeamMatch]) -> Resolution:
    """Decide which block keeps each object and number the kept ones (see the module docstring)."""
    seams = list(seams)
    groups = _Groups()
    for s in seams:
        for ia, ib in s.matched:
            groups.union((s.a, int(ia)), (s.b, int(ib)))

    def centroid(n: tuple[Index, int]) -> tuple[float, float, bool]:
        t = tables[n[0]]
        r = int(t.rows(np.array([n[1]]))[0])
        return float(t.cy[r]), float(t.cx[r]), bool(t.cut[r])

    keep: dict[Index, set[int]] = {}
    grouped: set[tuple[Index, int]] = set()
    winner: dict[tuple[Index, int], bool] = {}  # grouped node -> kept
    split = 0
    for g in groups.groups():
        grouped.update(g)
        cs = {n: centroid(n) for n in g}
        uncut = [n for n in g if not cs[n][2]]
        pool = uncut or g
        my = float(np.mean([cs[n][0] for n in pool]))
        mx = float(np.mean([cs[n][1] for n in pool]))
        owner = grid.owner(my, mx)
        chosen = [n for n in pool if n[0] == owner]
        if not chosen and uncut:
            chosen = [min(uncut, key=lambda n: (_distance_to_core(grid, n[0], my, mx), n))]
        # cut views only, none from the owner: pieces of a nucleus the owner block sees on its own
        split += max(len(chosen) - 1, 0)
        for n in g:
            winner[n] = n in chosen
        for n in chosen:
            keep.setdefault(n[0], set()).add(n[1])

    cut_kept: dict[Index, int] = {}
    for idx, t in tables.items():
        mine = keep.setdefault(idx, set())
        for i, lid in enumerate(t.ids):
            node = (idx, int(lid))
            if node in grouped:
                continue
            if grid.owner(t.cy[i], t.cx[i]) == idx:
                mine.add(int(lid))
        cut_kept[idx] = int(np.count_nonzero(t.cut & np.isin(t.ids, list(mine))))

    reports = _seam_reports(grid, tables, seams, keep, winner)
    kept = {idx: np.array(sorted(keep.get(idx, ())), np.int64) for idx in tables}
    offsets: dict[Index, int] = {}
    total = 0
    for blk in grid:
        offsets[blk.index] = total
        total += len(kept.get(blk.index, ()))
    if total >= 2**32:
        raise OverflowError(f"{total} objects do not fit 32-bit label ids")
    return Resolution(kept, offsets, reports, total, split, cut_kept)


def _seam_reports(grid: Grid, tables: Mapping[Index, Objects], seams: list[SeamMatch],
                  keep: Mapping[Index, set[int]], winner: Mapping[tuple[Index, int], bool]) -> list[SeamReport]:
    reports = []
    for s in seams:
        rep = SeamReport(s.a, s.b, matched=len(s.matched))
        ta, tb = tables[s.a], tables[s.b]
        for ia, ib in s.matched:
            ra, rb = int(ta.rows(np.array([ia]))[0]), int(tb.rows(np.array([ib]))[0])
            own_a = grid.owner(ta.cy[ra], ta.cx[ra]) == s.a and not ta.cut[ra]
            own_b = grid.owner(tb.cy[rb], tb.cx[rb]) == s.b and not tb.cut[rb]
            rep.merged += own_a and own_b
            rep.rescued += not own_a and not own_b
        for ia, ib in s.touching:
            if int(ia) in keep.get(s.a, ()) and int(ib) in keep.get(s.b, ()):
                rep.duplicated += 1
        seen_a = set(s.matched[:, 0].tolist()) | set(s.touching[:, 0].tolist())
        seen_b = set(s.matched[:, 1].tolist()) | set(s.touching[:, 1].tolist())
        for t, other, seen in ((ta, s.b, seen_a), (tb, s.a, seen_b)):
            for i, lid in enumerate(t.ids):  # whole, in the other's core, and nothing of the other's there
                if (int(lid) not in seen and (t.block, int(lid)) not in winner and not t.cut[i]
                        and grid.owner(t.cy[i], t.cx[i]) == other):
                    rep.dropped += 1
        reports.append(rep)
    return reports


def compose(grid: Grid, blk: Block, labels_of: Callable[[Index], np.ndarray | None],
            map_of: Callable[[Index], np.ndarray]) -> tuple[np.ndarray, int]:
    """Global labels (uint32) of ``blk``'s core, painted from its own kept objects, then its
    neighbours' (a pixel already painted stays); also the number of pixels two kept objects claimed.
    ``labels_of(index)`` gives a block's read-window labels (None: an empty block), ``map_of(index)``
    its local -> global map (:meth:`Resolution.label_map`)."""
    y0, y1, x0, x1 = blk.core
    out = np.zeros((y1 - y0, x1 - x0), np.uint32)
    clashes = 0
    for other in [blk, *grid.neighbours(blk)]:
        win = intersect(other.read, blk.core)
        if win is None:
            continue
        lab = labels_of(other.index)
        if lab is None:
            continue
        g = map_of(other.index)[lab[local(win, other.read)]]
        dst = out[local(win, blk.core)]
        new = g > 0
        clashes += int(np.count_nonzero(new & (dst > 0) & (dst != g)))
        paint = new & (dst == 0)
        dst[paint] = g[paint]
    return out, clashes


def stitch_in_memory(grid: Grid, segment: Callable[[Block], np.ndarray]) -> tuple[np.ndarray, Resolution]:
    """Every step above, holding all blocks' labels in memory: for tests and small images only
    (the whole-slide path keeps one block, or one pair, at a time). ``segment(block)`` returns the
    block's read-window labels with local ids."""
    labels = {blk.index: segment(blk) for blk in grid}
    tables = {blk.index: measure_objects(labels[blk.index], blk, grid.shape) for blk in grid}
    seams = [match_seam(a, labels[a.index], tables[a.index], b, labels[b.index], tables[b.index])
             for a, b in grid.seams()]
    res = resolve(grid, tables, seams)
    maps = {idx: res.label_map(t) for idx, t in tables.items()}
    out = np.zeros(grid.shape, np.uint32)
    for blk in grid:
        core, _ = compose(grid, blk, labels.get, maps.__getitem__)
        out[blk.core[0]:blk.core[1], blk.core[2]:blk.core[3]] = core
    return out, res
