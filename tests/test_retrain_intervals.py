"""The Temperature page's refit probe: its bootstrap intervals recomputed by hand from its predictions, the
same intervals as the engine stores for the sweep's probes, and the slider's MLP (full-batch L-BFGS)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from clipdash.evals.bootstrap import BootstrapConfig
from clipdash.evals.class_agnostic import entropy, softmax_with_temperature
from clipdash.evals.retrain import accuracy_interval, mean_interval, recall_intervals, retrain_class_agnostic

CONFIG = BootstrapConfig(resamples=500, seed=3)


def _draws(n: int, config: BootstrapConfig) -> np.ndarray:
    """The items each replicate draws, materialised (B × n indices): the generator ``resample_counts``
    counts, so a statistic on these equals the count-matrix arithmetic."""
    return np.random.default_rng([config.seed, n]).integers(0, n, size=(config.resamples, n))


def _percentiles(replicates: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    replicates = replicates[np.isfinite(replicates)]
    low, high = np.percentile(replicates, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return float(low), float(high)


def _profiles(n_per_class: int, seed: int, noise: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    """Three classes over 8 prompts, class k closest to prompt k, noisy enough that some images are missed."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), n_per_class)
    cosines = 0.2 + noise * rng.standard_normal((labels.size, 8))
    cosines[np.arange(labels.size), labels] += 0.05
    return cosines, labels


def test_hand_computed_accuracy_interval():
    """One of four right: a replicate's accuracy is k/4, k ~ Binomial(4, 1/4); P(k = 0) = 0.316 gives the
    lower bound 0, P(k ≤ 2) = 0.949 < 0.975 ≤ P(k ≤ 3) the upper bound 3/4. All right: (1, 1)."""
    predictions, labels = np.array([1, 1, 1, 0]), np.array([0, 0, 0, 0])
    assert accuracy_interval(predictions, labels, BootstrapConfig(20000)) == (0.0, 0.75)
    assert accuracy_interval(labels, labels) == (1.0, 1.0)
    assert all(math.isnan(bound) for bound in accuracy_interval([], []))
    assert all(math.isnan(bound) for bound in mean_interval([]))


def test_the_refit_intervals_recompute_from_its_predictions():
    train_x, train_y = _profiles(40, seed=0)
    test_x, test_y = _profiles(30, seed=1)
    outcome = retrain_class_agnostic(train_x, train_y, test_x, test_y, tau=0.05, bootstrap=CONFIG)
    assert outcome.bootstrap == CONFIG
    np.testing.assert_array_equal(outcome.labels, test_y)
    correct = outcome.predictions == test_y
    assert 0.4 < outcome.acc1 == correct.mean() < 1  # some missed, so the interval has width
    np.testing.assert_array_equal(
        outcome.confusion, pd.crosstab(test_y, outcome.predictions).reindex(columns=range(3), fill_value=0)
    )
    draws = _draws(test_y.size, CONFIG)  # the same resamples, drawn as items
    assert outcome.acc1_interval == pytest.approx(_percentiles(correct[draws].mean(axis=1)))
    low, high = outcome.acc1_interval
    assert low < outcome.acc1 < high
    entropies = entropy(softmax_with_temperature(test_x, 0.05))
    assert outcome.mean_entropy_interval == pytest.approx(_percentiles(entropies[draws].mean(axis=1)))
    for k in range(3):  # a class's recall: the right share of its drawn images
        drawn = test_y[draws] == k
        recall = (drawn & correct[draws]).sum(axis=1) / drawn.sum(axis=1)
        assert outcome.recall[k] == pytest.approx(correct[test_y == k].mean())
        assert tuple(outcome.recall_interval[k]) == pytest.approx(_percentiles(recall))


def test_a_class_without_test_images_has_no_recall_or_interval():
    interval = recall_intervals([0, 1, 1], [0, 1, 1], n_classes=3)
    assert not np.isnan(interval[:2]).any() and np.isnan(interval[2]).all()
    train_x, train_y = _profiles(10, seed=0)
    outcome = retrain_class_agnostic(train_x, train_y, np.zeros((0, 8)), np.zeros(0), tau=0.1)
    assert math.isnan(outcome.acc1) and all(math.isnan(b) for b in outcome.acc1_interval)
    assert np.isnan(outcome.recall).all() and np.isnan(outcome.recall_interval).all()


