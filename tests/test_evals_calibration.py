"""Calibration metrics: a hand-computed ECE and NLL, agreement with torchmetrics' calibration error on the
same 15 bins, a temperature fit that recovers a known temperature, and cross-fitting that never scores an
image with a temperature fitted on it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchmetrics.functional.classification import multiclass_calibration_error

from clipdash.evals.calibration import (
    TEMPERATURE_RANGE,
    at_bound,
    expected_calibration_error,
    fit_temperature,
    log_probabilities,
    negative_log_likelihood,
    reliability_bins,
)
from clipdash.measurements.calibration import calibrate, calibration_metrics


def test_ece_of_a_hand_computed_case():
    """Bin 13 ([0.867, 0.933)): two at 0.9, one right → gap 0.4; bin 9 ([0.6, 0.667)): two at 0.62, both
    right → gap 0.38; ECE = 2/4 · 0.4 + 2/4 · 0.38 = 0.39."""
    bins = reliability_bins(np.array([0.9, 0.9, 0.62, 0.62]), np.array([1, 0, 1, 1]))
    filled = bins[bins["count"] > 0]
    assert filled["bin"].tolist() == [9, 13] and filled["count"].tolist() == [2, 2]
    assert filled["accuracy"].tolist() == [1.0, 0.5]
    assert expected_calibration_error(bins) == pytest.approx(0.39)
    assert len(bins) == 15 and bins["upper"].iloc[-1] == 1.0
    assert math.isnan(expected_calibration_error(reliability_bins(np.array([]), np.array([]))))


def test_a_confidence_of_one_falls_into_the_last_bin():
    bins = reliability_bins(np.array([1.0, 0.0]), np.array([1, 0]))
    assert bins.loc[bins["count"] > 0, "bin"].tolist() == [0, 14]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ece_agrees_with_torchmetrics(seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, size=(500, 10))
    labels = rng.integers(0, 10, size=500)
    log_probs = log_probabilities(logits)
    bins = reliability_bins(np.exp(log_probs.max(axis=1)), log_probs.argmax(axis=1) == labels)
    expected = multiclass_calibration_error(
        torch.from_numpy(np.exp(log_probs)), torch.from_numpy(labels), num_classes=10, n_bins=15, norm="l1"
    )
    assert expected_calibration_error(bins) == pytest.approx(expected.item(), abs=1e-6)


def test_nll_of_a_hand_computed_case():
    logits = np.array([[0.0, math.log(3.0)], [0.0, 0.0]])  # p(1) = 3/4; p(0) = 1/2
    nll = negative_log_likelihood(log_probabilities(logits), np.array([1, 0]))
    assert nll == pytest.approx(-(math.log(0.75) + math.log(0.5)) / 2)
    assert negative_log_likelihood(log_probabilities(logits, temperature=2.0), np.array([1, 0])) == (
        pytest.approx(-(math.log(math.sqrt(3) / (1 + math.sqrt(3))) + math.log(0.5)) / 2)
    )


def test_fit_temperature_recovers_the_temperature_labels_were_drawn_with():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, size=(20000, 10))
    probs = np.exp(log_probabilities(logits, temperature=2.5))
    labels = (probs.cumsum(axis=1) > rng.random((len(probs), 1))).argmax(axis=1)
    fitted = fit_temperature(logits, labels)
    assert fitted == pytest.approx(2.5, rel=0.05)
    best = negative_log_likelihood(log_probabilities(logits, fitted), labels)
    for other in (fitted * 0.9, fitted * 1.1, 1.0):
        assert best < negative_log_likelihood(log_probabilities(logits, other), labels)


def test_cross_fitting_never_scores_an_image_with_a_temperature_fitted_on_it():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, size=(40, 4))
    labels = np.where(rng.random(40) < 0.7, logits.argmax(axis=1), rng.integers(0, 4, 40))  # 70 % follow
    images, temperatures = calibrate(logits, labels)
    assert temperatures["temperature"].between(0.1, 10).all()
    assert temperatures["fold"].tolist() == [0, 1] and temperatures["n_fit"].tolist() == [20, 20]
    changed = logits.copy()
    changed[images["fold"] == 0] *= 3  # fold 0's images: only fold 1's temperature is fitted on them
    _, again = calibrate(changed, labels)
    assert again["temperature"][0] == pytest.approx(temperatures["temperature"][0])
    assert again["temperature"][1] != pytest.approx(temperatures["temperature"][1])


def test_scaling_keeps_predictions_and_lowers_the_held_out_nll_of_an_overconfident_classifier():
    rng = np.random.default_rng(2)
    true = rng.normal(0, 2, size=(4000, 5))
    labels = (np.exp(log_probabilities(true)).cumsum(axis=1) > rng.random((4000, 1))).argmax(axis=1)
    overconfident = 4 * true
    images, temperatures = calibrate(overconfident, labels)
    assert temperatures["fold"].tolist() == [0, 1]
    assert temperatures["temperature"].tolist() == pytest.approx([4, 4], rel=0.1)
    assert not temperatures["at_bound"].any()
    values, bins = calibration_metrics(images, 15)
    assert values["nll_ts"] < values["nll"] and values["ece_ts"] < values["ece"]
    assert (images["prediction"] == overconfident.argmax(axis=1)).all()
    assert bins.groupby("scaled")["count"].sum().tolist() == [4000, 4000]


@pytest.mark.parametrize(
    ("case", "end"),
    [("separable", TEMPERATURE_RANGE[0]), ("unrelated", TEMPERATURE_RANGE[1])],
)
def test_a_temperature_that_stops_at_the_search_range_is_flagged(case, end):
    """Logits that always rank the label first are best sharpened without limit (T → 0); logits unrelated
    to the labels are best flattened entirely (T → ∞): either fit stops at the range's end, and says so."""
    rng = np.random.default_rng(3)
    labels = (np.arange(200) // 2) % 4  # each fold (even, odd positions) holds every class equally
    if case == "separable":
        logits = 0.1 * rng.normal(0, 1, size=(200, 4))
        logits[np.arange(200), labels] += 1  # the label's logit is always the largest
    else:
        logits = np.tile(rng.normal(0, 5, size=4), (200, 1))  # one logit vector for every label
    _, temperatures = calibrate(logits, labels)
    assert temperatures["at_bound"].all()
    distance = np.abs(np.log(temperatures["temperature"]) - np.log(end))
    assert (distance < 0.5).all()  # near the end; a flat NLL stops the search a little short of it
    interior = rng.normal(0, 2, size=(200, 4))
    interior[np.arange(200), labels] += 1  # informative but not separable: an interior optimum
    assert not at_bound(interior, labels, fit_temperature(interior, labels))
