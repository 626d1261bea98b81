"""Helpers the measurement modules share to shape their output into the store's long tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from clipdash.store import format_variant

Rows = list[tuple[str, str, str, float]]  # metric, dataset, variant, value

# Image folders under --data-root that every CIFAR-10-based measurement reads (test and probe splits).
CIFAR10_FOLDERS = ("cifar10", "cifar-10-batches-py")


def metric_rows(values: dict[str, float], dataset: str, **variant: object) -> Rows:
    """One metrics row per value; ``variant`` names the sub-series (severity, protocol, tau, ...)."""
    return [(metric, dataset, format_variant(**variant), float(value)) for metric, value in values.items()]


def prediction_rows(outcomes: dict[str, np.ndarray], **columns: object) -> pd.DataFrame:
    """Per-image zero-shot outcomes (``clipdash.evals.zeroshot.zero_shot_outcomes``) as compact rows."""
    n = len(outcomes["label"])
    return pd.DataFrame(
        {
            **{name: [value] * n for name, value in columns.items()},
            "image_index": np.arange(n, dtype=np.int32),
            "label": outcomes["label"].astype(np.int16),
            "prediction": outcomes["prediction"].astype(np.int16),
            "top1": outcomes["top1"].astype(bool),
            "top5": outcomes["top5"].astype(bool),
            "confidence": outcomes["confidence"].astype(np.float32),
            "true_prob": outcomes["true_prob"].astype(np.float32),
        }
    )


PREDICTION_COLUMNS = (
    ("image_index", "INTEGER"),  # row of the (limited) image set, in the loader's order
    ("label", "SMALLINT"),
    ("prediction", "SMALLINT"),
    ("top1", "BOOLEAN"),
    ("top5", "BOOLEAN"),  # the label is among the 5 highest cosines (k capped at the class count)
    ("confidence", "FLOAT"),  # softmax(logit_scale * cosine) probability of the prediction
    ("true_prob", "FLOAT"),  # ... of the label
)
