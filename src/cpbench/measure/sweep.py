"""The example sweeps: every stage across sizes (scaling) and every parameter at one size (sensitivity).

The full grids (``CPBENCH_FULL=1``) are cartesian products: Network alone would be thousands of
combinations. A sweep runs a chosen subset of them with stock asv, by naming the combinations in
``asv run --bench`` (asv matches its regular expressions against ``name(param, ...)``):

* ``scaling``: each stage at every size of ``sizes`` (default 256 to 4096 and the whole 3138 x 2509
  frame; 8192 on request), every other parameter at its default (:data:`~cpbench.measure.suite.PARAM_DEFAULTS`);
* ``params``: each stage at ``size`` (default 1024) with at most one parameter away from its default,
  for every value of that parameter in the full grid (and the all-default baseline);
* ``density``, ``models``, ``fast``, ``channels``: the questions' studies (:func:`combinations`).

The results go to their own results directory (default ``.asv/results-sweep``; asv keeps one set of
parameter lists per benchmark and result file, so a quick run of the same commit would replace a
full-grid one) through a copy of ``asv.conf.json`` with another ``results_dir``; ``cpbench report``
reads both.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from itertools import product
from pathlib import Path

from cpbench.errors import UserError
from cpbench.measure.suite import PARAM_DEFAULTS, STUDY_PARAMS, asv_value

#: sizes of the scaling sweep (pixels per side, or the whole frame): the quick grid's and beyond
SCALING_SIZES = ["256", "512", "1024", "2048", "4096", "full"]
#: sizes of the density sweep: three, to see whether density's effect grows with the image
DENSITY_SIZES = ["256", "512", "1024"]
#: sizes of the fast-settings sweep (11 settings x 4 eval calls a size)
FAST_SIZES = ["256", "512"]
#: sizes of the channel sweep: three, to see whether a channel's cost grows with the image
CHANNEL_SIZES = ["256", "512", "1024"]
#: blockwise segmentation in the density sweep: these sizes in blocks of DENSITY_BLOCK px (4, 16 and 64
#: blocks; the crop must hold several blocks), and what the inputs hold (bench_masks.CellDensity) at them too
DENSITY_BLOCK_SIZES = ["512", "1024", "2048"]
DENSITY_BLOCK = "256"
DENSITY_CONTENTS = "bench_masks.CellDensity"
#: sizes of the model sweep: three, as the channel sweep's
MODEL_SIZES = ["256", "512", "1024"]
#: each sweep kind's default sizes
KIND_SIZES = {"scaling": SCALING_SIZES, "density": DENSITY_SIZES, "fast": FAST_SIZES, "channels": CHANNEL_SIZES,
              "models": MODEL_SIZES}
#: the size of the parameter sweep
PARAMS_SIZE = "1024"
#: parameters held at one value in both sweeps (what is measured, not how)
FIXED = {"dataset": "synthetic", "device": "cpu", "model": "reference", "flows": "network"}

_DISCOVER = """
import importlib, json, pkgutil, sys
sys.path.insert(0, '.')
import benchmarks
out = {}
for m in pkgutil.iter_modules(benchmarks.__path__):
    mod = importlib.import_module('benchmarks.' + m.name)
    for name, cls in vars(mod).items():
        if isinstance(cls, type) and cls.__module__ == mod.__name__ and getattr(cls, 'params', None):
            methods = sorted(k for k in dir(cls) if k.startswith(('time_', 'peakmem_', 'track_'))
                             and callable(getattr(cls, k)))
            out[m.name + '.' + name] = [list(cls.param_names), [[repr(v) for v in p] for p in cls.params], methods]
