"""``cpbench plan SLIDE``: how to run ``cpbench segment`` on this slide and what it will cost, from a
low pyramid level and a few sampled blocks segmented on the cluster that will run it; ``cpbench plan
--check LABELS.seams.json``: predicted against measured after the run."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

#: windows sampled unless --samples says otherwise
DEFAULT_SAMPLES = 3
#: side of a sampled window's core unless --sample-block says otherwise, px
DEFAULT_SAMPLE_SIDE = 384


def register(sub: Any) -> None:
    """Add the ``plan`` sub-command."""
    p = sub.add_parser(
        "plan", help="before cpbench segment: block size, workers and the run's time and memory, from sampled blocks",
        description="Read the slide's metadata and one low pyramid level (never the whole slide), map its tissue, "
        "segment a few windows stratified by signal through cpbench segment's own block task on a warm worker of "
        "the cluster that will run it, and project the run: blocks, wall time for 1..N workers, peak memory per "
        "worker, of the client and in all, nuclei, output size, and whole-image eval's time and peak; recommend the "
        "block size, batch size and workers that fit --memory and print the cpbench segment command. "
        "--check LABELS.seams.json compares a finished run with its plan.")
    p.add_argument("image", type=Path, nargs="?", help="the slide: a tiled OME-TIFF, (C, Y, X) or (Y, X)")
    p.add_argument("--channel", type=int, default=0, help="the nuclear channel, 0-based (default 0)")
    p.add_argument("--diameter", type=float, default=None, help="nucleus diameter, px (as for cpbench segment)")
    p.add_argument("--model", default="reference", help="model name or weights path (cpbench models lists them)")
    p.add_argument("--device", default="cpu", help="torch device of the workers (default cpu)")
    p.add_argument("--memory", type=float, default=None,
                   help="memory the run may use, GB (default: what this machine has available now)")
    p.add_argument("--workers", type=int, default=None, help="plan for this many workers (default: the most that "
                   "fit the memory, up to CPUs // threads on this machine, the cluster's workers with --scheduler)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="an existing dask scheduler: the samples run on its workers and the plan is for it")
    p.add_argument("--threads", type=int, default=None, help="torch threads per worker (default $CPBENCH_THREADS or 2)")
    p.add_argument("--block", type=int, default=None,
                   help="plan for this block side, px (default: recommend one of 512, 1024, 2048, ... px within 4x the pixels sampled)")
    p.add_argument("--overlap", default="auto", help="as cpbench segment's --overlap (default auto: 2 x diameter)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="network tiles per batch (default as cpbench segment: 1 on CPU, 8 on a GPU)")
    p.add_argument("--samples", type=int, default=DEFAULT_SAMPLES,
                   help=f"windows to segment, one per signal stratum (default {DEFAULT_SAMPLES}, at least 2), and "
                   "one larger window (how the cost grows with the block)")
    p.add_argument("--sample-block", type=int, default=DEFAULT_SAMPLE_SIDE,
                   help=f"core side of a sampled window, px (default {DEFAULT_SAMPLE_SIDE})")
    p.add_argument("--out", type=Path, default=None, help="the plan to write (default SLIDE.plan.json in this folder)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--check", type=Path, default=None, metavar="LABELS.seams.json",
                   help="compare the run that wrote this seam report with its plan (--plan, or the one cpbench "
                   "segment --plan recorded)")
    p.add_argument("--plan", type=Path, default=None, help="with --check: the plan.json of the run")
    p.add_argument("--validation", type=Path, default=None, metavar="DIR",
                   help="print, as Markdown, predicted vs measured for every NAME.plan.json in DIR with its run "
                   "(NAME.labels.seams.json, NAME.rss.json: what tools/plan_validate.sh leaves)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _out_path(args: argparse.Namespace) -> Path:
    from cpbench.errors import UserError
    from cpbench.io.files import check_new_output

    name = args.image.name.split(".")[0] if args.image else "slide"
    out = (args.out or Path(f"{name}.plan.json")).absolute()
    if not out.name.endswith(".json"):
        raise UserError(f"--out {out}: give a name ending .json")
    check_new_output(out, args.overwrite)
    return out


def _check_numbers(args: argparse.Namespace) -> None:
    from cpbench.errors import UserError

    for name, low in (("samples", 2), ("sample_block", 64), ("workers", 1), ("threads", 1), ("batch_size", 1),
                      ("block", 64)):
        v = getattr(args, name)
        if v is not None and v < low:
            raise UserError(f"--{name.replace('_', '-')} {v}: give {low} or more")
    if args.memory is not None and not args.memory > 0:
        raise UserError(f"--memory {args.memory}: give a positive number of GB")
    if args.block is not None and args.block < args.sample_block:
        args.sample_block = args.block  # sample the block side itself when it is the smaller


def run(args: argparse.Namespace) -> int:
    """Survey, sample, project, recommend; or --check."""
    from cpbench.errors import UserError

    if args.check is not None:
        from cpbench.plan.check import check_run

        print(check_run(args.check, args.plan))
        return 0
    if args.validation is not None:
        from cpbench.plan.check import validation_table

        if not args.validation.is_dir():
            raise UserError(f"--validation {args.validation}: not a folder; give the folder tools/plan_validate.sh wrote")
        print(validation_table(args.validation), end="")
        return 0
    if args.image is None:
        raise UserError("give the slide to plan (cpbench plan SLIDE.ome.tif), or --check LABELS.seams.json")
    started = time.perf_counter()
    _check_numbers(args)
    out = _out_path(args)

    from cpbench.measure.probes import available_memory_bytes
    from cpbench.measure.suite import THREADS_ENV, pin_threads
    from cpbench.models import registry
    from cpbench.plan import build, survey
    from cpbench.segment.blocks import auto_overlap, parse_overlap

    ov = parse_overlap(args.overlap)
    ov = auto_overlap(args.diameter or 17.0) if ov is None else ov
    sv = survey.survey(args.image.absolute(), args.channel, args.sample_block)
    registry.resolve(args.model, download=False)
    if args.threads is not None:
        os.environ[THREADS_ENV] = str(args.threads)
    threads = pin_threads()
    memory = args.memory * 1e9 if args.memory is not None else float(available_memory_bytes())
    doc, text = build.make_plan(sv, args, ov, threads, memory, out, started)
    from cpbench.io.files import write_text

    write_text(out, build.to_json(doc))
    print(text)
    print(f"plan: {out}")
    return 0
