"""A plan from a survey: start (or join) the cluster, run the sampled blocks, fit, project every
candidate block side and worker count, recommend, and say it (``plan.json`` and the terminal's text).
Units: seconds, bytes, pixels."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from cpbench.errors import UserError
from cpbench.plan import project as pj
from cpbench.plan.sample import Sample, run_samples, sized, warmup_plan
from cpbench.plan.survey import Survey, sample_windows


def _table_bytes_per_nucleus(plan: Any, samples: list[Sample]) -> float:
    """Bytes of a block's object table per nucleus, from the sampled tables (what the client holds)."""
    from cpbench.segment.tasks import load_table

    size = n = 0
    for s in samples:
        t, _ = load_table(plan, s.index)
        size += sum(a.nbytes for a in (t.ids, t.area, t.cy, t.cx, t.cut))
        n += len(t.ids)
    return size / n if n else 40.0


#: the larger window's side unless --block is smaller, px
SIZE_SIDE = 1024


def size_side(side: int, block: int | None) -> int:
    """The side of the one larger window (how cost grows with the block): --block when it lies between the
    sampled side and :data:`SIZE_SIDE`, else :data:`SIZE_SIDE`, else twice the sampled side."""
    if block is not None and side < block <= SIZE_SIDE:
        return block
    return SIZE_SIDE if side < SIZE_SIDE else 2 * side


def _command(args: argparse.Namespace, side: int, workers: int, threads: int, batch: int, plan: Path) -> str:
    parts = ["cpbench segment", str(args.image), f"--channel {args.channel}",
             f"--out {args.image.name.split('.')[0]}.labels.ome.tif", f"--block {side}"]
    if args.overlap != "auto":
        parts.append(f"--overlap {args.overlap}")
    if args.diameter is not None:
        parts.append(f"--diameter {args.diameter:g}")
    if args.model != "reference":
        parts.append(f"--model {args.model}")
    if args.device != "cpu":
        parts.append(f"--device {args.device}")
    parts += [f"--batch-size {batch}", f"--threads {threads}"]
    parts.append(f"--scheduler {args.scheduler}" if args.scheduler else f"--workers {workers}")
    parts.append(f"--plan {plan}")
    return " ".join(parts)


def _blocks(sv: Survey, side: int, overlap: int) -> list[pj.Block]:
    from cpbench.segment.blocks import make_grid

    return [pj.Block(shape, sig, empty) for _, shape, sig, empty in sv.blocks(make_grid(sv.shape, side, overlap))]


def _run_dict(p: pj.RunPrediction) -> dict[str, Any]:
    return {"block": p.block, "workers": p.workers, "blocks": p.blocks, "empty_blocks": p.empty,
            "wall_seconds": p.wall.as_dict("s"), "block_seconds": p.block_seconds.as_dict("s"),
            "worker_peak_bytes": p.worker_peak.as_dict("bytes"), "client_peak_bytes": p.client_peak.as_dict("bytes"),
            "total_peak_bytes": p.total_peak.as_dict("bytes"), "nuclei": round(p.nuclei),
            "output_bytes": round(p.output_bytes), "extrapolation": round(p.extrapolation, 2)}


