"""``cpbench sweep``: run the scaling or parameter sweep of the full grids with stock asv."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    """Add the ``sweep`` sub-command."""
    p = sub.add_parser(
        "sweep", help="run the scaling sweep (every stage at big sizes) or the parameter sweep (one at a time)",
        description="Run a subset of the full grids (CPBENCH_FULL=1) with asv run --bench naming the exact "
        "combinations: 'scaling' = every stage at --sizes, other parameters at their defaults; 'params' = every "
        "stage at --size with one parameter off its default; 'density' = the stages that take a dataset on the "
        "synthetic slide at four cell densities (bare, sparse, typical, packed) at --sizes (default 256,512,1024; "
        "blockwise segmentation at 512,1024,2048 in 256 px blocks); 'models' = the network and eval with every model "
        "of the grid (reference, random weights, and Cellpose's pretrained ones where their weights are present) at "
        "--sizes (default 256,512,1024); "
        "'fast' = whole-image eval at each of Cellpose's fast settings with its AP@0.5 (default sizes 256,512); "
        "'channels' = the network and eval with a CPnet of 1, 2, 3, 4 and 8 input channels (default 256,512,1024). "
        "Synthetic data, reference model, CPU (--device). "
        "Results go to --results-dir (asv.sweep.json, a copy of asv.conf.json, points asv there); "
        "cpbench report reads them.")
    p.add_argument("kind", choices=["scaling", "params", "density", "models", "fast", "channels"])
    p.add_argument("--sizes", default=None,
                   help="scaling: crop sides in pixels or 'full' (the 3138 x 2509 frame), comma-separated "
                        "(default 256,512,1024,2048,4096,full; 8192 takes ~20 min a network call on 2 cores)")
    p.add_argument("--size", default="1024", help="params: the crop side, pixels (default 1024)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="device of the device stages")
    p.add_argument("--methods", default=r"\w+",
                   help="regular expression of the benchmark methods to run (default: all; e.g. "
                        "'(time_stage|track_stage_peak_bytes)')")
    p.add_argument("--methods-for", action="append", default=[], metavar="CLASSES=METHODS",
                   help="for the classes matching CLASSES, the methods matching METHODS instead of --methods "
                        "(repeatable; the first match wins), e.g. 'bench_eval=(time_stage|peakmem_stage)'")
    p.add_argument("--grid", choices=["full", "quick"], default="full",
                   help="the grid the combinations come from: full (CPBENCH_FULL=1, default) or quick (the grid "
                        "asv run --quick measures, so the results pair with it in .asv/results; make demo)")
    p.add_argument("--classes", default=None,
                   help="regular expression of the benchmark classes (module.Class) to run (default: all), "
                        "e.g. 'bench_masks|bench_eval'")
    p.add_argument("--results-dir", default=".asv/results-sweep", help="asv results directory of the sweep")
    p.add_argument("--commit", default=None,
                   help="commit to record the results under (default: the installed Cellpose's commit in data/cellpose)")
    p.add_argument("--print", dest="dry_run", action="store_true", help="print the asv command, run nothing")
    p.add_argument("--asv", default="--quick", help="arguments for asv run, one string (default '--quick': one "
                   "sample per combination; '' for asv's rounds and repeats)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the selection and run asv; returns asv's exit status."""
    from cpbench.errors import UserError
    from cpbench.measure import sweep

    sizes = ([s.strip() for s in args.sizes.split(",") if s.strip()] if args.sizes
             else sweep.KIND_SIZES.get(args.kind, sweep.SCALING_SIZES))
    bad = [s for s in sizes if not (s.isdigit() or s == "full")]
    if bad:
        raise UserError(f"--sizes must be pixels or 'full', got {', '.join(bad)}")
    pairs = [m.split("=", 1) for m in args.methods_for]
    if any(len(pair) != 2 for pair in pairs):
        raise UserError("--methods-for takes CLASSES=METHODS, e.g. 'bench_eval=(time_stage|peakmem_stage)'")
    full = args.grid == "full"
    sweep.FIXED["device"] = args.device
    chosen = sweep.combinations(args.kind, sweep.discover(Path("."), full), sizes=sizes, size=args.size)
    if args.classes:
        chosen = {k: v for k, v in chosen.items() if re.search(args.classes, k)}
    if not chosen:
        raise UserError(f"the {args.kind} sweep selects nothing (sizes {sizes}, size {args.size})")
    commit = args.commit
    if commit is None:
        from cpbench.history.build import commit_of

        commit = commit_of(Path("data/cellpose"), "installed")
    conf = sweep.sweep_config(Path("asv.conf.json"), args.results_dir, Path("asv.sweep.json"))
    extra = shlex.split(args.asv)
    cmd = [sys.executable, "-m", "asv", "--config", str(conf), "run", "--python=same", "--set-commit-hash", commit,
           *extra]
    for rx in sweep.bench_regexes(chosen, args.methods, [(c, m) for c, m in pairs]):
        cmd += ["--bench", rx]
    n = sum(len(v) for v in chosen.values())
    print(f"{args.kind} sweep: {n} parameter combinations of {len(chosen)} benchmark classes, "
          f"results in {args.results_dir}")
    if args.dry_run:
        print(shlex.join(cmd))
        return 0
    from cpbench.measure.suite import PREPARE_SIZES_ENV

    prepare = [args.size] if args.kind == "params" else sizes  # setup_cache makes these inputs, not 8192's
    env = {**os.environ, "CPBENCH_FULL": "1" if full else "", PREPARE_SIZES_ENV: ",".join(prepare)}
    subprocess.run([sys.executable, "-m", "asv", "--config", str(conf), "machine", "--yes"], env=env,
                   check=True, stdout=subprocess.DEVNULL)
    return subprocess.run(cmd, env=env).returncode
