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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cpbench.optimize.branches import build_branches, patches

    if args.list:
        for patch in patches(args.patches):
            print(f"{patch.branch}: {patch.subject} ({patch.path.name})")
        return 0
    for patch, commit in build_branches(args.history, args.patches):
        print(f"{patch.branch} {commit[:12]} on v{patch.release}: {patch.subject}")
    return 0
