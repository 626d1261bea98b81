"""Texture-shape cue conflict (Geirhos et al. 2019): decision rules and shape bias.

Decision rules are separate named functions (a two-prompt vote, the 1000→16 mean mapping, a 16-way
argmax); every rule ends in a per-image decision, and ONE function turns decisions into shape bias for
models and humans alike (model-vs-human's lesson: the same analysis code for both).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from clipdash.evals.bootstrap import BootstrapConfig
from clipdash.evals.stats import as_numpy, l2_normalise

DECISION_COLUMNS = ("shape_class", "texture_class", "decision")
TRIAL_COLUMNS = ("subject", *DECISION_COLUMNS)
SHAPE_BIAS_KEYS = ("shape_bias", "shape_fraction", "texture_fraction", "n_shape", "n_texture", "n_images")


def two_prompt_vote(
    image_features: Any, shape_text_features: Any, texture_text_features: Any
) -> dict[str, np.ndarray]:
    """Per image, does the texture-class prompt beat the shape-class prompt?

    Row i of each text array is the prompt embedding of image i's shape (texture) class. Returns the
    cosines ``shape_score`` and ``texture_score`` and the bool ``texture_wins`` (a tie counts for shape).
    """
    images = l2_normalise(image_features)
    shape_text, texture_text = l2_normalise(shape_text_features), l2_normalise(texture_text_features)
    if not images.shape == shape_text.shape == texture_text.shape:
        raise ValueError(
            f"expected three N×D arrays, got {images.shape}, {shape_text.shape}, {texture_text.shape}"
        )
    shape_score = np.sum(images * shape_text, axis=1)
    texture_score = np.sum(images * texture_text, axis=1)
    return {
        "shape_score": shape_score,
        "texture_score": texture_score,
        "texture_wins": texture_score > shape_score,
    }


def texture_bias(texture_wins: Any) -> float:
    """Share of texture votes among cue-conflict images (the caller passes only those); NaN if none."""
    wins = as_numpy(texture_wins, bool).ravel()
    return float(wins.mean()) if wins.size else math.nan


def imagenet_to_16_mean(
    probabilities: Any, indices: Mapping[str, Sequence[int]], classnames16: Sequence[str]
) -> np.ndarray:
    """N×16 scores: per category, the mean probability of its ImageNet-1k classes.

    model-vs-human's default ImageNet→16 mapping (``ImageNetProbabilitiesTo16ClassesMapping`` with
    ``np.mean``); columns follow ``classnames16``, ``indices`` maps each name to its ImageNet indices.
    """
    probs = as_numpy(probabilities)
    missing = [name for name in classnames16 if name not in indices]
    if missing:
        raise ValueError(f"no ImageNet indices for {missing}; known categories: {sorted(indices)}")
    columns = []
    for name in classnames16:
        members = np.asarray(indices[name], dtype=np.int64)
        if members.size == 0 or members.min() < 0 or members.max() >= probs.shape[1]:
            raise ValueError(
                f"category {name!r} needs indices in 0..{probs.shape[1] - 1}, got {members.tolist()}"
            )
        columns.append(probs[:, members].mean(axis=1))
    return np.stack(columns, axis=1)


def sixteen_class_decisions(probabilities: Any, classnames16: Sequence[str]) -> list[str]:
    """The argmax category name of each row of an N×16 score array."""
    scores = as_numpy(probabilities)
    if scores.ndim != 2 or scores.shape[1] != len(classnames16):
        raise ValueError(f"expected N×{len(classnames16)} scores, got shape {scores.shape}")
    return [classnames16[index] for index in scores.argmax(axis=1)]


def _check_columns(frame: pd.DataFrame, required: Sequence[str]) -> None:
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise ValueError(f"missing columns {missing}; need {list(required)}, got {list(frame.columns)}")


def shape_bias(frame: pd.DataFrame) -> dict[str, float]:
    """Shape bias of per-image decisions (columns shape_class, texture_class, decision).

    Rows with shape == texture are dropped (no conflict). A decision equal to the shape class counts for
    shape, one equal to the texture class for texture; other answers are ignored. ``shape_bias`` =
    shape / (shape + texture), NaN when both are 0; ``shape_fraction`` and ``texture_fraction`` are over
    the kept rows (model-vs-human divides by all rows including the dropped ones; the ratio is the same).
    """
    _check_columns(frame, DECISION_COLUMNS)
    kept = frame[frame["shape_class"] != frame["texture_class"]]
    n_shape = int((kept["decision"] == kept["shape_class"]).sum())
    n_texture = int((kept["decision"] == kept["texture_class"]).sum())
    n_images = len(kept)
    return {
        "shape_bias": n_shape / (n_shape + n_texture) if n_shape + n_texture else math.nan,
        "shape_fraction": n_shape / n_images if n_images else math.nan,
        "texture_fraction": n_texture / n_images if n_images else math.nan,
        "n_shape": float(n_shape),
        "n_texture": float(n_texture),
        "n_images": float(n_images),
    }


def shape_bias_per_class(frame: pd.DataFrame) -> pd.DataFrame:
    """``shape_bias`` and its counts per shape class: one row per class, indexed by ``shape_class``."""
    _check_columns(frame, DECISION_COLUMNS)
    rows = {name: shape_bias(group) for name, group in frame.groupby("shape_class", sort=True)}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(SHAPE_BIAS_KEYS))
    return table.rename_axis("shape_class")


def human_shape_bias(trials: pd.DataFrame) -> pd.DataFrame:
    """The human baseline table: per subject and per shape class (plus ``'all'``), and a ``'mean'`` subject.

    Columns subject, shape_class, n_shape, n_texture, shape_bias (the ``human_shape_bias`` store table).
    The ``'mean'`` rows average the subjects' shape bias (each subject weighs the same, as in
    Geirhos et al. 2019) and sum their counts.
    """
    _check_columns(trials, TRIAL_COLUMNS)
    rows = []
    for subject, subject_trials in trials.groupby("subject", sort=True):
        rows.append({"subject": subject, "shape_class": "all", **shape_bias(subject_trials)})
        for record in shape_bias_per_class(subject_trials).reset_index().to_dict("records"):
            rows.append({"subject": subject, **record})
    per_subject = pd.DataFrame(rows, columns=["subject", "shape_class", "n_shape", "n_texture", "shape_bias"])
    mean = per_subject.groupby("shape_class", sort=False).agg(
        n_shape=("n_shape", "sum"), n_texture=("n_texture", "sum"), shape_bias=("shape_bias", "mean")
    )
    mean = mean.reset_index().assign(subject="mean")
    table = pd.concat([per_subject, mean[per_subject.columns]], ignore_index=True)
    return table.astype({"n_shape": "int64", "n_texture": "int64", "shape_bias": "float64"})


def shape_bias_difference(
    first: pd.DataFrame, second: pd.DataFrame, config: BootstrapConfig | None = None
) -> dict[str, float]:
    """Shape bias of ``second`` minus that of ``first`` (decision rows with image, shape_class,
    texture_class, decision, e.g. two epochs or two models), over the conflict images both decided, with
    a paired 95 % bootstrap interval: each replicate draws the same images for both, so the interval is
    that of the change, not of two independent biases. Keys: ``difference``, ``ci_low``, ``ci_high``,
    ``n`` (images), ``first``, ``second`` (the two biases on those images), ``changed`` (images whose cue
    changed)."""
    from clipdash.evals import bootstrap

    config = config or BootstrapConfig()
    columns = ["image", "shape_class", "texture_class", "decision"]
    pairs = first[columns].merge(second[columns], on=["image", "shape_class", "texture_class"])
    pairs = pairs[pairs["shape_class"] != pairs["texture_class"]]
    counts = bootstrap.resample_counts(len(pairs), config)
    biases = []
    cues = []
    for suffix in ("_x", "_y"):
        shape = (pairs[f"decision{suffix}"] == pairs["shape_class"]).to_numpy()
        texture = (pairs[f"decision{suffix}"] == pairs["texture_class"]).to_numpy()
        biases.append((bootstrap.ratio(counts, shape, shape | texture), shape_bias_of(shape, texture)))
        cues.append(np.where(shape, 1, np.where(texture, -1, 0)))
    low, high = bootstrap.percentile_interval(biases[1][0] - biases[0][0], config.level)
    return {
        "difference": biases[1][1] - biases[0][1],
        "ci_low": low,
        "ci_high": high,
        "n": float(len(pairs)),
        "first": biases[0][1],
        "second": biases[1][1],
        "changed": float((cues[0] != cues[1]).sum()),
    }


def shape_bias_of(shape: np.ndarray, texture: np.ndarray) -> float:
    """#shape / (#shape + #texture) of boolean per-image cues; NaN when neither."""
    decided = int(shape.sum() + texture.sum())
    return int(shape.sum()) / decided if decided else math.nan
