"""Questions 4 and 5 from their studies, on crafted asv results with planted effects: the fastest setting
that keeps AP@0.5 within 0.01 is found (not one that loses more, not one inside the noise), the cost of a
channel is recovered, and without the studies each answer names the command that measures it."""

from __future__ import annotations

from pathlib import Path

from crafted import _grid, _write

from cpbench.cli import main
from cpbench.report import studies

SIZES = ["256", "512"]
NOISY = [0.85, 1.15, 0.9, 1.1, 1.0, 0.95, 1.05]  # recorded samples spread +-15 %
#: setting -> (time as a multiple of the default's, AP@0.5): fast_batch_1 is the fastest of all but loses
#: 0.03 AP; niter_50 is faster and keeps AP; overlap_0.05 is 3 % faster, inside the noise
PLANTED = {"default": (1.0, 0.930), "niter_50": (0.6, 0.925), "overlap_0.05": (0.97, 0.930),
           "augment": (3.0, 0.935), "fast_batch_1": (0.4, 0.900)}
#: stage peaks, bytes (500 MB unless named): fast_batch_1 is the leanest but loses accuracy
PEAK = {"fast_batch_1": 100e6, "overlap_0.05": 200e6}
#: seconds of the network at 2 channels per size, and what one more channel adds (fraction of that)
NET_S, PER_CHANNEL = {"256": 1.0, "512": 4.0}, 0.05


def _world(results: Path, fast: bool = True, channels: bool = True) -> None:
    eval_ = (["dataset", "size", "device", "model", "diameter"], [["synthetic"], SIZES, ["cpu"], ["reference"], ["13.0"]])
    benches = {"bench_eval.EndToEnd.time_stage": _grid(*eval_, lambda p: 2.0 * NET_S[p["size"]]),
               "bench_network.Network.time_stage": _grid(
                   ["dataset", "size", "device"], [["synthetic"], SIZES, ["cpu"]], lambda p: NET_S[p["size"]])}
    st = (["size", "device", "model", "setting"], [SIZES, ["cpu"], ["reference"], list(PLANTED)])
    if fast:
        benches["bench_eval.FastSettings.time_stage"] = _grid(
            *st, lambda p: [2.0 * NET_S[p["size"]] * PLANTED[p["setting"]][0] * s for s in NOISY])
        benches["bench_eval.FastSettings.track_ap50"] = _grid(*st, lambda p: PLANTED[p["setting"]][1])
        benches["bench_eval.FastSettings.track_stage_peak_bytes"] = _grid(*st, lambda p: PEAK.get(p["setting"], 500e6))
    ch = (["size", "device", "nchan"], [SIZES, ["cpu"], ["1", "2", "3", "4", "8"]])
    if channels:
        benches["bench_network.InputChannels.time_stage"] = _grid(
            *ch, lambda p: [NET_S[p["size"]] * (1 + PER_CHANNEL * (int(p["nchan"]) - 2)) * s for s in NOISY])
    _write(results, "a" * 40, 1_700_000_000_000, benches)


def _report(tmp_path: Path, **kw: bool) -> str:
    results, out = tmp_path / "results", tmp_path / "out"
    _world(results, **kw)
    assert main(["report", "--results", str(results), "--out", str(out)]) == 0
    return (out / "guidelines.md").read_text()


def test_fastest_setting_that_keeps_accuracy(tmp_path: Path) -> None:
    from cpbench.report.results import load_rows

    _world(tmp_path)
    by = studies.fast_settings(load_rows(tmp_path), "cpu")
    assert list(by) == SIZES
    best = studies.fastest_keeping_accuracy(by["512"])
    assert best is not None and best.name == "niter_50"  # not fast_batch_1 (loses 0.03), not overlap (noise)
    overlap = next(s for s in by["512"] if s.name == "overlap_0.05")
    assert not overlap.time.changed
    md = _report(tmp_path / "r")
    q4 = next(line for line in md.splitlines() if line.startswith("- (4)"))
    assert "Fastest with AP@0.5 within 0.01: niter_50 (niter=50)" in q4 and "x0.60" in q4
    assert "fast_batch_1 (resample=False, tile_overlap=0.05, niter=100, batch_size=1) x0.40" in q4
    assert "Least memory with AP@0.5 within 0.01: overlap_0.05 (tile_overlap=0.05), stage peak 200 MB" in q4
    assert "## Fast settings: time, memory and accuracy (cpu)" in md and "fast_settings_cpu.png" in md
    assert (tmp_path / "r" / "out" / "fast_settings_cpu.png").stat().st_size > 10_000


