"""Zero-shot CIFAR-10 under Gaussian noise (CIFAR-10-C recipe, severities 1–5), with
``noise_drop = (clean − noisy) / clean``; per-image predictions per severity (0 = the clean images) in
``noise_predictions``, so every number recomputes from them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from clipdash.data.noise import SEVERITIES
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


@dataclass(frozen=True)
class NoiseParams:
    templates: str
    seed: int  # of the regenerated noise (unused with the official release, whose files are fingerprinted)
    severities: tuple[int, ...] = SEVERITIES


def compute(ctx, params: NoiseParams):
    from clipdash.evals.noise import noise_drop
    from clipdash.evals.zeroshot import outcome_metrics
    from clipdash.store import EvalResult

    sets = {0: (ctx.inputs.noise_clean_key, ctx.inputs.noise_clean)}
    sets |= {s: (f"{DATASET}/{s}", ctx.inputs.noisy[s]) for s in params.severities}
    rows: Rows = []
    frames, accuracy = [], {}
    for severity, (key, data) in sets.items():
        outcomes = ctx.zero_shot_outcomes(key, data)
        values = outcome_metrics(outcomes, len(data.classnames))
        accuracy[severity] = values["acc1"]
        frames.append(prediction_rows(outcomes, severity=np.int8(severity)))
        if severity:
            drop = noise_drop(accuracy[0], values["acc1"])
            rows += metric_rows({**values, "noise_drop": drop}, DATASET, severity=severity)
    noisy = [accuracy[s] for s in params.severities]
    summary = {
        "acc1": float(np.mean(noisy)),
        "noise_drop": float(np.mean([noise_drop(accuracy[0], a) for a in noisy])),
    }
    rows += metric_rows(summary, DATASET, severity="mean")
    return EvalResult("noise", 0.0, rows, {"noise_predictions": pd.concat(frames)})


MEASUREMENT = Measurement(
    name="noise",
    description="zero-shot CIFAR-10 under Gaussian noise, severities 1–5, and the drop from clean",
    params=lambda config: NoiseParams(config.templates, config.noise_seed),
    image_sets=lambda inputs: (inputs.noise_clean_key, *(f"{DATASET}/{s}" for s in SEVERITIES)),
    data_folders=lambda config: (*CIFAR10_FOLDERS, "CIFAR-10-C"),
    compute=compute,
    tables=(
        Table(
            "noise_predictions",
            "one CIFAR-10 test image at one severity (0 = the clean image the noisy ones were made from)",
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
    ),
    titles={"noise_drop": "Noise drop (clean − noisy) / clean"},
)
