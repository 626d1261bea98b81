"""Correlations and array helpers shared by the measurements.

Correlations return NaN (never 0) when undefined: fewer than 3 pairs, a constant side, or a non-finite
value, so a degenerate checkpoint shows up as a gap rather than as a plausible number.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

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


def _correlation(x: Any, y: Any, statistic: Callable[[np.ndarray, np.ndarray], float]) -> float:
    x_array, y_array = _paired(x, y)
    if x_array.size < MIN_PAIRS or not (np.isfinite(x_array).all() and np.isfinite(y_array).all()):
        return math.nan
    if np.all(x_array == x_array[0]) or np.all(y_array == y_array[0]):
        return math.nan
    return statistic(x_array, y_array)


def _pearson_r(x: np.ndarray, y: np.ndarray) -> float:
    x_centred, y_centred = x - x.mean(), y - y.mean()
    r = np.dot(x_centred, y_centred) / (np.linalg.norm(x_centred) * np.linalg.norm(y_centred))
    return float(np.clip(r, -1.0, 1.0))


def _spearman_r(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import rankdata  # imported here: SciPy costs half a second, and Curves needs none of it

    return _pearson_r(rankdata(x), rankdata(y))


def pearson(x: Any, y: Any) -> float:
    """Pearson linear correlation (PLCC) of paired values; NaN when undefined (see module docstring)."""
    return _correlation(x, y, _pearson_r)


def spearman(x: Any, y: Any) -> float:
    """Spearman rank correlation (SRCC, ties get average ranks); NaN when undefined."""
    return _correlation(x, y, _spearman_r)


def mean_per_class_recall(pred: Any, labels: Any, n_classes: int) -> float:
    """Mean over classes present in ``labels`` of the recall (fraction of that class predicted as it).

    Classes absent from ``labels`` have no recall and are left out, like sklearn's
    ``balanced_accuracy_score`` that CLIP_benchmark uses. NaN for empty input.
    """
    predictions, targets = as_numpy(pred, np.int64).ravel(), as_numpy(labels, np.int64).ravel()
    if predictions.shape != targets.shape:
        raise ValueError(f"{predictions.size} predictions for {targets.size} labels")
    if targets.size and (targets.min() < 0 or targets.max() >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}")
    support = np.bincount(targets, minlength=n_classes)
    correct = np.bincount(targets[predictions == targets], minlength=n_classes)
    present = support > 0
    if not present.any():
        return math.nan
    return float(np.mean(correct[present] / support[present]))
