"""No-reference image quality with antonym prompts (CLIP-IQA, Wang et al. 2023).

Each image's score is the softmax probability of "Good photo." against "Bad photo.": the antonym pair
cancels the prompts' shared bias, which a single prompt's cosine would keep.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from clipdash.evals.stats import as_numpy, l2_normalise, pearson, spearman

ANTONYM_PROMPTS = ("Good photo.", "Bad photo.")


def antonym_quality_scores(image_features: Any, prompt_features: Any, logit_scale: float) -> np.ndarray:
    """Per-image probability of the first (positive) prompt under softmax(logit_scale · cosine).

    ``prompt_features`` is 2×D, in ``ANTONYM_PROMPTS`` order; ``logit_scale`` is the model's learned
    (exponentiated) scale, about 100 for trained CLIP models.
    """
    prompts = l2_normalise(prompt_features)
    if prompts.shape[0] != len(ANTONYM_PROMPTS):
        raise ValueError(f"expected {len(ANTONYM_PROMPTS)} prompt embeddings, got {prompts.shape[0]}")
    logits = logit_scale * (l2_normalise(image_features) @ prompts.T)
    # softmax over two logits = sigmoid of their difference, which cannot overflow this way
    return 0.5 * (1.0 + np.tanh(0.5 * (logits[:, 0] - logits[:, 1])))


def quality_alignment(scores: Any, mos: Any) -> dict[str, float]:
    """``plcc``, ``srcc`` between quality scores and MOS, and ``n_images``; NaN correlations if undefined."""
    values = as_numpy(scores).ravel()
    return {"plcc": pearson(values, mos), "srcc": spearman(values, mos), "n_images": float(values.size)}
