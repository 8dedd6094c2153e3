"""asv benchmarks for cpbench (thin: parameters and one library call each)."""
