"""Training curves side by side: do two measurements rise and fall together over epochs, and where does
each one peak? Input is a DataFrame indexed by epoch with one column per named curve (NaN = not measured)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from clipdash.evals.stats import pearson


def curve_correlations(curves: pd.DataFrame) -> pd.DataFrame:
    """Pearson matrix between the curves, each pair over the epochs where both have a value.

    NaN where a pair shares fewer than 3 epochs or one side is constant there (the diagonal included).
    """
    names = list(curves.columns)
    matrix = pd.DataFrame(np.nan, index=pd.Index(names), columns=pd.Index(names), dtype=float)
    for i, first in enumerate(names):
        for second in names[i:]:
            present = curves[first].notna() & curves[second].notna()
            value = pearson(curves.loc[present, first], curves.loc[present, second])
            matrix.loc[first, second] = matrix.loc[second, first] = value
    return matrix


def peak_epochs(curves: pd.DataFrame) -> pd.Series:
    """The epoch of each curve's maximum (the first one on ties); NaN for a curve with no values."""
    return pd.Series(
        {name: curves[name].idxmax() if curves[name].notna().any() else math.nan for name in curves.columns},
        dtype=float,
    )


def minmax_normalise(series: pd.Series) -> pd.Series:
    """Rescale to 0..1 (NaN stays NaN), so curves in different units share one axis.

    A constant or empty series has no range and becomes all NaN.
    """
    low, high = series.min(), series.max()
    if not high > low:
        return pd.Series(np.nan, index=series.index, name=series.name, dtype=float)
    return (series - low) / (high - low)
