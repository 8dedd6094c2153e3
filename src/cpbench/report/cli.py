"""``cpbench report`` (stage x size table and plot) and ``cpbench stability`` (which numbers to trust)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    """Add the ``report`` sub-command."""
    p = sub.add_parser("report", help="guidelines, plots and tables from the asv results",
                       description="Read asv results (asv's results API; every machine, environment and commit) "
                                   "and write guidelines.md and a self-contained guidelines.html (scaling models, "
                                   "breakdown, parameter effects, history across Cellpose commits, CPU vs GPU, "
                                   "will-it-fit for the challenge images) with their PNG figures, and per device "
                                   "stage_table_<device>.md and stage_costs_<device>.png.")
    p.add_argument("--results", type=Path, action="append", default=None,
                   help="asv results directory; repeat for several (default: .asv/results and, when present, "
                        ".asv/results-sweep from cpbench sweep)")
    p.add_argument("--machine", help="asv machine name (default: every machine found)")
    p.add_argument("--out", type=Path, default=Path("reports"), help="output directory (default reports/)")
    p.add_argument("--seams", type=Path, action="append", default=[], metavar="LABELS.seams.json",
                   help="a seam report of a recorded cpbench segment run (repeatable): blockwise time, memory and "
                        "seams beside whole-image eval")
    p.add_argument("--profiles", type=Path, action="append", default=[], metavar="DIR",
                   help="a cpbench profile run folder, or a folder of them (repeatable): the source lines behind "
                        "a stage's time")
    p.add_argument("--optimizations", type=Path, default=None, metavar="DIR",
                   help="also state the Cellpose patches measured in DIR (reports/optimizations: make optimizations)")
    p.add_argument("--table", action="store_true",
                   help="only print the stage table(s) of the newest results; write nothing (make demo shows the "
                        "first size this way while the rest runs)")
    p.set_defaults(func=run)

    q = sub.add_parser(
        "stability", help="how far each benchmark's numbers can be trusted: spread, outliers, detection limit",
        description="For the newest asv run: per benchmark and parameters the robust CV of the samples "
        "(IQR/1.349/median), worst sample over median, outliers, bimodality, and the smallest slowdown asv "
        "itself would flag (its compare rule: ratio > 1.1 and Mann-Whitney U p < 0.002); with an earlier run, "
        "the change between the two (an A/A check when the code did not change). Lists unstable ones with the "
        "reason; writes stability_<device>.md. Needs results recorded with asv run --record-samples.")
    q.add_argument("--results", type=Path, default=Path(".asv/results"), help="asv results directory")
    q.add_argument("--machine", help="asv machine name (default: every machine found)")
    q.add_argument("--out", type=Path, default=Path("reports"), help="output directory (default reports/)")
    q.add_argument("--all", action="store_true", help="print every benchmark, not only the unstable ones")
    q.set_defaults(func=run_stability)

    a = sub.add_parser("site-assets", help="fetch the asv site's JavaScript/CSS libraries once (npm registry, pinned)",
                       description="Download jQuery, flot, flot-orderbars, stupidtable, blueimp-md5 and bootstrap "
                       "from the npm registry (npm_config_registry to use a mirror), each tarball checked against "
                       "its pinned sha512, into --vendor. Run once at setup; the site then needs no network.")
    a.add_argument("--vendor", type=Path, default=None, help="where to keep them (default data/vendor/asv-site)")
    a.set_defaults(func=run_site_assets)

    o = sub.add_parser("offline-site", help="make a published asv site work with no network",
                       description="Copy the vendored libraries into the site (HTML/vendor) and point its pages "
                       "at them instead of CDNs. Run after asv publish.")
    o.add_argument("--html", type=Path, default=Path(".asv/html"), help="the asv site (default .asv/html)")
    o.add_argument("--vendor", type=Path, default=None, help="the vendored libraries (default data/vendor/asv-site)")
    o.set_defaults(func=run_offline_site)


def run_site_assets(args: argparse.Namespace) -> int:
    """Fetch the site's libraries (nothing when present); returns 0."""
    from cpbench.report.site import DEFAULT_VENDOR, vendor_assets

    print(f"asv site libraries in {vendor_assets(args.vendor or DEFAULT_VENDOR)}")
    return 0


