"""Zero-shot accuracy under Gaussian noise, severities 1–5, with ``noise_drop = (clean − noisy) / clean``;
per-image predictions per severity (0 = the clean images) in ``noise_predictions``, so every number
recomputes from them.

Two noisy sets (``--noise-dataset``): CIFAR-10-C (default; the seed paper's) and Imagenette-C, Imagenette
val with ImageNet-C's Gaussian-noise scales, on which CLIP models and ImageNet-1k classifiers (always this
one, scored on their ten Imagenette logits: the task of CLIP's zero-shot Imagenette) are compared. The
noise is added to the pixels at the model's input size, as ImageNet-C adds it at 224 px; a 32-px model
therefore sees far stronger noise per object than a 224-px one, so compare noise drops across input
sizes with that in mind.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from clipdash.data.noise import IMAGENET_C_SCALES, SEVERITIES
from clipdash.measurements import Measurement, Series
from clipdash.measurements.common import (
    CIFAR10_FOLDERS,
    PREDICTION_COLUMNS,
    Rows,
    metric_rows,
    prediction_rows,
)
from clipdash.measurements.table import Table

DATASET = "cifar10-c/gaussian_noise"
IMAGENETTE_DATASET = "imagenette-c/gaussian_noise"  # RunInputs' image-set keys <this>/<severity>


@dataclass(frozen=True)
class NoiseParams:
    """CIFAR-10-C (the seed paper's protocol)."""

    templates: str
    seed: int  # of the regenerated noise (unused with the official release, whose files are fingerprinted)
    severities: tuple[int, ...] = SEVERITIES


@dataclass(frozen=True)
class ImagenetteNoiseParams:
    """Imagenette-C: Imagenette val with ImageNet-C's Gaussian noise at the model's input size."""

    templates: str | None  # None for a classifier
    seed: int
    dataset: str = "imagenette"
    severities: tuple[int, ...] = SEVERITIES
    scales: tuple[float, ...] = IMAGENET_C_SCALES
    noise_at: str = "the model's input size (a classifier's: timm's resize size, centre kept)"
    decision: str | None = None  # a classifier's: argmax of its ten Imagenette logits


def params(config) -> NoiseParams | ImagenetteNoiseParams:
    if config.noise_dataset == "imagenette":
        return ImagenetteNoiseParams(config.templates, config.noise_seed)
    return NoiseParams(config.templates, config.noise_seed)


def classifier_params(config) -> ImagenetteNoiseParams:
    return ImagenetteNoiseParams(None, config.noise_seed, decision="argmax of the ten Imagenette logits")


def noise_result(name: str, outcomes: dict[int, dict[str, np.ndarray]], n_classes: int):
    """Metric rows per severity and their mean, and per-image rows, from each severity's zero-shot
    outcomes (severity 0: the clean images)."""
    from clipdash.evals.noise import noise_drop
    from clipdash.evals.zeroshot import outcome_metrics
    from clipdash.store import EvalResult

    rows: Rows = []
    frames, accuracy = [], {}
    for severity, outcome in outcomes.items():
        values = outcome_metrics(outcome, n_classes)
        accuracy[severity] = values["acc1"]
        frames.append(prediction_rows(outcome, severity=np.int8(severity)))
        if severity:
            drop = noise_drop(accuracy[0], values["acc1"])
            rows += metric_rows({**values, "noise_drop": drop}, name, severity=severity)
    noisy = [a for severity, a in accuracy.items() if severity]
    summary = {
        "acc1": float(np.mean(noisy)),
        "noise_drop": float(np.mean([noise_drop(accuracy[0], a) for a in noisy])),
    }
    rows += metric_rows(summary, name, severity="mean")
    return EvalResult("noise", 0.0, rows, {"noise_predictions": pd.concat(frames)})


def compute(ctx, params: NoiseParams | ImagenetteNoiseParams):
    if isinstance(params, ImagenetteNoiseParams):
        data = ctx.inputs.labeled("imagenette")
        keys = {0: "imagenette"} | {s: f"{IMAGENETTE_DATASET}/{s}" for s in params.severities}
        outcomes = {s: ctx.zero_shot_outcomes(key, data) for s, key in keys.items()}
        return noise_result(IMAGENETTE_DATASET, outcomes, len(data.classnames))
    sets = {0: (ctx.inputs.noise_clean_key, ctx.inputs.noise_clean)}
    sets |= {s: (f"{DATASET}/{s}", ctx.inputs.noisy[s]) for s in params.severities}
    outcomes = {s: ctx.zero_shot_outcomes(key, data) for s, (key, data) in sets.items()}
    return noise_result(DATASET, outcomes, len(ctx.inputs.noise_clean.classnames))


def classifier_compute(ctx, params: ImagenetteNoiseParams):
    from clipdash.evals.zeroshot import zero_shot_outcomes
    from clipdash.measurements.imagenet import imagenette_indices

    data, classes = ctx.inputs.labeled("imagenette"), imagenette_indices()
    keys = {0: "imagenette"} | {s: f"{IMAGENETTE_DATASET}/{s}" for s in params.severities}
    identity = np.eye(len(classes), dtype=np.float32)
    outcomes = {
        s: zero_shot_outcomes(ctx.logits(key)[:, classes], identity, data.labels, 1.0)
        for s, key in keys.items()
    }
    return noise_result(IMAGENETTE_DATASET, outcomes, len(classes))


def replicates(tables, metrics, config):
    """Accuracy and noise drop per severity and their means over severities, over the images: the clean
    and noisy copies of an image are drawn together (paired), so a drop's interval is not that of two
    independent accuracies."""
    from clipdash.evals import bootstrap

    name = metrics.loc[metrics["metric"] == "noise_drop", "dataset"].iloc[0]
    top1 = tables["noise_predictions"].pivot(index="image_index", columns="severity", values="top1")
    counts = bootstrap.resample_counts(len(top1), config)
    accuracy = {s: bootstrap.mean(counts, top1[s].to_numpy()) for s in top1.columns}
    severities = [s for s in top1.columns if s]
    with np.errstate(invalid="ignore", divide="ignore"):
        drops = {s: (accuracy[0] - accuracy[s]) / accuracy[0] for s in severities}
    n = len(top1)
    out = {}
    for s in severities:
        out[("acc1", name, f"severity={s}")] = (n, accuracy[s])
        out[("noise_drop", name, f"severity={s}")] = (n, drops[s])
    out[("acc1", name, "severity=mean")] = (n, np.mean([accuracy[s] for s in severities], axis=0))
    out[("noise_drop", name, "severity=mean")] = (n, np.mean([drops[s] for s in severities], axis=0))
    return out


def image_sets(inputs) -> tuple[str, ...]:
    if inputs.noise_dataset == "imagenette":
        return ("imagenette", *(f"{IMAGENETTE_DATASET}/{s}" for s in SEVERITIES))
    return (inputs.noise_clean_key, *(f"{DATASET}/{s}" for s in SEVERITIES))


def data_folders(config) -> tuple[str, ...]:
    if config.noise_dataset == "imagenette":
        return ("imagenette",)
    return (*CIFAR10_FOLDERS, "CIFAR-10-C")


MEASUREMENT = Measurement(
    name="noise",
    description="zero-shot under CIFAR-10-C or Imagenette-C Gaussian noise (severities 1–5), drop from clean",
    params=params,
    image_sets=image_sets,
    data_folders=data_folders,
    compute=compute,
    classifier_compute=classifier_compute,
    classifier_params=classifier_params,
    replicates=replicates,
    tables=(
        Table(
            "noise_predictions",
            "one test image (CIFAR-10 or Imagenette, as the setting says) at one severity (0 = the clean "
            "image the noisy ones were made from)",
            (("severity", "TINYINT"),) + PREDICTION_COLUMNS,
        ),
    ),
    series=(
        Series(
            "acc1",
            DATASET,
            "severity=mean",
            "noisy accuracy (mean over severities)",
            summary="noisy_acc1",
            default_rank=1,
            paper_name="noisy_accuracy",
        ),
        Series(
            "noise_drop",
            DATASET,
            "severity=mean",
            "noise drop (mean over severities)",
            summary="noise_drop",
            default_rank=4,
            paper_name="noise_sensitivity",
        ),
        Series(
            "acc1", IMAGENETTE_DATASET, "severity=mean", "noisy accuracy, Imagenette-C (mean over severities)"
        ),
        Series(
            "noise_drop",
            IMAGENETTE_DATASET,
            "severity=mean",
            "noise drop, Imagenette-C (mean over severities)",
        ),
    ),
    titles={"noise_drop": "Noise drop (clean − noisy) / clean"},
)
