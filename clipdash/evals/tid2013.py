"""Full-reference perceptual alignment on TID2013: does the embedding cosine between a reference image and
its distorted copy track the human mean opinion score (MOS)?"""

from __future__ import annotations

from typing import Any

import numpy as np

from clipdash.evals.stats import as_numpy, l2_normalise, pearson, spearman


def cosine_similarity_pairs(reference_features: Any, distorted_features: Any) -> np.ndarray:
    """Row-wise cosine between reference row i and distorted row i (rows need not be normalised)."""
    reference, distorted = l2_normalise(reference_features), l2_normalise(distorted_features)
    if reference.shape != distorted.shape:
        raise ValueError(f"feature shapes differ: {reference.shape} vs {distorted.shape}")
    return np.sum(reference * distorted, axis=1)


def _distortion_label(value: Any) -> str:
    """TID2013 numbers distortion types 01..24 in its file names; integers are printed that way."""
    if isinstance(value, int | np.integer):
        return f"{int(value):02d}"
    return str(value)


def tid2013_alignment(similarity: Any, mos: Any, distortion: Any) -> dict[str, float]:
    """PLCC, SRCC and pair count, overall and per distortion type.

    Keys: ``plcc``, ``srcc``, ``n_pairs`` and ``plcc/distortion=DD``, ``srcc/distortion=DD``,
    ``n_pairs/distortion=DD`` for each type present. A type with fewer than 3 pairs (or a constant side)
    gets NaN correlations (see ``clipdash.evals.stats``).
    """
    scores, opinions = as_numpy(similarity).ravel(), as_numpy(mos).ravel()
    types = np.asarray([_distortion_label(value) for value in np.asarray(distortion, dtype=object).ravel()])
    if not scores.size == opinions.size == types.size:
        sizes = f"{scores.size} similarities, {opinions.size} MOS, {types.size} types"
        raise ValueError(f"lengths differ: {sizes}")
    metrics = {"plcc": pearson(scores, opinions), "srcc": spearman(scores, opinions)}
    metrics["n_pairs"] = float(scores.size)
    for label in sorted(set(types.tolist())):
        mask = types == label
        metrics[f"plcc/distortion={label}"] = pearson(scores[mask], opinions[mask])
        metrics[f"srcc/distortion={label}"] = spearman(scores[mask], opinions[mask])
        metrics[f"n_pairs/distortion={label}"] = float(mask.sum())
    return metrics
