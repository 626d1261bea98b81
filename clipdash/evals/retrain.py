"""Retrain the class-agnostic probe at one temperature, on stored cosines, for the interactive τ slider.

With ``classifier="linear_svm"``, ``C=1`` and no standardisation this is the stored fixed-C sweep's
protocol (:func:`clipdash.evals.class_agnostic.tau_sweep`), so the slider reproduces the stored numbers
at the stored τ values and interpolates between them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix
from threadpoolctl import threadpool_limits

from clipdash.evals.class_agnostic import entropy, softmax_with_temperature
from clipdash.evals.linear_probe import fit_probe
from clipdash.evals.stats import as_numpy


@dataclass(frozen=True)
class ProbeOutcome:
    """Test accuracy, mean test entropy (nats) and the confusion matrix (rows true, columns predicted)."""

    acc1: float
    mean_entropy: float
    confusion: np.ndarray


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
) -> ProbeOutcome:
    """Fit ``classifier`` (in ``PROBE_CLASSIFIERS``) on softmax(cos/τ) of the train split, score the test one.

    The confusion matrix covers labels 0..max label seen in either split; accuracy and entropy are NaN
    for an empty test split.
    """
    train_labels = as_numpy(train_y, np.int64).ravel()
    test_labels = as_numpy(test_y, np.int64).ravel()
    train_features = softmax_with_temperature(train_cos, tau)
    test_features = softmax_with_temperature(test_cos, tau)
    with threadpool_limits(limits=1):  # a 2000×32 fit is slower, not faster, on a multi-threaded BLAS
        probe = fit_probe(train_features, train_labels, classifier, C=C, seed=seed, standardize=standardize)
    n_classes = int(max(train_labels.max(initial=-1), test_labels.max(initial=-1))) + 1
    if test_labels.size == 0:
        return ProbeOutcome(math.nan, math.nan, np.zeros((n_classes, n_classes), dtype=np.int64))
    predictions = probe.predict(test_features)
    return ProbeOutcome(
        acc1=float(np.mean(predictions == test_labels)),
        mean_entropy=float(entropy(test_features).mean()),
        confusion=confusion_matrix(test_labels, predictions, labels=np.arange(n_classes)),
    )
