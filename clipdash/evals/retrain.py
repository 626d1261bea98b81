"""Retrain the class-agnostic probe at one temperature, on stored cosines, for the interactive τ slider.

With ``classifier="linear_svm"``, ``C=1`` and no standardisation this is the stored fixed-C sweep's
protocol (:func:`clipdash.evals.class_agnostic.tau_sweep`), so the slider reproduces the stored numbers
at the stored τ values and interpolates between them; with the C that cross-validation chose (stored as
``ca_C``) it reproduces the C=cv sweep.

Every outcome carries 95 % percentile-bootstrap intervals over the test images for the fitted probe held
fixed (:mod:`clipdash.evals.bootstrap`'s count matrices): the test set's sampling error, not the variance
of refitting on another train split or with another seed.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import Pipeline
from threadpoolctl import ThreadpoolController

from clipdash.evals.bootstrap import BootstrapConfig, mean, percentile_interval, resample_counts
from clipdash.evals.class_agnostic import entropy, softmax_with_temperature
from clipdash.evals.linear_probe import PROBE_CLASSIFIERS, make_probe
from clipdash.evals.stats import as_numpy

#: B = 1000 replicates, seed 0, 95 %: the precompute's defaults, so a refit of a stored probe gives its
#: stored interval.
DEFAULT_BOOTSTRAP = BootstrapConfig()
#: Full-batch L-BFGS iterations of the slider's MLP (see ``retrain_class_agnostic``).
MLP_LBFGS_ITERATIONS = 100


@functools.cache
def _threadpools() -> ThreadpoolController:
    """One controller per process: building one scans every loaded library (~4 ms with torch loaded)."""
    return ThreadpoolController()


@dataclass(frozen=True)
class ProbeOutcome:
    """A refit probe on the test split: accuracy, mean entropy (nats), the confusion matrix (rows true,
    columns predicted), the per-image ``predictions`` and ``labels`` it was computed from, per-class
    ``recall`` (NaN for a class without test images) and each number's bootstrap interval over the test
    images (``acc1_interval`` and ``mean_entropy_interval``: (low, high); ``recall_interval``: classes × 2),
    computed with ``bootstrap``."""

    acc1: float
    mean_entropy: float
    confusion: np.ndarray
    predictions: np.ndarray
    labels: np.ndarray
    recall: np.ndarray
    acc1_interval: tuple[float, float]
    mean_entropy_interval: tuple[float, float]
    recall_interval: np.ndarray
    bootstrap: BootstrapConfig


def mean_interval(values: Any, config: BootstrapConfig = DEFAULT_BOOTSTRAP) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of per-item ``values``; NaN when there are none."""
    values = as_numpy(values).ravel()
    if values.size == 0:
        return math.nan, math.nan
    return percentile_interval(mean(resample_counts(values.size, config), values), config.level)


def accuracy_interval(
    predictions: Any, labels: Any, config: BootstrapConfig = DEFAULT_BOOTSTRAP
) -> tuple[float, float]:
    """Percentile-bootstrap interval of top-1 accuracy over the items, the predictions held fixed; NaN
    when there are none."""
    return mean_interval(
        as_numpy(predictions, np.int64).ravel() == as_numpy(labels, np.int64).ravel(), config
    )


def recall_intervals(
    predictions: Any, labels: Any, n_classes: int, config: BootstrapConfig = DEFAULT_BOOTSTRAP
) -> np.ndarray:
    """classes × 2: each class's recall interval over the same replicates (a replicate in which a class
    was not drawn has no recall for it and is left out); NaN for a class without items."""
    predictions = as_numpy(predictions, np.int64).ravel()
    labels = as_numpy(labels, np.int64).ravel()
    members = (labels[:, None] == np.arange(n_classes)[None, :]).astype(np.float64)  # n × classes
    counts = resample_counts(labels.size, config)
    support = counts @ members
    hits = counts @ (members * (predictions == labels)[:, None])
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, hits / np.where(support > 0, support, 1), np.nan)
    return np.array([percentile_interval(recall[:, k], config.level) for k in range(n_classes)]).reshape(
        n_classes, 2
    )


