"""Known answers for antonym-prompt (CLIP-IQA) quality scores and their alignment with MOS."""

import math

import numpy as np
import pytest

from clipdash.evals.quality import ANTONYM_PROMPTS, antonym_quality_scores, quality_alignment


def test_antonym_prompts():
    assert ANTONYM_PROMPTS == ("Good photo.", "Bad photo.")


def test_antonym_quality_scores_hand_computed():
    images = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    prompts = np.array([[1.0, 0.0], [0.0, 1.0]])  # good, bad
    scores = antonym_quality_scores(images, prompts, logit_scale=2.0)
    # logits (2, 0) -> e^2 / (e^2 + 1); (0, 2) -> 1 / (1 + e^2); a tie -> 1/2
    np.testing.assert_allclose(scores, [math.e**2 / (math.e**2 + 1), 1 / (1 + math.e**2), 0.5])


def test_antonym_quality_scores_large_scale_is_finite():
    scores = antonym_quality_scores([[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]], logit_scale=1e5)
    np.testing.assert_array_equal(scores, [1.0, 0.0])


def test_antonym_quality_scores_needs_two_prompts():
    with pytest.raises(ValueError, match="expected 2 prompt"):
        antonym_quality_scores(np.ones((2, 3)), np.ones((3, 3)), logit_scale=100.0)


def test_quality_alignment_hand_computed():
    # deviations (-0.15, -0.05, 0.05, 0.15) and (-1.5, 0.5, -0.5, 1.5): r = 0.4 / sqrt(0.05 * 5) = 0.8;
    # ranks differ by (0, 1, 1, 0): rho = 1 - 6 * 2 / (4 * 15) = 0.8
    metrics = quality_alignment([0.1, 0.2, 0.3, 0.4], [1.0, 3.0, 2.0, 4.0])
    assert metrics == pytest.approx({"plcc": 0.8, "srcc": 0.8, "n_images": 4.0})


def test_quality_alignment_constant_scores_are_nan():
    metrics = quality_alignment([0.5, 0.5, 0.5], [1.0, 2.0, 3.0])
    assert math.isnan(metrics["plcc"]) and math.isnan(metrics["srcc"]) and metrics["n_images"] == 3
