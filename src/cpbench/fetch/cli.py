"""``cpbench fetch``: download the challenge images from Synapse (resumable, MD5-verified, recorded)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cpbench.fetch.catalogue import DEFAULT_DEST, FOLDER_ID, NAMES


def register(sub: Any) -> None:
    """Add the ``fetch`` sub-command."""
    p = sub.add_parser(
        "fetch",
        help="download the challenge images from Synapse (resumable, MD5-verified)",
        description=f"Find the challenge images by name in Synapse folder {FOLDER_ID}, download them with "
        "synapseclient, check the MD5 Synapse reports and record them in DEST/manifest.json. "
        "Auth: SYNAPSE_AUTH_TOKEN or authtoken in ~/.synapseConfig (synapseclient's order: config file "
        "first); without a token, anonymous access is tried. An interrupted download resumes when the "
        "same command is run again.",
    )
    p.add_argument("names", nargs="+", metavar="NAME", help=f"{', '.join(NAMES)} or all")
    p.add_argument("--dest", type=Path, default=DEFAULT_DEST,
                   help=f"folder for the images and manifest.json (default: {DEFAULT_DEST})")
    p.add_argument("--dry-run", action="store_true",
                   help="list names, Synapse ids, versions, sizes and what is already here; download nothing")
    p.add_argument("--parallel", action="store_true",
                   help="use synapseclient's multi-threaded downloader (8 MiB parts): faster on fast links, "
                        "but an interrupted download starts over")
    p.add_argument("--verify", action="store_true",
                   help="re-hash (MD5) images already present instead of trusting the manifest")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--synapse-config", type=Path, metavar="PATH",
                   help="synapseclient config file: endpoints, cache, authtoken (default: ~/.synapseConfig)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``cpbench fetch``; print one line per image with its local path. Returns 0."""
    from cpbench.fetch.download import PARTIAL_DIR, fetch

    def say(line: str) -> None:
        print(line, flush=True)

    restore = _exit_on_interrupt(Path(args.dest) / PARTIAL_DIR)
    try:
        results = fetch(
            args.names,
            args.dest,
            dry_run=args.dry_run,
            parallel=args.parallel,
            verify=args.verify,
            quiet=args.quiet,
            config_path=args.synapse_config,
            say=say,
        )
    finally:
        restore()
    for r in results:
        if r.path is not None:
            say(f"{r.remote.image.name}\t{r.path}")
    return 0


def _exit_on_interrupt(partials: Path) -> Callable[[], object]:
    """On Ctrl-C, say where the partial download is and leave at once (status 130).

    synapseclient downloads in a worker thread that cannot be interrupted; a normal exit would wait for
    the whole transfer. The partial file is kept and the next run resumes it. Returns a function that
    restores the previous SIGINT handler.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: object) -> None:
        sys.stdout.flush()
        print(f"\ncpbench: interrupted; unfinished downloads are kept in {partials}; "
              "run the same command to resume", file=sys.stderr, flush=True)
        os._exit(130)

    previous = signal.signal(signal.SIGINT, handler)
    return lambda: signal.signal(signal.SIGINT, previous)
