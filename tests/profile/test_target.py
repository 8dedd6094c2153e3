"""What a user names (asv's printed name, its name(params) form, a site address, a stage name) resolves to
one combination of the real benchmarks; what does not exist is refused with the valid choices."""

from __future__ import annotations

from pathlib import Path

import pytest

from cpbench.errors import UserError
from cpbench.measure.sweep import discover_benchmarks
from cpbench.profile import target

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def benches() -> target.Benchmarks:
    return discover_benchmarks(ROOT)


def test_asv_name_with_params_and_defaults(benches: target.Benchmarks) -> None:
    t = target.resolve("bench_masks.FollowFlows.time_stage", ["size=512", "niter=50"], benches)
    assert t.bench == "bench_masks.FollowFlows" and t.method == "time_stage"
    assert t.params == {"dataset": "synthetic", "size": "512", "flows": "network", "niter": "50",
                        "cellprob_threshold": "0.0", "device": "cpu"}
    assert t.label() == "bench_masks.FollowFlows.time_stage('synthetic', '512', 'network', 50, 0.0, 'cpu')"


def test_every_form_a_user_sees_resolves_to_the_same(benches: target.Benchmarks) -> None:
    t = target.resolve("bench_masks.FollowFlows.time_stage", ["size=2048", "cellprob_threshold=2.0"], benches)
    assert target.resolve(t.label(), [], benches) == t  # asv run --bench / asv compare form
    site = "bench_masks.FollowFlows.time_stage?p-size=%272048%27&p-cellprob_threshold=2.0"
    assert target.resolve(site, [], benches) == t  # the asv publish site's address
    stage = target.resolve("follow_flows", ["size=2048", "cellprob_threshold=2.0"], benches)
    assert stage.values == t.values and stage.method is None
    assert target.resolve("run_net", [], benches).bench == "bench_network.Network"
    assert target.resolve("compute_masks", [], benches).bench == "bench_masks.MaskRecovery"
    assert target.resolve("eval", ["device=cpu"], benches).bench == "bench_eval.EndToEnd"
    assert target.resolve("get_masks", [], benches, device="cuda").params["device"] == "cuda"
    assert target.resolve("network", [], benches).params["size"] == target.DEFAULT_SIZE


@pytest.mark.parametrize(("name", "params", "message"), [
    ("bench_masks.NoSuch.time_stage", [], "no benchmark or stage 'bench_masks.NoSuch.time_stage'; stages: .*follow_flows"),
    ("bench_masks.FollowFlows.time_nothing", [], "has no benchmark 'time_nothing'; it has: .*time_stage"),
    ("follow_flows", ["nither=50"], "has no parameter nither; its parameters: dataset, size, flows, niter"),
    ("follow_flows", ["niter=7"], "niter=7 is not in its grid; valid: 50, 100, 200, 400"),
    ("follow_flows", ["niter"], "write NAME=VALUE"),
    ("bench_masks.FollowFlows.time_stage('synthetic', '512')", [], "takes 6 parameters"),
])
def test_what_does_not_exist_is_refused_with_the_choices(benches: target.Benchmarks, name: str,
                                                         params: list[str], message: str) -> None:
    with pytest.raises(UserError, match=message):
        target.resolve(name, params, benches)


def test_device_only_where_the_stage_has_one(benches: target.Benchmarks) -> None:
    with pytest.raises(UserError, match="bench_preprocess.Convert has no device parameter"):
        target.resolve("convert", [], benches, device="cuda")
    assert target.resolve("convert", [], benches, device="cpu").bench == "bench_preprocess.Convert"


def test_snake_case() -> None:
    assert [target.snake(n) for n in ("FollowFlows", "FlowQC", "EndToEnd", "Network")] == \
        ["follow_flows", "flow_qc", "end_to_end", "network"]
