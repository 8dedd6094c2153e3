"""Train cpbench's reference nuclei model: a Cellpose CPnet trained on synthetic nuclei.

The network has exactly the architecture of Cellpose's builtin ``nuclei`` model (CPnet, nbase
[2, 32, 64, 128, 256], 3 outputs, sz 3, diam_mean 17) and is trained with Cellpose's own
``cellpose.train.train_seg`` on crops rendered in memory by :class:`cpbench.synth.scene.Scene`: varied
nucleus density, size, brightness, cycle (stain bleaching), blur and empty glass. Everything is
seeded, so the same command gives the same training data and the same optimisation path (the
shipped file is what makes the model identical on every machine; CPU float arithmetic may differ
in the last bits between machines and thread counts).

Outputs (default ``src/cpbench/models/data/``):

* ``reference_nuclei.pth`` — the state dict, float16 (loads with the plain Cellpose API:
  ``cellpose.models.CellposeModel(pretrained_model=PATH)``, which casts it back to float32);
* ``reference_nuclei.json`` — the model card: recipe, hyper-parameters, data, losses, wall time,
  sha256 of the weights, and (unless ``--no-eval``) held-out evaluation numbers;
* ``reference_nuclei.md`` — the same card for people.

Run (about 30-40 min on 2 CPU cores)::

    python tools/train_reference_model.py                 # train + evaluate + write the card
    python tools/train_reference_model.py --eval-only     # re-evaluate the shipped weights

Training scenes use synth seeds from 10,000 up and test scenes from 20,000 up; held-out
evaluation (:mod:`cpbench.models.evaluate`) uses seeds below 10,000, so it never sees training scenes.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

DATA_DIR = Path(__file__).resolve().parents[1] / "src" / "cpbench" / "models" / "data"
TRAIN_SEED_BASE = 10_000
TEST_SEED_BASE = 20_000
PLANE = 2048  # px; each crop is a window at a random place in a plane this big (tissue is centred)

#: hyper-parameters of the shipped model (the card records what was actually used)
DEFAULTS: dict[str, Any] = dict(
    seed=0,
    n_train=200,
    n_test=8,
    crop=320,
    n_epochs=250,
    nimg_per_epoch=16,
    batch_size=8,
    bsize=112,
    learning_rate=0.005,
    weight_decay=1e-5,
    scale_range=0.6,
    min_train_masks=5,
    threads=2,
)


def sample_scene(seed_base: int, i: int, recipe_seed: int, crop: int) -> dict[str, Any]:
    """The synth parameters, DNA channel and window of training crop ``i`` (deterministic)."""
    rng = np.random.default_rng([recipe_seed, seed_base, i])
    diameter = float(rng.uniform(9.0, 18.0))
    p = dict(
        seed=seed_base + i,
        density=float(rng.uniform(20.0, 170.0)),
        diameter_mean=diameter,
        diameter_sd=float(diameter * rng.uniform(0.08, 0.2)),
        overlap=float(rng.uniform(0.65, 0.95)),
        # half the crops: small tissue patches (lots of empty glass and tissue edges in a crop)
        tissue_scale=float(rng.uniform(150.0, 450.0) if rng.random() < 0.5 else rng.uniform(800.0, 3000.0)),
        tissue_fraction=float(rng.uniform(0.25, 1.0)),
        # most crops a little blurred, a third badly
        out_of_focus=float(rng.uniform(0.0, 0.3) if rng.random() < 0.67 else rng.uniform(0.3, 0.9)),
    )
    channel = 4 * int(rng.integers(0, 3))  # DNA of cycle 1, 2 or 3 (dimmer with each cycle)
    y0, x0 = (int(v) for v in rng.integers(0, PLANE - crop, 2))
    return dict(params=p, channel=channel, y0=y0, x0=x0, h=crop, w=crop)


def render(spec: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Image (float32) and labels (uint32) of one crop spec."""
    from cpbench.synth.params import SceneParams
    from cpbench.synth.scene import Scene

    scene = Scene((spec["channel"] + 1, PLANE, PLANE), SceneParams(**spec["params"]))
    labels = np.zeros((spec["h"], spec["w"]), np.uint32)
    img = scene.render(spec["channel"], spec["y0"], spec["x0"], spec["h"], spec["w"], labels_out=labels)
    return img.astype(np.float32), labels


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def shipped_state(state: dict[str, Any]) -> dict[str, Any]:
    """The state dict as shipped: float16 tensors, and ``diam_labels`` set to ``diam_mean`` (17).

    ``train_seg`` stores the median nucleus diameter of the training crops (about 12 px) in
    ``diam_labels``, and Cellpose 3.x uses ``diam_mean / diam_labels`` as the rescale factor when
    ``eval`` gets ``diameter=None``. Cellpose's builtin ``nuclei`` weights load with
    ``diam_labels == diam_mean == 17`` (no rescaling at ``diameter=None``); setting it here makes
    the reference model behave the same way. The measured value is kept in the model card.
    """
    out = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
    out["diam_labels"] = out["diam_mean"].clone()
    return out


