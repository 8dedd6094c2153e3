"""Writing a label image as OME-Zarr (NGFF 0.4: zarr format 2, ``multiscales`` + ``image-label``),
streamed chunk by chunk from a 2-D array (never held whole), atomically: the folder is built under a
hidden ``.NAME.<random>.partial`` name beside the final one and renamed at the end.

Level k is level 0 sampled every 2**k pixels (nearest: a label image must never average two ids).
Units: pixels for shapes and chunks, µm for the pixel size.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import numpy as np

#: the OME-NGFF version written (the one most viewers read: napari-ome-zarr, QuPath, Fiji/MoBIE)
NGFF_VERSION = "0.4"


def level_shapes(shape: tuple[int, int], levels: int) -> list[tuple[int, int]]:
    """(Y, X) of levels 0..``levels``: each half the one above, rounded up."""
    return [(-(-shape[0] // 2**k), -(-shape[1] // 2**k)) for k in range(levels + 1)]


def ngff_attrs(name: str, levels: int, pixel_size_um: float | None) -> dict[str, Any]:
    """The root group's attributes: one multiscale of ``levels`` + 1 datasets and the label marker."""
    px = float(pixel_size_um or 1.0)
    unit = {"unit": "micrometer"} if pixel_size_um else {}
    return {
        "multiscales": [{
            "version": NGFF_VERSION, "name": name, "type": "nearest",
            "axes": [{"name": "y", "type": "space", **unit}, {"name": "x", "type": "space", **unit}],
            "datasets": [{"path": str(k), "coordinateTransformations": [
                {"type": "scale", "scale": [px * 2**k, px * 2**k]}]} for k in range(levels + 1)],
        }],
        "image-label": {"version": NGFF_VERSION},
    }


def write_label_pyramid(path: Path, src: Any, levels: int, *, chunk: int = 512, pixel_size_um: float | None = None,
                        progress: Any = None) -> None:
    """Write the 2-D integer array ``src`` (numpy, or zarr read window by window) as an OME-Zarr label
    image at ``path`` with ``levels`` sub-levels, chunks of ``chunk`` x ``chunk`` pixels. ``progress``
    (tqdm-like) advances by one per chunk written, all levels. An existing ``path`` is replaced only
    once the new one is complete."""
    import zarr

    path = Path(path)
    shapes = level_shapes((int(src.shape[0]), int(src.shape[1])), levels)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
    try:
        root = zarr.open_group(str(tmp), mode="w-", zarr_format=2)
        arrays = [root.create_array(str(k), shape=s, chunks=(min(chunk, s[0]), min(chunk, s[1])),
                                    dtype=np.dtype(src.dtype), fill_value=0,
                                    chunk_key_encoding={"name": "v2", "separator": "/"})
                  for k, s in enumerate(shapes)]
        for k, arr in enumerate(arrays):
            above = src if k == 0 else arrays[k - 1]
            step = 1 if k == 0 else 2
            h, w = shapes[k]
            for y0 in range(0, h, chunk):
                for x0 in range(0, w, chunk):
                    y1, x1 = min(y0 + chunk, h), min(x0 + chunk, w)
                    a = np.asarray(above[y0 * step:y1 * step, x0 * step:x1 * step])
                    arr[y0:y1, x0:x1] = a[::step, ::step]
                    if progress is not None:
                        progress.update(1)
        root.attrs.update(ngff_attrs(path.name.split(".")[0], levels, pixel_size_um))
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.{secrets.token_hex(4)}.old")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def n_chunks(shape: tuple[int, int], levels: int, chunk: int = 512) -> int:
    """Chunks :func:`write_label_pyramid` writes, all levels (for a progress bar's total)."""
    return sum(-(-h // chunk) * -(-w // chunk) for h, w in level_shapes(shape, levels))