def make_plan(sv: Survey, args: argparse.Namespace, overlap: int, threads: int, memory: float, out: Path,
              started: float) -> tuple[dict[str, Any], str]:
    """Sample on the cluster, then project (see :mod:`cpbench.plan.project`); (plan.json's content, text)."""
    from cpbench.segment import cluster as dcluster
    from cpbench.segment.run import EMPTY_BELOW, plan_for
    from cpbench.segment.tasks import process_peak_bytes

    side = args.sample_block
    _, picks = sample_windows(sv, side, overlap, args.samples)
    big = size_side(side, args.block)
    _, (big_pick,) = sample_windows(sv, big, overlap, 1)
    work = out.with_name(f".{out.name}.work")
    shutil.rmtree(work, ignore_errors=True)
    eval_kw = {} if args.batch_size is None else {"batch_size": args.batch_size}
    base = plan_for(Path(sv.image), sv.channel, side, overlap, args.model, args.diameter, args.device, work, eval_kw)
    lo, hi = sv.lowhigh
    base = replace(base, lowhigh=(lo, hi), empty_below=lo + EMPTY_BELOW * (hi - lo))
    batch = int(dict(base.eval_kw).get("batch_size", 8))
    mid = picks[len(picks) // 2]
    small, widx = warmup_plan(base, mid.index)
    jobs = [(base, c.index, c.signal) for c in picks] + [(sized(base, big, "size"), big_pick.index, big_pick.signal)]
    t0 = time.perf_counter()
    client, cluster = dcluster.start(args.scheduler, 1, threads)
    cluster_s = time.perf_counter() - t0
    try:
        info = client.scheduler_info()["workers"]
        warm, samples = run_samples(client, jobs, (small, widx, sv.window_stats(small.grid.at(*widx).read)[0]),
                                    progress=not args.no_progress)
        per_nucleus = _table_bytes_per_nucleus(base, samples[:-1])
        client_bytes = process_peak_bytes()  # this process so far: imports, the survey, a client and scheduler
    finally:
        dcluster.stop(client, cluster)
        shutil.rmtree(work, ignore_errors=True)
    costs = pj.fit(warm, samples, per_nucleus)
    remote = args.scheduler is not None
    first_extra = max(0.0, warm.first_seconds - costs.block_seconds(warm.sample.signal, warm.sample.pixels, False))
    machine = pj.Machine(
        cores=(len(info) * threads) if remote else (os.cpu_count() or 1), threads=threads, device=args.device,
        cluster_seconds=0.0 if remote else cluster_s, worker_start_seconds=warm.load_seconds + first_extra,
        client_bytes=client_bytes, nanny_bytes=warm.nanny_bytes)
    limit = args.workers or (len(info) if remote else pj.local_workers(machine))
    runs: list[pj.RunPrediction] = []
    best: pj.RunPrediction | None = None
    for s in pj.side_candidates(overlap, costs.largest_sampled, args.block):
        blocks = _blocks(sv, s, overlap)
        preds = [pj.predict(costs, blocks, s, w, machine) for w in range(1, limit + 1)]
        runs += preds
        ok = [p for p in preds if pj.fits(p, memory)] if args.workers is None else \
             [p for p in preds[-1:] if pj.fits(p, memory)]
        for p in ok:
            if best is None or (p.wall.value, p.total_peak.value) < (best.wall.value, best.total_peak.value):
                best = p
    floor = pj.worker_floor(costs, machine, warm)
    if best is None:
        if memory < floor:
            raise UserError(f"--memory {memory / 1e9:.3g} GB is below one worker's floor: the client and one worker "
                            f"holding the model need {floor / 1e9:.2f} GB here (measured); give at least that")
        want = f"{args.workers} worker(s)" if args.workers else "one worker"
        raise UserError(f"no block side fits {memory / 1e9:.3g} GB with {want}: the smallest run needs "
                        f"{min(r.total_peak.high for r in runs) / 1e9:.2f} GB; give more --memory, fewer --workers or "
                        "a smaller --block")
    signal = float(np.mean(sv.low))
    w_time, w_peak, w_extra = pj.whole_image(costs, sv.shape, signal, machine)
    whole_fits = w_peak.high + machine.client_bytes <= memory
    command = _command(args, best.block, best.workers, threads, batch, out)
    planning = time.perf_counter() - started
    doc = {
        "version": 1, "image": sv.image, "channel": sv.channel, "shape": list(sv.shape), "dtype": sv.dtype,
        "tile": list(sv.tile), "file_bytes": sv.file_bytes,
        "survey": {"level": sv.level, "downsample": sv.downsample, "lowhigh": list(sv.lowhigh),
                   "tissue_signal": round(signal, 4)},
        "options": {"model": args.model, "diameter": args.diameter, "device": args.device, "overlap": overlap,
                    "threads": threads, "batch_size": batch, "scheduler": args.scheduler,
                    "memory_bytes": int(memory), "sample_block": side, "size_block": big},
        "machine": asdict(machine),
        "warmup": {**asdict(warm.sample), "load_seconds": warm.load_seconds, "first_seconds": warm.first_seconds,
                   "floor_bytes": warm.floor_bytes, "nanny_bytes": warm.nanny_bytes},
        "samples": [asdict(s) for s in samples],
        "costs": asdict(costs),
        "recommended": _run_dict(best),
        "runs": [_run_dict(r) for r in runs],
        "whole_image": {"seconds": w_time.as_dict("s"), "peak_bytes": w_peak.as_dict("bytes"),
                        "extrapolation": round(w_extra, 1), "fits": whole_fits},
        "floor_bytes": int(floor),
        "command": command,
        "planning_seconds": round(planning, 2),
    }
    return doc, describe(doc, best, runs, memory)


def describe(doc: dict[str, Any], best: pj.RunPrediction, runs: list[pj.RunPrediction], memory: float) -> str:
    """The plan for a person: the slide, the samples, the projection per worker count, whole-image
    eval, the recommendation and its command."""
    hs, hb = pj.human_seconds, pj.human_bytes
    y, x = doc["shape"]
    lines = [f"{Path(doc['image']).name}: {y} x {x} px ({y * x / 1e6:.1f} MP), channel {doc['channel']}, "
             f"surveyed at level {doc['survey']['level']} (1/{doc['survey']['downsample']:g}); "
             f"{len(doc['samples']) - 1} windows of {doc['options']['sample_block']} px and one of "
             f"{doc['options']['size_block']} px sampled on one warm worker"]
    for s in doc["samples"]:
        lines.append(f"  sample {tuple(s['index'])}: signal {s['signal']:.2f}, {s['seconds']:.1f} s, "
                     f"{s['nuclei']} nuclei, {s['cell_pixels'] / (s['read'][0] * s['read'][1]):.0%} cell pixels, "
                     f"worker peak {hb(s['peak_bytes'])}")
    lines.append(f"blocks of {best.block} px: {best.blocks} ({best.empty} bare glass, skipped); "
                 f"~{best.nuclei:,.0f} nuclei; output ~{hb(best.output_bytes)}")
    lines.append("workers  wall time (range)            worker peak   all processes   fits")
    for r in runs:
        if r.block != best.block:
            continue
        fit = "yes" if r.total_peak.high <= memory else "no"
        lines.append(f"{r.workers:>7}  {hs(r.wall.value):>8} ({hs(r.wall.low)}-{hs(r.wall.high)})".ljust(39)
                     + f"{hb(r.worker_peak.high):>11}   {hb(r.total_peak.high):>13}   {fit}")
    w = doc["whole_image"]
    lines.append(f"whole-image eval: ~{hs(w['seconds']['value'])} ({hs(w['seconds']['low'])}-{hs(w['seconds']['high'])}), "
                 f"peak ~{hb(w['peak_bytes']['high'])} ({'fits' if w['fits'] else 'does not fit'} "
                 f"{hb(memory)}; projected {w['extrapolation']:g}x beyond the largest window sampled)")
    lines.append(f"recommended: blocks of {best.block} px, batch size {doc['options']['batch_size']}, "
                 f"{best.workers} worker(s) of {doc['options']['threads']} threads: ~{hs(best.wall.value)} "
                 f"({hs(best.wall.low)}-{hs(best.wall.high)}), peak ~{hb(best.total_peak.high)} of {hb(memory)}"
                 + (f" (block read windows {best.extrapolation:.1f}x the sampled ones)" if best.extrapolation > 4 else ""))
    lines.append(f"planning took {doc['planning_seconds']:.0f} s; run it with:\n  {doc['command']}")
    return "\n".join(lines)


def to_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)) + "\n"
