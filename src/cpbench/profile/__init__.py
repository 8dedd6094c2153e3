"""Scalene deep-dives: from a benchmark asv reports to the Cellpose source lines behind its time or memory.

``target`` (what the user names -> one benchmark combination), ``driver`` (the program profiled: the
benchmark's own setup, then only the stage call), ``run`` (plain run, Scalene run, offline HTML),
``summary``/``report`` (Scalene's JSON -> summary.md), ``compare`` (two runs side by side), ``cli``.
"""
