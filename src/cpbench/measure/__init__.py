"""The measurement instrument behind the asv suite.

``probes`` (per-stage peak RSS with the kernel's high-water mark, GPU peak, CUDA-synchronized
timing, the memory model and guard) · ``inputs`` (benchmark inputs made once and cached under
``data/cache``) · ``suite`` (parameter grids and the ``Stage`` base class every benchmark subclasses).
"""
