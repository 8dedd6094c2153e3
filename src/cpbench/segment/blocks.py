"""The block grid of a whole slide: cores that tile the image without overlap (each block writes its
core) and read windows, the core grown by the overlap on every side and clipped to the image (each
block segments its read window). Units: pixels; windows are ``(y0, y1, x0, x1)``, half-open.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from cpbench.errors import UserError

Window = tuple[int, int, int, int]
Index = tuple[int, int]

#: overlap per object diameter when ``--overlap auto``: an object whose centroid lies in a core is
#: whole in its read window while it reaches less than the overlap from its centroid, and the network
#: sees at least one more diameter of context around it
OVERLAP_PER_DIAMETER = 2.0


def auto_overlap(diameter_px: float) -> int:
    """Overlap in pixels for objects of ``diameter_px`` pixels (:data:`OVERLAP_PER_DIAMETER` of them)."""
    if not diameter_px > 0:
        raise UserError(f"diameter must be a positive number of pixels, got {diameter_px}: pass --diameter D")
    return math.ceil(OVERLAP_PER_DIAMETER * diameter_px)


def parse_overlap(text: str) -> int | None:
    """``--overlap``: ``"auto"`` (None: :func:`auto_overlap` of the diameter) or a whole number of pixels."""
    if text == "auto":
        return None
    if not text.isdigit():
        raise UserError(f"--overlap {text!r}: give 'auto' or a whole number of pixels")
    return int(text)


def intersect(a: Window, b: Window) -> Window | None:
    """The common part of two windows, or None when they do not overlap."""
    y0, y1, x0, x1 = max(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), min(a[3], b[3])
    return (y0, y1, x0, x1) if y0 < y1 and x0 < x1 else None


def local(window: Window, frame: Window) -> tuple[slice, slice]:
    """Slices of ``window`` (image coordinates) in an array that holds ``frame``."""
    return slice(window[0] - frame[0], window[1] - frame[0]), slice(window[2] - frame[2], window[3] - frame[2])


@dataclass(frozen=True)
class Block:
    """One block: its place in the grid, the core it writes and the read window it segments."""

    row: int
    col: int
    core: Window
    read: Window

    @property
    def index(self) -> Index:
        return (self.row, self.col)

    @property
    def read_shape(self) -> tuple[int, int]:
        return (self.read[1] - self.read[0], self.read[3] - self.read[2])

    def core_in_read(self) -> tuple[slice, slice]:
        """The core as slices of the read window's array."""
        return local(self.core, self.read)


@dataclass(frozen=True)
class Grid:
    """Blocks of ``block`` pixels (the last row and column smaller) over an image of ``shape``."""

    shape: tuple[int, int]
    block: int
    overlap: int

    @property
    def rows(self) -> int:
        return -(-self.shape[0] // self.block)

    @property
    def cols(self) -> int:
        return -(-self.shape[1] // self.block)

    def __len__(self) -> int:
        return self.rows * self.cols

    def at(self, row: int, col: int) -> Block:
        """The block in grid row ``row``, column ``col``."""
        if not (0 <= row < self.rows and 0 <= col < self.cols):
            raise IndexError(f"block ({row}, {col}) outside a {self.rows} x {self.cols} grid")
        h, w, b, o = self.shape[0], self.shape[1], self.block, self.overlap
        core = (row * b, min((row + 1) * b, h), col * b, min((col + 1) * b, w))
        read = (max(core[0] - o, 0), min(core[1] + o, h), max(core[2] - o, 0), min(core[3] + o, w))
        return Block(row, col, core, read)

    def __iter__(self) -> Iterator[Block]:
        """Blocks in raster order (the order of their label ids)."""
        for r in range(self.rows):
            for c in range(self.cols):
                yield self.at(r, c)

    def owner(self, y: float, x: float) -> Index:
        """The block whose core holds the point ``(y, x)`` (image coordinates, clipped to the image)."""
        r = min(max(int(y // self.block), 0), self.rows - 1)
        c = min(max(int(x // self.block), 0), self.cols - 1)
        return (r, c)

    def neighbours(self, blk: Block) -> list[Block]:
        """The up to 8 blocks whose read windows overlap ``blk``'s core (and each other's windows)."""
        out = []
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                r, c = blk.row + dr, blk.col + dc
                if (dr or dc) and 0 <= r < self.rows and 0 <= c < self.cols:
                    out.append(self.at(r, c))
        return out

    def seams(self) -> Iterator[tuple[Block, Block]]:
        """Every pair of touching blocks once (right, below, and both diagonals below), raster order:
        the pairs whose read windows share pixels, where one nucleus can be seen twice."""
        for blk in self:
            for dr, dc in ((0, 1), (1, -1), (1, 0), (1, 1)):
                r, c = blk.row + dr, blk.col + dc
                if 0 <= r < self.rows and 0 <= c < self.cols:
                    yield blk, self.at(r, c)


def make_grid(shape: tuple[int, int], block: int, overlap: int) -> Grid:
    """A :class:`Grid` after checking the sizes (pixels); a bad combination is a :class:`UserError`."""
    if block < 64:
        raise UserError(f"--block {block} is too small: use at least 64 px (default 2048)")
    if overlap < 0:
        raise UserError(f"--overlap {overlap} is negative: use 'auto' or a number of pixels >= 0")
    if 2 * overlap >= block:
        raise UserError(f"--block {block} px is too small for an overlap of {overlap} px: use --block of at least "
                        f"{2 * overlap + 1} px (2 x overlap + 1) or a smaller --overlap/--diameter")
    if shape[0] < 1 or shape[1] < 1:
        raise UserError(f"the image is empty ({shape[0]} x {shape[1]} px)")
    return Grid((int(shape[0]), int(shape[1])), int(block), int(overlap))
