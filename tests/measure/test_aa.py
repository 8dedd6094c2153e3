"""Real Cellpose stages at small sizes (256 px) on the suite's own Stage base class (its rounds,
warm-up, calls per sample and memory probes), measured through the real `asv run --record-samples`
at three commits: A, A' (A plus a comment: the same code) and B (A' with 20 ms more in Normalize).
A and A' are measured with their rounds interleaved, as the README tells users to compare two commits
(`asv continuous`, or `asv run`'s default `--interleave-rounds`; with `--python=same` asv cannot
interleave itself, so A and A' take turns, 3 rounds an `asv run -a rounds=3 --append-samples`): this
host's speed drifts over minutes, and two runs one after the other differed by 14 % (21.5 vs 24.4 ms,
follow_flows at 256 px, CI) where the code had not changed. Stock `asv compare` flags nothing between A and A' (the A/A
check) and flags the planted slowdown between A' and B (measured after them, in one run);
`cpbench stability` reads the samples and the change between the runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cpbench.measure.suite import Stage

pytestmark = pytest.mark.serial  # measures time and memory: run alone (make test)

ASV = [sys.executable, "-m", "asv"]

AA_BENCH = '''
import numpy as np
from cpbench import stages as cs
from cpbench.measure import suite as _b


def _discs(n, count=60, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n]
    lab = np.zeros((n, n), np.int32)
    for i in range(count):
        cy, cx, r = rng.uniform(10, n - 10), rng.uniform(10, n - 10), rng.uniform(5, 9)
        lab[((yy - cy) ** 2 + (xx - cx) ** 2 < r * r) & (lab == 0)] = i + 1
    return lab


class _Small(_b.Stage):
    version = "1"
    # one size, two stages (a short one, a long one; mask recovery, their chain, added 3.3 of 10 minutes): the
    # test's cost is 3 commits x 6 benchmarks x 6 rounds, ~33 s a round (CI's 30-minute budget)
    params = (["256"],)
    param_names = ["size"]

    def setup_cache(self):
        return "aa"  # inputs are made in prepare: nothing to cache


class Normalize(_Small):
    min_sample_s = _b.SHORT_SAMPLE_S  # as the suite's Normalize: several calls a sample

    def prepare(self, size):
        lab = _discs(int(size))
        img = (200 + 3000 * (lab > 0) + np.random.default_rng(1).normal(0, 30, lab.shape)).astype(np.uint16)
        self.x = cs.convert(img)

    def run(self):
        return cs.normalize(self.x, inplace=True)


class FollowFlows(_Small):
    def prepare(self, size):
        self.dP, self.cellprob = cs.ground_truth_flows(_discs(int(size)))

    def run(self):
        return cs.follow_flows(self.dP, self.cellprob)
'''


def _git(proj: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    subprocess.run(["git", *args], cwd=proj, check=True, env=env, capture_output=True)


def _head(proj: Path) -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=proj, check=True, capture_output=True,
                          text=True).stdout.strip()


ROUNDS = Stage.rounds  # 6 processes a benchmark
TURN = 3  # rounds of one commit before the other's: A A' A A' (the fewest asv runs that interleave)


def _run(proj: Path, *extra: str) -> None:
    res = subprocess.run([*ASV, "run", "--python=same", "--record-samples", "--set-commit-hash", _head(proj),
                          "--machine", "aabox", "--show-stderr", *extra], cwd=proj, capture_output=True,
                         text=True, timeout=900)
    assert res.returncode == 0 and "failed" not in res.stdout, res.stdout[-3000:] + res.stderr[-3000:]


@pytest.fixture(scope="module")
def aa_project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str, str]:
    """Commits A, A' (a comment more) and B (Normalize sleeps 20 ms more), measured with
    asv --record-samples: A and A' in turns of 3 rounds (6 rounds each), then B in one run of 2 rounds."""
    proj = tmp_path_factory.mktemp("aaproj")
    (proj / "benchmarks").mkdir()
    (proj / "benchmarks" / "__init__.py").write_text(
        "from cpbench.measure.suite import pin_threads\n\npin_threads()\n")
    (proj / "benchmarks" / "bench_aa.py").write_text(textwrap.dedent(AA_BENCH))
    conf = {"version": 1, "project": "aa", "repo": ".", "branches": ["main"], "benchmark_dir": "benchmarks",
            "results_dir": "results", "html_dir": "html", "environment_type": "virtualenv",
            "launch_method": "forkserver"}
    (proj / "asv.conf.json").write_text(json.dumps(conf))
    _git(proj, "init", "-q", "-b", "main")
    _git(proj, "add", ".")
    _git(proj, "commit", "-qm", "A")
    subprocess.run([*ASV, "machine", "--yes", "--machine", "aabox"], cwd=proj, check=True, capture_output=True)
    first = _head(proj)
    bench = proj / "benchmarks" / "bench_aa.py"
    bench.write_text(bench.read_text() + "# A/A: the same code, another commit\n")
    _git(proj, "commit", "-qam", "A': a comment")
    same = _head(proj)
    for _ in range(ROUNDS // TURN):
        for commit in (first, same):
            _git(proj, "checkout", "-q", commit)
            _run(proj, "-a", f"rounds={TURN}", "--append-samples")
    _git(proj, "checkout", "-q", "main")
    bench.write_text(bench.read_text().replace(
        "        return cs.normalize(self.x, inplace=True)",
        "        import time\n        time.sleep(0.02)\n        return cs.normalize(self.x, inplace=True)"))
    _git(proj, "commit", "-qam", "B: Normalize 20 ms slower")
    _run(proj, "-a", "rounds=2")  # a 5-10x slowdown needs no 6 rounds: 12 processes, not 36
    return proj, first, same, _head(proj)


def _flagged(proj: Path, a: str, b: str) -> list[str]:
    res = subprocess.run([*ASV, "compare", a, b, "--machine", "aabox", "--factor", "1.1"], cwd=proj,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    rows = [line for line in res.stdout.splitlines() if line.startswith("|") and "bench_aa." in line]
    assert len(rows) == 6  # 2 stages x (time, stage peak, process peak)
    return [r for r in rows if r.split("|")[1].strip() in ("+", "-", "x")]


def test_aa_compare_flags_nothing(aa_project: tuple[Path, str, str, str]) -> None:
    """The same code measured twice: stock `asv compare --factor 1.1` marks no time and no memory
    result of the 6 as changed (nor as incomparable)."""
    proj, a, same, _ = aa_project
    assert _flagged(proj, a, same) == []


def test_compare_flags_a_planted_slowdown(aa_project: tuple[Path, str, str, str]) -> None:
    """20 ms more in Normalize (5-10x its time here) is flagged as a regression by asv's compare rule."""
    proj, _, b, c = aa_project
    rows = _flagged(proj, b, c)
    flagged = {r.split("|")[-2].strip().replace("bench_aa.", ""): r.split("|")[1].strip() for r in rows}
    assert flagged.get("Normalize.time_stage('256')") == "+"


def test_timings_have_warm_samples_and_stability_reads_them(aa_project: tuple[Path, str, str, str],
                                                             tmp_path: Path) -> None:
    from cpbench.cli import main
    from cpbench.report.results import load_rows
    from cpbench.report.stability import stability_table

    proj, _, _, slow = aa_project
    rows = load_rows(proj / "results", "aabox")
    timings = [r for r in rows if r.measure == "time_stage" and r.commit != slow]  # B: 2 rounds
    assert timings and all(r.samples and len(r.samples) >= 6 for r in timings)  # 6 rounds, warm-up excluded
    table = stability_table(rows)
    assert {t["measure"] for t in table} == {"time_stage", "track_stage_peak_bytes", "peakmem_stage"}
    assert all(t["aa_change"] is not None for t in table)  # the earlier run was found
    assert main(["stability", "--results", str(proj / "results"), "--out", str(tmp_path), "--all"]) == 0
    md = (tmp_path / "stability_cpu.md").read_text()
    assert md.count("bench_aa.") == 6 and "| A/A change |" in md
