"""Zero-shot classification (CLIP_benchmark's ``acc1``, ``acc5``, ``mean_per_class_recall``) on every
labelled test set asked for, with per-image predictions in ``zeroshot_predictions``."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from clipdash.measurements import Measurement, ReferenceRule, Series
from clipdash.measurements.common import (
    CIFAR10_FOLDERS,
    PREDICTION_COLUMNS,
    Rows,
    metric_rows,
    prediction_rows,
)
from clipdash.measurements.table import Table


@dataclass(frozen=True)
class ZeroShotParams:
    templates: str  # clip (the dataset's CLIP ensemble), seed or photo
    datasets: tuple[str, ...]


def compute(ctx, params: ZeroShotParams):
    from clipdash.evals.zeroshot import outcome_metrics
    from clipdash.store import EvalResult

    rows: Rows = []
    frames = []
    for name in params.datasets:
        data = ctx.inputs.labeled(name)
        outcomes = ctx.zero_shot_outcomes(name, data)
        values = outcome_metrics(outcomes, len(data.classnames))
        rows += metric_rows({**values, "n_images": len(data)}, name)
        frames.append(prediction_rows(outcomes, dataset=name))
    return EvalResult("zeroshot", 0.0, rows, {"zeroshot_predictions": pd.concat(frames)})


@dataclass(frozen=True)
class ClassifierZeroShotParams:
    """An ImageNet-1k classifier on Imagenette: ``imagenette`` restricts its logits to the ten Imagenette
    classes (the task CLIP's zero-shot Imagenette numbers solve), ``imagenette-1k`` is 1000-way."""

    datasets: tuple[str, ...] = ("imagenette", "imagenette-1k")
    decision: str = "argmax of the ImageNet-1k logits (of the ten classes for imagenette)"


def classifier_compute(ctx, params: ClassifierZeroShotParams):
    import numpy as np

    from clipdash.evals.zeroshot import outcome_metrics, zero_shot_outcomes
    from clipdash.measurements.imagenet import imagenette_indices
    from clipdash.store import EvalResult

    data = ctx.inputs.labeled("imagenette")
    logits, index = ctx.logits("imagenette"), imagenette_indices()
    rows: Rows = []
    frames = []
    tasks = {"imagenette": (logits[:, index], data.labels), "imagenette-1k": (logits, index[data.labels])}
    for name in params.datasets:
        scores, labels = tasks[name]
        outcomes = zero_shot_outcomes(scores, np.eye(scores.shape[1], dtype=np.float32), labels, 1.0)
        rows += metric_rows({**outcome_metrics(outcomes, scores.shape[1]), "n_images": len(labels)}, name)
        frames.append(prediction_rows(outcomes, dataset=name))
    return EvalResult("zeroshot", 0.0, rows, {"zeroshot_predictions": pd.concat(frames)})


def replicates(tables, metrics, config):
    """acc1, acc5 and mean per-class recall of each test set, over its images."""
    from clipdash.evals import bootstrap

    out = {}
    for name, rows in tables["zeroshot_predictions"].groupby("dataset", sort=False):
        counts = bootstrap.resample_counts(len(rows), config)
        out[("acc1", name, "")] = (len(rows), bootstrap.mean(counts, rows["top1"].to_numpy()))
        out[("acc5", name, "")] = (len(rows), bootstrap.mean(counts, rows["top5"].to_numpy()))
        recall = bootstrap.mean_per_class_recall(counts, rows["label"].to_numpy(), rows["top1"].to_numpy())
        out[("mean_per_class_recall", name, "")] = (len(rows), recall)
    return out


def data_folders(config) -> tuple[str, ...]:
    folders = {"cifar10": CIFAR10_FOLDERS, "cifar100": ("cifar100", "cifar-100-python")}
    return tuple(f for name in config.zeroshot_names for f in folders.get(name, (name,)))


MEASUREMENT = Measurement(
    name="zeroshot",
    description="zero-shot top-1/top-5 and mean per-class recall with the chosen prompt templates",
    params=lambda config: ZeroShotParams(config.templates, tuple(config.zeroshot_names)),
    image_sets=lambda inputs: tuple(inputs.zeroshot_names),
    data_folders=data_folders,
    compute=compute,
    tables=(
        Table(
            "zeroshot_predictions",
            "one test image of one dataset",
            (("dataset", "VARCHAR"),) + PREDICTION_COLUMNS,
        ),
    ),
    series=(
        Series(
            "acc1",
            "cifar10",
            "",
            "zero-shot accuracy (CIFAR-10)",
            summary="acc1",
            default_rank=0,
            paper_name="accuracy",
            references=(ReferenceRule("zeroshot_top1", "cifar10"),),
        ),
        Series(
            "acc1",
            "cifar100",
            "",
            "zero-shot accuracy (CIFAR-100)",
            references=(ReferenceRule("zeroshot_top1", "cifar100"),),
        ),
        Series("acc1", "imagenette", "", "zero-shot accuracy (Imagenette)"),
        Series("acc1", "imagenette-1k", "", "top-1 on Imagenette, 1000-way (ImageNet classifiers)"),
    ),
    classifier_compute=classifier_compute,
    classifier_params=lambda config: ClassifierZeroShotParams(),
    replicates=replicates,
    titles={
        "acc1": "Zero-shot top-1 accuracy",
        "acc5": "Zero-shot top-5 accuracy",
        "mean_per_class_recall": "Mean per-class recall",
    },
)
