"""``cpbench evaluate`` (accuracy of a model on synthetic nuclei) and ``cpbench models`` (what each
model name resolves to here)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cpbench.errors import UserError


def _list(text: str, conv: Any, what: str) -> list[Any]:
    try:
        vals = [conv(p.strip()) for p in text.split(",") if p.strip()]
    except ValueError:
        raise UserError(f"{what} must be a comma-separated list of numbers, got {text!r}") from None
    if not vals:
        raise UserError(f"{what} is empty; give at least one value, e.g. {what.split()[0]} 90")
    return vals


def _diameter(text: str) -> float | None:
    if text.lower() in ("none", "auto"):
        return None
    d = float(text)
    if d <= 0:
        raise ValueError(text)
    return d


def register(sub: Any) -> None:
    """Add the ``evaluate`` and ``models`` sub-commands."""
    from cpbench.models.evaluate import SYNTH_DIAMETER
    from cpbench.synth.params import SceneParams

    d = SceneParams()
    p = sub.add_parser(
        "evaluate",
        help="segment synthetic nuclei with a model and report AP@0.5/0.75/0.9 against ground truth",
        description="Render synthetic nuclear-stain images (cpbench synth's scene, in memory), segment them "
        "with CellposeModel.eval and report average precision (TP/(TP+FP+FN), cellpose.metrics) at IoU 0.5, "
        "0.75 and 0.9, pooled over seeds; one row per size x density x diameter. Seeds from 10000 up were "
        "used to train the reference model.",
    )
    p.add_argument("--model", default="reference",
                   help="reference | nuclei | random | cpsam | PATH of a weights file (default reference)")
    p.add_argument("--size", default="512", help="image side(s) in px, comma-separated (default 512)")
    p.add_argument("--density", default=str(d.density),
                   help=f"synth nucleus density(ies), comma-separated (default {d.density:g})")
    p.add_argument("--seeds", default="100", help="scene seeds, comma-separated (default 100)")
    p.add_argument("--diameter", default=f"{SYNTH_DIAMETER:g}",
                   help=f"diameter(s) in px passed to Cellpose, comma-separated; 'none' = Cellpose's default "
                        f"(default {SYNTH_DIAMETER:g}, the synthetic nuclei's mean diameter)")
    p.add_argument("--nucleus-diameter", type=float, default=d.diameter_mean,
                   help=f"mean nucleus diameter of the synthetic images, px (default {d.diameter_mean:g})")
    p.add_argument("--out-of-focus", type=float, default=d.out_of_focus, help="synth out-of-focus fraction")
    p.add_argument("--tissue-fraction", type=float, default=d.tissue_fraction, help="synth tissue fraction")
    p.add_argument("--tissue-scale", type=float, default=d.tissue_scale, help="synth tissue pattern size, px")
    p.add_argument("--flow-threshold", type=float, default=0.4, help="Cellpose flow_threshold (default 0.4)")
    p.add_argument("--cellprob-threshold", type=float, default=0.0, help="Cellpose cellprob_threshold (default 0)")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, mps (default cpu)")
    p.add_argument("--no-download", action="store_true", help="never let Cellpose download weights")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=run)

    q = sub.add_parser("models", help="show what each model name resolves to on this machine",
                       description="Resolve reference, nuclei, random and cpsam (without downloading) and "
                       "print where each comes from, or why it is not available and how to provide it.")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=run_models)


def run(args: argparse.Namespace) -> int:
    """Evaluate the model on the asked grid and print a table (or JSON)."""
    sizes = _list(args.size, int, "--size")
    densities = _list(args.density, float, "--density")
    seeds = _list(args.seeds, int, "--seeds")
    try:
        diameters = [_diameter(t.strip()) for t in args.diameter.split(",") if t.strip()]
    except ValueError:
        raise UserError(f"--diameter must be positive numbers or 'none', comma-separated, got {args.diameter!r}") from None
    if not diameters:
        raise UserError("--diameter is empty; give e.g. --diameter 13")
    if any(s < 32 for s in sizes):
        raise UserError(f"--size must be at least 32 px, got {args.size}")
    if any(s < 0 for s in seeds):
        raise UserError(f"--seeds must be >= 0, got {args.seeds}")
    scene = dict(diameter_mean=args.nucleus_diameter, out_of_focus=args.out_of_focus,
                 tissue_fraction=args.tissue_fraction, tissue_scale=args.tissue_scale)
    from cpbench.synth.params import SceneParams

    try:
        for dens in densities:
            SceneParams(density=dens, **scene).validate()
    except ValueError as exc:
        raise UserError(f"bad synthetic scene parameter: {exc}") from None

    import warnings

    import torch

    from cpbench import models
    from cpbench.models import evaluate

    # cellpose 3.1 builds a sparse tensor in get_masks; torch >= 2.x warns about it on every image
    warnings.filterwarnings("ignore", message="Sparse invariant checks")
    try:
        torch.device(args.device)
    except RuntimeError:
        raise UserError(f"--device {args.device!r} is not a torch device; use cpu, cuda, cuda:N or mps") from None
    spec = models.resolve(args.model, download=not args.no_download)
    model = models.load(spec, device=args.device)
    rows = []
    for size in sizes:
        for dens in densities:
            for diam in diameters:
                r = evaluate.evaluate_synthetic(
                    model, size=size, density=dens, seeds=seeds, diameter=diam,
                    eval_kw=dict(flow_threshold=args.flow_threshold, cellprob_threshold=args.cellprob_threshold),
                    **scene)
                r["model"] = args.model if spec.kind != "file" else Path(args.model).name
                rows.append(r)
                if not args.json:
                    print(evaluate.format_table([r]).splitlines()[-1] if len(rows) > 1
                          else evaluate.format_table([r]), flush=True)
    if args.json:
        out = [{**r, "ap": {str(k): v for k, v in r["ap"].items()}} for r in rows]
        print(json.dumps({"model": args.model, "source": spec.source, "rows": out}, indent=1))
    else:
        print(f"model: {spec.source}; AP = TP/(TP+FP+FN) pooled over seeds {','.join(map(str, seeds))}")
    return 0


def run_models(args: argparse.Namespace) -> int:
    """Print the resolution of every model name (no downloads)."""
    from cpbench import models

    out = []
    for name in models.MODEL_NAMES:
        try:
            spec = models.resolve(name, download=False)
            out.append({"name": name, "available": True, "kind": spec.kind,
                        "path": None if spec.path is None else str(spec.path), "source": spec.source})
        except UserError as exc:
            out.append({"name": name, "available": False, "reason": str(exc)})
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        for o in out:
            print(f"{o['name']:<10} {'yes' if o['available'] else 'no ':<4} {o.get('source') or o.get('reason')}")
    return 0
