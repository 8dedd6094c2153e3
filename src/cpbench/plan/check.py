"""A finished ``cpbench segment`` run against its plan: per quantity, predicted (with its range) and
measured, and the difference in percent. Reads the run's seam report (``LABELS.seams.json``: wall
seconds, blocks, nuclei, each worker's and the client's peak) and the plan (``plan.json``, given or
recorded in the seam report by ``cpbench segment --plan``). Units: seconds, bytes."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cpbench.errors import UserError
from cpbench.plan.project import Range, all_processes, human_bytes, human_seconds


def _load(path: Path, what: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except FileNotFoundError:
        raise UserError(f"{path} does not exist: give the {what}") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable {what} ({exc})") from None


def prediction_for(plan: dict[str, Any], block: int, workers: int) -> dict[str, Any]:
    """The plan's run for ``block`` px blocks on ``workers`` workers."""
    for r in plan.get("runs", []):
        if r["block"] == block and r["workers"] == workers:
            return r  # type: ignore[no-any-return]
    have = sorted({(r["block"], r["workers"]) for r in plan.get("runs", [])})
    raise UserError(f"the plan has no prediction for blocks of {block} px on {workers} worker(s) (it has "
                    f"{', '.join(f'{b} px x {w}' for b, w in have) or 'none'}): plan again with --block {block} "
                    f"--workers {workers}")


