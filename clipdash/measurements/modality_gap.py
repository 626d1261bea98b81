"""The modality gap (Liang et al. 2022, "Mind the Gap"): how far apart the image and text embeddings of
matching pairs sit on the sphere, ‖mean image embedding − mean text embedding‖, with each CIFAR-10 test
image paired with its class's zero-shot text embedding (the chosen templates). ``mean_cosine`` is the
pairs' mean cosine. Both are linear in the embeddings, so the per-class rows of ``modality_gap_classes``
(each class's mean image embedding and its text embedding) recompute them exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from clipdash.measurements import Measurement, Series
from clipdash.measurements.common import CIFAR10_FOLDERS, metric_rows
from clipdash.measurements.table import Table


@dataclass(frozen=True)
class ModalityGapParams:
    templates: str
    dataset: str = "cifar10"


def class_means(image: np.ndarray, text: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """Per class: its image count, mean image embedding and text embedding (``text`` is classes × D)."""
    classes = np.unique(labels)
    return pd.DataFrame(
        {
            "label": classes.astype(np.int16),
            "n_images": [int((labels == c).sum()) for c in classes],
            "image_mean": [image[labels == c].mean(axis=0).astype(np.float32) for c in classes],
            "text": [text[c].astype(np.float32) for c in classes],
        }
    )


def gap_from_classes(classes: pd.DataFrame) -> dict[str, float]:
    """``gap`` = ‖mean image − mean text‖ and ``mean_cosine`` over all pairs, from per-class rows (the
    count-weighted means of the images' and of their texts' embeddings)."""
    weights = classes["n_images"].to_numpy(float)
    if weights.sum() == 0:
        return {"gap": float("nan"), "mean_cosine": float("nan")}
    images, texts = np.stack(classes["image_mean"]), np.stack(classes["text"])
    mean_image = weights @ images / weights.sum()
    mean_text = weights @ texts / weights.sum()
    cosine = np.einsum("cd,cd->c", images, texts) @ weights / weights.sum()
    return {"gap": float(np.linalg.norm(mean_image - mean_text)), "mean_cosine": float(cosine)}


def compute(ctx, params: ModalityGapParams):
    from clipdash.store import EvalResult

    data = ctx.inputs.labeled(params.dataset)
    text = ctx.classifier(data.classnames, data.templates).T.numpy()  # classes × D, unit norm
    classes = class_means(ctx.features(params.dataset).numpy(), text, data.labels)
    rows = metric_rows(gap_from_classes(classes), params.dataset)
    return EvalResult("modality_gap", 0.0, rows, {"modality_gap_classes": classes})


MEASUREMENT = Measurement(
    name="modality_gap",
    description="‖mean image − mean text embedding‖ of CIFAR-10 test pairs (Liang et al. 2022)",
    params=lambda config: ModalityGapParams(config.templates),
    image_sets=lambda inputs: ("cifar10",),
    data_folders=lambda config: CIFAR10_FOLDERS,
    compute=compute,
    tables=(
        Table(
            "modality_gap_classes",
            "one class: its images' mean embedding and its text embedding",
            (("label", "SMALLINT"), ("n_images", "INTEGER"), ("image_mean", "FLOAT[]"), ("text", "FLOAT[]")),
        ),
    ),
    series=(Series("gap", "cifar10", "", "modality gap (CIFAR-10)"),),
    titles={"gap": "Modality gap ‖mean image − mean text‖", "mean_cosine": "Mean image–text cosine"},
)
