"""ratio_with_ci: the geometric-mean ratio, its t-interval on logs and the t-test."""

from __future__ import annotations

import numpy as np
import pytest

from pairbench.results.analysis.ratios import ratio_with_ci

ROUNDS = 8
NOISE = 0.05


def _rounds(typical: float, seed: int) -> list[float]:
    return list(typical * np.random.default_rng(seed).lognormal(0.0, NOISE, ROUNDS))


def test_a_a_interval_contains_one() -> None:
    estimate = ratio_with_ci(_rounds(5.0, 1), _rounds(5.0, 2))
    assert estimate.ci_low is not None and estimate.ci_high is not None
    assert estimate.ci_low <= 1.0 <= estimate.ci_high
    assert estimate.ratio == pytest.approx(1.0, abs=0.1)
    assert estimate.p_value is not None and estimate.p_value > 0.05


def test_a_two_fold_shift_is_detected() -> None:
    estimate = ratio_with_ci(_rounds(10.0, 3), _rounds(5.0, 4))
    assert estimate.ratio == pytest.approx(2.0, rel=0.1)
    assert estimate.ci_low is not None and estimate.ci_low > 1.0
    assert estimate.p_value is not None and estimate.p_value < 0.01
    assert estimate.rounds == ROUNDS


def test_unpaired_two_fold_shift_is_detected() -> None:
    estimate = ratio_with_ci(_rounds(10.0, 5), _rounds(5.0, 6)[:5], paired=False)
    assert estimate.ratio == pytest.approx(2.0, rel=0.1)
    assert estimate.ci_low is not None and estimate.ci_low > 1.0
    assert estimate.rounds == 5


def test_the_estimate_is_the_geometric_mean_with_a_t_interval() -> None:
    bad, good = [4.0, 6.0, 5.0], [2.0, 2.0, 2.0]
    estimate = ratio_with_ci(bad, good)
    logs = np.log(np.array(bad) / np.array(good))
    assert estimate.ratio == pytest.approx(float(np.exp(logs.mean())))
    half = 4.302653 * logs.std(ddof=1) / np.sqrt(3)  # t(0.975, df=2)
    assert estimate.ci_low == pytest.approx(float(np.exp(logs.mean() - half)), rel=1e-5)
    assert estimate.ci_high == pytest.approx(float(np.exp(logs.mean() + half)), rel=1e-5)


def test_fewer_rounds_give_a_wider_interval() -> None:
    bad, good = _rounds(3.0, 7), _rounds(2.0, 8)
    few, many = ratio_with_ci(bad[:3], good[:3]), ratio_with_ci(bad, good)
    assert few.ci_high / few.ci_low > many.ci_high / many.ci_low


def test_extra_variance_widens_an_unpaired_interval() -> None:
    bad, good = _rounds(3.0, 7), _rounds(2.0, 8)
    plain = ratio_with_ci(bad, good, paired=False)
    wide = ratio_with_ci(bad, good, paired=False, extra_log_variance=0.01)
    assert wide.ratio == plain.ratio and wide.ci_low < plain.ci_low and wide.ci_high > plain.ci_high
    assert wide.p_value > plain.p_value


def test_one_round_gives_a_ratio_but_no_interval() -> None:
    estimate = ratio_with_ci([4.0], [2.0])
    assert (estimate.ratio, estimate.ci_low, estimate.ci_high, estimate.p_value) == (
        2.0,
        None,
        None,
        None,
    )
    assert estimate.rounds == 1


def test_identical_rounds_give_a_point_interval() -> None:
    estimate = ratio_with_ci([4.0, 4.0, 4.0], [2.0, 2.0, 2.0])
    assert (estimate.ratio, estimate.ci_low, estimate.ci_high) == pytest.approx((2.0, 2.0, 2.0))
    assert estimate.p_value == 0.0  # every round shows the same difference


def test_all_values_tied_give_p_one() -> None:
    assert ratio_with_ci([2.0, 2.0], [2.0, 2.0]).p_value == 1.0


def test_no_data_gives_no_numbers() -> None:
    estimate = ratio_with_ci([], [])
    assert estimate.ratio is None and estimate.rounds == 0


def test_paired_samples_must_match() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        ratio_with_ci([1.0, 2.0], [1.0])


def test_as_dict_is_json_ready() -> None:
    assert set(ratio_with_ci([2.0, 2.2], [1.0, 1.0]).as_dict()) == {
        "ratio",
        "ci_low",
        "ci_high",
        "p_value",
        "rounds",
    }
