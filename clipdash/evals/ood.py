"""Out-of-distribution detection scores and their metrics.

MCM (Ming et al. 2022, "Delving into Out-of-Distribution Detection with Vision-Language
Representations"): an image's score is the largest softmax probability over the in-distribution (ID)
class prompts of its cosines divided by τ (τ = 1 in the paper); MSP (Hendrycks & Gimpel 2017) is the
largest softmax probability of a classifier's logits. A higher score says "in distribution", so ID is the
positive class of AUROC (scikit-learn's ``roc_auc_score``) and of the FPR at 95 % TPR.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import softmax
from sklearn.metrics import roc_auc_score


def mcm_scores(image_features: np.ndarray, text_features: np.ndarray, tau: float = 1.0) -> np.ndarray:
    """N unit image embeddings × (C×D unit ID-class text embeddings) → N scores max softmax(cos / τ)."""
    cosines = np.asarray(image_features, np.float64) @ np.asarray(text_features, np.float64).T
    return softmax(cosines / tau, axis=1).max(axis=1)


def msp_scores(logits: np.ndarray) -> np.ndarray:
    """N×C logits → N maximum softmax probabilities."""
    return softmax(np.asarray(logits, np.float64), axis=1).max(axis=1)


def _labelled(id_scores: np.ndarray, ood_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.concatenate([np.asarray(id_scores, np.float64), np.asarray(ood_scores, np.float64)])
    return np.r_[np.ones(len(id_scores)), np.zeros(len(ood_scores))], scores


def auroc(id_scores: np.ndarray, ood_scores: np.ndarray) -> float:
    """Area under the ROC curve separating ID (positive) from OOD by score; NaN if either set is empty."""
    if len(id_scores) == 0 or len(ood_scores) == 0:
        return math.nan
    return float(roc_auc_score(*_labelled(id_scores, ood_scores)))


def fpr_at_tpr(id_scores: np.ndarray, ood_scores: np.ndarray, tpr: float = 0.95) -> float:
    """The fraction of OOD images scored at or above the highest threshold that keeps ``tpr`` of the ID
    images (ties count as detected); NaN if either set is empty."""
    if len(id_scores) == 0 or len(ood_scores) == 0:
        return math.nan
    ranked = np.sort(np.asarray(id_scores, np.float64))[::-1]
    threshold = ranked[math.ceil(tpr * len(ranked)) - 1]
    return float(np.mean(np.asarray(ood_scores, np.float64) >= threshold))
