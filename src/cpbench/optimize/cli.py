"""``cpbench optimize``: our Cellpose patches as branches of the offline history, for asv to measure."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    """Add the ``optimize`` sub-command."""
    from cpbench.optimize.branches import PATCH_DIR

    p = sub.add_parser(
        "optimize", help="build our Cellpose patches as branches of the offline history (asv continuous measures them)",
        description="Apply every patch (<name>.v<release>.patch, git format-patch files) with git am on top of its "
        "release's tag in the Cellpose history, as branch opt/v<release>/<name> (reproducible: the same patch and "
        "release give the same commit), so that `asv continuous v<release> opt/v<release>/<name>` measures it "
        "with the project's config. Prints each branch and commit.")
    p.add_argument("--history", type=Path, default=Path("data/cellpose"), help="the history (default data/cellpose)")
    p.add_argument("--patches", type=Path, default=PATCH_DIR, help=f"the patch folder (default: cpbench's own, {PATCH_DIR})")
    p.add_argument("--list", action="store_true", help="list the patches, build nothing")
    p.add_argument("--asv-config", type=Path, metavar="FILE",
                   help="also write an asv config beside asv.conf.json (e.g. asv.optimize.json) whose repo is the "
                   "history (or --repo) and whose branches are main and the patch branches (or --branch); results "
                   "go to --results-dir; use it as asv --config FILE continuous v<release> <branch>")
    p.add_argument("--repo", type=Path, help="with --asv-config: your own Cellpose fork or checkout instead of the "
                   "history (nothing is built in it); name its branches with --branch")
    p.add_argument("--branch", action="append", default=[], metavar="NAME",
                   help="with --asv-config: a branch asv walks (repeat it); default: main and the patch branches")
    p.add_argument("--results-dir", default=None, help="with --asv-config: where asv puts the results (default "
                   ".asv/optimize-results: apart from the example's .asv/results*)")
    p.add_argument("--whole-slide", type=Path, metavar="SLIDE",
                   help="instead: run cpbench segment on SLIDE with the installed release and with --patch applied "
                   "to a copy of it, compare the labels, and record both runs in "
                   "reports/optimizations/slides/<patch>.<slide>.json")
    p.add_argument("--whole-frame", action="store_true",
                   help="instead: mask recovery on the reference model's flows for the whole synthetic exemplar-001 "
                   "frame, with the installed release and with --patch, labels compared; recorded in "
                   "reports/optimizations/slides/<patch>.exemplar-001-masks.json (for 4.x, where cpbench segment cannot "
                   "run the reference model)")
    p.add_argument("--patch", help="with --whole-slide or --whole-frame: the patch's name (cpbench optimize --list)")
    p.add_argument("--block", type=int, default=2048, help="with --whole-slide: cpbench segment's block side, px "
                   "(default 2048)")
    p.add_argument("--report", action="store_true",
                   help="instead: write reports/optimizations.md from reports/optimizations/ (make optimizations)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cpbench.errors import UserError
    from cpbench.optimize.branches import build_branches, patches
    from cpbench.optimize.config import RESULTS_DIR, write_config

    if args.report:
        from cpbench.optimize.report import write

        print(write())
        return 0
    if args.whole_slide or args.whole_frame:
        return _whole_slide(args)
    if args.list:
        for patch in patches(args.patches):
            print(f"{patch.branch}: {patch.subject} ({patch.path.name})")
        return 0
    if (args.repo or args.branch or args.results_dir) and not args.asv_config:
        raise UserError("--repo, --branch and --results-dir shape the asv config: add --asv-config FILE")
    if args.repo:  # a user's fork: measured as it is, nothing built in it
        if not args.branch:
            raise UserError(f"name the branches of {args.repo} asv should walk: --branch NAME (repeat it)")
        branches = args.branch
    else:
        built = build_branches(args.history, args.patches)
        for patch, commit in built:
            print(f"{patch.branch} {commit[:12]} on v{patch.release}: {patch.subject}")
        branches = args.branch or ["main", *(p.branch for p, _ in built)]
    if args.asv_config:
        repo = args.repo.resolve() if args.repo else args.history  # a fork: absolute, wherever asv runs
        out = write_config(args.asv_config, repo, branches, args.results_dir or RESULTS_DIR)
        print(f"asv config {out} (repo {repo}, branches {', '.join(branches)}, results "
              f"{args.results_dir or RESULTS_DIR}); e.g. asv --config {out} continuous <base> <branch>")
    return 0


def _whole_slide(args: argparse.Namespace) -> int:
    from cpbench.errors import UserError
    from cpbench.optimize.branches import patches
    from cpbench.optimize.report import OPT_DIR
    from cpbench.optimize.slide import measure

    found = {p.name: p for p in patches(args.patches)}
    if args.patch not in found:
        raise UserError(f"--whole-slide and --whole-frame need --patch NAME, one of {', '.join(sorted(found))}")
    if args.whole_frame:
        from cpbench.optimize.slide import measure_masks

        print(measure_masks(found[args.patch], OPT_DIR / "slides" / f"{args.patch}.exemplar-001-masks.json"))
        return 0
    name = args.whole_slide.name.split(".")[0]
    out = measure(found[args.patch], args.whole_slide, OPT_DIR / "slides" / f"{args.patch}.{name}.json",
                  ["--block", str(args.block), "--no-progress"])
    print(out)
    return 0
