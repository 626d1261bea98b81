"""Known answers for the class-agnostic prompts, the tempered softmax, entropy and the τ sweep."""

import json
import math
import re

import numpy as np
import pytest

from clipdash.evals.class_agnostic import (
    GENERIC_PROMPTS,
    TAU_GRID,
    entropy,
    softmax_with_temperature,
    tau_sweep,
)

CUE_CONFLICT_CLASSES = (
    "airplane bear bicycle bird boat bottle car cat chair clock dog elephant keyboard knife oven truck"
).split()
STOPWORDS = {"a", "an", "the", "of", "with", "and", "in", "on", "that", "from"}


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower())) - STOPWORDS


def _assert_no_class_names(classnames):
    for prompt in GENERIC_PROMPTS:
        shared = [name for name in classnames if _words(name) & _words(prompt)]
        assert not shared, f"{prompt!r} shares words with classes {shared}"


def test_generic_prompts():
    assert len(GENERIC_PROMPTS) == 32 and len(set(GENERIC_PROMPTS)) == 32
    _assert_no_class_names(CUE_CONFLICT_CLASSES)


@pytest.mark.shared_data
def test_generic_prompts_name_no_cifar_class(shared_data):
    for name in ("cifar10", "cifar100"):
        _assert_no_class_names(json.loads((shared_data / "prompts" / f"{name}.json").read_text())["classes"])


def test_entropy_known_values():
    assert entropy(np.full(32, 1 / 32)) == pytest.approx(math.log(32))
    np.testing.assert_allclose(entropy([[0.5, 0.5], [1.0, 0.0]]), [math.log(2), 0.0])  # 0 log 0 = 0


def test_two_prompt_softmax_and_entropy_hand_computed():
    # cosines (0.3, 0.1) at tau 0.1 -> logits (3, 1): p = 1 / (1 + e^-2) = 0.880797, q = 0.119203;
    # entropy = -(p ln p + q ln q) = ln(1 + e^-2) + 2q = 0.126928 + 0.238406 = 0.365334
    p = softmax_with_temperature([[0.3, 0.1]], 0.1)
    np.testing.assert_allclose(p, [[0.880797, 0.119203]], atol=1e-6)
    np.testing.assert_allclose(entropy(p), [0.365334], atol=1e-6)


def test_softmax_limits_and_stability():
    cosines = np.random.default_rng(0).uniform(-1, 1, size=(5, 32))
    np.testing.assert_allclose(entropy(softmax_with_temperature(cosines, 1e6)), math.log(32), atol=1e-9)
    np.testing.assert_array_equal(softmax_with_temperature([[1000.0, 0.0]], 0.01), [[1.0, 0.0]])
    with pytest.raises(ValueError, match="positive"):
        softmax_with_temperature(cosines, 0.0)


def _separable_cosines(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class k is closest to prompt k (of 32), with noise in the other cosines."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), n_per_class)
    cosines = rng.uniform(0.1, 0.2, size=(labels.size, 32))
    cosines[np.arange(labels.size), labels] += 0.1
    return cosines, labels


def test_tau_sweep_fixed_C():
    train_cos, train_y = _separable_cosines(40, seed=0)
    test_cos, test_y = _separable_cosines(20, seed=1)
    sweep = tau_sweep(train_cos, train_y, test_cos, test_y)
    assert list(sweep.columns) == ["tau", "acc1", "mean_entropy", "C"]
    assert sweep["tau"].tolist() == list(TAU_GRID)
    assert (sweep["C"] == 1.0).all()
    assert sweep.loc[sweep["tau"] == 0.01, "acc1"].item() == 1.0
    # a smaller tau sharpens every profile: entropy falls along the grid
    assert np.all(np.diff(sweep["mean_entropy"]) < 0)
    assert sweep["mean_entropy"].iloc[0] < math.log(32)


def test_tau_sweep_tuned_C():
    train_cos, train_y = _separable_cosines(30, seed=0)
    test_cos, test_y = _separable_cosines(10, seed=1)
    grid = (0.1, 10.0, 1000.0)
    sweep = tau_sweep(train_cos, train_y, test_cos, test_y, taus=(1.0, 0.05), tune_C=True, C_grid=grid)
    assert sweep["C"].isin(grid).all()
    assert sweep["acc1"].max() == 1.0


def test_tau_sweep_empty_test_is_nan():
    train_cos, train_y = _separable_cosines(10, seed=0)
    sweep = tau_sweep(train_cos, train_y, np.zeros((0, 32)), np.zeros(0), taus=(0.1,))
    assert math.isnan(sweep["acc1"].item()) and math.isnan(sweep["mean_entropy"].item())


def test_tuned_sweep_with_too_few_images_per_class_reports_nan_not_a_guess():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(4, 32))
    sweep = tau_sweep(train, np.array([0, 0, 1, 2]), train, np.array([0, 0, 1, 2]), taus=(0.1,), tune_C=True)
    assert np.isnan(sweep["acc1"]).all() and np.isnan(sweep["C"]).all()
    two_per_class = tau_sweep(
        np.repeat(train, 2, axis=0),
        np.repeat([0, 1, 2, 3], 2),
        train,
        np.array([0, 1, 2, 3]),
        taus=(0.1,),
        tune_C=True,
    )
    assert not np.isnan(two_per_class["acc1"]).any()


def test_at_grid_edge_flags_the_smallest_and_largest_C():
    from clipdash.evals.class_agnostic import C_GRID, at_grid_edge

    assert C_GRID == (0.01, 0.1, 1, 10, 100)
    assert at_grid_edge([100.0, 10.0, 0.01, 1.0, float("nan")]).tolist() == [True, False, True, False, False]
