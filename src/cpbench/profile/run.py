"""A deep-dive: plain run, Scalene run of the stage call only, offline HTML and ``summary.md``.

1. **plain** — the driver (:mod:`cpbench.profile.driver`) without Scalene: the benchmark's own setup,
   one warm-up call, then stage calls until they add up to ``min_seconds`` (at most ``max_repeats``):
   the stage time without a profiler;
2. **scalene** — the same driver under ``scalene run --off --profile-all --profile-only PATTERNS``
   (profiling switched on around each stage call only; ``--cpu-only`` in cpu mode), calls until the
   profiled time reaches ``min_seconds`` (at most ``max_repeats``); overhead = ratio of the medians;
3. ``scalene view --standalone``: an HTML file with every asset embedded (opens with no network);
4. :mod:`cpbench.profile.report` writes ``summary.md`` (+ ``summary.json``).

Everything goes to ``OUT/<stage>-<size>-<mode>-<UTC time>/``, written under a ``.partial`` name and
renamed when complete.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cpbench.errors import UserError
from cpbench.profile.target import Target, snake

#: files whose lines a profile keeps: Cellpose and the cpbench stage adapters calling it
PROFILE_ONLY = "cellpose,cpbench/stages"
#: Scalene options per mode. Naming ``--memory`` alone turns Scalene's GPU and library profilers off (by
#: default it runs torch.profiler over the whole program, imports and setup included), and no stack
#: collection bounds Scalene's own footprint; the allocation sampling window is sized from the stage's
#: peak (:func:`sampling_window`). See README, "Deep-dives". CUDA runs add ``--gpu``.
SCALENE_OPTS = {"cpu": ["--cpu-only"], "memory": ["--memory", "--no-stacks"], "both": ["--memory", "--no-stacks"]}
#: allocation samples a stage's peak should give; the window's bounds, bytes
SAMPLES_PER_PEAK, MIN_WINDOW, MAX_WINDOW = 100, 1 << 20, 64 << 20
#: exit status of the driver when the benchmark skips the combination
SKIPPED = 3


@dataclass(frozen=True)
class Options:
    """How long to profile: calls until ``min_seconds`` of stage time (at most ``max_repeats``);
    ``timeout_s`` bounds each child process; ``python``: the interpreter (its Cellpose is profiled)."""

    mode: str = "cpu"
    min_seconds: float = 5.0
    max_repeats: int = 20
    timeout_s: float = 3600.0
    python: str = sys.executable


class DriverFailed(UserError):
    """A child run failed: its log (in the ``.partial`` folder, kept) says why."""


def check_scalene(python: str) -> str:
    """Scalene's version in ``python``; UserError saying how to install it when missing."""
    try:
        out = subprocess.run([python, "-c", "from importlib.metadata import version; print(version('scalene'))"],
                             capture_output=True, text=True)
    except OSError as exc:
        raise UserError(f"cannot run --python {python} ({exc.strerror}); give a Python interpreter") from None
    if out.returncode != 0:
        raise UserError(f"Scalene is not installed for {python}; install it: {python} -m pip install 'scalene>=2.0'")
    return out.stdout.strip()


def _driver(root: Path, spec: dict, path: Path, cmd_prefix: list[str], timeout_s: float, log: Path) -> dict:
    path.write_text(json.dumps(spec))
    from cpbench.profile import driver

    cmd = [*cmd_prefix, driver.__file__, *(["---"] if len(cmd_prefix) > 1 else []), str(path)]
    with log.open("a") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        try:
            proc = subprocess.run(cmd, cwd=root, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout_s,
                                  env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                      [str(Path(driver.__file__).parents[2]), os.environ.get("PYTHONPATH", "")])})
        except subprocess.TimeoutExpired:
            raise UserError(f"the profiled stage ran past {timeout_s:.0f} s; use a smaller size or --timeout") from None
    record = json.loads(Path(spec["record"]).read_text()) if Path(spec["record"]).is_file() else {}
    if proc.returncode == SKIPPED:
        reason = str(record.get("skipped", "?")).removeprefix("skipped: ")
        raise UserError(f"{spec['bench']} skips these parameters here: {reason}")
    if proc.returncode != 0 or not record:
        tail = log.read_text().strip().splitlines()[-1:] or ["no output"]
        raise DriverFailed(f"the {'profiled' if spec['profile'] else 'plain'} run failed (exit {proc.returncode}): "
                        f"{tail[0]}; full log: {log}")
    return record


