"""Known answers for the linear probes on image embeddings."""

import math

import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler

from clipdash.evals.linear_probe import PROBE_CLASSIFIERS, fit_probe, linear_probe, make_probe


def _blobs(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three well-separated clusters around orthogonal directions in 8-D."""
    rng = np.random.default_rng(seed)
    centres = 5 * np.eye(8)[:3]
    x = np.concatenate([centre + rng.normal(size=(n_per_class, 8)) for centre in centres])
    return x, np.repeat(np.arange(3), n_per_class)


@pytest.mark.parametrize("classifier", PROBE_CLASSIFIERS)
def test_separable_data_is_probed_perfectly(classifier):
    train_x, train_y = _blobs(200, seed=0)  # enough for the MLP's early-stopping validation split
    test_x, test_y = _blobs(20, seed=1)
    metrics = linear_probe(train_x, train_y, test_x, test_y, classifier=classifier)
    assert metrics == {"lp_acc1": 1.0, "lp_mean_per_class_recall": 1.0}


def test_linear_probe_hand_counted():
    train_x = np.array([[1.0, 0.1], [1.0, 0.0], [0.9, 0.2], [0.1, 1.0], [0.0, 1.0], [0.2, 0.9]])
    train_y = np.array([0, 0, 0, 1, 1, 1])
    # the third test point lies on class 0's side but is labelled 1: 2 of 3 right,
    # recall 1 for class 0 and 1/2 for class 1
    test_x, test_y = np.array([[1.0, 0.1], [0.1, 1.0], [1.0, 0.2]]), np.array([0, 1, 1])
    metrics = linear_probe(train_x, train_y, test_x, test_y, classifier="linear_svm")
    assert metrics == pytest.approx({"lp_acc1": 2 / 3, "lp_mean_per_class_recall": 0.75})


def test_embeddings_are_l2_normalised_before_the_probe():
    # scaling a test embedding must not change its prediction
    train_x, train_y = _blobs(30, seed=0)
    test_x, test_y = _blobs(10, seed=1)
    scaled = test_x * np.linspace(0.01, 100, len(test_x))[:, None]
    assert linear_probe(train_x, train_y, scaled, test_y)["lp_acc1"] == 1.0


def test_fit_probe_pipeline_and_choices():
    x, y = _blobs(20, seed=0)
    assert isinstance(fit_probe(x, y, "logreg")[0], StandardScaler)
    assert len(fit_probe(x, y, "logreg", standardize=False).steps) == 1
    first, second = fit_probe(x, y, "mlp", seed=3), fit_probe(x, y, "mlp", seed=3)
    np.testing.assert_array_equal(first.predict_proba(x), second.predict_proba(x))
    with pytest.raises(ValueError, match="choose one of"):
        fit_probe(x, y, "svm")
    unfitted = make_probe("linear_svm", C=0.5, standardize=False)
    assert [name for name, _ in unfitted.steps] == ["linearsvc"] and unfitted[0].C == 0.5


def test_empty_test_split_is_nan():
    x, y = _blobs(20, seed=0)
    metrics = linear_probe(x, y, np.zeros((0, 8)), np.zeros(0))
    assert all(math.isnan(value) for value in metrics.values())