def train(hp: dict[str, Any], out_dir: Path, log: logging.Logger, data_cache: Path | None = None,
          workdir: Path | None = None) -> dict[str, Any]:
    """Render the data, train, save float16 weights; return the training part of the card."""
    import torch
    from cellpose import models
    from cellpose import train as cp_train

    torch.set_num_threads(hp["threads"])
    torch.manual_seed(hp["seed"])
    np.random.seed(hp["seed"])

    t0 = time.time()
    train_specs = [sample_scene(TRAIN_SEED_BASE, i, hp["seed"], hp["crop"]) for i in range(hp["n_train"])]
    test_specs = [sample_scene(TEST_SEED_BASE, i, hp["seed"], hp["crop"]) for i in range(hp["n_test"])]
    if data_cache is not None and data_cache.is_file():  # same specs rendered before (deterministic)
        z = np.load(data_cache)
        train_data, train_labels = list(z["train_data"]), list(z["train_labels"])
        test_data, test_labels = list(z["test_data"]), list(z["test_labels"])
        assert len(train_data) == hp["n_train"] and train_data[0].shape == (hp["crop"], hp["crop"]), data_cache
        log.info("loaded rendered crops from %s", data_cache)
    else:
        train_data, train_labels = zip(*(render(s) for s in train_specs))
        test_data, test_labels = zip(*(render(s) for s in test_specs))
        if data_cache is not None:
            np.savez(data_cache, train_data=np.stack(train_data), train_labels=np.stack(train_labels),
                     test_data=np.stack(test_data), test_labels=np.stack(test_labels))
    t_data = time.time() - t0
    n_nuclei = [int(len(np.unique(lab)) - 1) for lab in train_labels]
    log.info("rendered %d train + %d test crops in %.0f s (%d nuclei in train)",
             len(train_data), len(test_data), t_data, sum(n_nuclei))

    # the nuclei architecture: CPnet, nbase [2, 32, 64, 128, 256], nout 3, diam_mean 17, random init
    model = models.CellposeModel(pretrained_model=False, diam_mean=17.0, nchan=2, device=torch.device("cpu"))
    net = model.net
    net.mkldnn = False  # MKL-DNN layout is for inference; training on dense tensors is ~5x faster here
    t1 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        if workdir is not None:  # keep the checkpoints (the latest, every 25 epochs) there
            workdir.mkdir(parents=True, exist_ok=True)
            tmp = str(workdir)
        path, train_losses, test_losses = cp_train.train_seg(
            net, train_data=list(train_data), train_labels=list(train_labels),
            test_data=list(test_data), test_labels=list(test_labels),
            channels=[0, 0], normalize=True, rescale=True, scale_range=hp["scale_range"],
            batch_size=hp["batch_size"], bsize=hp["bsize"], n_epochs=hp["n_epochs"],
            nimg_per_epoch=hp["nimg_per_epoch"], learning_rate=hp["learning_rate"],
            weight_decay=hp["weight_decay"], SGD=False, min_train_masks=hp["min_train_masks"],
            save_path=tmp, save_every=25, model_name="reference_nuclei",
        )
        state = torch.load(path, map_location="cpu", weights_only=True)
    t_train = time.time() - t1

    half = shipped_state(state)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / "reference_nuclei.pth"
    tmp_path = weights.with_suffix(".pth.partial")
    torch.save(half, tmp_path)
    os.replace(tmp_path, weights)
    log.info("saved %s (%.1f MB) after %.0f s of training", weights, weights.stat().st_size / 1e6, t_train)

    tested = [int(i) for i in np.flatnonzero(test_losses)]
    from importlib import metadata

    return dict(
        architecture=dict(net="cellpose.resnet_torch.CPnet", nbase=[2, 32, 64, 128, 256], nout=3, sz=3,
                          diam_mean=17.0, diam_labels=float(half["diam_labels"][0]),
                          train_median_diameter_px=round(float(state["diam_labels"][0]), 3),
                          n_parameters=int(sum(p.numel() for p in net.parameters())),
                          same_as="Cellpose builtin 'nuclei' (cellpose 3.x model_type='nuclei')"),
        weights=dict(file=weights.name, dtype="float16", bytes=weights.stat().st_size, sha256=sha256(weights)),
        training=dict(
            trainer="cellpose.train.train_seg (AdamW; LR warm-up 10 epochs, halved 10x over the last 100 epochs)",
            hyper_parameters=hp,
            steps=int(hp["n_epochs"] * -(-hp["nimg_per_epoch"] // hp["batch_size"])),
            channels=[0, 0], normalize="cellpose default (1st-99th percentile)", rescale=True,
            data=dict(
                source="cpbench.synth.scene.Scene, rendered in memory (channel = DNA of cycle 1-3)",
                n_train_crops=len(train_data), n_test_crops=len(test_data), crop_px=hp["crop"],
                n_train_crops_used=int(sum(n >= hp["min_train_masks"] for n in n_nuclei)),
                n_train_nuclei=int(sum(n_nuclei)),
                train_seeds=f"{TRAIN_SEED_BASE}..{TRAIN_SEED_BASE + hp['n_train'] - 1}",
                test_seeds=f"{TEST_SEED_BASE}..{TEST_SEED_BASE + hp['n_test'] - 1}",
                ranges=dict(density="20-170", diameter_mean="9-18 px", diameter_sd="8-20 % of mean",
                            overlap="0.65-0.95", tissue_scale="150-450 px (half) or 800-3000 px",
                            tissue_fraction="0.25-1.0", out_of_focus="0-0.3 (2/3) or 0.3-0.9 (1/3)",
                            window=f"random {hp['crop']}x{hp['crop']} window of a {PLANE}x{PLANE} plane"),
                recipe="tools/train_reference_model.py:sample_scene",
            ),
            losses=dict(epochs=tested, train=[round(float(train_losses[i]), 4) for i in tested],
                        test=[round(float(test_losses[i]), 4) for i in tested]),
            wall_time_s=dict(render_data=round(t_data, 1), train=round(t_train, 1)),
            machine=dict(cpu_threads=hp["threads"], platform=platform.platform(), python=platform.python_version(),
                         torch=torch.__version__, cellpose=metadata.version("cellpose")),
            date=datetime.date.today().isoformat(),
        ),
    )


#: the held-out grid written into the card: (image side px, density, seeds)
EVAL_GRID: list[tuple[int, float, list[int]]] = [
    (512, 30.0, [100, 101]), (512, 90.0, [100, 101]), (512, 150.0, [100, 101]),
    (1024, 30.0, [200]), (1024, 90.0, [200]), (1024, 150.0, [200]),
]
EVAL_DIAMETERS: list[float | None] = [13.0, 17.0, None]


def evaluate_card(weights: Path, log: logging.Logger, threads: int) -> dict[str, Any]:
    """Held-out evaluation of the weights on the card's grid."""
    import torch

    from cpbench import models
    from cpbench.models import evaluate

    torch.set_num_threads(threads)
    model = models.load(str(weights))
    rows = []
    t0 = time.time()
    for size, density, seeds in EVAL_GRID:
        for diameter in EVAL_DIAMETERS:
            r = evaluate.evaluate_synthetic(model, size=size, density=density, seeds=seeds, diameter=diameter)
            row = {k: r[k] for k in ("size", "density", "diameter", "seeds", "ap50", "ap75", "ap90",
                                     "n_true", "n_pred", "seconds")}
            log.info("eval %s", row)
            rows.append(row)
    # robustness: nuclei smaller / larger than the 13 px the benchmarks assume, and heavy blur
    extra = [
        dict(size=512, density=90.0, seeds=[102], diameter=13.0, diameter_mean=10.0),
        dict(size=512, density=90.0, seeds=[102], diameter=13.0, diameter_mean=16.0),
        dict(size=512, density=90.0, seeds=[102], diameter=10.0, diameter_mean=10.0),
        dict(size=512, density=90.0, seeds=[102], diameter=16.0, diameter_mean=16.0),
        dict(size=512, density=90.0, seeds=[103], diameter=13.0, out_of_focus=0.8),
        dict(size=512, density=60.0, seeds=[104], diameter=13.0, tissue_scale=300.0, tissue_fraction=0.4),
    ]
    for e in extra:
        kw = {k: v for k, v in e.items() if k not in ("size", "density", "seeds", "diameter")}
        r = evaluate.evaluate_synthetic(model, size=e["size"], density=e["density"], seeds=e["seeds"],
                                        diameter=e["diameter"], **kw)
        row = {k: r[k] for k in ("size", "density", "diameter", "seeds", "ap50", "ap75", "ap90",
                                 "n_true", "n_pred", "seconds")}
        row["scene"] = kw
        log.info("eval %s", row)
        rows.append(row)
    return dict(
        method="cpbench.models.evaluate.evaluate_synthetic: CellposeModel.eval via stages.eval_end_to_end "
               "(2D image, channels None = [0,0]; flow_threshold 0.4, cellprob_threshold 0, min_size 15, "
               "bsize 224) on the DNA channel of a synth scene; "
               "AP = TP/(TP+FP+FN) from cellpose.metrics.average_precision, nuclei pooled over seeds",
        scene_defaults="SceneParams defaults (diameter 13 +- 2 px, overlap 0.75, tissue_scale 1500, "
                       "tissue_fraction 0.65, out_of_focus 0.15) unless stated",
        benchmark_diameter=13.0,
        rows=rows,
        wall_time_s=round(time.time() - t0, 1),
        threads=threads,
    )


def write_markdown(card: dict[str, Any], path: Path) -> None:
    """Human-readable model card next to the JSON one."""
    a, w, t = card["architecture"], card["weights"], card["training"]
    hp = t["hyper_parameters"]
    lines = [
        "# cpbench reference nuclei model",
        "",
        "A Cellpose CPnet with the architecture of Cellpose's builtin `nuclei` model "
        f"(nbase {a['nbase']}, {a['nout']} outputs, diam_mean {a['diam_mean']:g}, {a['n_parameters']:,} "
        "parameters), trained from scratch with `cellpose.train.train_seg` on synthetic nuclei from "
        "`cpbench.synth`. It exists so that benchmarks, tests and CI segment for real without downloading "
        "weights. It is **not** a substitute for the real `nuclei` model on real images: it has only seen "
        "synthetic nuclei.",
        "",
        f"- weights: `{w['file']}`, {w['dtype']}, {w['bytes'] / 1e6:.1f} MB, sha256 `{w['sha256']}`",
        "- load: `cellpose.models.CellposeModel(pretrained_model=PATH)` or `cpbench.models.load('reference')`",
        f"- diam_labels = {a['diam_labels']:g} (= diam_mean, as in Cellpose's builtin `nuclei`: `diameter=None` "
        f"means no rescaling); the training crops' nuclei had a median diameter of "
        f"{a['train_median_diameter_px']:.2f} px before `train_seg` rescaled them to 17 px",
        "",
        "## Training",
        "",
        f"`python tools/train_reference_model.py` — {t['trainer']}.",
        "",
        "| hyper-parameter | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in hp.items()]
    lines += [
        f"| optimiser steps | {t['steps']} (batch {hp['batch_size']}, {hp['bsize']}x{hp['bsize']} px patches) |",
        "",
        f"Data: {t['data']['n_train_crops']} training crops ({t['data']['n_train_nuclei']:,} nuclei; "
        f"{t['data']['n_train_crops_used']} used: train_seg drops crops with fewer than "
        f"{hp['min_train_masks']} nuclei) and "
        f"{t['data']['n_test_crops']} test crops of {t['data']['crop_px']} px, synth seeds "
        f"{t['data']['train_seeds']} / {t['data']['test_seeds']}; parameter ranges:",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in t["data"]["ranges"].items()]
    wt = t["wall_time_s"]
    lines += [
        "",
        f"Wall time: {wt['render_data']:.0f} s rendering data + {wt['train']:.0f} s training "
        f"({wt['train'] / 60:.1f} min) on {t['machine']['cpu_threads']} CPU threads "
        f"(torch {t['machine']['torch']}, cellpose {t['machine']['cellpose']}), {t['date']}.",
        "",
        "Loss (train / test) by epoch: "
        + ", ".join(f"{e}: {a_:.3f}/{b_:.3f}" for e, a_, b_ in
                    list(zip(t["losses"]["epochs"], t["losses"]["train"], t["losses"]["test"]))[:: max(1, len(t["losses"]["epochs"]) // 8)]),
    ]
    ev = card.get("evaluation")
    if ev:
        lines += [
            "",
            "## Held-out evaluation",
            "",
            ev["method"] + ". Scenes: " + ev["scene_defaults"] + ". Seeds below 10,000 (training used "
            "10,000+). `diameter` is the value passed to Cellpose (17 and None: no rescaling; 13: "
            "rescale 17/13 so that 13 px nuclei reach the trained 17 px); the benchmarks use 13.",
            "",
            "| image px | density | scene | diameter | AP@0.5 | AP@0.75 | AP@0.9 | true | predicted | seconds |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in ev["rows"]:
            scene = ", ".join(f"{k}={v:g}" for k, v in r.get("scene", {}).items()) or "default"
            d = "None" if r["diameter"] is None else f"{r['diameter']:g}"
            lines.append(f"| {r['size']}² | {r['density']:g} | {scene} | {d} | {r['ap50']:.3f} | {r['ap75']:.3f} | "
                         f"{r['ap90']:.3f} | {r['n_true']} | {r['n_pred']} | {r['seconds']:.0f} |")
        lines += ["", f"Evaluation wall time {ev['wall_time_s']:.0f} s on {ev['threads']} CPU threads."]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for k, v in DEFAULTS.items():
        ap.add_argument("--" + k.replace("_", "-"), type=type(v), default=v)
    ap.add_argument("--out-dir", type=Path, default=DATA_DIR, help="where the weights and card go")
    ap.add_argument("--no-eval", action="store_true", help="train only; do not evaluate on held-out images")
    ap.add_argument("--data-cache", type=Path, help="npz file: reuse rendered crops from it, or save them there")
    ap.add_argument("--workdir", type=Path, help="keep train_seg's checkpoints here (default: a temporary directory)")
    ap.add_argument("--eval-only", action="store_true", help="evaluate the existing weights and update the card")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)
    log = logging.getLogger("train_reference")
    hp = {k: getattr(args, k) for k in DEFAULTS}
    card_path = args.out_dir / "reference_nuclei.json"
    if args.eval_only:
        card = json.loads(card_path.read_text())
    else:
        card = {"name": "reference", "description": "cpbench reference nuclei model (CPnet, synthetic nuclei)"}
        card.update(train(hp, args.out_dir, log, args.data_cache, args.workdir))
        card_path.write_text(json.dumps(card, indent=1) + "\n")
    if not args.no_eval:
        card["evaluation"] = evaluate_card(args.out_dir / card["weights"]["file"], log, hp["threads"])
    card_path.write_text(json.dumps(card, indent=1) + "\n")
    write_markdown(card, args.out_dir / "reference_nuclei.md")
    log.info("wrote %s", card_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
