"""Out-of-distribution detection: each image's score (higher: in distribution), and per OOD set the AUROC
and the FPR at 95 % TPR (Tu et al.'s holistic evaluation reports both).

The in-distribution (ID) set is a setting (``--ood-id``): CIFAR-10 test (default) or Imagenette val, the ID
set an ImageNet-1k classifier can score (it has no CIFAR-10 head). A CLIP model's score is MCM (Ming et al.
2022: max softmax over the ID class prompts of cosine / τ, τ = 1); a classifier's is MSP (Hendrycks &
Gimpel 2017: max softmax over the ten Imagenette logits). Each ID set's OOD sets are the others at hand,
with the images of classes that overlap the ID classes removed:
- ID CIFAR-10: Imagenette without English springer (a CIFAR dog) and garbage truck (a CIFAR truck);
  cue-conflict stimuli whose shape and texture are both outside CIFAR-10 (bear, bicycle, bottle, chair,
  clock, elephant, keyboard, knife, oven; airplane, bird, boat ≈ ship, car ≈ automobile, cat, dog and truck
  are CIFAR classes);
- ID Imagenette: CIFAR-10 without dog and truck; cue-conflict without dog and truck in shape or texture;
- both: LIVE-C photos and MIT1003 scenes. They are unlabelled, so nothing can be removed: some of their
  photos show cars, dogs or birds, which makes them harder than a clean OOD set (a lower bound on
  separability).
Every score is stored in ``ood_scores`` (ID and OOD rows of one setting), so AUROC and FPR recompute from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from clipdash.measurements import Measurement, Series
from clipdash.measurements.common import CIFAR10_FOLDERS, Rows, metric_rows
from clipdash.measurements.table import Table

ID_SETS = ("cifar10", "imagenette")
OOD_SETS = {
    "cifar10": ("imagenette", "cue-conflict", "livec", "mit1003"),
    "imagenette": ("cifar10", "cue-conflict", "livec", "mit1003"),
}
# Per ID set, the classes of each labelled OOD set that are ID classes (in shape or texture for
# cue-conflict): their images are removed. Values name the ID class they overlap.
OVERLAPS = {
    "cifar10": {
        "imagenette": {"English Springer Spaniel": "dog", "garbage truck": "truck"},
        "cue-conflict": {
            "airplane": "airplane",
            "bird": "bird",
            "boat": "ship",
            "car": "automobile",
            "cat": "cat",
            "dog": "dog",
            "truck": "truck",
        },
    },
    "imagenette": {
        "cifar10": {"dog": "English Springer Spaniel", "truck": "garbage truck"},
        "cue-conflict": {"dog": "English Springer Spaniel", "truck": "garbage truck"},
    },
}


# What each ID set's OOD sets lose, in words (stored with the setting; CIFAR-10's as first stored).
REMOVED = {
    "cifar10": (
        "imagenette: English Springer Spaniel (CIFAR dog)",
        "imagenette: garbage truck (CIFAR truck)",
        "cue-conflict: shape or texture a CIFAR-10 class",
    ),
    "imagenette": (
        "cifar10: dog (Imagenette English Springer Spaniel)",
        "cifar10: truck (Imagenette garbage truck)",
        "cue-conflict: shape or texture dog or truck",
    ),
}


@dataclass(frozen=True)
class OodParams:
    templates: str
    id_dataset: str = "cifar10"
    ood_sets: tuple[str, ...] = OOD_SETS["cifar10"]
    score: str = "mcm"
    tau: float = 1.0
    tpr: float = 0.95
    removed: tuple[str, ...] = REMOVED["cifar10"]


def clip_params(config) -> OodParams:
    id_dataset = config.ood_id
    return OodParams(config.templates, id_dataset, OOD_SETS[id_dataset], removed=REMOVED[id_dataset])


@dataclass(frozen=True)
class ClassifierOodParams:
    """An ImageNet-1k classifier: MSP over its ten Imagenette logits, ID = Imagenette val."""

    id_dataset: str = "imagenette"
    ood_sets: tuple[str, ...] = OOD_SETS["imagenette"]
    score: str = "msp over the ten Imagenette logits"
    tpr: float = 0.95
    removed: tuple[str, ...] = REMOVED["imagenette"]


def ood_rows(inputs, name: str, id_dataset: str = "cifar10") -> np.ndarray:
    """The rows of image set ``name`` that are out of distribution for ``id_dataset`` (all, when
    unlabelled)."""
    overlap = OVERLAPS[id_dataset].get(name, {})
    if name == "cue-conflict":
        data = inputs.cue_conflict
        pairs = zip(data.shape_class, data.texture_class, strict=True)
        return np.flatnonzero([not ({shape, texture} & set(overlap)) for shape, texture in pairs])
    if name in ID_SETS:
        data = inputs.labeled(name)
        removed = [data.classnames.index(c) for c in overlap]
        return np.flatnonzero(~np.isin(data.labels, removed))
    return np.arange(len(inputs.pixels(name)))


def detection_result(inputs, params: OodParams | ClassifierOodParams, scores):
    """Metric rows and ``ood_scores`` rows: ``scores(name, rows)`` scores the given rows of an image set
    (all of them for None), the ID set whole and each OOD set without its overlapping classes."""
    from clipdash.evals.ood import auroc, fpr_at_tpr
    from clipdash.store import EvalResult

    id_scores = scores(params.id_dataset, None)
    frames = [score_rows(params.id_dataset, np.arange(len(id_scores)), id_scores, True)]
    rows: Rows = []
    for name in params.ood_sets:
        index = ood_rows(inputs, name, params.id_dataset)
        ood = scores(name, index)
        values = {
            "auroc": auroc(id_scores, ood),
            "fpr95": fpr_at_tpr(id_scores, ood, params.tpr),
            "n_ood": len(ood),
        }
        rows += metric_rows(values, name, id=params.id_dataset)
        frames.append(score_rows(name, index, ood, False))
    return EvalResult("ood", 0.0, rows, {"ood_scores": pd.concat(frames, ignore_index=True)})


def compute(ctx, params: OodParams):
    from clipdash.evals.ood import mcm_scores

    data = ctx.inputs.labeled(params.id_dataset)
    text = ctx.classifier(data.classnames, data.templates).T.numpy()  # classes × D

    def scores(name: str, index: np.ndarray | None) -> np.ndarray:
        features = ctx.features(name).numpy()
        return mcm_scores(features if index is None else features[index], text, params.tau)

    return detection_result(ctx.inputs, params, scores)


def classifier_compute(ctx, params: ClassifierOodParams):
    from clipdash.evals.ood import msp_scores
    from clipdash.measurements.imagenet import imagenette_indices

    classes = imagenette_indices()

    def scores(name: str, index: np.ndarray | None) -> np.ndarray:
        logits = ctx.logits(name)
        return msp_scores((logits if index is None else logits[index])[:, classes])

    return detection_result(ctx.inputs, params, scores)


def score_rows(dataset: str, index: np.ndarray, scores: np.ndarray, is_id: bool) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dataset": dataset,
            "image_index": index.astype(np.int32),
            "is_id": is_id,
            "score": scores.astype(np.float32),
        }
    )


def _series() -> tuple[Series, ...]:
    names = {"cifar10": "CIFAR-10", "imagenette": "Imagenette", "cue-conflict": "cue-conflict"}
    names |= {"livec": "LIVE-C", "mit1003": "MIT1003"}
    series = []
    for id_dataset, sets in OOD_SETS.items():
        for name in sets:
            label = f"{names[name]} vs {names[id_dataset]}"
            summary = "ood_auroc" if (id_dataset, name) == ("cifar10", "imagenette") else None
            series.append(Series("auroc", name, f"id={id_dataset}", f"OOD AUROC ({label})", summary=summary))
            series.append(Series("fpr95", name, f"id={id_dataset}", f"OOD FPR@95%TPR ({label})"))
    return tuple(series)


def replicates(tables, metrics, config):
    """AUROC and FPR@95 of each OOD set, ID and OOD images drawn independently (``n``: the OOD images)."""
    from dataclasses import replace

    from clipdash.evals import bootstrap

    scores = tables["ood_scores"]
    id_scores = scores.loc[scores["is_id"], "score"].to_numpy()
    id_counts = bootstrap.resample_counts(len(id_scores), config)
    other = replace(config, seed=config.seed + 1)  # OOD draws independent of ID draws of the same size
    variants = metrics.loc[metrics["metric"] == "auroc"].set_index("dataset")["variant"]
    out = {}
    for name, rows in scores[~scores["is_id"]].groupby("dataset", sort=False):
        ood = rows["score"].to_numpy()
        counts = bootstrap.resample_counts(len(ood), other)
        out[("auroc", name, variants[name])] = (len(ood), bootstrap.auroc(id_counts, counts, id_scores, ood))
        fpr = bootstrap.fpr_at_tpr(id_counts, counts, id_scores, ood, 0.95)
        out[("fpr95", name, variants[name])] = (len(ood), fpr)
    return out


MEASUREMENT = Measurement(
    name="ood",
    description="OOD detection (CLIP: MCM, classifiers: MSP; ID set: --ood-id), AUROC and FPR@95 per OOD set",
    params=clip_params,
    image_sets=lambda inputs: ("cifar10", "imagenette", "cue-conflict", "livec", "mit1003"),
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
    replicates=replicates,
    classifier_compute=classifier_compute,
    classifier_params=lambda config: ClassifierOodParams(),
    tables=(
        Table(
            "ood_scores",
            "one ID or OOD image: its detection score (higher: in distribution; the ID set is the setting's)",
            (("dataset", "VARCHAR"), ("image_index", "INTEGER"), ("is_id", "BOOLEAN"), ("score", "FLOAT")),
        ),
    ),
    series=_series(),
    titles={"auroc": "OOD detection AUROC", "fpr95": "OOD FPR at 95 % TPR"},
)