def retrain_probe(classifier: str, C: float = 1.0, seed: int = 0, standardize: bool = False) -> Pipeline:
    """The unfitted probe ``retrain_class_agnostic`` fits: ``make_probe``'s, except that the MLP is fitted
    full-batch by L-BFGS for ``MLP_LBFGS_ITERATIONS`` iterations instead of by Adam with early stopping.

    On the bundled run's last epoch over the slider's 50 τ values that is ~3× faster at p95, and Adam had
    stopped on the plateau of the unstandardised profiles at high τ (test accuracy at τ = 2: 0.28 with
    seed 0, 0.10 = chance with seed 2; L-BFGS 0.51, never below Adam's at any τ)."""
    probe = make_probe(classifier, C=C, seed=seed, standardize=standardize)
    if classifier == "mlp":
        probe.set_params(
            mlpclassifier__solver="lbfgs",
            mlpclassifier__early_stopping=False,
            mlpclassifier__max_iter=MLP_LBFGS_ITERATIONS,
        )
    return probe


def retrain_class_agnostic(
    train_cos: Any,
    train_y: Any,
    test_cos: Any,
    test_y: Any,
    tau: float,
    classifier: str = "linear_svm",
    C: float = 1.0,
    standardize: bool = False,
    seed: int = 0,
    bootstrap: BootstrapConfig = DEFAULT_BOOTSTRAP,
) -> ProbeOutcome:
    """Fit ``classifier`` (in ``PROBE_CLASSIFIERS``) on softmax(cos/τ) of the train split, score the test one.

    ``linear_svm`` and ``logreg`` are ``make_probe``'s. ``mlp`` is its architecture (64 ReLU units,
    alpha = 1e-4 / C) fitted full-batch by L-BFGS for ``MLP_LBFGS_ITERATIONS`` iterations on float32
    features, not by Adam with early stopping. The confusion matrix covers labels 0..max label seen in
    either split; accuracy, entropy and the intervals are NaN for an empty test split.
    """
    if classifier not in PROBE_CLASSIFIERS:
        raise ValueError(f"unknown probe classifier {classifier!r}; choose one of {PROBE_CLASSIFIERS}")
    train_labels = as_numpy(train_y, np.int64).ravel()
    test_labels = as_numpy(test_y, np.int64).ravel()
    train_features = softmax_with_temperature(train_cos, tau)
    test_features = softmax_with_temperature(test_cos, tau)
    empty = test_labels.size == 0
    entropies = entropy(test_features)
    mean_entropy = math.nan if empty else float(entropies.mean())
    if classifier == "mlp":  # half the cost of float64, the same accuracy
        train_features, test_features = train_features.astype(np.float32), test_features.astype(np.float32)
    n_classes = int(max(train_labels.max(initial=-1), test_labels.max(initial=-1))) + 1
    probe = retrain_probe(classifier, C, seed, standardize)
    # A 2000×32 fit is slower, not faster, on a multi-threaded BLAS.
    with _threadpools().limit(limits=1), warnings.catch_warnings():
        if classifier == "mlp":  # its budget is fixed on purpose
            warnings.simplefilter("ignore", ConvergenceWarning)
        probe.fit(train_features, train_labels)
        if empty:
            predictions = np.empty(0, dtype=np.int64)
        else:
            predictions = np.asarray(probe.predict(test_features), dtype=np.int64)
        members = test_labels[:, None] == np.arange(n_classes)[None, :]
        support, hits = members.sum(axis=0), (members & (predictions == test_labels)[:, None]).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = np.where(support > 0, hits / np.maximum(support, 1), np.nan)
        confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
        np.add.at(confusion, (test_labels, predictions), 1)
        return ProbeOutcome(
            acc1=math.nan if empty else float(np.mean(predictions == test_labels)),
            mean_entropy=mean_entropy,
            confusion=confusion,
            predictions=predictions,
            labels=test_labels,
            recall=recall,
            acc1_interval=accuracy_interval(predictions, test_labels, bootstrap),
            mean_entropy_interval=mean_interval(entropies, bootstrap),
            recall_interval=recall_intervals(predictions, test_labels, n_classes, bootstrap),
            bootstrap=bootstrap,
        )
