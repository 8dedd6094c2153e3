"""Benchmark inputs, made once and cached on disk under ``data/cache`` (never inside a timed call).

* ``dataset``: ``"synthetic"`` (generated here, with ground truth) or a challenge image name
  (``exemplar-001``, ``LUNG-1-LN``, ``WD-76845-097``) once it has been fetched into ``data/``.
* ``size``: ``"256"``, ``"512"``, ... (a centred square crop of that side, pixels) or ``"full"``
  (the whole frame; for ``synthetic`` the exemplar-001 frame, 3138 x 2509).

Everything is keyed by what determines it (dataset, size, seed, model, parameters, cellpose
version), written under a temporary name and renamed, so concurrent or interrupted runs never
see half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from cpbench.io.files import atomic_path, load_npz, save_npz
from cpbench.synth.params import PRESETS

SYNTHETIC = "synthetic"
#: the synthetic inputs by cell density (question 3 of the challenge): dataset name -> what differs from
#: the default scene (synth.params.SceneParams: density = candidate nuclei per 10,000 px² of cellular tissue
#: before thinning; the realised nuclei per MP and cell-pixel fraction are measured by
#: bench_masks.CellDensity). ``synthetic`` is the typical slide every other benchmark uses.
DENSITIES: dict[str, dict[str, float]] = {
    "synthetic-bare": {"density": 0.2},  # nearly bare glass: a handful of nuclei
    "synthetic-sparse": {"density": 20.0},
    SYNTHETIC: {},
    "synthetic-packed": {"density": 200.0, "overlap": 0.6, "tissue_fraction": 1.0},
}


def is_synthetic(dataset: str) -> bool:
    """Whether ``dataset`` is generated here (with ground truth): ``synthetic`` or a density variant."""
    return dataset in DENSITIES
FULL = "full"
SYNTH_SEED = 0
SYNTH_FRAME = PRESETS["exemplar-001"]  # (C, Y, X) of the synthetic "full" frame


def data_dir() -> Path:
    """``$CPBENCH_DATA`` or ``./data``; where fetched and generated images live."""
    return Path(os.environ.get("CPBENCH_DATA", "data")).resolve()


def cache_dir() -> Path:
    """``data/cache``: derived inputs (crops, flows, masks); safe to delete."""
    d = data_dir() / "cache"
    d.mkdir(parents=True, exist_ok=True)
    return d


def frame_shape(dataset: str) -> tuple[int, int]:
    """(Y, X) of a dataset's full frame, pixels."""
    if is_synthetic(dataset):
        return SYNTH_FRAME[1], SYNTH_FRAME[2]
    if dataset in PRESETS:
        return PRESETS[dataset][1], PRESETS[dataset][2]
    raise ValueError(f"unknown dataset {dataset!r}")


def crop_shape(dataset: str, size: str) -> tuple[int, int]:
    """(Y, X) of the crop ``size`` of ``dataset``; NotImplementedError when it does not fit."""
    fy, fx = frame_shape(dataset)
    if size == FULL:
        return fy, fx
    s = int(size)
    if s > fy or s > fx:
        if not is_synthetic(dataset):
            raise NotImplementedError(f"skipped: a {s} px crop does not fit in {dataset} ({fy} x {fx})")
    return s, s


def synthetic_slide() -> Path:
    """The synthetic exemplar-001 slide (12 x 3138 x 2509 OME-TIFF + labels), generated once.

    Reuses ``data/synth/exemplar-001.ome.tif`` when ``make demo`` already made it with the
    default arguments (same seed: the pixels are identical)."""
    from cpbench.synth.writer import generate, labels_path

    demo = data_dir() / "synth" / "exemplar-001.ome.tif"
    if demo.exists() and labels_path(demo).exists():
        return demo
    out = cache_dir() / "synthetic-exemplar-001.ome.tif"
    if not (out.exists() and labels_path(out).exists()):
        generate(out, SYNTH_FRAME, progress=True)
    return out


def real_image(dataset: str) -> Path:
    """Path of a fetched challenge image; NotImplementedError (asv: skip) when it is absent."""
    from cpbench.fetch.catalogue import local_path

    from cpbench.errors import UserError
    from cpbench.io.slide import open_slide

    path = local_path(dataset, data_dir())
    if path is None:
        raise NotImplementedError(f"skipped: {dataset} has not been fetched (cpbench fetch {dataset})")
    try:
        open_slide(path)  # a truncated or damaged copy: the reason, not a decoder's traceback mid-benchmark
    except UserError as exc:
        raise NotImplementedError(f"skipped: {exc}") from None
    return path


def _centre(full: tuple[int, int], crop: tuple[int, int]) -> tuple[int, int]:
    return (full[0] - crop[0]) // 2, (full[1] - crop[1]) // 2


