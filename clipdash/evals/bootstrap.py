"""Percentile-bootstrap intervals for clipdash's headline numbers, computed from per-item outcomes.

A bootstrap replicate draws n of the n items with replacement. Here a replicate is a row of a B × n
*count* matrix (how often each item was drawn), and every statistic is written as arithmetic on those
counts: a mean is a matrix product, a ratio two of them, a correlation five weighted moments, ranks come
from cumulative counts over the sorted values, an AUROC from cumulative counts over the sorted scores. So
all B replicates of a statistic cost a few B × n array operations, not B Python calls.

Written here, not taken from ``scipy.stats.bootstrap``: SciPy materialises every resample as an index
array and calls the statistic on it (vectorised only along a batch axis of equal-shaped copies); for
AUROC, ranks and binned ECE over 10,000 images × 1000 replicates × 31 epochs that is minutes per run,
where count matrices take seconds. The percentile interval agrees with SciPy's ``method="percentile"``
(tested), and every replicate equals the plain statistic on the resampled items (tested).

The counts depend only on (seed, n), so the same items evaluated at every epoch of a run are resampled the
same way at every epoch: the replicates of a curve are whole curves, as Table 1's intervals need.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class BootstrapConfig:
    """B replicates, the generator's seed and the interval's level: stored beside every interval."""

    resamples: int = 1000
    seed: int = 0
    level: float = 0.95


@lru_cache(maxsize=8)
def _counts(n: int, resamples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, n])
    draws = rng.integers(0, n, size=(resamples, n))
    flat = (draws + n * np.arange(resamples)[:, None]).ravel()
    counts = np.bincount(flat, minlength=resamples * n).reshape(resamples, n).astype(np.float64)
    counts.flags.writeable = False  # shared through the cache
    return counts


def resample_counts(n: int, config: BootstrapConfig = BootstrapConfig()) -> np.ndarray:
    """B × n: how often each of n items is drawn in each replicate (rows sum to n); read-only."""
    if n < 1:
        return np.zeros((config.resamples, 0))
    return _counts(n, config.resamples, config.seed)


def percentile_interval(replicates: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The (lower, upper) percentiles of the finite replicates; NaN when none is finite."""
    finite = np.asarray(replicates, np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return math.nan, math.nan
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


def mean(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per replicate: the mean of ``values`` (accuracy from 0/1 outcomes, NLL from log-probabilities)."""
    return _divide(counts @ np.asarray(values, np.float64), counts.sum(axis=1))


def ratio(counts: np.ndarray, numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Per replicate: Σ numerator / Σ denominator over the drawn items (shape bias = #shape / #either)."""
    return _divide(counts @ np.asarray(numerator, np.float64), counts @ np.asarray(denominator, np.float64))


def mean_per_class_recall(counts: np.ndarray, labels: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """Per replicate: the mean over the classes drawn of their recall (CLIP_benchmark's
    ``mean_per_class_recall``)."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    members = (labels[:, None] == classes[None, :]).astype(np.float64)  # n × classes
    support = counts @ members
    hits = counts @ (members * np.asarray(correct, np.float64)[:, None])
    recall = _divide(hits, support)
    with np.errstate(invalid="ignore"):
        return np.nanmean(np.where(support > 0, recall, np.nan), axis=1)


def _weighted_pearson(counts: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of (x, y) per replicate; x and y may be B × n (per-replicate values, e.g. ranks)."""
    total = counts.sum(axis=1)

    def average(values: np.ndarray) -> np.ndarray:
        return ((counts * values).sum(axis=1) if values.ndim == 2 else counts @ values) / total

    x_squared, y_squared = average(x * x), average(y * y)
    mx, my = average(x), average(y)
    vx, vy = x_squared - mx**2, y_squared - my**2
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (average(x * y) - mx * my) / np.sqrt(vx * vy)
    constant = (vx <= 1e-12 * x_squared) | (vy <= 1e-12 * y_squared)  # rounding leaves ~0, not 0
    return np.where(constant | ((counts > 0).sum(axis=1) < 3), np.nan, np.clip(r, -1, 1))


def pearson(counts: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per replicate: Pearson r of the drawn pairs; NaN where one side is constant (as
    ``clipdash.evals.stats.pearson``) or fewer than 3 distinct items are drawn (a line through two points
    says nothing, however often each is drawn)."""
    return _weighted_pearson(counts, np.asarray(x, np.float64), np.asarray(y, np.float64))


def midranks(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """B × n: each item's average rank (1-based, ties averaged) among the items drawn in each replicate,
    counting an item drawn k times k times."""
    values = np.asarray(values, np.float64)
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])  # tie groups
    group = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(values)]))
    group_counts = np.add.reduceat(counts[:, order], starts, axis=1)  # B × groups
    below = np.cumsum(group_counts, axis=1) - group_counts
    group_rank = below + (group_counts + 1) / 2
    ranks = np.empty_like(counts)
    ranks[:, order] = group_rank[:, group]
    return ranks


def spearman(counts: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per replicate: Spearman ρ of the drawn pairs (Pearson r of their midranks)."""
    return _weighted_pearson(counts, midranks(counts, x), midranks(counts, y))


def auroc(id_counts: np.ndarray, ood_counts: np.ndarray, id_scores: np.ndarray, ood_scores: np.ndarray):
    """Per replicate: P(ID score > OOD score) + ½ P(equal) over the drawn ID and OOD items (ID positive,
    as ``clipdash.evals.ood.auroc``); ID and OOD items are drawn independently."""
    id_scores, ood_scores = np.asarray(id_scores, np.float64), np.asarray(ood_scores, np.float64)
    order = np.argsort(ood_scores, kind="stable")
    cumulative = np.concatenate(
        [np.zeros((len(ood_counts), 1)), np.cumsum(ood_counts[:, order], axis=1)], axis=1
    )  # B × (n_ood + 1): drawn OOD items among the k lowest scores
    sorted_ood = ood_scores[order]
    below = cumulative[:, np.searchsorted(sorted_ood, id_scores, side="left")]  # B × n_id
    upto = cumulative[:, np.searchsorted(sorted_ood, id_scores, side="right")]
    wins = (id_counts * (below + (upto - below) / 2)).sum(axis=1)
    return _divide(wins, id_counts.sum(axis=1) * ood_counts.sum(axis=1))


def fpr_at_tpr(
    id_counts: np.ndarray,
    ood_counts: np.ndarray,
    id_scores: np.ndarray,
    ood_scores: np.ndarray,
    tpr: float = 0.95,
) -> np.ndarray:
    """Per replicate: the fraction of drawn OOD items scored at or above the highest threshold that keeps
    ``tpr`` of the drawn ID items (as ``clipdash.evals.ood.fpr_at_tpr``)."""
    id_scores, ood_scores = np.asarray(id_scores, np.float64), np.asarray(ood_scores, np.float64)
    descending = np.argsort(-id_scores, kind="stable")
    kept = np.cumsum(id_counts[:, descending], axis=1)
    needed = np.ceil(tpr * id_counts.sum(axis=1) - 1e-9)[:, None]
    threshold = id_scores[descending][np.argmax(kept >= needed, axis=1)]  # B thresholds
    order = np.argsort(ood_scores, kind="stable")
    cumulative = np.concatenate(
        [np.zeros((len(ood_counts), 1)), np.cumsum(ood_counts[:, order], axis=1)], axis=1
    )
    below = np.take_along_axis(
        cumulative, np.searchsorted(ood_scores[order], threshold, side="left")[:, None], axis=1
    )[:, 0]
    total = ood_counts.sum(axis=1)
    return _divide(total - below, total)


def expected_calibration_error(
    counts: np.ndarray, confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15
) -> np.ndarray:
    """Per replicate: ECE over ``n_bins`` equal-width confidence bins (as
    ``clipdash.evals.calibration.reliability_bins``): Σ_bins |Σ (correct − confidence)| / N."""
    confidence = np.asarray(confidence, np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, n_bins - 1)
    members = index[:, None] == np.arange(n_bins)[None, :]  # n × bins
    gaps = counts @ (members * (np.asarray(correct, np.float64) - confidence)[:, None])
    return _divide(np.abs(gaps).sum(axis=1), counts.sum(axis=1))
