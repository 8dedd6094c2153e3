"""``cpbench cellpose-history``: build or extend the offline Cellpose history asv runs over."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path("data/cellpose")


def register(sub: Any) -> None:
    """Add the ``cellpose-history`` sub-command."""
    from cpbench.history.build import DEFAULT_VERSIONS

    p = sub.add_parser(
        "cellpose-history",
        help="build a local git repository of Cellpose releases (one commit per release, tagged) for asv",
        description="Fetch Cellpose's release source distributions with pip (pip's index settings apply) and "
        "commit each, in version order, to a local git repository: dated with the release's build time, tagged "
        "v<version> (Cellpose's version comes from that tag through setuptools_scm). asv.conf.json's \"repo\" "
        "points at it, so that `asv run v3.0..v4.2.1.1` walks releases with no GitHub. Re-running adds newer "
        "releases and never rewrites a commit.",
    )
    p.add_argument("--versions", default=DEFAULT_VERSIONS,
                   help=f"releases to include, a PEP 440 range (default {DEFAULT_VERSIONS!r}), e.g. '>=3.0,<=4.2.1.1'")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"the repository (default {DEFAULT_OUT})")
    p.add_argument("--pip-arg", action="append", default=[], metavar="ARG",
                   help="an extra argument for pip, repeatable, e.g. --pip-arg=--index-url=https://mirror/simple")
    p.add_argument("--commit-of", metavar="VERSION",
                   help="print only the commit of release VERSION in --out ('installed': the Cellpose "
                        "this Python imports), for `asv run --set-commit-hash`; builds nothing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from cpbench.history.build import build_history, commit_of, releases

    if args.commit_of:
        print(commit_of(args.out, args.commit_of))
        return 0
    before = {r.version for r in releases(args.out)} if (args.out / ".git").is_dir() else set()
    history = build_history(args.out, args.versions, args.pip_arg,
                            progress=lambda todo: tqdm(todo, desc="cellpose releases", unit="release"))
    print(f"{args.out}: {len(history)} releases, {len(history) - len(before)} new")
    print("| tag | date (UTC) | commit | |\n|---|---|---|---|")
    for r in history:
        print(f"| v{r.version} | {r.date:%Y-%m-%d %H:%M} | {r.commit[:8]} | {'' if r.version in before else 'new'} |")
    late = [r.version for i, r in enumerate(history) if any(r.date < h.date for h in history[:i])]
    if late:
        print(f"note: {', '.join(late)} dated before an older version (patch releases of an older line came "
              "later): asv draws its graphs by commit date, while `asv run A..B` follows version order")
    return 0