def run_offline_site(args: argparse.Namespace) -> int:
    """Rewrite a published site to the vendored libraries; returns 0."""
    from cpbench.report.site import DEFAULT_VENDOR, make_offline

    replaced = make_offline(args.html, args.vendor or DEFAULT_VENDOR)
    print(f"{args.html}: {len(replaced)} CDN libraries now served from {args.html / 'vendor'}; "
          f"view it with: asv preview (or any web server on {args.html})")
    return 0


def run_stability(args: argparse.Namespace) -> int:
    """Print the unstable benchmarks (or all) and write stability_<device>.md; returns 0."""
    from cpbench.errors import UserError
    from cpbench.io.files import write_text
    from cpbench.report.results import load_rows
    from cpbench.report.stability import stability_table, to_markdown

    rows = load_rows(args.results, args.machine)
    args.out.mkdir(parents=True, exist_ok=True)
    wrote = 0
    for device in ("cpu", "cuda"):
        table = stability_table(rows, device)
        if not table:
            continue
        bad = [t for t in table if t["reasons"]]
        timings = [t for t in table if str(t["measure"]).startswith("time_")]
        with_samples = [t for t in timings if t["stability"].n > 1]  # type: ignore[attr-defined]
        path = write_text(args.out / f"stability_{device}.md", to_markdown(table, device))
        print(to_markdown(table if args.all else bad, device))
        print(f"{device}: {len(table) - len(bad)} of {len(table)} benchmarks stable "
              f"({len(timings)} timings, {len(with_samples)} with several samples); wrote {path}")
        if timings and not with_samples:
            print("the timings have one sample each: run asv run --record-samples without --quick")
        wrote += 1
    if not wrote:
        raise UserError(f"the results in {args.results} hold no measurements; run the suite first")
    return 0


def run(args: argparse.Namespace) -> int:
    """Write the guidelines document, the tables and the plots; print the tables."""
    from cpbench.errors import UserError
    from cpbench.io.files import write_text
    from cpbench.report.build import write_guidelines
    from cpbench.report.plots import stage_costs_png
    from cpbench.report.results import deduplicate, latest, load_rows
    from cpbench.report.stage_table import stage_table, to_markdown

    dirs = args.results or [d for d in (Path(".asv/results"), Path(".asv/results-sweep")) if d.exists()]
    if not dirs:
        raise UserError("no asv results in .asv/results; run the suite first (make demo), or pass --results DIR")
    dirs = sorted(set(dirs), key=str)  # a fixed order: the same report whatever the order of --results
    rows = deduplicate([r for d in dirs for r in load_rows(d, args.machine)])
    newest = latest(rows)
    machine = args.machine or ", ".join(sorted({r.machine for r in rows}))
    if args.table:
        for device in ("cpu", "cuda"):
            table = stage_table(newest, device)
            if any(t["seconds"] for t in table):
                print(to_markdown(table, device))
        return 0
    from cpbench.report.recorded import load_profile, load_seam_report, profile_folders

    # read before anything is written: a bad file stops the report with nothing half-made
    recorded = ([load_seam_report(p) for p in args.seams], [load_profile(f) for f in profile_folders(args.profiles)])
    args.out.mkdir(parents=True, exist_ok=True)
    for device in ("cpu", "cuda"):
        table = stage_table(newest, device)
        if not any(t["seconds"] for t in table):
            continue
        md = to_markdown(table, device)
        write_text(args.out / f"stage_table_{device}.md", f"Machine: {machine}\n\n" + md)
        png = stage_costs_png(table, args.out / f"stage_costs_{device}.png", device,
                              f"Cellpose stage costs on {device} ({machine})")
        print(md)
        print(f"wrote {args.out / f'stage_table_{device}.md'} and {png}")
    md_path, html_path = write_guidelines(rows, dirs, args.out, recorded=recorded, optimizations=args.optimizations)
    print(f"wrote {md_path} and {html_path} (figures in {args.out})")
    return 0
