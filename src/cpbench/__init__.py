"""cpbench: benchmark Cellpose segmentation stages on whole-slide multiplexed (CyCIF) images."""

__version__ = "0.1.0"
