"""The torch logistic-regression probe against scikit-learn's, and the context's choice between them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from clipdash.data.decode import load_rgb
from clipdash.evals import torch_probe
from clipdash.evals.linear_probe import linear_probe, prediction_metrics, probe_predictions
from clipdash.evals.torch_probe import fit_logistic_regression, torch_linear_probe
from clipdash.precompute.context import CheckpointContext


@pytest.fixture(autouse=True)
def one_thread():
    """Both L-BFGS solvers run many small ops: on one thread they stay quick on a loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)


def gaussian_classes(n_per_class: int, dim: int, n_classes: int, spread: float, seed: int):
    """Overlapping Gaussian classes: train and test splits of the same distribution."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim)) * spread
    y = np.repeat(np.arange(n_classes), 2 * n_per_class)
    x = centres[y] + rng.normal(size=(len(y), dim))
    return x[::2], y[::2], x[1::2], y[1::2]


@pytest.mark.parametrize("n_classes", [2, 10])
def test_same_optimum_as_sklearn_on_overlapping_classes(n_classes):
    train_x, train_y, test_x, test_y = gaussian_classes(60, 24, n_classes, 0.35, seed=n_classes)
    scaler = StandardScaler().fit(train_x)
    reference = LogisticRegression(C=0.5, max_iter=5000, tol=1e-8).fit(scaler.transform(train_x), train_y)
    model = fit_logistic_regression(torch.as_tensor(train_x), torch.as_tensor(train_y), C=0.5)
    logits = model.decision_function(torch.as_tensor(test_x))
    ours = torch.softmax(logits, dim=1).numpy()
    theirs = reference.predict_proba(scaler.transform(test_x))
    assert np.abs(ours - theirs).max() < 1e-4
    predictions = model.predict(torch.as_tensor(test_x)).numpy()
    assert np.array_equal(predictions, reference.predict(scaler.transform(test_x)))
    assert 0.3 < np.mean(predictions == test_y) < 0.95  # neither trivial nor chance


def test_probe_accuracy_within_a_point_of_sklearn_on_synthetic_data():
    train_x, train_y, test_x, test_y = gaussian_classes(100, 64, 10, 0.2, seed=3)
    ours = torch_linear_probe(train_x, train_y, test_x, test_y)
    theirs = linear_probe(train_x, train_y, test_x, test_y, classifier="logreg")
    assert set(ours) == set(theirs)
    assert abs(ours["lp_acc1"] - theirs["lp_acc1"]) <= 0.01
    assert abs(ours["lp_mean_per_class_recall"] - theirs["lp_mean_per_class_recall"]) <= 0.01


def test_probe_accuracy_within_a_point_of_sklearn_on_cifar_pixels(shared_data):
    """Real images: CIFAR-10 pixels average-pooled to 8×8×3 (about 35% accurate: far from trivial)."""
    features, labels = [], []
    for label, folder in enumerate(sorted((shared_data / "cifar10" / "train").iterdir())):
        for path in sorted(folder.glob("*.jpg"))[:60]:
            pixels = np.asarray(load_rgb(path), dtype=np.float64).reshape(8, 4, 8, 4, 3).mean(axis=(1, 3))
            features.append(pixels.ravel())
            labels.append(label)
    x, y = np.stack(features), np.asarray(labels)
    train, test = np.arange(len(y)) % 3 != 0, np.arange(len(y)) % 3 == 0
    ours = torch_linear_probe(x[train], y[train], x[test], y[test])
    theirs = linear_probe(x[train], y[train], x[test], y[test], classifier="logreg")
    assert 0.2 < theirs["lp_acc1"] < 0.6
    assert abs(ours["lp_acc1"] - theirs["lp_acc1"]) <= 0.01


def test_separable_classes_are_all_recovered():
    x = np.array([[0.0, 1.0], [0.1, 1.0], [1.0, 0.0], [1.0, 0.1], [-1.0, -1.0], [-1.0, -0.9]])
    y = np.array([5, 5, 7, 7, 9, 9])
    values = torch_linear_probe(x, y, x, y)
    assert values == {"lp_acc1": 1.0, "lp_mean_per_class_recall": 1.0}
    model = fit_logistic_regression(torch.as_tensor(x), torch.as_tensor(y))
    assert model.classes.tolist() == [5, 7, 9]


def test_bad_inputs_are_refused_and_an_empty_test_split_is_nan():
    x, y = np.eye(3), np.array([0, 1, 1])
    empty = torch_linear_probe(x, y, np.empty((0, 3)), np.empty(0))
    assert all(math.isnan(v) for v in empty.values())
    with pytest.raises(ValueError, match="at least two classes"):
        fit_logistic_regression(torch.as_tensor(x), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="NaN"):
        torch_linear_probe(np.zeros((3, 3)), y, x, y)  # all-zero rows have no direction
    with pytest.raises(ValueError, match="C must be positive"):
        fit_logistic_regression(torch.as_tensor(x), torch.as_tensor(y), C=0)


def context_on(device: str) -> CheckpointContext:
    return CheckpointContext(None, None, None, torch.device(device), 8, "clip")  # type: ignore[arg-type]


def test_context_uses_sklearn_on_cpu_and_torch_logreg_on_cuda(monkeypatch):
    train_x, train_y, test_x, test_y = gaussian_classes(20, 8, 3, 0.5, seed=1)
    args = (train_x, train_y, test_x)
    for classifier in ("logreg", "linear_svm"):
        expected = probe_predictions(*args, classifier=classifier)
        assert np.array_equal(context_on("cpu").probe_predictions(*args, classifier), expected)
    calls = []
    fake = np.zeros(len(test_x), dtype=np.int64)
    monkeypatch.setattr(torch_probe, "torch_probe_predictions", lambda *a, **k: calls.append(k) or fake)
    assert context_on("cuda").probe_predictions(*args, "logreg") is fake
    assert calls == [{"device": torch.device("cuda")}]
    svm = probe_predictions(*args, classifier="linear_svm")
    assert np.array_equal(context_on("cuda").probe_predictions(*args, "linear_svm"), svm)
    assert prediction_metrics(svm, test_y) == linear_probe(*args, test_y, classifier="linear_svm")
