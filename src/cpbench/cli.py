"""The ``cpbench`` command line: one sub-command per job.

Each capability folder has a ``cli`` module that exposes ``register(subparsers)`` and attaches its
``run(args)`` as ``args.func``; this module only wires them. Heavy imports happen inside ``run`` so that
``cpbench --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from cpbench.errors import UserError

#: modules that contribute sub-commands, in the order ``--help`` lists them
COMMAND_MODULES: tuple[str, ...] = (
    "cpbench.synth.cli",
    "cpbench.fetch.cli",
    "cpbench.report.cli",
    "cpbench.models.cli",
    "cpbench.history.cli",
    "cpbench.measure.cli",
    "cpbench.profile.cli",
    "cpbench.segment.cli",
    "cpbench.plan.cli",
    "cpbench.optimize.cli",
)


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="cpbench",
        description="Benchmark Cellpose segmentation stages on whole-slide multiplexed images.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit status (0 ok, 2 user error, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"cpbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cpbench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
