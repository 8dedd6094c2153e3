"""What a deep-dive profiles: a benchmark as asv names it, resolved to one class and one parameter set.

Accepted names (every one is what a user sees somewhere in asv):

* ``bench_masks.FollowFlows.time_stage`` (``asv run`` output), with ``--param size=1024``;
* ``bench_masks.FollowFlows.time_stage('synthetic', '1024', 'network', 200, 0.0, 'cpu')``
  (``asv run --bench``, ``asv compare``: every parameter, in order);
* ``bench_masks.FollowFlows.time_stage?p-size='1024'&p-niter=200`` (the address of a graph in the
  ``asv publish`` site);
* a stage name: the class name in snake case (``follow_flows``, ``get_masks``, ``network``, ``flow_qc``,
  ``end_to_end``) or Cellpose's own (``run_net``, ``compute_masks``, ``remove_bad_flow_masks``, ``eval``).

Parameters not given take the suite's defaults (:data:`cpbench.measure.suite.PARAM_DEFAULTS`,
size :data:`DEFAULT_SIZE`, device ``cpu``); the valid names and values are the full grids'.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote

from cpbench.errors import UserError
from cpbench.measure.suite import PARAM_DEFAULTS, asv_value

#: crop side (pixels) when neither the benchmark name nor ``--param`` gives one
DEFAULT_SIZE = "1024"
#: Cellpose's names of the stages -> the benchmark classes' snake-case names
ALIASES = {"run_net": "network", "compute_masks": "mask_recovery", "remove_bad_flow_masks": "flow_qc",
           "fill_holes_and_remove_small_masks": "fill_holes", "eval": "end_to_end", "resample": "resample_flows"}
#: what each benchmark method measures -> the profile mode that explains it
METHOD_MODE = {"time_stage": "cpu", "track_stage_peak_bytes": "memory", "peakmem_stage": "memory",
               "track_gpu_peak_bytes": "memory", "track_ap50": "cpu"}

Benchmarks = dict[str, tuple[list[str], list[list[str]], list[str]]]


@dataclass(frozen=True)
class Target:
    """One benchmark combination: ``bench`` = ``module.Class``; ``method`` as asv names it (or None for a
    stage name); ``names``/``values``: every parameter, values as asv writes them (``repr``)."""

    bench: str
    method: str | None
    names: tuple[str, ...]
    values: tuple[str, ...]

    @property
    def params(self) -> dict[str, str]:
        """Parameter name -> value without asv's quotes."""
        return {n: asv_value(v) for n, v in zip(self.names, self.values)}

    def label(self) -> str:
        """``module.Class.method(p0, p1, ...)``: asv's own form of this combination."""
        return f"{self.bench}.{self.method or 'time_stage'}({', '.join(self.values)})"


def snake(name: str) -> str:
    """``FollowFlows`` -> ``follow_flows``; ``FlowQC`` -> ``flow_qc``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def stage_names(benchmarks: Benchmarks) -> dict[str, str]:
    """Stage name (snake case of the class) -> ``module.Class``, for the classes with a ``time_stage``."""
    return {snake(k.rsplit(".", 1)[1]): k for k, v in benchmarks.items() if "time_stage" in v[2]}


def _split(text: str) -> tuple[str, dict[str, str] | None, list[str] | None]:
    """(name, params by name from a site address, params in order from asv's ``name(...)`` form)."""
    if "?" in text:
        name, query = text.split("?", 1)
        pairs = parse_qsl(query.lstrip("#"), keep_blank_values=True)
        return name, {k[2:] if k.startswith("p-") else k: unquote(v) for k, v in pairs}, None
    m = re.fullmatch(r"([\w.]+)\((.*)\)", text.strip())
    if m:
        try:
            values = ast.literal_eval(f"({m.group(2)},)")
        except (ValueError, SyntaxError) as exc:
            raise UserError(f"cannot read the parameters in {text!r} ({exc}); copy the name as asv prints it") from None
        return m.group(1), None, [repr(v) for v in values]
    return text.strip(), None, None


def resolve(text: str, given: list[str], benchmarks: Benchmarks, device: str | None = None) -> Target:
    """The :class:`Target` that ``text`` (see the module docstring) and ``given`` (``name=value``
    strings, ``--param``) name; ``device`` sets the ``device`` parameter. UserError listing the valid
    benchmarks, parameter names or values when something does not exist."""
    name, site_params, ordered = _split(text)
    stages = stage_names(benchmarks)
    key = ALIASES.get(name, name)
    method: str | None = None
    if key in stages:
        bench = stages[key]
    elif name in benchmarks:
        bench = name
    elif "." in name and name.rsplit(".", 1)[0] in benchmarks:
        bench, method = name.rsplit(".", 1)
    else:
        raise UserError(f"no benchmark or stage {name!r}; stages: {', '.join(sorted(stages))}; "
                        f"or a benchmark as asv prints it, e.g. {sorted(benchmarks)[0]}.time_stage")
    names, values, methods = benchmarks[bench]
    if method is not None and method not in methods:
        raise UserError(f"{bench} has no benchmark {method!r}; it has: {', '.join(methods)}")
    chosen: dict[str, str] = {}
    if ordered is not None:
        if len(ordered) != len(names):
            raise UserError(f"{bench} takes {len(names)} parameters ({', '.join(names)}), {len(ordered)} given")
        chosen = dict(zip(names, ordered))
    for k, v in (site_params or {}).items():
        chosen[k] = v
    for item in given:
        if "=" not in item:
            raise UserError(f"--param {item!r}: write NAME=VALUE, e.g. --param size=1024")
        k, v = item.split("=", 1)
        chosen[k.strip()] = v.strip()
    if device is not None and "device" in names:
        chosen["device"] = device
    elif device not in (None, "cpu"):
        raise UserError(f"{bench} has no device parameter: it runs on the CPU only; leave out --device")
    out = []
    for n, allowed in zip(names, values):
        plain = {asv_value(a): a for a in allowed}
        want = chosen.pop(n, None)
        if want is None:
            default = DEFAULT_SIZE if n == "size" else "cpu" if n == "device" else PARAM_DEFAULTS.get(n)
            out.append(plain.get(default, allowed[0]) if default is not None else allowed[0])
        elif asv_value(want) in plain:
            out.append(plain[asv_value(want)])
        else:
            raise UserError(f"{bench}: {n}={asv_value(want)} is not in its grid; valid: "
                            f"{', '.join(asv_value(a) for a in allowed)}")
    if chosen:
        raise UserError(f"{bench} has no parameter {', '.join(sorted(chosen))}; its parameters: {', '.join(names)}")
    return Target(bench=bench, method=method, names=tuple(names), values=tuple(out))


def project_root(start: Path = Path(".")) -> Path:
    """The project folder (the one holding ``benchmarks/`` and ``asv.conf.json``) at or above ``start``."""
    for p in [start.resolve(), *start.resolve().parents]:
        if (p / "benchmarks" / "__init__.py").is_file() and (p / "asv.conf.json").is_file():
            return p
    raise UserError(f"no benchmarks/ and asv.conf.json at or above {start.resolve()}; run from the cpbench project")
