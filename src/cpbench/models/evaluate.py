"""Segmentation accuracy of a model on synthetic images with known nuclei.

AP at an IoU threshold t is Cellpose's ``metrics.average_precision`` definition,
``TP / (TP + FP + FN)`` with predicted and true nuclei matched one-to-one at IoU >= t; over
several images the counts are pooled (summed) before the ratio. Segmentation runs
``CellposeModel.eval`` through :func:`cpbench.stages.eval_end_to_end`, the same call the
end-to-end benchmarks time, with Cellpose's default thresholds.

The benchmarks' diameter setting is :data:`SYNTH_DIAMETER` (13 px, the synthetic nuclei's mean
diameter): Cellpose rescales by ``diam_mean / diameter`` = 17/13 so nuclei reach the size the
``nuclei`` architecture was trained at.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

#: diameter (px) passed to Cellpose for synthetic images: the synth default nucleus diameter
SYNTH_DIAMETER = 13.0
THRESHOLDS: tuple[float, ...] = (0.5, 0.75, 0.9)


def synthetic_image(size: int | tuple[int, int], density: float, seed: int, channel: int = 0,
                    **scene: Any) -> tuple[np.ndarray, np.ndarray]:
    """Channel ``channel`` (uint16 (Y, X)) of a synthetic scene and its true labels (uint32 (Y, X)).

    ``size``: side (px) or (Y, X). ``scene``: other :class:`cpbench.synth.params.SceneParams` fields
    (diameter_mean, tissue_scale, out_of_focus, ...); the rest are the synth defaults.
    """
    from cpbench.synth.params import SceneParams
    from cpbench.synth.scene import Scene

    h, w = (size, size) if isinstance(size, int) else size
    sc = Scene((channel + 1, h, w), SceneParams(seed=seed, density=density, **scene))
    labels = np.zeros((h, w), np.uint32)
    img = sc.render(channel, 0, 0, h, w, labels_out=labels)
    return img, labels


def _model(model: Any) -> Any:
    if isinstance(model, str):
        from cpbench import models

        return models.load(model)
    return model


def segment(model: Any, img: np.ndarray, diameter: float | None = SYNTH_DIAMETER, **eval_kw: Any) -> np.ndarray:
    """Labels (Y, X) of a single-channel image; ``model`` a CellposeModel or a model name/path.

    ``diameter`` px (None: Cellpose's default, ``diam_mean / diam_labels``; no rescaling for the
    builtin ``nuclei`` and ``reference`` models). ``eval_kw``: other arguments of
    :func:`cpbench.stages.eval_end_to_end` (flow_threshold, cellprob_threshold, bsize, ...).
    """
    from cpbench import stages

    return stages.eval_end_to_end(_model(model), img, diameter=diameter, **eval_kw)


def evaluate(model: Any, images: Sequence[np.ndarray], labels: Sequence[np.ndarray],
             diameter: float | None = SYNTH_DIAMETER, thresholds: Sequence[float] = THRESHOLDS,
             **eval_kw: Any) -> dict[str, Any]:
    """Segment each image and score it against its true labels.

    Returns ``ap`` (pooled AP per threshold, dict threshold -> float), ``ap50``/``ap75``/``ap90``
    when those thresholds are asked for, ``per_image_ap`` (list of lists), ``tp``/``fp``/``fn``
    (pooled counts per threshold), ``n_true`` / ``n_pred`` (nuclei), ``diameter``, ``seconds``
    (segmentation wall time, all images).
    """
    import fastremap
    from cellpose import metrics

    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} label images")
    m = _model(model)
    thr = [float(t) for t in thresholds]
    tp = np.zeros(len(thr))
    fp = np.zeros(len(thr))
    fn = np.zeros(len(thr))
    per_image, n_true, n_pred, seconds = [], 0, 0, 0.0
    for img, gt in zip(images, labels):
        t0 = time.perf_counter()
        pred = segment(m, img, diameter=diameter, **eval_kw)
        seconds += time.perf_counter() - t0
        # metrics counts true nuclei as max(label): make ids contiguous first
        gt_c = fastremap.renumber(np.asarray(gt).astype(np.int32), in_place=False)[0]
        pred_c = fastremap.renumber(np.asarray(pred).astype(np.int32), in_place=False)[0]
        if gt_c.max(initial=0) == 0 and pred_c.max(initial=0) == 0:  # nothing to find, nothing found
            z = np.zeros((1, len(thr)))
            ap, tpi, fpi, fni = np.ones((1, len(thr))), z, z, z
        else:
            ap, tpi, fpi, fni = metrics.average_precision([gt_c], [pred_c], threshold=thr)
        per_image.append([round(float(a), 4) for a in ap[0]])
        tp += tpi[0]
        fp += fpi[0]
        fn += fni[0]
        n_true += int(gt_c.max(initial=0))
        n_pred += int(pred_c.max(initial=0))
    denom = tp + fp + fn
    pooled = np.where(denom > 0, tp / np.maximum(denom, 1), 1.0)  # nothing to find, nothing found: perfect
    out: dict[str, Any] = {
        "ap": {t: float(a) for t, a in zip(thr, pooled)},
        "per_image_ap": per_image,
        "tp": tp.astype(int).tolist(), "fp": fp.astype(int).tolist(), "fn": fn.astype(int).tolist(),
        "n_true": n_true, "n_pred": n_pred, "diameter": diameter, "seconds": round(seconds, 2),
    }
    for t, key in ((0.5, "ap50"), (0.75, "ap75"), (0.9, "ap90")):
        if t in out["ap"]:
            out[key] = round(out["ap"][t], 4)
    return out


def evaluate_synthetic(model: Any, size: int | tuple[int, int] = 512, density: float = 90.0,
                       seeds: Sequence[int] = (100,), diameter: float | None = SYNTH_DIAMETER,
                       thresholds: Sequence[float] = THRESHOLDS, eval_kw: dict[str, Any] | None = None,
                       **scene: Any) -> dict[str, Any]:
    """:func:`evaluate` on the nuclear channel of synthetic scenes, one per seed.

    ``scene``: other :class:`cpbench.synth.params.SceneParams` fields. The result also records ``size``,
    ``density``, ``seeds`` and ``scene``. Seeds from 10,000 up were used to train the reference
    model; use smaller ones for held-out numbers.
    """
    pairs = [synthetic_image(size, density, s, **scene) for s in seeds]
    out = evaluate(model, [p[0] for p in pairs], [p[1] for p in pairs], diameter=diameter,
                   thresholds=thresholds, **(eval_kw or {}))
    out.update(size=size, density=density, seeds=list(seeds), scene=dict(scene))
    return out


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Plain-text table of :func:`evaluate_synthetic` results."""
    head = f"{'model':<12} {'size':>6} {'density':>7} {'diameter':>8} {'AP@0.5':>7} {'AP@0.75':>7} " \
           f"{'AP@0.9':>7} {'true':>6} {'pred':>6} {'seconds':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        size = r["size"] if isinstance(r["size"], int) else "x".join(map(str, r["size"]))
        d = "None" if r["diameter"] is None else f"{r['diameter']:g}"
        lines.append(f"{str(r.get('model', '')):<12} {size!s:>6} {r['density']:>7g} {d:>8} "
                     f"{r['ap'].get(0.5, float('nan')):>7.3f} {r['ap'].get(0.75, float('nan')):>7.3f} "
                     f"{r['ap'].get(0.9, float('nan')):>7.3f} {r['n_true']:>6} {r['n_pred']:>6} {r['seconds']:>8.1f}")
    return "\n".join(lines)
