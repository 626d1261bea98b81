"""Zero-shot classification: text-prompt classifier weights, top-k accuracy and mean per-class recall.

Semantics follow open_clip's ``build_zero_shot_classifier`` and CLIP_benchmark's metric names.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from clipdash.evals.stats import as_numpy, mean_per_class_recall

Template = str | Callable[[str], str]


def _format(template: Template, classname: str) -> str:
    if callable(template):
        return template(classname)
    if "{c}" not in template:
        raise ValueError(f"template {template!r} has no '{{c}}' placeholder for the class name")
    return template.format(c=classname)


def zero_shot_classifier(
    encode_text: Callable[[list[str]], torch.Tensor],
    classnames: Sequence[str],
    templates: Sequence[Template],
) -> torch.Tensor:
    """D×C classifier weights: per class, embed every template, L2-normalise, average, renormalise.

    ``encode_text`` receives the formatted prompts of one class at a time (so memory stays bounded for
    1000 classes × 80 templates) and returns their T×D embeddings. Templates are strings with a ``{c}``
    placeholder (CLIP_benchmark's convention) or callables.
    """
    if not classnames or not templates:
        raise ValueError("zero-shot classifier needs at least one class name and one template")
    columns = []
    with torch.no_grad():
        for classname in classnames:
            embeddings = encode_text([_format(template, classname) for template in templates])
            mean = F.normalize(embeddings.float(), dim=-1).mean(dim=0)
            columns.append(F.normalize(mean, dim=0))
    return torch.stack(columns, dim=1)


def accuracy(logits: Any, labels: Any, topk: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Top-k accuracies as fractions, keyed ``acc{k}``; k is capped at the number of classes.

    Empty input gives NaN for every k.
    """
    scores = torch.as_tensor(as_numpy(logits))
    targets = torch.as_tensor(as_numpy(labels, np.int64))
    if scores.ndim != 2 or targets.shape != scores.shape[:1]:
        shapes = f"{tuple(scores.shape)} and {tuple(targets.shape)}"
        raise ValueError(f"expected N×C logits and N labels, got {shapes}")
    if scores.shape[0] == 0:
        return {f"acc{k}": math.nan for k in topk}
    n_classes = scores.shape[1]
    ranked = scores.topk(min(max(topk), n_classes), dim=1).indices
    hits = ranked.eq(targets[:, None])
    return {f"acc{k}": hits[:, : min(k, n_classes)].any(dim=1).double().mean().item() for k in topk}


def zero_shot_outcomes(
    image_features: Any, classifier: Any, labels: Any, logit_scale: float = 100.0
) -> dict[str, np.ndarray]:
    """Per image: ``prediction``, whether the label is in the top 1 / top 5 (``top1``, ``top5``; k capped at
    the number of classes, ties broken as ``torch.topk`` does), the ``confidence`` (softmax probability of
    the prediction) and ``true_prob`` (of the label), with probabilities softmax(logit_scale · cosine).

    ``outcome_metrics`` turns these rows back into ``zero_shot_metrics``' numbers.
    """
    features = torch.as_tensor(as_numpy(image_features))
    weights = torch.as_tensor(as_numpy(classifier))
    targets = torch.as_tensor(as_numpy(labels, np.int64))
    logits = features @ weights
    if logits.shape[0] != targets.shape[0]:
        raise ValueError(f"{logits.shape[0]} images for {targets.shape[0]} labels")
    ranked = logits.topk(min(5, logits.shape[1]), dim=1).indices
    probs = torch.softmax(logit_scale * logits, dim=1)
    rows = torch.arange(len(targets))
    return {
        "label": targets.numpy(),
        "prediction": ranked[:, 0].numpy() if len(targets) else np.empty(0, np.int64),
        "top1": ranked[:, :1].eq(targets[:, None]).any(dim=1).numpy(),
        "top5": ranked.eq(targets[:, None]).any(dim=1).numpy(),
        "confidence": probs.max(dim=1).values.numpy() if len(targets) else np.empty(0),
        "true_prob": probs[rows, targets].numpy(),
    }


def outcome_metrics(outcomes: dict[str, np.ndarray], n_classes: int) -> dict[str, float]:
    """``acc1``, ``acc5``, ``mean_per_class_recall`` from ``zero_shot_outcomes``' per-image rows (NaN for
    no images)."""
    hits1, hits5 = as_numpy(outcomes["top1"], bool), as_numpy(outcomes["top5"], bool)
    if hits1.size == 0:
        return {"acc1": math.nan, "acc5": math.nan, "mean_per_class_recall": math.nan}
    return {
        "acc1": float(hits1.mean()),
        "acc5": float(hits5.mean()),
        "mean_per_class_recall": mean_per_class_recall(outcomes["prediction"], outcomes["label"], n_classes),
    }


def zero_shot_metrics(image_features: Any, classifier: Any, labels: Any) -> dict[str, float]:
    """``acc1``, ``acc5`` and ``mean_per_class_recall`` of logits = features @ classifier.

    Features are assumed L2-normalised (the classifier columns are, by construction), so the logits are
    cosines; the logit scale does not change the ranking. The same path as the stored per-image rows.
    """
    outcomes = zero_shot_outcomes(image_features, classifier, labels)
    return outcome_metrics(outcomes, as_numpy(classifier).shape[1])