def test_a_stored_probe_refit_gives_the_interval_the_engine_stores():
    """The page's refit of a stored probe (linear SVM, unstandardised, the stored C) and the engine's
    ``replicates`` (what metric_intervals holds) resample the same test images of the same fit."""
    from clipdash.evals.bootstrap import percentile_interval
    from clipdash.measurements.class_agnostic import refit_correct, replicates

    train_x, train_y = _profiles(40, seed=0)
    test_x, test_y = _profiles(30, seed=1)
    features = pd.DataFrame(
        {
            "split": ["train"] * len(train_y) + ["test"] * len(test_y),
            "image_index": np.r_[np.arange(len(train_y)), np.arange(len(test_y))],
            "label": np.r_[train_y, test_y],
            "cosines": list(np.r_[train_x, test_x].astype(np.float32)),
        }
    )
    metrics = pd.DataFrame(
        {
            "metric": ["ca_C", "ca_C", "mean_entropy"],
            "variant": ["C=fixed;tau=0.05", "C=cv;tau=0.5", "tau=0.05"],
            "value": [1.0, 10.0, 0.0],
        }
    )
    entropies = pd.DataFrame(
        {
            "tau": 0.05,
            "image_index": np.arange(len(test_y)),
            "entropy": entropy(softmax_with_temperature(test_x.astype(np.float32), 0.05)),
        }
    )
    stored = replicates({"class_agnostic_features": features, "entropies": entropies}, metrics, CONFIG)
    splits = [np.stack(features.loc[features["split"] == s, "cosines"]) for s in ("train", "test")]
    for variant, tau, C in (("C=fixed;tau=0.05", 0.05, 1.0), ("C=cv;tau=0.5", 0.5, 10.0)):
        outcome = retrain_class_agnostic(splits[0], train_y, splits[1], test_y, tau, C=C, bootstrap=CONFIG)
        n, engine = stored[("ca_acc1", "cifar10", variant)]
        assert n == len(test_y)
        np.testing.assert_array_equal(outcome.predictions == test_y, refit_correct(features, tau, C))
        assert outcome.acc1_interval == percentile_interval(engine)
    n, engine = stored[("mean_entropy", "cifar10", "tau=0.05")]
    outcome = retrain_class_agnostic(splits[0], train_y, splits[1], test_y, 0.05, bootstrap=CONFIG)
    assert outcome.mean_entropy_interval == pytest.approx(percentile_interval(engine))


def test_the_mlp_is_full_batch_lbfgs_deterministic_and_learns_flat_profiles():
    """The slider's MLP: make_probe's architecture fitted by L-BFGS for a fixed budget. Adam with early
    stopping quit on the plateau of near-flat profiles (high τ, unstandardised); L-BFGS does not."""
    from clipdash.evals.retrain import MLP_LBFGS_ITERATIONS, retrain_probe

    mlp = retrain_probe("mlp")[-1]
    assert (mlp.solver, mlp.max_iter, mlp.early_stopping, mlp.hidden_layer_sizes) == (
        "lbfgs",
        MLP_LBFGS_ITERATIONS,
        False,
        (64,),
    )
    train_x, train_y = _profiles(60, seed=0, noise=0.02)
    test_x, test_y = _profiles(30, seed=1, noise=0.02)
    first = retrain_class_agnostic(train_x, train_y, test_x, test_y, tau=2.0, classifier="mlp")
    second = retrain_class_agnostic(train_x, train_y, test_x, test_y, tau=2.0, classifier="mlp")
    np.testing.assert_array_equal(first.predictions, second.predictions)
    # The profiles vary by ~1 % of their size at τ = 2; Adam with early stopping: 1/3 (chance), seeds 0-2.
    assert first.acc1 > 0.9
    assert first.mean_entropy == pytest.approx(entropy(softmax_with_temperature(test_x, 2.0)).mean())
