"""Blockwise whole-slide segmentation: Cellpose on overlapping blocks, one label per nucleus across seams.

``blocks`` (the grid: cores each block writes, read windows grown by the overlap), ``stitch`` (per-block
object tables, matching across seams, which block keeps each nucleus, global ids, composing a core).
"""
