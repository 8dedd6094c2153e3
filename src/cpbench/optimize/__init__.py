"""Our optimizations of Cellpose: patch files, built as branches of the offline history for asv."""
