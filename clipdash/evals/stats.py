"""Correlations and array helpers shared by the measurements.

Correlations return NaN (never 0) when undefined: fewer than 3 pairs, a constant side, or a non-finite
value, so a degenerate checkpoint shows up as a gap rather than as a plausible number.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.stats

MIN_PAIRS = 3


def as_numpy(values: Any, dtype: type = np.float64) -> np.ndarray:
    """``values`` (a numpy array, a list or a torch tensor on any device) as a numpy array of ``dtype``."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=dtype)


def l2_normalise(features: Any) -> np.ndarray:
    """Rows scaled to unit length; an all-zero row becomes NaN (its direction is undefined)."""
    array = as_numpy(features)
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D array of row vectors, got shape {array.shape}")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, array / norms, np.nan)


def _paired(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    x_array, y_array = as_numpy(x).ravel(), as_numpy(y).ravel()
    if x_array.shape != y_array.shape:
        raise ValueError(f"paired inputs differ in length: {x_array.size} vs {y_array.size}")
    return x_array, y_array


def _correlation(x: Any, y: Any, statistic: Callable[[np.ndarray, np.ndarray], Any]) -> float:
    x_array, y_array = _paired(x, y)
    if x_array.size < MIN_PAIRS or not (np.isfinite(x_array).all() and np.isfinite(y_array).all()):
        return math.nan
    if np.all(x_array == x_array[0]) or np.all(y_array == y_array[0]):
        return math.nan
    with warnings.catch_warnings():
        # Near-constant input still has a defined value; scipy's precision warning is not for the user.
        warnings.simplefilter("ignore", scipy.stats.NearConstantInputWarning)
        return float(statistic(x_array, y_array).statistic)


def pearson(x: Any, y: Any) -> float:
    """Pearson linear correlation (PLCC) of paired values; NaN when undefined (see module docstring)."""
    return _correlation(x, y, scipy.stats.pearsonr)


def spearman(x: Any, y: Any) -> float:
    """Spearman rank correlation (SRCC, ties get average ranks); NaN when undefined."""
    return _correlation(x, y, scipy.stats.spearmanr)