#: synthetic crops larger than the frame are rendered from the origin of a scene of their own size.
#: Version 1 (until 2026-11-26) started at a negative origin, where the image had nuclei but the truth
#: had none (8192 px: 67,929 true labels for ~148,000 nuclei); its files and derived caches are not reused.
BIG_CROP_VERSION = 2


def _crop_tag(dataset: str, size: str) -> dict[str, int]:
    """Extra cache-key part of a crop larger than the synthetic frame (empty for every other crop)."""
    fy, fx = frame_shape(dataset)
    h, w = crop_shape(dataset, size)
    return {"crop": BIG_CROP_VERSION} if is_synthetic(dataset) and (h > fy or w > fx) else {}


def nuclear_crop(dataset: str, size: str) -> tuple[Path, Path | None]:
    """A cached single-channel OME-TIFF of the nuclear stain (channel 0), centred crop of ``size``,
    and its ground-truth labels (None for real images). Crops larger than the synthetic frame are
    rendered directly from the synthetic scene (same seed and parameters); the density variants
    (:data:`DENSITIES`) likewise, from a scene of their own density."""
    h, w = crop_shape(dataset, size)
    stem = f"{dataset}-{h}x{w}" + (f"-v{BIG_CROP_VERSION}" if _crop_tag(dataset, size) else "")
    out = cache_dir() / f"{stem}.ome.tif"
    lab = cache_dir() / f"{stem}.labels.ome.tif"
    synthetic = is_synthetic(dataset)
    if out.exists() and (not synthetic or lab.exists()):
        return out, lab if synthetic else None
    if synthetic:
        from cpbench.synth.params import SceneParams
        from cpbench.synth.scene import Scene

        fy, fx = frame_shape(dataset)
        scene_shape = (max(h, fy), max(w, fx))
        scene = Scene((1, *scene_shape), SceneParams(seed=SYNTH_SEED, **DENSITIES[dataset]))  # type: ignore[arg-type]
        y0, x0 = _centre(scene_shape, (h, w))  # the frame's centre; the origin for a larger crop
        labels = np.zeros((h, w), np.uint32)
        img = scene.render(0, y0, x0, h, w, labels_out=labels)
        # ids are global to the scene; renumber 1..n so metrics' overlap matrices stay small
        uniq, inverse = np.unique(labels, return_inverse=True)
        labels = (inverse.reshape(labels.shape) + (uniq[0] != 0)).astype(np.uint32)
        _write(lab, labels)
        _write(out, img)
        return out, lab
    src = real_image(dataset)
    fy, fx = frame_shape(dataset)
    y0, x0 = _centre((fy, fx), (h, w))
    from cpbench.stages import read_region

    _write(out, read_region(src, 0, y0, x0, h, w))
    return out, None


def _write(path: Path, a: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, a, tile=(256, 256) if min(a.shape) >= 256 else None, compression="zlib",
                         ome=True, metadata={"axes": "YX"})


def load_crop(dataset: str, size: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(image (Y, X) uint16, labels (Y, X) uint32 or None) of :func:`nuclear_crop`, in memory."""
    img_path, lab_path = nuclear_crop(dataset, size)
    img = tifffile.imread(img_path)
    return img, (tifffile.imread(lab_path) if lab_path is not None else None)


def channel_stack(dataset: str, size: str, nchan: int) -> np.ndarray:
    """The first ``nchan`` channels of the slide (the synthetic slide, or a fetched challenge image), the
    centred crop of ``size``, as ``(Y, X, nchan)`` uint16 (channel 0 the nuclear stain). Read in the
    benchmark's setup (never timed); NotImplementedError (asv: skip) for a density variant (rendered one
    channel at a time), a crop larger than the frame or more channels than the slide has."""
    import tifffile as tf

    from cpbench.stages import read_region

    if is_synthetic(dataset) and dataset != SYNTHETIC:
        raise NotImplementedError(f"skipped: {dataset} is rendered per crop, one channel; the channel study "
                                  f"reads the {SYNTHETIC} slide")
    src = synthetic_slide() if dataset == SYNTHETIC else real_image(dataset)
    fy, fx = frame_shape(dataset)
    h, w = crop_shape(dataset, size)
    if h > fy or w > fx:
        raise NotImplementedError(f"skipped: a {size} px crop is larger than the {fy} x {fx} slide")
    with tf.TiffFile(src) as t:
        channels = t.series[0].shape[0]
    if nchan > channels:
        raise NotImplementedError(f"skipped: {dataset} has {channels} channels, fewer than {nchan}")
    y0, x0 = _centre((fy, fx), (h, w))
    return np.stack([read_region(src, c, y0, x0, h, w) for c in range(nchan)], axis=-1)


def _key(**parts: Any) -> str:
    """Cache key of an input. Not the Cellpose release: inputs are data, made once by the first
    release that needs them and shared by every release asv measures (they all read the same
    data/cache), so that a stage gets the same bytes in every release and its numbers compare."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_model(name: str, device: str = "cpu") -> Any:
    """A Cellpose model by name (``reference``, ``nuclei``, ``random``, ``cpsam``, or a path);
    NotImplementedError (asv: skip) where its weights cannot be had here."""
    from cpbench import models
    from cpbench.errors import UserError

    try:
        return models.load(name, device=device)
    except UserError as exc:
        raise NotImplementedError(f"skipped: {exc}") from None


