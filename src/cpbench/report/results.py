"""Load asv results into flat rows, through asv's own results API (``asv.results``).

One row per benchmark and parameter combination: ``benchmark`` (e.g.
``bench_network.Network.time_stage``), ``stage`` (``bench_network.Network``), ``measure``
(``time_stage``), ``params`` (name -> value, strings as asv stores them, quotes removed),
``value`` (seconds, bytes or AP; None when skipped or failed), ``unit``, ``commit``, ``date``
(ms since epoch), ``machine`` and ``env``.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cpbench.errors import UserError
from cpbench.measure.suite import asv_value


@dataclass(frozen=True)
class Row:
    """One measurement: a benchmark at one parameter combination in one result file."""

    benchmark: str
    params: dict[str, str]
    value: float | None
    unit: str
    commit: str
    date: int
    machine: str
    env: str
    samples: list[float] | None = field(default=None, compare=False)

    @property
    def stage(self) -> str:
        """``module.Class`` of the benchmark."""
        return self.benchmark.rsplit(".", 1)[0]

    @property
    def measure(self) -> str:
        """The method name: ``time_stage``, ``track_stage_peak_bytes``, ``peakmem_stage``, ..."""
        return self.benchmark.rsplit(".", 1)[1]


def load_rows(results_dir: Path, machine: str | None = None) -> list[Row]:
    """Every result in ``results_dir`` (asv's ``.asv/results``), optionally of one machine.

    Raises :class:`UserError` when there are no results to read."""
    from asv.results import iter_results_for_machine

    results_dir = Path(results_dir)
    bench_file = results_dir / "benchmarks.json"
    if not bench_file.is_file():
        raise UserError(f"no asv results in {results_dir} (benchmarks.json missing); run the suite first: "
                        "asv run --python=same --quick --set-commit-hash HEAD")
    meta: dict[str, Any] = json.loads(bench_file.read_text())
    machines = [machine] if machine else sorted(p.name for p in results_dir.iterdir() if (p / "machine.json").is_file())
    rows: list[Row] = []
    for m in machines:
        for res in iter_results_for_machine(str(results_dir), m):
            for key in res.get_all_result_keys():
                info = meta.get(key, {})
                names = info.get("param_names", [])
                params = res.get_result_params(key)
                values = res.get_result_value(key, params)
                samples = res.get_result_samples(key, params)
                combos = list(itertools.product(*params)) if params else [()]
                for i, combo in enumerate(combos):
                    v = values[i] if i < len(values) else None
                    s = samples[i] if samples and i < len(samples) else None
                    rows.append(Row(
                        benchmark=key, params={n: asv_value(str(c)) for n, c in zip(names, combo)},
                        value=None if v is None or v != v else float(v), unit=info.get("unit", ""),
                        commit=res.commit_hash, date=int(res.date or 0), machine=m, env=res.env_name, samples=s,
                    ))
    if not rows:
        raise UserError(f"no results for machine {machine!r} in {results_dir}; run the suite or pick another --machine")
    return rows


def deduplicate(rows: list[Row]) -> list[Row]:
    """One row per measurement (benchmark, parameters, commit, machine, environment): where several result
    directories hold it, one with a value (asv writes every combination of a benchmark's grid, unmeasured
    ones as n/a), the most samples, else the last in the order given. The caller gives
    the directories in a fixed order (cpbench report: by name), so the report does not depend on the order
    of ``--results``."""
    best: dict[tuple, Row] = {}
    for r in rows:
        k = (r.benchmark, tuple(sorted(r.params.items())), r.commit, r.machine, r.env)
        rank = (r.value is not None, len(r.samples or ()))
        if k not in best or rank >= (best[k].value is not None, len(best[k].samples or ())):
            best[k] = r
    return list(best.values())


def latest(rows: list[Row]) -> list[Row]:
    """Rows of the newest result file per (machine, env): one snapshot of the suite."""
    newest: dict[tuple[str, str], int] = {}
    for r in rows:
        k = (r.machine, r.env)
        newest[k] = max(newest.get(k, 0), r.date)
    return [r for r in rows if r.date == newest[(r.machine, r.env)]]
