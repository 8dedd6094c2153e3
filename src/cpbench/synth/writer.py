"""Write a synthetic slide and its ground truth to disk: ``IMAGE.ome.tif`` + ``IMAGE.labels.ome.tif``.

Memory stays flat with image size: the scene is rendered one tile at a time, labels of the
nuclear channel's tiles go to a compressed zarr scratch store, and nothing is held whole.
"""

from __future__ import annotations

import contextlib
import resource
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from cpbench.errors import UserError
from cpbench.io import ometiff
from cpbench.io.files import check_free_space, unwritable_reason
from cpbench.synth import parallel
from cpbench.synth.params import PRESETS, SceneParams, channel_names
from cpbench.synth.scene import Scene

MAX_SIDE = 200_000  # px; far beyond any slide, catches typos like an extra zero digit


@dataclass(frozen=True)
class OutputOptions:
    """How the files are written. ``tile`` and sizes in pixels, ``pixel_size_um`` in µm."""

    tile: int = 1024
    levels: int | None = None  # sub-resolution levels; None: until the smallest fits one tile
    compression: str = "zlib"
    pixel_size_um: float = 0.65
    overwrite: bool = False

    def validate(self) -> None:
        """Raise :class:`UserError` naming the first bad option."""
        if self.tile < 16 or self.tile % 16:
            raise UserError(f"--tile must be a multiple of 16 and at least 16, got {self.tile}")
        if self.levels is not None and not 0 <= self.levels <= 16:
            raise UserError(f"--levels must be between 0 and 16, got {self.levels}")
        if self.compression not in ometiff.COMPRESSIONS:
            raise UserError(f"unknown --compression {self.compression!r}; use one of {', '.join(ometiff.COMPRESSIONS)}")
        if not 0.01 <= self.pixel_size_um <= 100:
            raise UserError(f"--pixel-size must be between 0.01 and 100 µm, got {self.pixel_size_um}")


def labels_path(image_path: Path) -> Path:
    """Where the ground-truth labels of ``image_path`` live: ``X.ome.tif`` -> ``X.labels.ome.tif``."""
    name = image_path.name
    for ext in (".ome.tiff", ".ome.tif"):
        if name.endswith(ext):
            return image_path.with_name(name[: -len(ext)] + ".labels" + ext)
    raise UserError(f"output name must end with .ome.tif or .ome.tiff, got {name!r}")


