"""Known answers for the shared correlations and array helpers."""

import math
import warnings

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from clipdash.evals.stats import as_numpy, l2_normalise, pearson, spearman


def test_pearson_hand_computed():
    # x deviations (-1, 0, 1), y deviations (-4/3, -1/3, 5/3): r = 3 / sqrt(2 * 42/9) = 9 / sqrt(84)
    assert pearson([1, 2, 3], [1, 2, 4]) == pytest.approx(9 / math.sqrt(84))
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_spearman_hand_computed():
    # rank differences (-2, 1, 1): 1 - 6 * 6 / (3 * (9 - 1)) = -0.5
    assert spearman([1, 2, 3], [3, 1, 2]) == pytest.approx(-0.5)
    # ties take average ranks: x ranks (1, 2.5, 2.5, 4) vs (1, 2, 3, 4) -> 4.5 / sqrt(4.5 * 5)
    assert spearman([1, 2, 2, 3], [10, 20, 30, 40]) == pytest.approx(4.5 / math.sqrt(22.5))
    # monotone but not linear: Spearman 1, Pearson below 1
    assert spearman([1, 2, 3, 4], [1, 4, 9, 100]) == pytest.approx(1.0)
    assert pearson([1, 2, 3, 4], [1, 4, 9, 100]) < 0.9


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-50, 50), st.integers(-50, 50)), min_size=3, max_size=60))
def test_correlations_agree_with_scipy(pairs):
    # integers in a small range make ties (average ranks) and constant sides (NaN) common
    x, y = (np.asarray(side, dtype=float) for side in zip(*pairs, strict=True))
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        assert math.isnan(pearson(x, y)) and math.isnan(spearman(x, y))
        return
    assert pearson(x, y) == pytest.approx(scipy.stats.pearsonr(x, y).statistic, abs=1e-12)
    assert spearman(x, y) == pytest.approx(scipy.stats.spearmanr(x, y).statistic, abs=1e-12)


@pytest.mark.parametrize("correlation", [pearson, spearman])
@pytest.mark.parametrize(
    ("x", "y"),
    [
        ([1, 1, 1], [1, 2, 3]),  # constant side
        ([1, 2, 3], [5, 5, 5]),
        ([1, 2], [1, 2]),  # fewer than 3 pairs
        ([], []),
        ([1, 2, np.nan, 4], [1, 2, 3, 4]),  # a missing value
    ],
)
def test_undefined_correlations_are_nan_without_warnings(correlation, x, y):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(correlation(x, y))


@pytest.mark.parametrize("correlation", [pearson, spearman])
def test_near_constant_input_gives_a_value_without_warnings(correlation):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = correlation([1.0, 1.0 + 1e-12, 1.0 + 2e-12], [1.0, 2.0, 3.0])
    assert value == pytest.approx(1.0, abs=1e-3)


def test_length_mismatch_raises():
    with pytest.raises(ValueError, match="differ in length"):
        pearson([1, 2, 3], [1, 2])


def test_torch_tensors_are_accepted():
    assert pearson(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 4.0])) == pytest.approx(
        9 / math.sqrt(84)
    )
    assert as_numpy(torch.ones(2, requires_grad=True)).dtype == np.float64


def test_l2_normalise_rows_and_zero_row():
    rows = l2_normalise([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(rows[0], [0.6, 0.8])
    assert np.isnan(rows[1]).all()
    with pytest.raises(ValueError, match="2-D"):
        l2_normalise([1.0, 2.0])