print(json.dumps(out))
"""


def discover(root: Path = Path("."), full: bool = True) -> dict[str, tuple[list[str], list[list[str]]]]:
    """Benchmark classes of the full grid (``full``; else the quick grid): ``module.Class`` -> (param names,
    param values as asv writes them, i.e. ``repr``). Imported in a child process with ``CPBENCH_FULL`` set
    accordingly (the grids are read at import)."""
    return {k: (v[0], v[1]) for k, v in discover_benchmarks(root, full).items()}


def discover_benchmarks(root: Path = Path("."), full: bool = True
                        ) -> dict[str, tuple[list[str], list[list[str]], list[str]]]:
    """As :func:`discover`, with each class's benchmark methods (``time_*``, ``peakmem_*``, ``track_*``)."""
    env = {**os.environ, "CPBENCH_FULL": "1" if full else ""}
    out = subprocess.run([sys.executable, "-c", _DISCOVER], cwd=root, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise UserError(f"cannot import the benchmarks in {root.resolve()}/benchmarks: "
                        f"{out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}; "
                        "run from the project root")
    return {k: (v[0], v[1], v[2]) for k, v in json.loads(out.stdout).items()}


def _fixed_ok(names: list[str], combo: Sequence[str]) -> bool:
    return all(asv_value(v) == FIXED[n] for n, v in zip(names, combo) if n in FIXED)


def _study_ok(names: list[str], combo: Sequence[str], sizes: Sequence[str]) -> bool:
    """Every parameter but the study's own at its default, the size among ``sizes``."""
    plain = {n: asv_value(v) for n, v in zip(names, combo)}
    return plain.get("size") in sizes and all(
        plain[n] == PARAM_DEFAULTS[n] for n in names if n in PARAM_DEFAULTS and n not in STUDY_PARAMS)


def combinations(kind: str, classes: dict[str, tuple[list[str], list[list[str]]]],
                 sizes: Sequence[str] | None = None, size: str = PARAMS_SIZE) -> dict[str, list[tuple[str, ...]]]:
    """The parameter combinations (asv's ``repr`` strings) of each class that sweep ``kind`` runs.

    ``scaling``: size in ``sizes``, the rest at defaults; classes without a size are left out.
    ``params``: size ``size`` (or no size parameter), at most one swept parameter off its default
    (the all-default combination is the baseline the others are compared with).
    ``density``: every synthetic density (inputs.DENSITIES) at each size in ``sizes`` (default
    :data:`DENSITY_SIZES`), the rest at defaults.
    Blockwise segmentation (a ``block`` parameter) there: at :data:`DENSITY_BLOCK_SIZES` in blocks of
    :data:`DENSITY_BLOCK` px (``sizes`` does not apply), and :data:`DENSITY_CONTENTS` at both sizes' union.
    ``models``: the classes that take a ``model`` (not the studies), every model of the grid at each size
    in ``sizes`` (default :data:`MODEL_SIZES`), the rest at defaults; a model whose weights are missing is
    skipped by the benchmark itself.
    ``fast`` / ``channels``: the classes of that study (suite.STUDY_PARAMS: a ``setting`` / ``nchan``
    parameter), every value of it at each size in ``sizes``, the rest at defaults; the other kinds leave
    these classes out. Everywhere, a block as large as the crop is left out (it would be skipped)."""
    if kind not in KIND_SIZES and kind != "params":
        raise UserError(f"unknown sweep {kind!r}: choose scaling, params, density, models, fast or channels")
    if sizes is None:  # each kind's own (KIND_SIZES)
        sizes = KIND_SIZES.get(kind, SCALING_SIZES)
    from cpbench.measure.inputs import DENSITIES

    chosen: dict[str, list[tuple[str, ...]]] = {}
    for cls, (names, values) in sorted(classes.items()):
        study = [n for n in names if n in STUDY_PARAMS]
        if kind in STUDY_PARAMS.values():
            if not study or STUDY_PARAMS[study[0]] != kind:
                continue
            picked = [combo for combo in product(*values) if _fixed_ok(names, combo) and _study_ok(names, combo, sizes)]
            if picked:
                chosen[cls] = picked
            continue
        if study:
            continue  # measured by its own sweep kind
        if kind in ("scaling", "density") and ("size" not in names or (kind == "density" and "dataset" not in names)):
            continue
        if kind == "params" and not any(n in PARAM_DEFAULTS and n not in FIXED for n in names):
            continue  # nothing to sweep
        if kind == "models" and "model" not in names:
            continue
        picked = []
        for combo in product(*values):
            plain = {n: asv_value(v) for n, v in zip(names, combo)}
            if plain.get("block", "0").isdigit() and plain.get("size", "full").isdigit() \
                    and int(plain.get("block", "0")) >= int(plain["size"]):
                continue  # one block holds the crop: the benchmark skips it
            if kind in ("density", "models"):
                swept = "dataset" if kind == "density" else "model"
                held = {**PARAM_DEFAULTS, "block": DENSITY_BLOCK} if kind == "density" and "block" in names \
                    else PARAM_DEFAULTS
                at = DENSITY_BLOCK_SIZES if kind == "density" and "block" in names else \
                    [*sizes, *DENSITY_BLOCK_SIZES] if kind == "density" and cls == DENSITY_CONTENTS else sizes
                off = [n for n in names if n in held and n != swept and plain[n] != held[n]]
                fixed = all(plain[n] == FIXED[n] for n in names if n in FIXED and n != swept)
                if fixed and (kind == "models" or plain["dataset"] in DENSITIES) and plain["size"] in at and not off:
                    picked.append(combo)
                continue
            if not _fixed_ok(names, combo):
                continue
            off = [n for n in names if n in PARAM_DEFAULTS and plain[n] != PARAM_DEFAULTS[n]]
            if kind == "scaling" and plain["size"] in sizes and not off:
                picked.append(combo)
            elif kind == "params" and plain.get("size", size) == size and len(off) <= 1:
                picked.append(combo)
        if picked:
            chosen[cls] = picked
    return chosen


def bench_regexes(chosen: dict[str, list[tuple[str, ...]]], methods: str = r"\w+",
                  methods_for: Sequence[tuple[str, str]] = ()) -> list[str]:
    """``asv run --bench`` expressions naming exactly ``chosen`` (every method of the class matching
    ``methods``; for a class matching the first class expression of ``methods_for``, its methods)."""
    def of(cls: str) -> str:
        return next((m for c, m in methods_for if re.search(c, cls)), methods)

    return [f"^{re.escape(cls)}\\.{of(cls)}\\({re.escape(', '.join(combo))}\\)$"
            for cls, combos in chosen.items() for combo in combos]


def derived_config(conf: Path, out: Path, values: Mapping[str, object]) -> Path:
    """A copy of asv config ``conf`` (JSON with // comments, which stay) with the top-level entries in
    ``values`` replaced (each must be in ``conf`` once: a string or a list of strings); written to ``out``
    through a temporary name. Relative paths keep their meaning when ``out`` lies beside ``conf``."""
    text = conf.read_text()
    for key, value in values.items():
        text, n = re.subn(rf'"{re.escape(key)}"\s*:\s*(?:"[^"]*"|\[[^\]]*\])',
                          lambda _m: f'"{key}": {json.dumps(value)}', text)
        if n != 1:
            raise UserError(f"{conf} has no single \"{key}\" entry to replace")
    tmp = out.with_name(out.name + ".partial")
    tmp.write_text(text)
    tmp.replace(out)
    return out


def sweep_config(conf: Path, results_dir: str, out: Path) -> Path:
    """A copy of asv config ``conf`` (JSON with // comments) with ``results_dir`` replaced; written to ``out``."""
    return derived_config(conf, out, {"results_dir": results_dir})
