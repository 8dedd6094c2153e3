"""asv results → tables, plots and guidelines (``cpbench report``), through asv's own results API.

``results`` (flat rows from ``.asv/results``) · ``stage_table`` (stage x size table) · ``plots``.
"""
