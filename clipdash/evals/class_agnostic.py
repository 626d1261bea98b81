"""Class-agnostic probing: describe each image by its softmax(cos/τ) profile over 32 generic prompts
(properties, materials, contexts, shapes, colours, none a dataset class name), then ask how well a linear
classifier recovers the dataset's classes from that profile, and how peaked the profile is (entropy).

The temperature τ sets how peaked the profile is: τ → ∞ gives a uniform profile (entropy ln 32), small τ
approaches a one-hot vote for the closest prompt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.special
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from clipdash.evals.linear_probe import make_probe
from clipdash.evals.stats import as_numpy

GENERIC_PROMPTS = (
    # what it is or does, without naming a class
    "a flying thing",
    "something that swims",
    "a living creature",
    "an animal with fur",
    "an animal with feathers",
    "a machine",
    "a vehicle",
    "something with wheels",
    "a manufactured object",
    "something from nature",
    # materials and surfaces
    "a metallic object",
    "something made of wood",
    "something made of plastic",
    "something made of glass",
    "something soft",
    "something hard and shiny",
    # contexts
    "a photo taken outdoors",
    "a photo taken indoors",
    "something in the water",
    "something in the sky",
    "something on the ground",
    "something in the grass",
    # shapes and sizes
    "a round object",
    "a long thin object",
    "a square object",
    "something small",
    "something large",
    # colours and brightness
    "something red",
    "something green",
    "something white",
    "something blue",
    "something dark",
)
TAU_GRID = (1, 0.5, 0.2, 0.1, 0.07, 0.05, 0.03, 0.02, 0.01)
#: The C values cross-validation chooses from, per τ (``tau_sweep(tune_C=True)``).
C_GRID = (0.01, 0.1, 1, 10, 100)


def softmax_with_temperature(cosines: Any, tau: float) -> np.ndarray:
    """Row-wise softmax(cos / τ), computed stably (the row maximum is subtracted first)."""
    if not tau > 0:
        raise ValueError(f"temperature tau must be positive, got {tau}")
    logits = as_numpy(cosines) / tau
    return scipy.special.softmax(logits, axis=-1)


def entropy(p: Any) -> np.ndarray:
    """Per-row Shannon entropy in nats, with 0 · log 0 = 0."""
    return np.sum(scipy.special.entr(as_numpy(p)), axis=-1)


def at_grid_edge(C: Any, grid: Sequence[float] = C_GRID) -> np.ndarray:
    """True where a cross-validated C is the smallest or largest of ``grid`` (NaN: False).

    At the edge, the best C may lie beyond the grid, so that τ's tuned value has not factored the
    regularisation out (on the bundled run, 275 of 279 fits chose C = 100).
    """
    values = np.asarray(C, dtype=float)
    return np.isclose(values, min(grid)) | np.isclose(values, max(grid))


def tau_sweep(
    train_cos: Any,
    train_y: Any,
    test_cos: Any,
    test_y: Any,
    taus: Sequence[float] = TAU_GRID,
    C: float = 1.0,
    tune_C: bool = False,
    C_grid: Sequence[float] = C_GRID,
    seed: int = 0,
) -> pd.DataFrame:
    """Per τ: test ``acc1`` of a linear SVC on softmax(cos/τ) features, test ``mean_entropy``, the ``C`` used.

    The features are not standardised (the thesis's protocol): the profile's scale is part of what τ does.
    That is also why two modes exist. With a fixed ``C`` (default), dividing the cosines by τ rescales the
    features, which changes the effective strength of the SVC's regularisation; so the fixed-C sweep alone
    cannot tell a temperature effect from a regularisation effect. With ``tune_C=True``, C is picked per τ
    from ``C_grid`` by stratified (up to) 3-fold cross-validation on the train split only, which factors the
    regularisation out; if the curve keeps its shape, the effect is the temperature's.
    The classifier is ``make_probe("linear_svm", standardize=False)``, the same one the app retrains.
    """
    train_labels, test_labels = as_numpy(train_y, np.int64).ravel(), as_numpy(test_y, np.int64).ravel()
    # Cross-validation needs every class in every fold: with fewer than 2 train images in some class
    # (a --limit run) C cannot be tuned, and the tuned sweep reports NaN rather than a guess.
    n_folds = min(3, int(np.bincount(train_labels).min())) if train_labels.size else 0
    rows = []
    for tau in taus:
        train_features = softmax_with_temperature(train_cos, tau)
        test_features = softmax_with_temperature(test_cos, tau)
        svc = make_probe("linear_svm", C=C, seed=seed, standardize=False)
        if tune_C and n_folds < 2:
            rows.append({"tau": float(tau), "acc1": math.nan, "mean_entropy": math.nan, "C": math.nan})
            continue
        if tune_C:
            folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
            search = GridSearchCV(svc, {"linearsvc__C": list(C_grid)}, cv=folds)
            search.fit(train_features, train_labels)
            model, used_C = search.best_estimator_, float(search.best_params_["linearsvc__C"])
        else:
            model, used_C = svc.fit(train_features, train_labels), float(C)
        has_test = test_labels.size > 0
        rows.append(
            {
                "tau": float(tau),
                "acc1": float(np.mean(model.predict(test_features) == test_labels)) if has_test else math.nan,
                "mean_entropy": float(entropy(test_features).mean()) if has_test else math.nan,
                "C": used_C,
            }
        )
    return pd.DataFrame(rows, columns=["tau", "acc1", "mean_entropy", "C"])
