"""Calibration of a classifier's softmax: reliability bins, expected calibration error (ECE), negative
log-likelihood (NLL), and temperature scaling (Guo et al. 2017) fitted by NLL on held-out logits.

The bins are computed here, not taken from torchmetrics, because they are stored to draw reliability
diagrams and torchmetrics returns only the error; the ECE computed from them equals torchmetrics'
``multiclass_calibration_error(norm="l1")`` (tested), except that a confidence of exactly 1 falls into the
last bin here and into a bin of its own there.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

N_BINS = 15  # equal-width confidence bins, as in Guo et al. and torchmetrics' default
TEMPERATURE_RANGE = (1e-2, 1e2)  # bounds of the fitted temperature (it divides the logits)


def log_probabilities(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """N×C log softmax(logits / temperature), in float64."""
    return log_softmax(np.asarray(logits, np.float64) / temperature, axis=1)


def negative_log_likelihood(log_probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean −log p(label); NaN for no items."""
    labels = np.asarray(labels, np.int64)
    if len(labels) == 0:
        return math.nan
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T minimising the NLL of softmax(logits / T) on held-out ``logits``.

    The NLL is convex in 1/T, so a bounded scalar search over log T finds the minimum; T > 1 softens an
    overconfident classifier. NaN for no items.
    """
    labels = np.asarray(labels, np.int64)
    if len(labels) == 0:
        return math.nan
    low, high = np.log(TEMPERATURE_RANGE)
    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(log_probabilities(logits, math.exp(log_t)), labels),
        bounds=(low, high),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(math.exp(result.x))


def at_bound(logits: np.ndarray, labels: np.ndarray, temperature: float, tol: float = 1e-9) -> bool:
    """Whether the fit of ``temperature`` stopped at an end of ``TEMPERATURE_RANGE``: the NLL there is no
    higher than at ``temperature``, so the optimum lies at or beyond the range (separable logits want
    T → 0, logits unrelated to the labels T → ∞). Compared by value, not by position, because a flat
    NLL stops the search short of the end (T = 0.016 for separable logits)."""
    if len(labels) == 0:
        return False
    fitted = negative_log_likelihood(log_probabilities(logits, temperature), labels)
    return any(
        negative_log_likelihood(log_probabilities(logits, end), labels) <= fitted + tol
        for end in TEMPERATURE_RANGE
    )


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS) -> pd.DataFrame:
    """Per equal-width bin of the top-1 confidence ([lower, upper), the last one closed): ``bin``,
    ``lower``, ``upper``, ``count``, mean ``confidence`` and ``accuracy`` (NaN in an empty bin)."""
    confidence = np.asarray(confidence, np.float64)
    correct = np.asarray(correct, np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, confidence, n_bins) / count
        accuracy = np.bincount(index, correct, n_bins) / count
    return pd.DataFrame(
        {
            "bin": np.arange(n_bins, dtype=np.int16),
            "lower": edges[:-1],
            "upper": edges[1:],
            "count": count.astype(np.int64),
            "confidence": mean_confidence,
            "accuracy": accuracy,
        }
    )


def expected_calibration_error(bins: pd.DataFrame) -> float:
    """ECE = Σ_b (n_b / N) · |accuracy_b − confidence_b| over ``reliability_bins``; NaN for no items."""
    total = bins["count"].sum()
    if total == 0:
        return math.nan
    filled = bins[bins["count"] > 0]
    gaps = (filled["accuracy"] - filled["confidence"]).abs()
    return float((filled["count"] * gaps).sum() / total)
