"""cpbench.report.stability on crafted samples: known spread, outliers, two modes, too few or too
short samples, and detection limits that agree with asv's own compare rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cpbench.report import stability as st


def _normal(sd: float, n: int = 10, median: float = 1.0, seed: int = 0) -> np.ndarray:
    """``n`` samples with exactly the normal quantiles of spread ``sd`` (relative), shuffled."""
    from scipy.stats import norm

    q = norm.ppf((np.arange(n) + 0.5) / n)
    return np.random.default_rng(seed).permutation(median * (1 + sd * q))


@pytest.mark.parametrize("sd", [0.005, 0.02, 0.1])
def test_robust_cv_recovers_the_spread_of_normal_samples(sd: float) -> None:
    assert st.robust_cv(_normal(sd, n=200)) == pytest.approx(sd, rel=0.05)


def test_robust_cv_ignores_a_few_outliers_the_plain_cv_does_not() -> None:
    s = np.concatenate([_normal(0.01, 18), [3.0, 4.0]])
    assert st.robust_cv(s) < 0.02 < np.std(s) / np.median(s)
    assert st.count_outliers(s) == 2 and st.worst_ratio(s) == pytest.approx(4.0, rel=0.02)
    r = st.assess(s)
    assert not r.stable and any(x.startswith("outlier: worst sample 3.99x") for x in r.reasons)


def test_bimodal_two_groups_but_not_one_group_with_an_outlier() -> None:
    assert st.is_bimodal([1.0, 1.01, 0.99, 1.0, 1.02, 1.5, 1.51, 1.49, 1.5, 1.52])
    assert not st.is_bimodal(_normal(0.02, 10))
    assert not st.is_bimodal([1.0, 1.01, 0.99, 1.0, 1.02, 1.0, 1.01, 0.99, 1.0, 3.0])  # one outlier
    assert "bimodal: two groups of samples" in st.assess([1.0] * 5 + [1.3] * 5).reasons


def test_stable_samples_have_no_reasons_and_asv_flags_just_above_its_factor() -> None:
    r = st.assess(_normal(0.005, 10, median=0.5))
    assert r.stable and r.n == 10 and r.median == pytest.approx(0.5, rel=0.01)
    assert st.ASV_FACTOR < r.detection_limit <= st.ASV_FACTOR + 0.005


def test_noisier_samples_have_a_higher_detection_limit() -> None:
    limits = [st.detection_limit(_normal(sd, 10)) for sd in (0.01, 0.1, 0.3)]
    assert limits[0] < limits[1] < limits[2]
    assert "noisy: robust CV" in st.assess(_normal(0.1, 10)).reasons[0]


def test_detection_limit_agrees_with_asv_compare_rule() -> None:
    """Just below the limit asv does not flag the scaled samples, at the limit it does."""
    s = _normal(0.15, 10)
    lim = st.detection_limit(s)
    assert math.isfinite(lim) and lim > st.ASV_FACTOR
    assert st.asv_flags(s, s * lim) and not st.asv_flags(s, s * (lim - 0.01))
    assert not st.asv_flags(s, s)  # A/A: the same samples are never flagged


def test_too_few_and_too_short() -> None:
    r = st.assess([0.5])
    assert r.n == 1 and any(x.startswith("too few samples (1)") for x in r.reasons)
    assert r.detection_limit == pytest.approx(st.ASV_FACTOR, abs=0.003)  # one sample: asv uses the factor only
    short = st.assess(_normal(0.005, 10, median=2e-4))
    assert any(x.startswith("too short: 0.2 ms") for x in short.reasons)
    assert st.assess(_normal(0.005, 10, median=2e-4), min_sample_s=None).stable  # memory: no duration
    assert st.assess([]).reasons == ("no samples",)


def test_stage_table_shows_each_stage_detection_limit() -> None:
    """The report's stage table carries asv's detection limit of each timing: from the recorded
    samples, blank for a single (quick) sample, wider for noisier samples."""
    from cpbench.report.results import Row
    from cpbench.report.stage_table import stage_table, to_markdown

    rng = np.random.default_rng(3)

    def row(stage: str, size: str, samples: list[float]) -> Row:
        return Row(f"bench_preprocess.{stage}.time_stage", {"dataset": "synthetic", "size": size},
                   float(np.median(samples)), "seconds", "c0ffee", 1, "vm", "env", samples)

    rows = [row("Convert", "512", list(rng.normal(0.01, 0.0001, 12))),
            row("Convert", "1024", list(rng.normal(0.04, 0.006, 12))),
            row("Normalize", "512", [0.005])]
    stages = [("bench_preprocess.Convert", "2 convert"), ("bench_preprocess.Normalize", "3 normalize")]
    steady, noisy, quick = stage_table(rows, "cpu", stages)
    assert 1.1 < steady["flag_from"] < 1.12 < noisy["flag_from"] and quick["flag_from"] is None
    md = to_markdown([steady, noisy, quick], "cpu")
    assert "| asv flags from |" in md and "| 3 normalize | 512 | 0.005 |  |" in md
