"""`cpbench plan`: the survey's tissue map against the full-resolution truth (a mostly-glass slide and a
densely packed one), the projection arithmetic, a plan end to end on a small slide whose recommended
command is then run and checked (`cpbench plan --check`), and bad input: one line, nothing written."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import tifffile

from cpbench.cli import main
from cpbench.plan import project as pj
from cpbench.plan.sample import Sample, Warmup

DIAMETER = 13.0


def _slide(path: Path, size: int, **scene: float) -> Path:
    from cpbench.synth.params import SceneParams
    from cpbench.synth.writer import OutputOptions, generate

    generate(path, (1, size, size), SceneParams(**scene), OutputOptions(tile=128), progress=False)  # type: ignore[arg-type]
    return path


@pytest.fixture(scope="module")
def slides(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("plan")
    return {"glass": _slide(d / "glass.ome.tif", 1024, tissue_fraction=0.12, tissue_scale=300.0, seed=3),
            "dense": _slide(d / "dense.ome.tif", 1024, density=150.0, tissue_fraction=1.0, seed=4),
            "sparse": _slide(d / "sparse.ome.tif", 1024, density=30.0, tissue_fraction=1.0, seed=4),
            "small": _slide(d / "small.ome.tif", 600, seed=5)}


def _true_empty(path: Path, side: int) -> set[tuple[int, int]]:
    """Blocks cpbench segment would skip: core max below 5 % of the full-resolution 1st-99th percentile range."""
    img = tifffile.imread(path)
    lo, hi = np.percentile(img, (1, 99))
    thr = lo + 0.05 * (hi - lo)
    out = set()
    for r in range(-(-img.shape[0] // side)):
        for c in range(-(-img.shape[1] // side)):
            if img[r * side:(r + 1) * side, c * side:(c + 1) * side].max() < thr:
                out.add((r, c))
    return out


def test_the_survey_finds_the_glass_without_skipping_tissue(slides: dict[str, Path]) -> None:
    from cpbench.plan.survey import survey
    from cpbench.segment.blocks import make_grid

    sv = survey(slides["glass"], 0, 128)
    assert sv.level > 0  # a low level, not the full one
    predicted = {idx for idx, _, _, empty in sv.blocks(make_grid(sv.shape, 128, 26)) if empty}
    truth = _true_empty(slides["glass"], 128)
    print(f"bare glass: {len(predicted)} predicted, {len(truth)} true of 64 blocks")
    assert len(truth) >= 16  # the slide really is mostly glass
    assert predicted <= truth  # never skips a block that holds tissue
    assert len(predicted) >= 0.6 * len(truth)


def test_the_survey_signal_grows_with_the_nuclei(slides: dict[str, Path]) -> None:
    from cpbench.plan.survey import survey

    dense, sparse = survey(slides["dense"], 0, 128), survey(slides["sparse"], 0, 128)
    assert float(dense.low.mean()) > 1.3 * float(sparse.low.mean())


def test_samples_are_stratified_by_signal(slides: dict[str, Path]) -> None:
    from cpbench.plan.survey import sample_windows

    from cpbench.plan.survey import survey

    sv = survey(slides["glass"], 0, 128)
    grid, picks = sample_windows(sv, 128, 26, 3)
    signals = [p.signal for p in picks]
    assert len(picks) == 3 and signals == sorted(signals) and signals[0] < signals[-1]
    for p in picks:  # whole read windows of tissue
        b = grid.at(*p.index)
        assert b.read_shape == (180, 180) and not sv.window_stats(b.core)[1]


def test_block_shapes_and_makespan() -> None:
    assert pj.block_shapes((5, 7), 4) == [(4, 4), (4, 3), (1, 4), (1, 3)]
    assert pj.makespan([5, 4, 3, 3, 3], 1) == 18
    assert pj.makespan([5, 4, 3, 3, 3], 2) == 10  # longest first, to the least busy: 5+3 | 4+3+3
    assert pj.makespan([5, 4, 3, 3, 3], 5) == 5 and pj.makespan([], 3) == 0


def _sample(signal: float, seconds: float, peak: float, px: int = 10_000) -> Sample:
    return Sample((0, 0), (100, px // 100), signal, seconds, 0.01, int(peak), 0, int(signal * 100), int(signal * px),
                  int(px / 10))


def test_fit_and_predict() -> None:
    warm = Warmup(2.0, 1.5, int(800e6), int(60e6), _sample(0.2, 0.5, 850e6, px=2_500))
    # three windows of one size across the signal, one four times larger: 0.5 s fixed + (1e-4 + 2e-4 x signal) s/px
    samples = [_sample(g, 0.5 + (1e-4 + 2e-4 * g) * 10_000, 900e6) for g in (0.1, 0.2, 0.4)]
    samples.append(_sample(0.2, 0.5 + (1e-4 + 2e-4 * 0.2) * 40_000, 1000e6, px=40_000))
    costs = pj.fit(warm, samples, 40.0)
    assert costs.fixed == pytest.approx(0.5) and costs.rate == pytest.approx((1e-4, 2e-4))
    assert costs.spread == (-pj.MIN_SPREAD, pj.MIN_SPREAD)  # the model is exact here: the least spread
    assert costs.memory == (800e6, pytest.approx(200e6 / 40_000))  # through the floor and the largest window
    assert costs.block_seconds(0.3, 90_000, False) == pytest.approx(0.5 + 1.6e-4 * 90_000)
    assert costs.block_seconds(0.3, 90_000, True) == pytest.approx(0.04 / 70_000 * 90_000)  # its read only
    machine = pj.Machine(cores=4, threads=2, device="cpu", cluster_seconds=3.0, worker_start_seconds=2.5,
                         client_bytes=int(150e6), nanny_bytes=int(60e6))
    blocks = [pj.Block((100, 100), 0.3, False)] * 6 + [pj.Block((100, 100), 0.0, True)] * 2
    one, two, four = (pj.predict(costs, blocks, 100, w, machine) for w in (1, 2, 4))
    assert one.blocks == 8 and one.empty == 2
    assert one.wall.low <= one.wall.value <= one.wall.high
    assert two.wall.value < one.wall.value  # two workers on four cores: twice the throughput
    assert four.wall.value >= two.wall.value * 0.95  # four workers of two threads share four cores
    assert four.total_peak.value > two.total_peak.value > one.total_peak.value
    assert pj.fits(two, two.total_peak.high + 1) and not pj.fits(four, two.total_peak.high + 1)
    assert pj.worker_floor(costs, machine, warm) == 150e6 + 60e6 + 850e6  # client, nanny, the warm-up's peak
    # block sides within 4x the pixels of the largest window sampled (1076 px: 1024 + 2 x 26)
    assert pj.side_candidates(26, 1076 * 1076, None) == [512, 1024, 2048]
    assert pj.side_candidates(26, 1076 * 1076, 4096) == [4096]


@pytest.fixture(scope="module")
def planned(slides: dict[str, Path]) -> tuple[Path, dict]:
    out = slides["small"].with_name("small.plan.json")
    rc = main(["plan", str(slides["small"]), "--diameter", str(DIAMETER), "--samples", "2", "--sample-block", "128",
               "--block", "256", "--out", str(out), "--no-progress", "--memory", "16"])
    assert rc == 0
    return out, json.loads(out.read_text())


def test_a_plan_says_what_to_run_and_what_it_costs(planned: tuple[Path, dict]) -> None:
    out, doc = planned
    rec = doc["recommended"]
    assert rec["block"] == 256 and rec["blocks"] == 9 and rec["workers"] >= 1
    for key in ("wall_seconds", "worker_peak_bytes", "client_peak_bytes", "total_peak_bytes"):
        r = rec[key]
        assert 0 < r["low"] <= r["value"] <= r["high"], key
    assert rec["total_peak_bytes"]["high"] <= 16e9
    # two strata of 128 px windows and one window of the planned block's side (how cost grows with the block)
    assert [s["read"] for s in doc["samples"]] == [[180, 180], [180, 180], [308, 308]]
    assert all(s["seconds"] > 0 and s["peak_bytes"] > 200e6 for s in doc["samples"])
    assert doc["warmup"]["floor_bytes"] > 200e6  # torch, Cellpose and the model
    assert doc["whole_image"]["fits"] is True
    assert doc["command"].startswith("cpbench segment ") and "--block 256" in doc["command"]
    assert doc["planning_seconds"] > 0
    assert not out.with_name(f".{out.name}.work").exists()  # the samples' work folder is removed


def test_the_recommended_command_runs_and_is_checked(planned: tuple[Path, dict], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out, doc = planned
    monkeypatch.chdir(tmp_path)
    argv = shlex.split(doc["command"])[1:] + ["--no-progress"]
    assert main(argv) == 0
    seams = next(tmp_path.glob("*.seams.json"))
    recorded = json.loads(seams.read_text())
    assert recorded["plan"]["command"] == doc["command"] and recorded["wall_seconds"] > 0
    capsys.readouterr()
    assert main(["plan", "--check", str(seams)]) == 0
    table = capsys.readouterr().out
    print(table)
    for quantity in ("wall time", "blocks", "bare-glass blocks", "nuclei", "worker peak", "client peak"):
        assert quantity in table
    from cpbench.plan.check import compare

    rows = {r["quantity"]: r for r in compare(doc, recorded)}
    assert rows["blocks"]["difference_percent"] == 0.0
    # a run on another grid has no prediction in the plan: one line that says how to plan it
    recorded["block"] = 128
    seams.write_text(json.dumps(recorded))
    assert main(["plan", "--check", str(seams)]) == 2
    assert "--block 128" in capsys.readouterr().err


def test_denser_tissue_predicts_more_nuclei(slides: dict[str, Path], tmp_path: Path) -> None:
    nuclei = {}
    for name in ("dense", "sparse"):
        out = tmp_path / f"{name}.plan.json"
        assert main(["plan", str(slides[name]), "--diameter", str(DIAMETER), "--samples", "2", "--sample-block", "128",
                     "--block", "256", "--out", str(out), "--no-progress"]) == 0
        nuclei[name] = json.loads(out.read_text())["recommended"]["nuclei"]
    print(nuclei)
    assert nuclei["dense"] > 1.5 * nuclei["sparse"]


def _strips(path: Path) -> Path:
    tifffile.imwrite(path, np.full((300, 300), 1000, np.uint16))
    return path


def _blank(path: Path) -> Path:
    with tifffile.TiffWriter(path) as tw:
        tw.write(np.zeros((1, 512, 512), np.uint16), tile=(128, 128), subifds=1, metadata={"axes": "CYX"})
        tw.write(np.zeros((1, 128, 128), np.uint16), tile=(128, 128), subfiletype=1)
    return path


@pytest.mark.parametrize("make, args, words", [
    (_strips, [], "is not a tiled TIFF (stored in strips): a plan would have to read the whole channel (0.00018 GB)"),
    (None, ["--channel", "3"], "--channel 3 is out of range"),
    (_blank, [], "no tissue found"),
    (None, ["--scheduler", "tcp://127.0.0.1:9"], "cannot reach the dask scheduler tcp://127.0.0.1:9"),
    (None, ["--memory", "0.05", "--samples", "2", "--sample-block", "128", "--block", "256"], "below one worker's floor"),
    (None, ["--samples", "1"], "--samples 1: give 2 or more"),
])
def test_bad_input_is_one_line_and_writes_nothing(slides: dict[str, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str], make, args, words) -> None:
    slide = make(tmp_path / "bad.ome.tif") if make else slides["small"]
    out = tmp_path / "p.json"
    rc = main(["plan", str(slide), "--diameter", str(DIAMETER), "--out", str(out), "--no-progress", *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and words in err, err
    assert not out.exists() and not any(tmp_path.glob(".p.json*"))


def test_the_committed_validation_table_regenerates(capsys: pytest.CaptureFixture[str]) -> None:
    """reports/example/plan/validation.md is `cpbench plan --validation` of the runs committed beside it."""
    folder = Path(__file__).resolve().parents[2] / "reports" / "example" / "plan"
    assert main(["plan", "--validation", str(folder)]) == 0
    table = capsys.readouterr().out
    assert table == (folder / "validation.md").read_text()
    assert sum(line.startswith("| ") for line in table.splitlines()) >= 1 + 3  # the header and every slide
