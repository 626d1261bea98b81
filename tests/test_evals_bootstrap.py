"""Bootstrap intervals from count matrices: a hand-computed case, coverage by simulation, agreement with
SciPy's percentile interval, and every replicate equal to the plain statistic on its resampled items."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import bootstrap as scipy_bootstrap
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from clipdash.evals import bootstrap
from clipdash.evals.bootstrap import BootstrapConfig, percentile_interval, resample_counts
from clipdash.evals.calibration import expected_calibration_error, reliability_bins
from clipdash.evals.ood import fpr_at_tpr
from clipdash.evals.stats import mean_per_class_recall, pearson


def test_counts_draw_n_items_per_replicate_and_depend_only_on_seed_and_n():
    counts = resample_counts(7, BootstrapConfig(200, seed=3))
    assert counts.shape == (200, 7) and (counts.sum(axis=1) == 7).all()
    assert np.array_equal(counts, resample_counts(7, BootstrapConfig(200, seed=3)))
    assert not np.array_equal(counts, resample_counts(7, BootstrapConfig(200, seed=4)))
    assert abs(counts.mean() - 1) < 0.05  # each item drawn once on average


def test_hand_computed_bootstrap_of_a_tiny_sample():
    """Outcomes (0, 0, 0, 1): a replicate's mean is k/4 with k ~ Binomial(4, 1/4) draws of the 1.
    P(k = 0) = 0.316 > 0.025, so the lower bound is 0; P(k ≤ 2) = 0.949 < 0.975 ≤ P(k ≤ 3) = 0.996, so
    the upper bound is 3/4."""
    counts = resample_counts(4, BootstrapConfig(20000, seed=0))
    replicates = bootstrap.mean(counts, np.array([0, 0, 0, 1]))
    share = np.bincount((replicates * 4).round().astype(int), minlength=5) / len(replicates)
    assert share == pytest.approx([0.316, 0.422, 0.211, 0.047, 0.004], abs=0.01)
    assert percentile_interval(replicates) == (0.0, 0.75)


def test_coverage_of_a_binomial_accuracy_by_simulation():
    """A classifier right with probability 0.7 on 300 images: the 95 % interval covers 0.7 in 93–97 %
    of 400 simulated test sets."""
    rng = np.random.default_rng(0)
    covered = 0
    for i in range(400):
        outcomes = rng.random(300) < 0.7
        low, high = percentile_interval(
            bootstrap.mean(resample_counts(300, BootstrapConfig(1000, i)), outcomes)
        )
        covered += low <= 0.7 <= high
    assert 0.93 <= covered / 400 <= 0.97


def test_percentile_interval_agrees_with_scipy():
    values = np.random.default_rng(1).normal(2.0, 1.5, size=250)
    ours = percentile_interval(bootstrap.mean(resample_counts(250, BootstrapConfig(4000)), values))
    theirs = scipy_bootstrap((values,), np.mean, n_resamples=4000, method="percentile", random_state=0)
    assert ours == pytest.approx(tuple(theirs.confidence_interval), abs=0.02)


def _resampled(counts_row: np.ndarray, *arrays: np.ndarray) -> list[np.ndarray]:
    index = np.repeat(np.arange(len(counts_row)), counts_row.astype(int))
    return [np.asarray(a)[index] for a in arrays]


def test_every_replicate_equals_the_plain_statistic_on_its_items():
    rng = np.random.default_rng(2)
    n = 60
    x = rng.normal(size=n)
    y = 0.5 * x + rng.normal(size=n)
    y[:10] = y[10]  # ties
    labels = rng.integers(0, 4, n)
    correct = rng.random(n) < 0.6
    confidence = rng.uniform(0.2, 1.0, n)
    counts = resample_counts(n, BootstrapConfig(30, seed=5))
    results = {
        "pearson": bootstrap.pearson(counts, x, y),
        "spearman": bootstrap.spearman(counts, x, y),
        "recall": bootstrap.mean_per_class_recall(counts, labels, correct),
        "ece": bootstrap.expected_calibration_error(counts, confidence, correct),
        "ratio": bootstrap.ratio(counts, correct, np.ones(n)),
    }
    for b, row in enumerate(counts):
        rx, ry, rl, rc, rconf = _resampled(row, x, y, labels, correct, confidence)
        assert results["pearson"][b] == pytest.approx(pearson(rx, ry))
        assert results["spearman"][b] == pytest.approx(spearmanr(rx, ry).statistic)
        assert results["recall"][b] == pytest.approx(mean_per_class_recall(np.where(rc, rl, -1), rl, 4))
        ece = expected_calibration_error(reliability_bins(rconf, rc))
        assert results["ece"][b] == pytest.approx(ece)
        assert results["ratio"][b] == pytest.approx(rc.mean())


def test_auroc_and_fpr_replicates_equal_sklearn_and_the_plain_fpr_on_their_items():
    rng = np.random.default_rng(3)
    id_scores = np.round(rng.normal(1, 1, 80), 1)  # rounded: ties within and across the sets
    ood_scores = np.round(rng.normal(0, 1, 50), 1)
    id_counts = resample_counts(80, BootstrapConfig(25, seed=1))
    ood_counts = resample_counts(50, BootstrapConfig(25, seed=2))
    aurocs = bootstrap.auroc(id_counts, ood_counts, id_scores, ood_scores)
    fprs = bootstrap.fpr_at_tpr(id_counts, ood_counts, id_scores, ood_scores, 0.95)
    for b in range(25):
        (ids,) = _resampled(id_counts[b], id_scores)
        (oods,) = _resampled(ood_counts[b], ood_scores)
        y = np.r_[np.ones(len(ids)), np.zeros(len(oods))]
        assert aurocs[b] == pytest.approx(roc_auc_score(y, np.r_[ids, oods]))
        assert fprs[b] == pytest.approx(fpr_at_tpr(ids, oods, 0.95))


def test_correlations_are_nan_where_undefined():
    counts = np.array([[2.0, 2.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    r = bootstrap.pearson(counts, np.array([1.0, 2.0, 3.0, 5.0]), np.array([1.0, 3.0, 2.0, 7.0]))
    assert np.isnan(r[0]) and np.isfinite(r[1])  # two distinct items drawn: no correlation
    assert np.isnan(bootstrap.pearson(counts, np.ones(4), np.arange(4.0))).all()  # a constant side
