"""Stop before a multi-gigabyte environment is made where it cannot fit: one line naming the need and the
folder, exit status 1. Standard library only (it runs before any venv exists, and inside asv's builds).

    python3 tools/free_space.py FOLDER GB WHAT [--unless-importable MODULE]

``--unless-importable torch``: nothing to check when this Python already imports MODULE (the environment
is already made, so the next step installs nothing large).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    """Check the free space; returns the exit status."""
    if len(argv) not in (3, 5) or (len(argv) == 5 and argv[3] != "--unless-importable"):
        print("usage: free_space.py FOLDER GB WHAT [--unless-importable MODULE]", file=sys.stderr)
        return 2
    folder, need_gb, what = Path(argv[0]), float(argv[1]), argv[2]
    if len(argv) == 5 and importlib.util.find_spec(argv[4]) is not None:
        return 0
    probe = folder
    while not probe.exists():  # the folder may not exist yet: its nearest existing parent's file system
        probe = probe.parent
    free_gb = shutil.disk_usage(probe).free / 1e9
    if free_gb < need_gb:
        print(f"not enough disk space for {what}: it needs about {need_gb:g} GB in {folder.resolve()}, "
              f"{free_gb:.1f} GB are free there; free some space first", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
