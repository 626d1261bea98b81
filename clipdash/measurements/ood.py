"""Out-of-distribution detection with CIFAR-10 test images as in-distribution (ID): each image's MCM score
(max softmax over the ten CIFAR-10 class embeddings of cosine / τ, τ = 1; Ming et al. 2022), and per OOD
set the AUROC and the FPR at 95 % TPR (Tu et al.'s holistic evaluation reports both).

OOD sets from the data at hand, with the images of classes that overlap CIFAR-10 removed:
- ``imagenette``: Imagenette val without English springer (a CIFAR dog) and garbage truck (a CIFAR truck);
- ``cue-conflict``: the conflict stimuli whose shape and texture classes are both outside CIFAR-10 (bear,
  bicycle, bottle, chair, clock, elephant, keyboard, knife, oven): airplane, bird, boat (ship), car
  (automobile), cat, dog and truck are CIFAR classes in shape or texture;
- ``livec``: LIVE-C photos and ``mit1003``: MIT1003 scenes. Both are unlabelled, so nothing can be removed:
  some of their photos show cars, dogs, cats or birds, which makes these two sets harder than a clean OOD
  set would be (the numbers are a lower bound on separability).
Every score is stored in ``ood_scores`` (ID and OOD rows), so AUROC and FPR recompute from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from clipdash.measurements import Measurement, Series
from clipdash.measurements.common import CIFAR10_FOLDERS, Rows, metric_rows
from clipdash.measurements.table import Table

ID_DATASET = "cifar10"
OOD_SETS = ("imagenette", "cue-conflict", "livec", "mit1003")
# OOD classes that are CIFAR-10 classes (or their texture is): removed from the OOD sets.
IMAGENETTE_OVERLAP = {"English Springer Spaniel": "dog", "garbage truck": "truck"}
CUE_CONFLICT_OVERLAP = {
    "airplane": "airplane",
    "bird": "bird",
    "boat": "ship",
    "car": "automobile",
    "cat": "cat",
    "dog": "dog",
    "truck": "truck",
}


@dataclass(frozen=True)
class OodParams:
    templates: str
    id_dataset: str = ID_DATASET
    ood_sets: tuple[str, ...] = OOD_SETS
    score: str = "mcm"
    tau: float = 1.0
    tpr: float = 0.95
    removed: tuple[str, ...] = (
        *(f"imagenette: {name} (CIFAR {c})" for name, c in IMAGENETTE_OVERLAP.items()),
        "cue-conflict: shape or texture a CIFAR-10 class",
    )


def ood_rows(inputs, name: str) -> np.ndarray:
    """The rows of image set ``name`` that are out of distribution for CIFAR-10 (all, when unlabelled)."""
    if name == "imagenette":
        data = inputs.labeled("imagenette")
        removed = {data.classnames.index(c) for c in IMAGENETTE_OVERLAP}
        return np.flatnonzero(~np.isin(data.labels, sorted(removed)))
    if name == "cue-conflict":
        data = inputs.cue_conflict
        pairs = zip(data.shape_class, data.texture_class, strict=True)
        keep = [not ({shape, texture} & set(CUE_CONFLICT_OVERLAP)) for shape, texture in pairs]
        return np.flatnonzero(keep)
    return np.arange(len(inputs.pixels(name)))


def compute(ctx, params: OodParams):
    from clipdash.evals.ood import auroc, fpr_at_tpr, mcm_scores
    from clipdash.store import EvalResult

    data = ctx.inputs.labeled(params.id_dataset)
    text = ctx.classifier(data.classnames, data.templates).T.numpy()  # classes × D
    id_scores = mcm_scores(ctx.features(params.id_dataset).numpy(), text, params.tau)
    frames = [score_rows(params.id_dataset, np.arange(len(id_scores)), id_scores, True)]
    rows: Rows = []
    for name in params.ood_sets:
        index = ood_rows(ctx.inputs, name)
        scores = mcm_scores(ctx.features(name).numpy()[index], text, params.tau)
        values = {
            "auroc": auroc(id_scores, scores),
            "fpr95": fpr_at_tpr(id_scores, scores, params.tpr),
            "n_ood": len(scores),
        }
        rows += metric_rows(values, name, id=params.id_dataset)
        frames.append(score_rows(name, index, scores, False))
    return EvalResult("ood", 0.0, rows, {"ood_scores": pd.concat(frames, ignore_index=True)})


def score_rows(dataset: str, index: np.ndarray, scores: np.ndarray, is_id: bool) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dataset": dataset,
            "image_index": index.astype(np.int32),
            "is_id": is_id,
            "score": scores.astype(np.float32),
        }
    )


MEASUREMENT = Measurement(
    name="ood",
    description="OOD detection (MCM score, ID = CIFAR-10 test): AUROC and FPR@95 on four OOD sets",
    params=lambda config: OodParams(config.templates),
    image_sets=lambda inputs: (ID_DATASET, *OOD_SETS),
    data_folders=lambda config: (
        *CIFAR10_FOLDERS,
        "imagenette",
        "cue-conflict",
        "livec-224",
        "livec",
        "mit1003-100",
        "mit1003",
    ),  # fmt: skip
    compute=compute,
    tables=(
        Table(
            "ood_scores",
            "one ID (CIFAR-10 test) or OOD image: its detection score (higher: in distribution)",
            (("dataset", "VARCHAR"), ("image_index", "INTEGER"), ("is_id", "BOOLEAN"), ("score", "FLOAT")),
        ),
    ),
    series=(
        Series(
            "auroc", "imagenette", "id=cifar10", "OOD AUROC (Imagenette vs CIFAR-10)", summary="ood_auroc"
        ),
        Series("auroc", "livec", "id=cifar10", "OOD AUROC (LIVE-C vs CIFAR-10)"),
        Series("auroc", "mit1003", "id=cifar10", "OOD AUROC (MIT1003 vs CIFAR-10)"),
        Series("auroc", "cue-conflict", "id=cifar10", "OOD AUROC (cue-conflict vs CIFAR-10)"),
        Series("fpr95", "imagenette", "id=cifar10", "OOD FPR@95%TPR (Imagenette vs CIFAR-10)"),
    ),
    titles={"auroc": "OOD detection AUROC (ID: CIFAR-10)", "fpr95": "OOD FPR at 95 % TPR (ID: CIFAR-10)"},
)
