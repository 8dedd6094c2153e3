"""``cpbench report``: the stage x size table (Markdown) and a plot from the asv results."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    """Add the ``report`` sub-command."""
    p = sub.add_parser("report", help="tables and plots of stage costs from the asv results",
                       description="Read asv results (asv's results API) and write, per device, "
                                   "stage_table_<device>.md and stage_costs_<device>.png.")
    p.add_argument("--results", type=Path, default=Path(".asv/results"), help="asv results directory")
    p.add_argument("--machine", help="asv machine name (default: every machine found)")
    p.add_argument("--out", type=Path, default=Path("reports"), help="output directory (default reports/)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the tables and plots; print the tables."""
    from cpbench.io.files import write_text
    from cpbench.report.plots import stage_costs_png
    from cpbench.report.results import latest, load_rows
    from cpbench.report.stage_table import stage_table, to_markdown

    rows = latest(load_rows(args.results, args.machine))
    args.out.mkdir(parents=True, exist_ok=True)
    machine = args.machine or ", ".join(sorted({r.machine for r in rows}))
    wrote = 0
    for device in ("cpu", "cuda"):
        table = stage_table(rows, device)
        if not any(t["seconds"] for t in table):
            continue
        md = to_markdown(table, device)
        write_text(args.out / f"stage_table_{device}.md", f"Machine: {machine}\n\n" + md)
        png = stage_costs_png(table, args.out / f"stage_costs_{device}.png", device,
                              f"Cellpose stage costs on {device} ({machine})")
        print(md)
        print(f"wrote {args.out / f'stage_table_{device}.md'} and {png}")
        wrote += 1
    if not wrote:
        from cpbench.errors import UserError

        raise UserError(f"the results in {args.results} hold no stage timings; run the suite first")
    return 0
