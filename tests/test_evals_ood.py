"""OOD detection: AUROC agrees with scikit-learn's ROC curve, FPR at 95 % TPR on a hand-computed case and
against the ROC curve, and the MCM score of hand-made embeddings."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_curve

from clipdash.evals.ood import auroc, fpr_at_tpr, mcm_scores, msp_scores


def test_fpr_at_95_of_a_hand_computed_case():
    """20 ID scores 1..20: keeping 95 % (19) of them needs the threshold 2; OOD scores ≥ 2: 3 of 4."""
    id_scores = np.arange(1, 21, dtype=float)
    ood_scores = np.array([0.5, 2.0, 3.0, 25.0])
    assert fpr_at_tpr(id_scores, ood_scores) == 0.75
    assert fpr_at_tpr(id_scores, ood_scores, tpr=1.0) == 0.75  # threshold 1: 2, 3 and 25
    assert fpr_at_tpr(id_scores, np.array([0.0])) == 0.0
    assert math.isnan(fpr_at_tpr(id_scores, np.array([])))


@pytest.mark.parametrize("seed", [0, 1])
def test_auroc_and_fpr_agree_with_the_roc_curve(seed):
    rng = np.random.default_rng(seed)
    id_scores, ood_scores = rng.normal(1, 1, 400), rng.normal(0, 1, 300)
    y = np.r_[np.ones(400), np.zeros(300)]
    fpr, tpr, _ = roc_curve(y, np.r_[id_scores, ood_scores])
    assert auroc(id_scores, ood_scores) == pytest.approx(np.trapezoid(tpr, fpr))
    assert fpr_at_tpr(id_scores, ood_scores) == pytest.approx(fpr[np.argmax(tpr >= 0.95)])
    assert auroc(id_scores, id_scores) == pytest.approx(0.5)
    assert auroc(id_scores + 100, ood_scores) == 1.0


def test_mcm_is_the_largest_softmax_of_cosines_over_tau():
    text = np.array([[1.0, 0.0], [0.0, 1.0]])
    images = np.array([[1.0, 0.0], [np.sqrt(0.5), np.sqrt(0.5)]])
    scores = mcm_scores(images, text, tau=1.0)
    assert scores[0] == pytest.approx(math.e / (math.e + 1))  # cosines 1 and 0
    assert scores[1] == pytest.approx(0.5)  # equally close to both classes
    assert mcm_scores(images, text, tau=0.01)[0] == pytest.approx(1.0)
    assert msp_scores(np.array([[0.0, math.log(3.0)]]))[0] == pytest.approx(0.75)
