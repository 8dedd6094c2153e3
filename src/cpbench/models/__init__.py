"""Which Cellpose model runs, and how well it segments (``cpbench models``, ``cpbench evaluate``).

``registry`` resolves a model name (``reference``, ``nuclei``, ``cpsam``, ``random``) or a weights
path explicitly, never a silent download, and loads it through Cellpose's own API; ``evaluate``
scores a model on synthetic nuclei (AP at IoU thresholds); ``data/`` holds the shipped reference
weights and their model card. Re-exported here: the registry's public names.
"""

from cpbench.models.registry import (
    DOWNLOAD_TIMEOUT_S,
    ENV_MODEL_DIR,
    MODEL_NAMES,
    NUCLEI_DIAM_MEAN,
    NUCLEI_NBASE,
    NUCLEI_NOUT,
    ModelSpec,
    cellpose_model_dirs,
    describe,
    load,
    reference_card,
    reference_weights_path,
    resolve,
)

__all__ = [
    "DOWNLOAD_TIMEOUT_S", "ENV_MODEL_DIR", "MODEL_NAMES", "NUCLEI_DIAM_MEAN", "NUCLEI_NBASE", "NUCLEI_NOUT",
    "ModelSpec", "cellpose_model_dirs", "describe", "load", "reference_card", "reference_weights_path", "resolve",
]