def test_no_setting_is_chosen_when_every_faster_one_loses_accuracy(tmp_path: Path) -> None:
    from cpbench.report.results import load_rows

    _world(tmp_path)
    settings = [s for s in studies.fast_settings(load_rows(tmp_path), "cpu")["512"] if s.name != "niter_50"]
    assert studies.fastest_keeping_accuracy(settings) is None


def test_cost_of_a_channel_is_recovered(tmp_path: Path) -> None:
    from cpbench.report.results import load_rows

    _world(tmp_path)
    costs = studies.channel_costs(load_rows(tmp_path), "cpu")
    assert [(c.stage, c.size) for c in costs] == [("bench_network.InputChannels", s) for s in SIZES]
    for c in costs:
        assert abs(c.per_channel / c.seconds[2] - PER_CHANNEL) < 1e-6  # type: ignore[operator]
        assert c.against_two[8].changed and not c.against_two[3].changed  # +30 % flagged, +5 % in the noise
    md = _report(tmp_path / "r")
    q5 = next(line for line in md.splitlines() if line.startswith("- (5)"))
    assert "5 network at 512 px, 4 s with 2 channels" in q5 and "one more channel adds +5.0%" in q5


def test_without_the_studies_the_answers_name_their_commands(tmp_path: Path) -> None:
    md = _report(tmp_path, fast=False, channels=False)
    assert "(4) Fast settings (cpu): not measured in these results." in md
    assert f"question 4: {studies.FAST_COMMAND}" in md
    assert f"question 5 (input channels): {studies.CHANNEL_COMMAND}" in md
    assert "The number of input channels was not varied." in md


def test_recorded_runs_missing_or_unreadable(tmp_path: Path, capsys) -> None:
    from cpbench.report.recorded import PROFILE_COMMAND, SEGMENT_COMMAND

    md = _report(tmp_path)
    assert SEGMENT_COMMAND in md and PROFILE_COMMAND in md  # nothing recorded: the commands that would record it
    bad = tmp_path / "x.seams.json"
    bad.write_text("{not json")
    capsys.readouterr()
    assert main(["report", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "o2"),
                 "--seams", str(bad)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "x.seams.json: cannot read it as a seam report" in err[0]
    assert not (tmp_path / "o2").exists()  # nothing written
    assert main(["report", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "o3"),
                 "--profiles", str(tmp_path / "nowhere")]) != 0
    assert "--profiles" in capsys.readouterr().err


def test_the_report_does_not_depend_on_the_order_of_results(tmp_path: Path) -> None:
    """The same measurement in two result directories: the one with more samples counts, whichever comes first."""
    a, b = tmp_path / "a", tmp_path / "b"
    _world(a)
    eval_ = (["dataset", "size", "device", "model", "diameter"], [["synthetic"], SIZES, ["cpu"], ["reference"], ["13.0"]])
    _write(b, "a" * 40, 1_700_000_000_000, {"bench_eval.EndToEnd.time_stage": _grid(
        *eval_, lambda p: [3.0 * NET_S[p["size"]] * s for s in NOISY])})  # 3x, 7 samples: this one counts
    docs = []
    for order in ((a, b), (b, a)):
        out = tmp_path / f"out-{len(docs)}"
        assert main(["report", *[x for d in order for x in ("--results", str(d))], "--out", str(out)]) == 0
        docs.append([line for line in (out / "guidelines.md").read_text().splitlines()
                     if not line.startswith("Generated ")])
    assert docs[0] == docs[1]
    assert "measured: 3 s at 256 px, 12 s at 512 px" in "\n".join(docs[0])
