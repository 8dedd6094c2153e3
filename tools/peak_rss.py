"""Run a command; sample the summed RSS of it and all its descendants every 0.2 s (psutil).

usage: python tools/peak_rss.py [--json FILE] COMMAND ARGS...
Prints the exit status, wall seconds, the peak summed RSS of the process tree and the largest single
process (MB, 10^6 bytes); exits with the command's status. The peak is sampled, so a spike shorter than
0.2 s can be missed.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

import psutil


def main(argv: list[str]) -> int:
    out = None
    if argv[:1] == ["--json"]:
        out, argv = argv[1], argv[2:]
    if not argv:
        print("usage: python tools/peak_rss.py [--json FILE] COMMAND ARGS...", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    p = subprocess.Popen(argv)
    proc = psutil.Process(p.pid)
    peak_sum = peak_one = 0
    while p.poll() is None:
        try:
            rss = [q.memory_info().rss for q in [proc, *proc.children(recursive=True)] if q.is_running()]
            peak_sum, peak_one = max(peak_sum, sum(rss)), max(peak_one, max(rss))
        except psutil.Error:
            pass
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    print(f"exit {p.returncode}; wall {wall:.1f} s; peak summed RSS of the process tree {peak_sum / 1e6:.0f} MB; "
          f"largest single process {peak_one / 1e6:.0f} MB", flush=True)
    if out:
        with open(out, "w") as f:
            json.dump({"command": argv, "exit": p.returncode, "wall_s": round(wall, 1),
                       "peak_rss_sum_mb": round(peak_sum / 1e6), "peak_rss_largest_mb": round(peak_one / 1e6)}, f)
    return p.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