def sampling_window(stage_peak_bytes: int) -> int:
    """Scalene's allocation sampling window, bytes: the stage peak / :data:`SAMPLES_PER_PEAK`, within
    1 MiB (Scalene's default) and 64 MiB. Scalene records a sample each time this many bytes have been
    allocated: a fixed 1 MiB window gives a 2 GB stage ~2000 samples a call and balloons the profile."""
    return int(min(max(stage_peak_bytes // SAMPLES_PER_PEAK, MIN_WINDOW), MAX_WINDOW))


def scalene_options(mode: str, device: str, window: int = MIN_WINDOW) -> list[str]:
    """Scalene's options for ``mode`` on ``device`` (GPU time and memory on CUDA); ``window``: the
    allocation sampling window in bytes (memory modes)."""
    gpu = ["--gpu"] if device.startswith("cuda") else []
    sampling = ["--allocation-sampling-window", str(window)] if mode != "cpu" else []
    return [*SCALENE_OPTS[mode], *sampling, *gpu]


def run_name(target: Target, mode: str) -> str:
    """Folder name of a deep-dive: ``<stage>-<size>-<other non-default params>-<mode>-<UTC time>``."""
    p = target.params
    bits = [snake(target.bench.rsplit(".", 1)[1]), p.get("size", ""), p.get("device", "").replace("cpu", "")]
    return "-".join(b for b in [*bits, mode, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())] if b)


def deep_dive(target: Target, root: Path, out: Path, opts: Options) -> Path:
    """Run the deep-dive of ``target`` (see the module docstring); returns the run folder."""
    from tqdm import tqdm

    from cpbench.profile import report

    version = check_scalene(opts.python)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to {out} ({exc.strerror}); choose another --out") from None
    final = out / run_name(target, opts.mode)
    work = final.with_name(final.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    log = work / "driver.log"
    base = {"root": str(root), "bench": target.bench, "params": list(target.values),
            "min_seconds": opts.min_seconds, "max_repeats": opts.max_repeats}
    steps = tqdm(total=4, desc=f"profile {target.label()}", unit="step")
    try:
        steps.set_postfix_str("plain run (setup, warm-up, timed calls)")
        plain = _driver(root, {**base, "repeats": None, "profile": False, "record": str(work / "plain.json"),
                               "stage_peak": opts.mode != "cpu"},
                        work / "plain-spec.json", [opts.python], opts.timeout_s, log)
        steps.update()
        steps.set_postfix_str(f"Scalene ({plain['repeats']} plain calls made {opts.min_seconds:g} s)")
        device = target.params.get("device", "cpu")
        options = scalene_options(opts.mode, device, sampling_window(plain.get("stage_peak_bytes", 0)))
        scalene = [opts.python, "-m", "scalene", "run", "--off", "--profile-all", "--profile-only", PROFILE_ONLY,
                   *options, "-o", str(work / "profile.json")]
        t0 = time.perf_counter()
        prof = _driver(root, {**base, "repeats": None, "profile": True,
                              "record": str(work / "profiled.json")},
                       work / "profiled-spec.json", scalene, opts.timeout_s, log)
        wall = time.perf_counter() - t0
        steps.update()
        steps.set_postfix_str("offline HTML")
        html = subprocess.run([opts.python, "-m", "scalene", "view", "--standalone", "profile.json"], cwd=work,
                              capture_output=True, text=True)
        if html.returncode != 0 or not (work / "scalene-profile.html").is_file():
            raise UserError(f"scalene view --standalone failed: {(html.stderr or html.stdout).strip()[-200:]}")
        (work / "scalene-profile.html").rename(work / "profile.html")
        steps.update()
        steps.set_postfix_str("summary")
        profile = json.loads((work / "profile.json").read_text())
        run = {"target": target.label(), "bench": target.bench, "method": target.method,
               "params": target.params, "mode": opts.mode, "scalene": version, "plain": plain,
               "profiled": prof, "scalene_wall_s": wall, "profile_only": PROFILE_ONLY,
               "scalene_options": options, "min_seconds": opts.min_seconds,
               "max_repeats": opts.max_repeats}
        (work / "run.json").write_text(json.dumps(run, indent=1))
        report.write_summary(work, run, profile)
        steps.update()
    except BaseException as exc:
        steps.close()
        if not isinstance(exc, DriverFailed):
            shutil.rmtree(work, ignore_errors=True)
        raise
    steps.close()
    if final.exists():
        shutil.rmtree(final)
    work.rename(final)
    return final