def compare(plan: dict[str, Any], seams: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows (quantity, unit, predicted, low, high, measured, difference %) for a run and its plan."""
    if "wall_seconds" not in seams:
        raise UserError("the seam report records no wall time (written by an older cpbench segment): run again")
    pred = prediction_for(plan, int(seams["block"]), int(seams.get("cluster_workers", seams["outcome"]["workers"])))
    blocks = seams.get("blocks", [])
    worker_peak = max((b["worker_peak_bytes"] for b in blocks if not b.get("resumed")), default=0)
    measured = {
        "wall time": ("s", pred["wall_seconds"], seams["wall_seconds"]),
        "blocks": ("", {"value": pred["blocks"]}, seams["outcome"]["blocks"]),
        "bare-glass blocks": ("", {"value": pred["empty_blocks"]}, seams["outcome"]["empty"]),
        "nuclei": ("", {"value": pred["nuclei"]}, seams["outcome"]["labels"]),
        "worker peak": ("bytes", pred["worker_peak_bytes"], worker_peak),
        "client peak": ("bytes", pred["client_peak_bytes"], seams["peak_bytes"]["client"]),
    }
    rows = []
    for name, (unit, p, m) in measured.items():
        v = float(p["value"])
        rows.append({"quantity": name, "unit": unit, "predicted": v, "low": p.get("low"), "high": p.get("high"),
                     "measured": float(m), "difference_percent": round((v / m - 1) * 100, 1) if m else None})
    return rows


def _fmt(unit: str, v: float | None) -> str:
    if v is None:
        return ""
    return human_seconds(v) if unit == "s" else human_bytes(v) if unit == "bytes" else f"{v:,.0f}"


def render(rows: list[dict[str, Any]]) -> str:
    """A table: quantity, predicted (range), measured, predicted over measured."""
    out = ["quantity            predicted (range)                measured     predicted vs measured"]
    for r in rows:
        rng = f" ({_fmt(r['unit'], r['low'])}-{_fmt(r['unit'], r['high'])})" if r["low"] is not None else ""
        diff = "n/a" if r["difference_percent"] is None else f"{r['difference_percent']:+.1f} %"
        out.append(f"{r['quantity']:<19} {(_fmt(r['unit'], r['predicted']) + rng):<32} "
                   f"{_fmt(r['unit'], r['measured']):>10}     {diff}")
    return "\n".join(out)


def check_run(seams_path: Path, plan_path: Path | None) -> str:
    """``cpbench plan --check``: the table for a seam report and its plan."""
    seams = _load(seams_path, "seam report (LABELS.seams.json written by cpbench segment)")
    if plan_path is not None:
        plan = _load(plan_path, "plan (plan.json written by cpbench plan)")
    elif "plan" in seams:
        plan = seams["plan"]
    else:
        raise UserError(f"{seams_path} records no plan: give it with --plan PLAN.json")
    return render(compare(plan, seams))


def _pct(pred: float, meas: float) -> str:
    return f"{(pred / meas - 1) * 100:+.1f} %" if meas else "n/a"


def validation_table(folder: Path) -> str:
    """Markdown: every ``NAME.plan.json`` in ``folder`` with the run it planned (``NAME.labels.seams.json``,
    and ``NAME.rss.json`` from ``tools/peak_rss.py``: the whole process tree's peak), predicted vs measured
    (what ``tools/plan_validate.sh`` leaves)."""
    head = ("| slide | MP | blocks (bare glass) | nuclei, predicted / measured | wall time, predicted (range) | measured | "
            "difference | worker peak, predicted / measured | all processes' peak (sampled every 0.2 s), predicted / "
            "measured | planning, s (% of the run) |")
    rows = [head, "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"]
    for plan_path in sorted(folder.glob("*.plan.json")):
        name = plan_path.name[: -len(".plan.json")]
        seams_path, rss_path = folder / f"{name}.labels.seams.json", folder / f"{name}.rss.json"
        if not seams_path.exists():
            continue
        plan, seams = _load(plan_path, "plan"), _load(seams_path, "seam report")
        rss = _load(rss_path, "peak RSS record") if rss_path.exists() else None
        pred = prediction_for(plan, int(seams["block"]), int(seams.get("cluster_workers", seams["outcome"]["workers"])))
        wall, w = seams["wall_seconds"], pred["wall_seconds"]
        worker = max(b["worker_peak_bytes"] for b in seams["blocks"])
        wp = pred["worker_peak_bytes"]
        # every process together, from the plan's own parts (worker, client, the client's base, the worker's floor)
        tp = asdict(all_processes(Range(wp["value"], wp["low"], wp["high"]),
                                  Range(**{k: pred["client_peak_bytes"][k] for k in ("value", "low", "high")}),
                                  plan["machine"]["client_bytes"], plan["costs"]["memory"][0],
                                  plan["machine"]["nanny_bytes"], pred["workers"]))
        total_meas = rss["peak_rss_sum_mb"] * 1e6 if rss else None
        y, x = seams["shape"]
        rows.append(
            f"| {name} | {y * x / 1e6:.1f} | {seams['outcome']['blocks']} ({seams['outcome']['empty']}; predicted "
            f"{pred['empty_blocks']}) | {pred['nuclei']:,} / {seams['outcome']['labels']:,} | "
            f"{human_seconds(w['value'])} ({human_seconds(w['low'])}-{human_seconds(w['high'])}) | {human_seconds(wall)} | "
            f"**{_pct(w['value'], wall)}** | {human_bytes(wp['value'])} (up to {human_bytes(wp['high'])}) / "
            f"{human_bytes(worker)} (**{_pct(wp['value'], worker)}**) | {human_bytes(tp['value'])} (up to "
            f"{human_bytes(tp['high'])}) / "
            + (f"{human_bytes(total_meas)} (**{_pct(tp['value'], total_meas)}**)" if total_meas else "not recorded")
            + f" | {plan['planning_seconds']:.0f} ({plan['planning_seconds'] / wall:.1%}) |")
    intro = ("Predicted (`cpbench plan`) against measured (the command the plan printed, run under "
             "`tools/peak_rss.py`), one row per slide; generated by `cpbench plan --validation` from the files beside "
             "this one (`NAME.plan.json`, `NAME.labels.seams.json`, `NAME.rss.json`), which `tools/plan_validate.sh` "
             "wrote. Worker peak: the worker process's kernel high-water mark; all processes: their RSS summed, "
             "sampled every 0.2 s (a spike between two samples is missed). Planning: the whole `cpbench plan` "
             "command, as a share of the run's wall time.\n\n")
    return intro + "\n".join(rows) + "\n"
