"""The sweeps name exactly the combinations they promise, in asv's own matching."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from cpbench.errors import UserError
from cpbench.measure import sweep

CLASSES = {
    "bench_x.Net": (["dataset", "size", "device", "batch_size", "augment"],
                    [["'synthetic'", "'synthetic-packed'", "'LUNG-1-LN'"], ["'256'", "'1024'", "'4096'", "'full'"], ["'cpu'", "'cuda'"],
                     ["1", "8", "32"], ["False", "True"]]),
    "bench_x.Write": (["size", "compression"], [["'1024'", "'4096'"], ["'none'", "'zlib'"]]),
    "bench_x.Read": (["dataset", "method"], [["'synthetic'"], ["'a'", "'b'"]]),
    "bench_x.Fast": (["size", "device", "model", "setting"], [["'256'", "'512'", "'1024'"], ["'cpu'", "'cuda'"],
                                                               ["'reference'", "'nuclei'"], ["'default'", "'fast'"]]),
    "bench_x.Chan": (["size", "device", "nchan"], [["'256'", "'1024'"], ["'cpu'", "'cuda'"], ["1", "2", "8"]]),
}


def _asv_names(classes: dict) -> list[str]:
    """What asv matches --bench against: ``name(param0, param1, ...)`` (asv.benchmarks.Benchmarks)."""
    out = []
    for cls, (_, values) in classes.items():
        for combo in itertools.product(*values):
            out.append(f"{cls}.time_stage({', '.join(combo)})")
    return out


def _selected(regexes: list[str], classes: dict) -> set[str]:
    return {n for n in _asv_names(classes) if any(re.search(r, n) for r in regexes)}


def test_scaling_selects_sizes_at_defaults() -> None:
    chosen = sweep.combinations("scaling", CLASSES, sizes=["4096", "full"])
    assert _selected(sweep.bench_regexes(chosen), CLASSES) == {
        "bench_x.Net.time_stage('synthetic', '4096', 'cpu', 8, False)",
        "bench_x.Net.time_stage('synthetic', 'full', 'cpu', 8, False)",
        "bench_x.Write.time_stage('4096', 'zlib')",
    }


def test_params_varies_one_parameter_at_a_time() -> None:
    chosen = sweep.combinations("params", CLASSES, size="1024")
    assert _selected(sweep.bench_regexes(chosen), CLASSES) == {
        "bench_x.Net.time_stage('synthetic', '1024', 'cpu', 8, False)",  # the baseline
        "bench_x.Net.time_stage('synthetic', '1024', 'cpu', 1, False)",
        "bench_x.Net.time_stage('synthetic', '1024', 'cpu', 32, False)",
        "bench_x.Net.time_stage('synthetic', '1024', 'cpu', 8, True)",
        "bench_x.Write.time_stage('1024', 'none')",
        "bench_x.Write.time_stage('1024', 'zlib')",
    }
    only_time = sweep.bench_regexes(chosen, methods="time_stage")
    assert not re.search(only_time[0], "bench_x.Net.peakmem_stage('synthetic', '1024', 'cpu', 8, False)")


def test_density_takes_every_synthetic_density_at_each_size_and_nothing_else() -> None:
    chosen = sweep.combinations("density", CLASSES, sizes=["256", "1024"])
    assert _selected(sweep.bench_regexes(chosen), CLASSES) == {
        f"bench_x.Net.time_stage({d}, {s}, 'cpu', 8, False)"
        for d in ("'synthetic'", "'synthetic-packed'") for s in ("'256'", "'1024'")
    }  # Write has no dataset, Read no size; LUNG-1-LN is not a density


def test_density_segments_blockwise_in_small_blocks_and_the_contents_at_those_sizes_too() -> None:
    dens = ["'synthetic'", "'synthetic-packed'"]
    classes = {"bench_segment.Blockwise": (["dataset", "size", "block"],
                                           [dens, ["'512'", "'1024'", "'2048'", "'4096'"], ["'256'", "'2048'"]]),
               sweep.DENSITY_CONTENTS: (["dataset", "size"], [dens, ["'256'", "'1024'", "'2048'", "'4096'"]])}
    chosen = sweep.combinations("density", classes, sizes=["256", "1024"])
    assert chosen["bench_segment.Blockwise"] == [(d, s, "'256'") for d in dens for s in ("'512'", "'1024'", "'2048'")]
    assert chosen[sweep.DENSITY_CONTENTS] == [(d, s) for d in dens for s in ("'256'", "'1024'", "'2048'")]
    scaling = sweep.combinations("scaling", classes, sizes=["1024", "2048", "4096"])  # a block smaller than the crop
    assert scaling["bench_segment.Blockwise"] == [("'synthetic'", "'4096'", "'2048'")]


def test_models_takes_every_model_at_each_size_and_the_rest_at_defaults() -> None:
    classes = {**CLASSES, "bench_x.Eval": (["dataset", "size", "device", "model", "diameter"],
                                           [["'synthetic'", "'LUNG-1-LN'"], ["'256'", "'1024'"], ["'cpu'", "'cuda'"],
                                            ["'reference'", "'random'", "'nuclei'"], ["13.0", "30.0"]])}
    chosen = sweep.combinations("models", classes, sizes=["256", "1024"])
    assert set(chosen) == {"bench_x.Eval"}  # the study classes (Fast) are their own sweep
    assert chosen["bench_x.Eval"] == [("'synthetic'", s, "'cpu'", m, "13.0") for s in ("'256'", "'1024'")
                                      for m in ("'reference'", "'random'", "'nuclei'")]


def test_studies_are_their_own_sweeps() -> None:
    fast = sweep.combinations("fast", CLASSES, sizes=["256", "512"])
    assert _selected(sweep.bench_regexes(fast), CLASSES) == {
        f"bench_x.Fast.time_stage({s}, 'cpu', 'reference', {v})" for s in ("'256'", "'512'") for v in ("'default'", "'fast'")}
    chan = sweep.combinations("channels", CLASSES, sizes=["1024"])
    assert _selected(sweep.bench_regexes(chan), CLASSES) == {f"bench_x.Chan.time_stage('1024', 'cpu', {n})" for n in "128"}
    for kind in ("scaling", "params", "density"):  # the other sweeps leave the study classes out
        assert not {"bench_x.Fast", "bench_x.Chan"} & set(sweep.combinations(kind, CLASSES, sizes=["256", "1024"]))


def test_real_benchmarks_discovered_with_full_grids() -> None:
    classes = sweep.discover(Path(__file__).resolve().parents[2])
    names, values = classes["bench_network.Network"]
    assert names[:3] == ["dataset", "size", "device"] and "'8192'" in values[1] and "'full'" in values[1]
    chosen = sweep.combinations("scaling", classes)
    assert {"bench_network.Network", "bench_eval.EndToEnd", "bench_masks.MaskRecovery"} <= set(chosen)
    assert not {"bench_eval.FastSettings", "bench_network.InputChannels"} & set(chosen)
    assert len(sweep.combinations("fast", classes)["bench_eval.FastSettings"]) == 2 * 11  # 256, 512 x 11 settings
    assert {k: len(v) for k, v in sweep.combinations("channels", classes).items()} == {
        "bench_eval.EndToEndChannels": 15, "bench_network.InputChannels": 15}  # 3 sizes x 5 counts
    blockwise = chosen.pop("bench_segment.Blockwise")  # a crop larger than the default 2048 px block: 4096
    assert len(blockwise) == 1 and all(len(c) == 6 for c in chosen.values())  # 256 ... 4096 and the whole frame
    assert {k: len(v) for k, v in sweep.combinations("density", classes).items()
            if k in ("bench_segment.Blockwise", sweep.DENSITY_CONTENTS)} == {
        "bench_segment.Blockwise": 12, sweep.DENSITY_CONTENTS: 16}  # 4 densities x 3 sizes; x 4 (256 ... 2048)
    assert set(sweep.combinations("models", classes)) == {"bench_eval.EndToEnd", "bench_network.Network"}


def test_bad_sweep_and_config(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown sweep"):
        sweep.combinations("everything", CLASSES)
    conf = tmp_path / "asv.conf.json"
    conf.write_text('{\n // comment\n "results_dir": ".asv/results",\n "html_dir": ".asv/html"}')
    out = sweep.sweep_config(conf, ".asv/results-sweep", tmp_path / "asv.sweep.json")
    assert '"results_dir": ".asv/results-sweep"' in out.read_text() and "// comment" in out.read_text()
    conf.write_text("{}")
    with pytest.raises(UserError, match="results_dir"):
        sweep.sweep_config(conf, "x", tmp_path / "y.json")
