"""``cpbench profile`` (a Scalene deep-dive of one benchmark's stage call) and ``cpbench profile-compare``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    """Add the ``profile`` and ``profile-compare`` sub-commands."""
    p = sub.add_parser(
        "profile", help="Scalene deep-dive of one benchmark: the Cellpose source lines behind its time or memory",
        description="Prepare a benchmark's inputs through its own asv setup, then run only its stage call under "
        "Scalene (in a child process) and write profile.json, a self-contained profile.html and summary.md into "
        "OUT/<stage>-<size>-<mode>-<time>/. BENCHMARK is what asv shows: bench_masks.FollowFlows.time_stage, "
        "asv's name(p0, p1, ...) form, a site address ...?p-size='1024', or a stage name (follow_flows, network, "
        "get_masks, run_net, compute_masks, eval ...).")
    p.add_argument("benchmark", nargs="?", help="the benchmark or stage (see above); omit with --list")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a benchmark parameter, as asv names it (repeatable), e.g. --param size=1024 --param niter=50")
    p.add_argument("--mode", choices=["cpu", "memory", "both"], default=None,
                   help="cpu: time per line (Scalene --cpu-only); memory/both: allocations and copies too "
                        "(default: memory for peakmem_/track_*_bytes benchmarks, else cpu)")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None, help="the device parameter (default cpu)")
    p.add_argument("--out", type=Path, default=Path("reports/profiles"), help="folder of the runs")
    p.add_argument("--against", type=Path, default=None, metavar="RUN",
                   help="an earlier deep-dive folder of the same benchmark: also write compare.md (A = RUN, B = this one)")
    p.add_argument("--min-seconds", type=float, default=5.0,
                   help="profile calls until the stage has run this long, seconds (default 5)")
    p.add_argument("--max-repeats", type=int, default=20, help="at most this many profiled calls (default 20)")
    p.add_argument("--timeout", type=float, default=3600.0, help="limit per child process, seconds (default 3600)")
    p.add_argument("--python", default=sys.executable,
                   help="interpreter whose Cellpose is profiled (needs scalene; default: this one). Another release: "
                        "its environment's python, or PYTHONPATH=build/cellpose-<version> with this one")
    p.add_argument("--list", action="store_true", help="list the stages and benchmarks and their parameters")
    p.set_defaults(func=run)

    c = sub.add_parser("profile-compare", help="two deep-dives side by side: the lines whose share changed most",
                       description="Compare two cpbench profile folders of one benchmark (two parameter values or two "
                       "Cellpose releases): writes compare.md into --out (default: B's folder).")
    c.add_argument("a", type=Path, help="deep-dive folder A (before)")
    c.add_argument("b", type=Path, help="deep-dive folder B (after)")
    c.add_argument("--out", type=Path, default=None, help="folder for compare.md (default: B)")
    c.set_defaults(func=run_compare)


def run(args: argparse.Namespace) -> int:
    """Resolve the benchmark, run the deep-dive, print where it went."""
    from cpbench.errors import UserError
    from cpbench.measure.sweep import discover_benchmarks
    from cpbench.profile import compare, target
    from cpbench.profile.run import Options, deep_dive

    root = target.project_root()
    benchmarks = discover_benchmarks(root)
    if args.list:
        for name, bench in sorted(target.stage_names(benchmarks).items()):
            names, values, methods = benchmarks[bench]
            print(f"{name:16s} {bench}.{{{','.join(methods)}}}")
            for n, vals in zip(names, values):
                print(f"{'':18s}{n}: {', '.join(target.asv_value(v) for v in vals)}")
        return 0
    if not args.benchmark:
        raise UserError("name a benchmark or stage, e.g. cpbench profile bench_masks.FollowFlows.time_stage "
                        "--param size=1024 (cpbench profile --list shows them)")
    if args.max_repeats < 1 or args.min_seconds <= 0:
        raise UserError("--max-repeats must be >= 1 and --min-seconds > 0")
    if args.against is not None:
        compare.load_run(args.against)  # fail before the long run, not after
    tgt = target.resolve(args.benchmark, args.param, benchmarks, args.device)
    mode = args.mode or target.METHOD_MODE.get(tgt.method or "", "cpu")
    folder = deep_dive(tgt, root, args.out, Options(mode=mode, min_seconds=args.min_seconds,
                                                    max_repeats=args.max_repeats, timeout_s=args.timeout,
                                                    python=args.python))
    print(f"deep-dive of {tgt.label()} ({mode}): {folder}/summary.md, {folder}/profile.html")
    if args.against is not None:
        print(f"comparison: {compare.write_comparison(args.against, folder, folder)}")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    """Write compare.md for two deep-dive folders."""
    from cpbench.profile import compare

    print(compare.write_comparison(args.a, args.b, args.out or args.b))
    return 0
