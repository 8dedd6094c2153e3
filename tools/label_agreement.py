"""AP@0.5 of a cpbench segment label image against the ground truth (and whole-image eval labels, if
given), and where its errors lie: near a seam (within the overlap of a block core edge) or in a core.

usage: python tools/label_agreement.py TRUTH.ome.tif LABELS.ome.tif [WHOLE.ome.tif] [--json FILE]
The label images are read whole (4 bytes per pixel each, plus ~16 bytes per labelled pixel while
matching): about 15 GB at WD-76845-097 size. Block and overlap come from LABELS.seams.json.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from cpbench.segment.agreement import ap50, read_label_image, seam_errors


def main(argv: list[str]) -> int:
    out = None
    if "--json" in argv:
        i = argv.index("--json")
        out, argv = argv[i + 1], argv[:i] + argv[i + 2:]
    if len(argv) not in (2, 3):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    truth, lab = read_label_image(Path(argv[0])), read_label_image(Path(argv[1]))
    rep = json.loads(Path(argv[1].replace(".ome.tif", ".seams.json")).read_text())
    block, band = rep["block"], rep["overlap"]
    res: dict[str, object] = {"labels": int(lab.max()), "truth": int(len(np.unique(truth)) - 1),
                              "ap50_vs_truth": round(ap50(truth, lab), 4)}
    print(f"AP@0.5 vs truth {res['ap50_vs_truth']} ({res['labels']} labels, truth {res['truth']}; "
          f"{time.perf_counter() - t0:.0f} s)", flush=True)
    e = seam_errors(truth, lab, block, band)
    res.update(seam_errors=e.__dict__, error_rate_seam=round(e.rate("seam"), 5), error_rate_core=round(e.rate("core"), 5))
    if len(argv) == 3:
        whole = read_label_image(Path(argv[2]))
        res.update(whole_labels=int(whole.max()), whole_ap50_vs_truth=round(ap50(truth, whole), 4),
                   ap50_vs_whole=round(ap50(whole, lab), 4))
    res["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(res, indent=1))
    if out:
        Path(out).write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