def check_shape(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """Validate (C, Y, X); raise :class:`UserError` naming the problem."""
    if len(shape) != 3:
        raise UserError(f"shape must be C,Y,X (three numbers), got {','.join(map(str, shape))}")
    c, y, x = shape
    if c < 1 or y < 16 or x < 16:
        raise UserError(f"shape {c},{y},{x} is too small: need at least 1 channel and 16x16 pixels")
    if y > MAX_SIDE or x > MAX_SIDE or c > 1000:
        raise UserError(f"shape {c},{y},{x} is too large: at most 1000 channels and {MAX_SIDE} px a side")
    return int(c), int(y), int(x)


def default_name(preset: str | None, shape: tuple[int, int, int], seed: int) -> str:
    """File name for a generated image: the preset's, or ``synth-CxYxX-sSEED``, with channel count."""
    c, y, x = shape
    if preset is not None and shape == PRESETS[preset]:
        return f"{preset}.ome.tif"
    stem = preset or "synth"
    return f"{stem}-{c}x{y}x{x}-s{seed}.ome.tif"


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def generate(
    out: Path,
    shape: tuple[int, int, int],
    scene_params: SceneParams | None = None,
    options: OutputOptions | None = None,
    progress: bool = True,
    workers: int = 1,
) -> dict[str, Any]:
    """Generate a synthetic CyCIF OME-TIFF at ``out`` and its labels beside it; return a summary.

    ``workers``: processes that render tiles (:mod:`cpbench.synth.parallel`; same files whatever the
    number).
    The summary has the files, shape, nuclei count, tissue fraction, seconds, megapixels per second
    (all channels of level 0) and the process peak RSS in bytes.
    """
    shape = check_shape(shape)
    sp = scene_params or SceneParams()
    try:
        sp.validate()
    except ValueError as exc:
        raise UserError(f"{exc} (see cpbench synth --help)") from None
    opt = options or OutputOptions()
    opt.validate()
    out = Path(out)
    lab_out = labels_path(out)
    if not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    for p in (out, lab_out):
        if p.exists() and not opt.overwrite:
            raise UserError(f"{p} already exists; pass --overwrite to replace it or choose another --out")
    if not out.parent.is_dir() or unwritable_reason(out.parent) is not None:
        raise UserError(f"cannot write to {out.parent}: not a writable directory; choose another --out")
    c, y, x = shape
    levels = ometiff.auto_levels(y, x, opt.tile) if opt.levels is None else opt.levels
    layout = ometiff.Layout(shape, opt.tile, levels)
    img_bytes = ometiff.estimate_bytes(shape, np.uint16, levels)
    lab_bytes = ometiff.estimate_bytes((1, y, x), np.uint32, 0)
    # final files + scratch (sub-levels and labels), all counted uncompressed: an upper estimate
    needed = img_bytes + lab_bytes + (img_bytes - c * y * x * 2) + lab_bytes
    check_free_space(out.parent, needed)

    scene = Scene(shape, sp)
    t0 = time.perf_counter()
    bar_opts = dict(disable=not progress, unit="tile", dynamic_ncols=True)
    if workers < 1:
        raise UserError(f"--workers {workers}: give 1 or more")
    with tqdm(total=scene.n_block_rows, desc="placing nuclei", unit="row", disable=not progress) as bar:
        n_nuclei = parallel.count_blocks(scene, workers, bar)

    import zarr

    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f".{lab_out.name}.", dir=out.parent)))
        lab_store = zarr.create_array(store=str(scratch / "labels.zarr"), shape=(y, x),
                                      chunks=(opt.tile, opt.tile), dtype=np.uint32, fill_value=0)

        def put_labels(y0: int, x0: int, lab: np.ndarray) -> None:
            lab_store[y0:y0 + lab.shape[0], x0:x0 + lab.shape[1]] = lab

        made = stack.enter_context(contextlib.closing(parallel.render_tiles(scene, workers, layout.tiles(0),
                                                                              put_labels)))

        def image_tile(ch: int, y0: int, x0: int, h: int, w: int) -> np.ndarray:
            t, a = next(made)  # write_pyramid asks for the tiles in layout.tiles(0)'s order
            if t != (ch, y0, x0, h, w):
                raise RuntimeError(f"tile {t} rendered where {(ch, y0, x0, h, w)} was asked for")
            return a

        total = sum(layout.n_tiles(k) for k in range(levels + 1))
        with tqdm(total=total, desc=f"writing {out.name}", **bar_opts) as bar:
            ometiff.write_pyramid(out, layout, np.uint16, image_tile, channel_names=channel_names(c),
                                  pixel_size_um=opt.pixel_size_um, compression=opt.compression, progress=bar)
        lab_layout = ometiff.Layout((1, y, x), opt.tile, 0)
        with tqdm(total=lab_layout.n_tiles(), desc=f"writing {lab_out.name}", **bar_opts) as bar:
            try:
                ometiff.write_pyramid(
                    lab_out, lab_layout, np.uint32, lambda _c, y0, x0, h, w: np.asarray(lab_store[y0:y0 + h, x0:x0 + w]),
                    channel_names=None, pixel_size_um=opt.pixel_size_um,
                    compression="zlib" if opt.compression == "none" else opt.compression, progress=bar,
                )
            except BaseException:
                out.unlink(missing_ok=True)  # an image without its ground truth is half a result
                raise
    seconds = time.perf_counter() - t0
    step = max(16, -(-max(y, x) // 512))  # at most 512 x 512 samples: memory stays flat
    ys, xs = np.meshgrid(np.arange(0, y, step) + step / 2, np.arange(0, x, step) + step / 2, indexing="ij")
    tissue = float(scene.tissue_at(ys, xs).mean())
    return {
        "image": str(out),
        "labels": str(lab_out),
        "shape": shape,
        "levels": levels,
        "tile": opt.tile,
        "compression": opt.compression,
        "nuclei": n_nuclei,
        "tissue_fraction": round(tissue, 3),
        "seconds": round(seconds, 2),
        "megapixels_per_second": round(c * y * x / 1e6 / seconds, 2),
        "image_bytes": out.stat().st_size,
        "labels_bytes": lab_out.stat().st_size,
        "peak_rss_bytes": _peak_rss_bytes(),
        "params": asdict(sp),
    }
