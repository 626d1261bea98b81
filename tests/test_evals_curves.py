"""Known answers for comparing training curves."""

import math

import numpy as np
import pandas as pd
import pytest

from clipdash.evals.curves import curve_correlations, minmax_normalise, peak_epochs

CURVES = pd.DataFrame(
    {
        "a": [1.0, 2.0, 3.0, 4.0],
        "double": [2.0, 4.0, 6.0, 8.0],
        "reverse": [4.0, 3.0, 2.0, 1.0],
        "gappy": [1.0, np.nan, 2.0, 4.0],
        "flat": [1.0, 1.0, 1.0, 1.0],
    },
    index=pd.Index([1, 2, 3, 4], name="epoch"),
)


def test_curve_correlations_hand_computed():
    matrix = curve_correlations(CURVES)
    assert list(matrix.index) == list(matrix.columns) == list(CURVES.columns)
    assert matrix.loc["a", "double"] == pytest.approx(1.0)
    assert matrix.loc["a", "reverse"] == pytest.approx(-1.0)
    # over epochs 1, 3, 4 only: a = (1, 3, 4), gappy = (1, 2, 4); r = (39/9) / (42/9) = 39/42
    assert matrix.loc["a", "gappy"] == pytest.approx(39 / 42)
    assert matrix.loc["gappy", "a"] == matrix.loc["a", "gappy"]
    assert matrix.loc["gappy", "gappy"] == pytest.approx(1.0)
    assert matrix.loc["flat"].isna().all() and matrix["flat"].isna().all()


def test_curve_correlations_too_few_shared_epochs():
    curves = pd.DataFrame({"x": [1.0, 2.0, np.nan, np.nan], "y": [np.nan, 1.0, 2.0, 3.0]})
    assert math.isnan(curve_correlations(curves).loc["x", "y"])


def test_peak_epochs():
    curves = CURVES.assign(tie=[1.0, 3.0, 3.0, 0.0], missing=np.nan)
    peaks = peak_epochs(curves)
    assert peaks[["a", "reverse", "gappy", "tie"]].tolist() == [4, 1, 4, 2]  # first maximum on ties
    assert math.isnan(peaks["missing"])


def test_minmax_normalise():
    series = pd.Series([2.0, np.nan, 4.0, 6.0], index=[1, 2, 3, 4])
    expected = pd.Series([0.0, np.nan, 0.5, 1.0], index=[1, 2, 3, 4])
    pd.testing.assert_series_equal(minmax_normalise(series), expected)
    assert minmax_normalise(pd.Series([3.0, 3.0])).isna().all()
    assert minmax_normalise(pd.Series([], dtype=float)).empty
