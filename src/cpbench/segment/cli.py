"""``cpbench segment``: blockwise whole-slide segmentation of one channel on dask.distributed."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    """Add the ``segment`` sub-command."""
    p = sub.add_parser(
        "segment", help="segment one channel of a whole slide in overlapping blocks (dask), one label per nucleus",
        description="Read the channel block by block from a tiled OME-TIFF (never whole), run Cellpose on each "
        "block with an overlap sized from the diameter (normalized with the whole slide's 1st/99th percentiles), "
        "match the nuclei seen by two blocks across every seam, and write a tiled pyramidal OME-TIFF (or "
        "OME-Zarr) of globally unique labels plus LABELS.seams.json (per seam: matched, merged, rescued, dropped, "
        "duplicated). Runs on a dask LocalCluster, or on an existing scheduler with --scheduler; a re-run resumes from the blocks done.")
    p.add_argument("image", type=Path, help="the slide: an OME-TIFF, (C, Y, X) or (Y, X)")
    p.add_argument("--channel", type=int, default=0, help="the nuclear channel, 0-based (default 0)")
    p.add_argument("--out", type=Path, required=True,
                   help="the label image to write: LABELS.ome.tif (tiled pyramidal OME-TIFF) or LABELS.ome.zarr "
                   "(OME-Zarr 0.4 label image)")
    p.add_argument("--block", type=int, default=2048, help="block side, pixels (default 2048)")
    p.add_argument("--overlap", default="auto",
                   help="pixels each block reads beyond its core on every side, or 'auto' = 2 x diameter (default)")
    p.add_argument("--model", default="reference", help="model name or weights path (cpbench models lists them)")
    p.add_argument("--diameter", type=float, default=None,
                   help="nucleus diameter, pixels (default: the model's own, no rescaling; overlap from 17 px)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="network tiles per batch (default: 1 on CPU, Cellpose's 8 on a GPU; measured on CPU, 1 instead "
                   "of 8 takes 0.64x the network's time and 0.33x its memory, see README)")
    p.add_argument("--device", default="cpu", help="torch device of the workers (default cpu)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="an existing dask scheduler (tcp://host:8786); default: a LocalCluster on this machine")
    p.add_argument("--workers", type=int, default=None,
                   help="LocalCluster worker processes (default: CPUs // threads, at least 1)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per worker (default $CPBENCH_THREADS or 2)")
    p.add_argument("--work", type=Path, default=None,
                   help="work folder (labels of each block; default .LABELS.ome.tif.work beside --out); kept on "
                        "failure so that a re-run resumes, removed after success unless --keep-work")
    p.add_argument("--keep-work", action="store_true", help="keep the work folder after success")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--plan", type=Path, default=None, metavar="PLAN.json",
                   help="the plan of this run (cpbench plan): recorded in the seam report, so that "
                   "cpbench plan --check LABELS.seams.json compares predicted and measured")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)

    q = sub.add_parser(
        "seam-picture", help="draw a seam region of a cpbench segment label image, beside another label image",
        description="Draw the slide's channel around a block corner with the outlines of the labels written by "
        "cpbench segment, the block cores (yellow) and read windows (dotted); with --against, the same region of "
        "another label image of the slide beside it (e.g. whole-image eval: cpbench segment with --block larger "
        "than the slide), objects without a partner at IoU > 0.5 in red. Reads only the region.")
    q.add_argument("labels", type=Path, help="LABELS.ome.tif or LABELS.ome.zarr written by cpbench segment")
    q.add_argument("--image", type=Path, required=True, help="the slide that was segmented")
    q.add_argument("--against", type=Path, default=None, help="another label image of the same slide")
    q.add_argument("--at", default=None, metavar="Y,X", help="centre of the region, pixels (default: the block "
                   "corner nearest the slide's centre)")
    q.add_argument("--size", type=int, default=None, help="side of the region, pixels (default 8 x overlap)")
    q.add_argument("--out", type=Path, required=True, help="the PNG to write")
    q.set_defaults(func=picture)


def picture(args: argparse.Namespace) -> int:
    """Check the arguments, draw, say what is in view."""
    from cpbench.errors import UserError
    from cpbench.segment.picture import seam_picture

    at = None
    if args.at is not None:
        parts = args.at.split(",")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise UserError(f"--at {args.at!r}: give Y,X in pixels, e.g. --at 2048,2048")
        at = (int(parts[0]), int(parts[1]))
    if args.size is not None and args.size < 16:
        raise UserError(f"--size {args.size}: give at least 16 pixels")
    for path in (args.labels, args.image, args.against):
        if path is not None and not path.exists():
            raise UserError(f"{path} does not exist: check the path")
    if not args.out.name.endswith(".png"):
        raise UserError(f"--out {args.out}: give a name ending .png")
    view = seam_picture(args.labels, args.image, args.out, args.against, at, args.size)
    y0, x0, h, w = view.window
    shown = "; ".join(f"{n} labels, {m} unmatched" for n, m in zip(view.labels, view.unmatched, strict=True))
    print(f"{args.out}: y {y0}..{y0 + h}, x {x0}..{x0 + w} px: {shown}")
    return 0


def _check_work(work: Path, plan: Any) -> None:
    """A work folder left by a different run (other image, grid or model) cannot be resumed."""
    from dataclasses import asdict

    from cpbench.errors import UserError
    from cpbench.io.files import write_text

    key = {k: v for k, v in asdict(plan).items() if k not in ("lowhigh", "empty_below", "work")}
    key = json.loads(json.dumps(key))
    mark = work / "plan.json"
    if mark.exists():
        if json.loads(mark.read_text()) != key:
            raise UserError(f"the work folder {work} holds another run (other image, grid, model or options): "
                            "remove it, or give another --work")
        return
    work.mkdir(parents=True, exist_ok=True)
    write_text(mark, json.dumps(key, indent=1) + "\n")


def run(args: argparse.Namespace) -> int:
    """Check the input, start or join the cluster, run the passes, report."""
    import time

    from cpbench.errors import UserError

    started = time.perf_counter()
    from cpbench.measure.suite import THREADS_ENV, pin_threads
    from cpbench.segment import run as srun
    from cpbench.segment.blocks import parse_overlap

    out = args.out.absolute()
    srun.check_output(out, args.overwrite)
    work = (args.work or out.with_name(f".{out.name}.work")).absolute()
    eval_kw: dict[str, Any] = {}
    if args.batch_size is not None:
        if args.batch_size < 1:
            raise UserError(f"--batch-size {args.batch_size}: give 1 or more")
        eval_kw["batch_size"] = args.batch_size
    plan = srun.plan_for(args.image.absolute(), args.channel, args.block, parse_overlap(args.overlap), args.model,
                         args.diameter, args.device, work, eval_kw)
    from cpbench.models import registry

    registry.resolve(args.model, download=False)  # a model that cannot be had: one line, before any work
    recorded_plan = _read_plan(args.plan) if args.plan is not None else None
    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads {args.threads}: give 1 or more")
        os.environ[THREADS_ENV] = str(args.threads)
    threads = pin_threads()  # the workers inherit the variables torch, numba and BLAS read
    _check_work(work, plan)

    from cpbench.segment import cluster as dcluster

    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers {args.workers}: give 1 or more")
    client, cluster = dcluster.start(args.scheduler, args.workers, threads)
    n_workers = len(client.scheduler_info()["workers"])
    try:
        outcome, _ = srun.run(plan, client, out, progress=not args.no_progress)
    except srun.BlocksFailed as exc:
        from cpbench.io.slide import REFETCH
        from cpbench.segment.tasks import LOG_NAME

        log = work / LOG_NAME
        if exc.damaged:
            raise UserError(f"{exc}; {REFETCH} (worker tracebacks: {log})") from None
        if exc.transient:
            raise UserError(f"{exc}; the blocks done are kept in {work}: re-run the same command to resume "
                            f"(worker tracebacks: {log})") from None
        raise UserError(f"{exc}; worker tracebacks: {log}") from None
    finally:
        dcluster.stop(client, cluster)
    if not args.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    report = srun.seam_report_path(out)
    # the whole run as a user waits for it (cluster start to the last byte written), and the cluster's size
    srun.add_to_seam_report(report, wall_seconds=round(time.perf_counter() - started, 2), cluster_workers=n_workers,
                            **({"plan": recorded_plan} if recorded_plan is not None else {}))
    print(srun.describe_outcome(outcome))
    print(f"labels: {out}\nseam report: {report}", file=sys.stdout)
    if recorded_plan is not None:
        print(f"predicted vs measured: cpbench plan --check {report}")
    return 0


def _read_plan(path: Path) -> dict[str, Any]:
    """The plan given with --plan, read before any work (one-line errors)."""
    from cpbench.errors import UserError

    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"--plan {path} does not exist: give the plan.json cpbench plan wrote") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"--plan {path} is not a readable plan ({' '.join(str(exc).split())})") from None
    if not isinstance(doc, dict) or "runs" not in doc:
        raise UserError(f"--plan {path} is not a plan written by cpbench plan (no 'runs')")
    return doc