def network_input(img: np.ndarray, diameter: float | None, diam_mean: float) -> np.ndarray:
    """Stages 2-4 as eval runs them: convert, normalize, rescale by ``diam_mean / diameter``."""
    from cpbench import stages as cs

    return cs.rescale(cs.normalize(cs.convert(img), inplace=True), diameter, diam_mean)


def network_flows(
    dataset: str, size: str, model_name: str, diameter: float | None, device: str = "cpu",
    full_size: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Flows the network produced for the crop (cached .npz): resampled to the crop's size
    (``full_size``, what mask recovery gets with ``resample=True``) or at network resolution.

    Returns ``(dP (2, Y, X) float32, cellprob (Y, X) float32)``. Default network settings
    (bsize, tile_overlap 0.1, batch_size 8, no augment)."""
    from cpbench import stages as cs

    key = _key(kind="flows", dataset=dataset, size=size, model=model_name, diameter=diameter,
               **_crop_tag(dataset, size))
    path = cache_dir() / f"flows-{dataset}-{size}-{model_name}-{key}.npz"
    if not path.exists():
        img, _ = load_crop(dataset, size)
        try:
            model = load_model(model_name, device=device)
        except NotImplementedError as exc:
            raise NotImplementedError(f"{exc}; these flows are made once by a release that runs the model and "
                                      "then shared by all (data/cache): run such a release first") from None
        dP, cellprob = cs.run_network(model, network_input(img, diameter, model.diam_mean))
        dP = np.ascontiguousarray(dP, dtype=np.float32)
        cellprob = np.ascontiguousarray(cellprob, dtype=np.float32)
        dPr, cpr = cs.resample_flows(dP, cellprob, img.shape)
        save_npz(path, dP=np.ascontiguousarray(dPr, dtype=np.float32),
                  cellprob=np.ascontiguousarray(cpr, dtype=np.float32), dP_net=dP, cellprob_net=cellprob)
    return load_npz(path, "dP", "cellprob") if full_size else load_npz(path, "dP_net", "cellprob_net")  # type: ignore[return-value]


def flows(dataset: str, size: str, source: str, model_name: str, diameter: float | None,
          device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Flows for the mask-recovery stages: ``source`` ``"network"`` (what the model produced) or
    ``"ground_truth"`` (``masks_to_flows`` of the labels: a perfect model; synthetic only)."""
    if source == "network":
        return network_flows(dataset, size, model_name, diameter, device)
    if source == "ground_truth":
        _, labels = load_crop(dataset, size)
        if labels is None:
            raise NotImplementedError(f"skipped: {dataset} has no ground truth for ground-truth flows")
        key = _key(kind="gtflows", dataset=dataset, size=size, **_crop_tag(dataset, size))
        path = cache_dir() / f"gtflows-{dataset}-{size}-{key}.npz"
        if not path.exists():
            from cpbench.stages import ground_truth_flows

            dP, cellprob = ground_truth_flows(labels.astype(np.int32))
            save_npz(path, dP=dP, cellprob=cellprob)
        return load_npz(path, "dP", "cellprob")  # type: ignore[return-value]
    raise ValueError(f"unknown flow source {source!r}")


def mask_stage_inputs(dataset: str, size: str, source: str, model_name: str = "reference",
                      diameter: float | None = 13.0) -> dict[str, Any]:
    """What each mask-recovery stage takes as input, computed once with default parameters and
    cached (.npz): ``p`` and ``inds`` (after follow_flows: niter 200, cellprob_threshold 0),
    ``masks`` (after get_masks) and ``qc_masks`` (after flow QC at 0.4). CPU computation."""
    from cpbench import stages as cs

    key = _key(kind="maskinputs", dataset=dataset, size=size, source=source, model=model_name, diameter=diameter,
               **_crop_tag(dataset, size))
    path = cache_dir() / f"maskinputs-{dataset}-{size}-{source}-{key}.npz"
    if not path.exists():
        dP, cellprob = flows(dataset, size, source, model_name, diameter)
        p, inds = cs.follow_flows(dP, cellprob, 0.0, 200)
        p = np.asarray(p)
        masks = cs.get_masks(p, inds, cellprob.shape)
        qc = cs.remove_bad_flow_masks(masks, dP, 0.4)
        save_npz(path, p=p, inds_y=np.asarray(inds[0]), inds_x=np.asarray(inds[1]), masks=masks, qc_masks=qc)
    p, iy, ix, masks, qc = load_npz(path, "p", "inds_y", "inds_x", "masks", "qc_masks")
    return {"p": p, "inds": (iy, ix), "masks": masks, "qc_masks": qc}
