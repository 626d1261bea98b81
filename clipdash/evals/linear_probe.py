"""Linear probes on frozen image embeddings: how linearly decodable are the classes?

The thesis protocol is L2-normalised embeddings → StandardScaler → linear SVC with C=1; logistic
regression (CLIP_benchmark's probe) and a small MLP are there for comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from clipdash.evals.stats import as_numpy, l2_normalise, mean_per_class_recall

# name -> (C, seed) -> unfitted classifier. The MLP's alpha is an L2 penalty, the inverse of C:
# alpha = 1e-4 (sklearn's default) at C = 1.
_CLASSIFIERS: dict[str, Callable[[float, int], Any]] = {
    "logreg": lambda C, seed: LogisticRegression(C=C, max_iter=1000, random_state=seed),
    "linear_svm": lambda C, seed: LinearSVC(C=C, max_iter=5000, random_state=seed),
    "mlp": lambda C, seed: MLPClassifier(
        hidden_layer_sizes=(64,), alpha=1e-4 / C, early_stopping=True, max_iter=500, random_state=seed
    ),
}
PROBE_CLASSIFIERS = tuple(_CLASSIFIERS)


def make_probe(classifier: str, C: float = 1.0, seed: int = 0, standardize: bool = True) -> Pipeline:
    """An unfitted pipeline: optional StandardScaler, then a classifier from ``PROBE_CLASSIFIERS``."""
    if classifier not in _CLASSIFIERS:
        raise ValueError(f"unknown probe classifier {classifier!r}; choose one of {PROBE_CLASSIFIERS}")
    steps = [StandardScaler()] if standardize else []
    return make_pipeline(*steps, _CLASSIFIERS[classifier](C, seed))


def fit_probe(
    train_x: Any, train_y: Any, classifier: str, C: float = 1.0, seed: int = 0, standardize: bool = True
) -> Pipeline:
    """``make_probe``'s pipeline fitted on the training split."""
    probe = make_probe(classifier, C=C, seed=seed, standardize=standardize)
    return probe.fit(as_numpy(train_x), as_numpy(train_y, np.int64))


def probe_predictions(
    train_x: Any, train_y: Any, test_x: Any, classifier: str = "logreg", C: float = 1.0, seed: int = 0
) -> np.ndarray:
    """Test-split predictions of a probe fit on L2-normalised, standardised embeddings (per-item outcome)."""
    if len(as_numpy(test_x)) == 0:
        return np.empty(0, dtype=np.int64)
    probe = fit_probe(l2_normalise(train_x), train_y, classifier, C=C, seed=seed, standardize=True)
    return np.asarray(probe.predict(l2_normalise(test_x)), dtype=np.int64)


def prediction_metrics(predictions: Any, labels: Any) -> dict[str, float]:
    """``lp_acc1`` and ``lp_mean_per_class_recall`` of per-image probe predictions; NaN when empty."""
    predictions, labels = as_numpy(predictions, np.int64).ravel(), as_numpy(labels, np.int64).ravel()
    if labels.size == 0:
        return {"lp_acc1": np.nan, "lp_mean_per_class_recall": np.nan}
    n_classes = int(max(labels.max(), predictions.max())) + 1
    return {
        "lp_acc1": float(np.mean(predictions == labels)),
        "lp_mean_per_class_recall": mean_per_class_recall(predictions, labels, n_classes),
    }


def linear_probe(
    train_x: Any,
    train_y: Any,
    test_x: Any,
    test_y: Any,
    classifier: str = "logreg",
    C: float = 1.0,
    seed: int = 0,
) -> dict[str, float]:
    """``lp_acc1`` and ``lp_mean_per_class_recall`` of a probe fit on L2-normalised, standardised embeddings.

    NaN for an empty test split.
    """
    predictions = probe_predictions(train_x, train_y, test_x, classifier, C=C, seed=seed)
    return prediction_metrics(predictions, test_y)
