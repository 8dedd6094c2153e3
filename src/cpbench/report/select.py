"""Pick, from asv result rows, what each part of the report draws: sizes in pixels, the snapshot the
scaling models come from, default-parameter series, one-at-a-time parameter changes, commit names.

Units: pixels are counts; values are seconds, bytes or AP as asv recorded them.
"""

from __future__ import annotations

import subprocess
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cpbench.fetch.catalogue import IMAGES
from cpbench.measure.suite import PARAM_DEFAULTS
from cpbench.report.results import Row

#: the synthetic data's whole frame is exemplar-001's (Y, X)
SYNTHETIC_FRAME = IMAGES["exemplar-001"].shape[1:]
#: asv measures of the report: wall time, stage peak, process peak, GPU peak, accuracy
TIME, STAGE_PEAK, PROCESS_PEAK, GPU_PEAK, AP = (
    "time_stage", "track_stage_peak_bytes", "peakmem_stage", "track_gpu_peak_bytes", "track_ap50")


def pixels(params: dict[str, str]) -> int | None:
    """Pixels of a benchmark's image: ``size`` squared, or the whole frame for ``full``; None without a size."""
    size = params.get("size")
    if size is None:
        return None
    if size.isdigit():
        return int(size) ** 2
    if size == "full":
        dataset = params.get("dataset", "synthetic")
        y, x = SYNTHETIC_FRAME if dataset.startswith("synthetic") else IMAGES[dataset].shape[1:] if dataset in IMAGES else (0, 0)
        return y * x or None
    return None


def off_defaults(row: Row, ignore: Iterable[str] = ("size", "device")) -> list[str]:
    """The parameters of ``row`` away from their defaults (:data:`PARAM_DEFAULTS`), ``ignore`` aside."""
    skip = set(ignore)
    return [k for k, v in row.params.items() if k in PARAM_DEFAULTS and k not in skip and PARAM_DEFAULTS[k] != v]


@dataclass(frozen=True)
class Snapshot:
    """One asv result set: a machine, an environment and a Cellpose commit."""

    machine: str
    env: str
    commit: str

    def rows(self, rows: Iterable[Row]) -> list[Row]:
        return [r for r in rows if (r.machine, r.env, r.commit) == (self.machine, self.env, self.commit)]


def scaling_snapshot(rows: list[Row]) -> Snapshot | None:
    """The snapshot with the most (stage, image size) pairs measured at default parameters (the newest
    commit on a tie): the one whose cost models the report fits. None when nothing has a size."""
    sizes: dict[Snapshot, set[tuple[str, int]]] = defaultdict(set)
    newest: dict[Snapshot, int] = {}
    for r in rows:
        px = pixels(r.params)
        if r.value is None or px is None or r.measure != TIME or off_defaults(r):
            continue
        s = Snapshot(r.machine, r.env, r.commit)
        sizes[s].add((r.stage, px))
        newest[s] = max(newest.get(s, 0), r.date)
    if not sizes:
        return None
    return max(sizes, key=lambda s: (len(sizes[s]), newest[s]))


def series(rows: Iterable[Row], stage: str, measure: str, device: str = "cpu") -> list[tuple[int, float]]:
    """``(pixels, value)`` of ``stage`` (``module.Class``) at default parameters on ``device``, by size."""
    out = {}
    for r in rows:
        if r.stage != stage or r.measure != measure or r.value is None or off_defaults(r):
            continue
        if r.params.get("device", "cpu") != device:
            continue
        px = pixels(r.params)
        if px is not None:
            out[px] = r.value
    return sorted(out.items())


def devices(rows: Iterable[Row]) -> list[str]:
    """Devices with at least one measured value, CPU first."""
    found = {r.params.get("device", "cpu") for r in rows if r.value is not None}
    return sorted(found, key=lambda d: (d != "cpu", d))


@dataclass(frozen=True)
class Change:
    """A stage measured with one parameter away from its default, beside the default at the same size."""

    stage: str
    measure: str
    param: str
    value: str  # the parameter's value, as asv wrote it
    size: str
    device: str
    measured: float
    baseline: float
    row: Row | None = field(default=None, compare=False)  # the measurement (its samples judge the change)
    base_row: Row | None = field(default=None, compare=False)  # its default-parameter baseline

    @property
    def ratio(self) -> float:
        return self.measured / self.baseline if self.baseline else float("nan")


def parameter_changes(rows: list[Row]) -> list[Change]:
    """Every one-parameter-off measurement with a default-parameter baseline of the same stage, size,
    device, measure and snapshot."""
    base: dict[tuple, Row] = {}
    for r in rows:
        if r.value is not None and not off_defaults(r):
            base[(r.machine, r.env, r.commit, r.benchmark, r.params.get("size"), r.params.get("device", "cpu"))] = r
    out = []
    for r in rows:
        off = off_defaults(r)
        if r.value is None or len(off) != 1:
            continue
        key = (r.machine, r.env, r.commit, r.benchmark, r.params.get("size"), r.params.get("device", "cpu"))
        if key in base:
            out.append(Change(r.stage, r.measure, off[0], r.params[off[0]], r.params.get("size", ""),
                              key[5], r.value, base[key].value, r, base[key]))  # type: ignore[arg-type]
    return out


def commit_names(repo: Path = Path("data/cellpose")) -> dict[str, str]:
    """Commit hash -> ``v<version>`` from the tags of the Cellpose history, and -> the branch's name for a
    commit no tag names (``opt/v3.1.1.3/follow-flows``: cpbench optimize's); empty when there is no history."""
    if not (repo / ".git").exists() and not (repo / "HEAD").exists():
        return {}
    out = subprocess.run(["git", "-C", str(repo), "show-ref", "--tags", "-d"], capture_output=True, text=True)
    names = {}
    for line in out.stdout.splitlines():
        commit, ref = line.split(" ", 1)
        names[commit] = ref.removeprefix("refs/tags/").removesuffix("^{}")
    heads = subprocess.run(["git", "-C", str(repo), "for-each-ref", "--format=%(objectname) %(refname:short)",
                            "refs/heads/"], capture_output=True, text=True)
    for line in heads.stdout.splitlines():
        commit, branch = line.split(" ", 1)
        names.setdefault(commit, branch)
    return names


#: beside asv results: the release name of each commit (``{hash: "v3.1.1.3"}``), for reading results where
#: the Cellpose history is not at hand (the committed example; written by ``make example``)
COMMIT_NAMES_FILE = "commits.json"


def save_commit_names(results: Path, repo: Path = Path("data/cellpose")) -> Path:
    """Write :data:`COMMIT_NAMES_FILE` into ``results``: the names of the commits its results are for."""
    import json

    from cpbench.io.files import write_text

    names = commit_names(repo)
    held = {p.stem.split("-")[0] for p in results.rglob("*.json")}
    used = {c: n for c, n in sorted(names.items()) if c[:8] in held}
    return write_text(results / COMMIT_NAMES_FILE, json.dumps(used, indent=1) + "\n")


def saved_commit_names(results: Path) -> dict[str, str]:
    """The names :func:`save_commit_names` wrote into ``results`` (empty when there are none)."""
    import json

    path = results / COMMIT_NAMES_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def commit_label(commit: str, names: dict[str, str]) -> str:
    """``v3.1.1.3 (9eba532)`` or the short hash."""
    return f"{names[commit]} ({commit[:7]})" if commit in names else commit[:8]
