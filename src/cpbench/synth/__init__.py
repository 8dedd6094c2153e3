"""Synthetic CyCIF slides with ground-truth nuclei (``cpbench synth``, ``cpbench info``).

``params`` (shapes, channel layout, scene parameters) → ``placement`` (where the nuclei are) →
``scene`` (pixels of any window; ``raster`` draws nuclei, ``noise`` gives seam-free random fields)
→ ``writer`` (streams a pyramidal OME-TIFF + labels to disk) and ``preview`` (a PNG to look at).
"""
