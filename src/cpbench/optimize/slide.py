"""A patch at whole-slide scale: ``cpbench segment`` on one slide twice, with the installed release and with
the patched copy of it (:mod:`cpbench.optimize.overlay`, first on the workers' ``PYTHONPATH``), the same
options and block size; the two label images compared pixel for pixel, band by band (never whole), and
both seam reports (per-pass seconds, per-block seconds, worker and client peaks) kept in one record.

Units: seconds, bytes, pixels.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from cpbench.errors import UserError
from cpbench.io.files import write_text
from cpbench.optimize.branches import Patch
from cpbench.optimize.overlay import patched_copy, require_release
from cpbench.segment.picture import read_labels
from cpbench.segment.run import seam_report_path

#: rows of the label images compared at a time
BAND = 2048


def _env(first: str | None) -> dict[str, str]:
    """This process's environment with ``first`` (a patched copy, or None) and cpbench's own src/ (as an
    editable install has it) ahead on PYTHONPATH."""
    src = str(Path(__file__).resolve().parents[2])
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (first, src, os.environ.get("PYTHONPATH")) if p))


def _segment(slide: Path, out: Path, args: list[str], pythonpath: str | None) -> dict[str, Any]:
    env = _env(pythonpath)
    cmd = [sys.executable, "-m", "cpbench.cli", "segment", str(slide), "--out", str(out), "--overwrite", *args]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        why = (res.stderr.strip().splitlines() or ["no message"])[-1]
        raise UserError(f"cpbench segment failed{' with the patch' if pythonpath else ''}: {why}")
    report = json.loads(seam_report_path(out).read_text())
    report["command_wall_s"] = wall  # the whole command: cluster start, passes, write
    return report


def same_labels(a: Path, b: Path, shape: tuple[int, int]) -> tuple[bool, int]:
    """Whether two label images of ``shape`` (Y, X) are equal pixel for pixel, and the pixels that differ;
    read in bands of :data:`BAND` rows."""
    differ = 0
    for y0 in range(0, shape[0], BAND):
        h = min(BAND, shape[0] - y0)
        differ += int(np.count_nonzero(read_labels(a, y0, 0, h, shape[1]) != read_labels(b, y0, 0, h, shape[1])))
    return differ == 0, differ


def measure(patch: Patch, slide: Path, out: Path, segment_args: list[str], work: Path | None = None) -> Path:
    """Segment ``slide`` with the installed release and with ``patch`` (release first, then patched), compare
    the labels, and write the record ``out`` (JSON): the patch, the release, the slide, the options, both
    seam reports, whether the labels are identical. Returns ``out``."""
    require_release(patch)
    if not slide.is_file():
        raise UserError(f"{slide} does not exist; make a synthetic slide first (cpbench synth exemplar-001)")
    with tempfile.TemporaryDirectory(prefix="cpbench-opt-slide-", dir=work) as tmp:
        tmp_dir = Path(tmp)
        overlay = patched_copy(patch, tmp_dir / "overlay")
        runs = {}
        for name, path in tqdm([("release", None), ("patched", str(overlay))], desc=f"{patch.name} on {slide.name}",
                               unit="run"):
            runs[name] = _segment(slide, tmp_dir / f"{name}.ome.tif", segment_args, path)
        shape = tuple(int(s) for s in runs["release"]["shape"])
        same, differ = same_labels(tmp_dir / "release.ome.tif", tmp_dir / "patched.ome.tif", shape)  # type: ignore[arg-type]
    record = {"patch": patch.path.name, "branch": patch.branch, "release": patch.release, "slide": slide.name,
              "shape": list(shape), "segment_args": segment_args, "labels_identical": same, "pixels_differing": differ,
              "runs": runs}
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_text(out, json.dumps(record, indent=1) + "\n")


MASKS_RUN = """
import json, statistics, sys, time
import numpy as np
import cellpose.dynamics
from cpbench import stages as cs
from cpbench.measure import inputs
dP, cellprob = inputs.flows(sys.argv[2], sys.argv[3], "network", "reference", 13.0)
cs.masks_from_flows(dP[:, :256, :256].copy(), cellprob[:256, :256].copy())  # warm-up: numba caches, torch
seconds = []
for _ in range(int(sys.argv[4])):
    t0 = time.perf_counter()
    labels = cs.masks_from_flows(dP, cellprob)
    seconds.append(time.perf_counter() - t0)
np.save(sys.argv[1] + ".npy", labels)
json.dump({"seconds": seconds, "median_s": statistics.median(seconds), "labels": int(labels.max()),
           "shape": list(labels.shape), "dynamics": cellpose.dynamics.__file__}, open(sys.argv[1] + ".json", "w"))
"""


def measure_masks(patch: Patch, out: Path, dataset: str = "synthetic", size: str = "full", repeats: int = 2) -> Path:
    """Mask recovery (follow_flows, get_masks, flow QC, fill holes: Cellpose's defaults) on the reference
    model's flows for a whole frame (default: the synthetic exemplar-001 frame, 3138 x 2509 px), with the
    installed release and with ``patch``, each in a process of its own, ``repeats`` timed calls after a
    warm-up; the label images compared. For a release that cannot run the reference network (4.x), the
    flows come from the cache a 3.x release made (``inputs.flows``). Writes the record ``out``."""
    require_release(patch)
    with tempfile.TemporaryDirectory(prefix="cpbench-opt-masks-") as tmp:
        tmp_dir = Path(tmp)
        overlay = patched_copy(patch, tmp_dir / "overlay")
        runs = {}
        for name, first in tqdm([("release", None), ("patched", str(overlay))], desc=f"{patch.name}: mask recovery",
                                unit="run"):
            res = subprocess.run([sys.executable, "-c", MASKS_RUN, str(tmp_dir / name), dataset, size, str(repeats)],
                                 env=_env(first), capture_output=True, text=True)
            if res.returncode != 0:
                why = (res.stderr.strip().splitlines() or ["no message"])[-1]
                raise UserError(f"mask recovery on {dataset} {size} failed ({name}): {why}")
            runs[name] = json.loads((tmp_dir / f"{name}.json").read_text())
        a, b = (np.load(tmp_dir / f"{n}.npy") for n in ("release", "patched"))
        differ = int(np.count_nonzero(a != b)) if a.shape == b.shape else int(a.size)
    record = {"kind": "mask_recovery", "patch": patch.path.name, "branch": patch.branch, "release": patch.release,
              "slide": f"{dataset} {size}", "shape": runs["release"]["shape"], "labels_identical": differ == 0,
              "pixels_differing": differ, "runs": runs}
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_text(out, json.dumps(record, indent=1) + "\n")
