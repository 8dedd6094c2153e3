"""Turn asv results into tables, plots and guidelines (asv's own results API underneath)."""
