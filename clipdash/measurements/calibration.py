"""Calibration of the zero-shot classifier (softmax of logit_scale · cosine) on every zero-shot test set:
ECE over 15 equal-width bins and NLL, before and after temperature scaling (Guo et al. 2017), as in Tu et
al.'s holistic evaluation of CLIP models.

The temperature is fitted by NLL on images that are never the scored ones, by two-fold cross-fitting on
every test set: images at even positions are scaled with the temperature fitted on the odd ones and vice
versa. Not CIFAR-10's train split (revision 1 fitted CIFAR-10's there): a model trained on CIFAR-10 train,
as the bundled run is, is more confident on those images than on unseen ones, so a temperature fitted on
them sharpened the softmax (T = 0.92) and made test ECE worse (0.036 → 0.055). ``temperature_at_bound``
(per fold) is 1 where the fit stopped at an end of its search range (0.01 or 100): there the temperature
is the range's, not the likelihood's optimum (a random model at initialisation is best flattened
entirely). Per image, ``calibration_predictions`` keeps the confidence and log-probability of the label
before and after scaling (ECE and NLL recompute from it); ``calibration_bins`` keeps the reliability
diagram's non-empty bins, ``calibration_temperatures`` each fitted temperature and what it was fitted on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from clipdash.measurements import Measurement, Series
from clipdash.measurements.common import Rows, metric_rows
from clipdash.measurements.table import Table
from clipdash.measurements.zeroshot import data_folders as zeroshot_folders


@dataclass(frozen=True)
class CalibrationParams:
    templates: str
    datasets: tuple[str, ...]
    n_bins: int = 15
    held_out: str = "two-fold cross-fit on the test set"


def cross_fit_folds(n: int) -> np.ndarray:
    """Fold 0 or 1 per position (even, odd): each fold holds half of every class's images."""
    return (np.arange(n) % 2).astype(np.int16)


def calibrate(logits: np.ndarray, labels: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-image calibration rows and the two fitted temperatures of one test set (two-fold cross-fit:
    each half is scaled with the temperature fitted on the other)."""
    from clipdash.evals.calibration import at_bound, fit_temperature, log_probabilities

    n = len(labels)
    before = log_probabilities(logits)
    after = np.empty_like(before)
    folds = cross_fit_folds(n)
    fitted = []
    for fold in (0, 1):
        scored, other = folds == fold, folds != fold
        temperature = fit_temperature(logits[other], labels[other])
        after[scored] = log_probabilities(logits[scored], temperature)
        edge = at_bound(logits[other], labels[other], temperature)
        fitted.append((fold, "other half of the test set", int(other.sum()), temperature, edge))
    rows = np.arange(n)
    images = pd.DataFrame(
        {
            "image_index": rows.astype(np.int32),
            "label": labels.astype(np.int16),
            "prediction": before.argmax(axis=1).astype(np.int16),
            "fold": folds,
            "confidence": np.exp(before.max(axis=1)).astype(np.float32),
            "log_true_prob": before[rows, labels].astype(np.float32),
            "confidence_ts": np.exp(after.max(axis=1)).astype(np.float32),
            "log_true_prob_ts": after[rows, labels].astype(np.float32),
        }
    )
    images["correct"] = images["prediction"] == images["label"]
    temperatures = pd.DataFrame(fitted, columns=["fold", "fit_on", "n_fit", "temperature", "at_bound"])
    return images, temperatures.astype({"fold": np.int16, "n_fit": np.int32})


def calibration_metrics(images: pd.DataFrame, n_bins: int) -> tuple[dict[str, float], pd.DataFrame]:
    """``ece``, ``nll`` and their temperature-scaled ``ece_ts``, ``nll_ts`` from ``calibrate``'s rows, with
    the non-empty reliability bins before (``scaled`` false) and after scaling."""
    from clipdash.evals.calibration import expected_calibration_error, reliability_bins

    values, frames = {}, []
    for suffix, scaled in (("", False), ("_ts", True)):
        confidence = images["confidence_ts" if scaled else "confidence"]
        bins = reliability_bins(confidence.to_numpy(), images["correct"].to_numpy(), n_bins)
        values[f"ece{suffix}"] = expected_calibration_error(bins)
        values[f"nll{suffix}"] = float(-images["log_true_prob_ts" if scaled else "log_true_prob"].mean())
        frames.append(bins[bins["count"] > 0].assign(scaled=scaled))
    return values, pd.concat(frames, ignore_index=True)


def dataset_result(
    name: str, logits: np.ndarray, labels: np.ndarray, n_bins: int
) -> tuple[Rows, dict[str, pd.DataFrame]]:
    """One test set's metric rows (each fold's temperature and whether it stopped at the search range's
    end as ``fold`` sub-series) and per-item rows, from its logits."""
    images, temperatures = calibrate(logits, np.asarray(labels))
    values, bins = calibration_metrics(images, n_bins)
    rows = metric_rows(values, name)
    for t in temperatures.itertuples():
        values = {"temperature": t.temperature, "temperature_at_bound": float(t.at_bound)}
        rows += metric_rows(values, name, fold=t.fold)
    frames = (images, bins, temperatures.drop(columns="at_bound"))
    return rows, {table: frame.assign(dataset=name) for table, frame in zip(TABLE_NAMES, frames, strict=True)}


def compute(ctx, params: CalibrationParams):
    from clipdash.store import EvalResult

    rows: Rows = []
    tables: dict[str, list[pd.DataFrame]] = {name: [] for name in TABLE_NAMES}
    for name in params.datasets:
        data = ctx.inputs.labeled(name)
        weights = ctx.classifier(data.classnames, data.templates).numpy()
        logits = ctx.logit_scale * (ctx.features(name).numpy() @ weights)
        dataset_rows, frames = dataset_result(name, logits, data.labels, params.n_bins)
        rows += dataset_rows
        for table, frame in frames.items():
            tables[table].append(frame)
    return EvalResult(
        "calibration", 0.0, rows, {k: pd.concat(v, ignore_index=True) for k, v in tables.items()}
    )


@dataclass(frozen=True)
class ClassifierCalibrationParams:
    """An ImageNet-1k classifier on Imagenette's ten classes (its logits restricted to them: the task of
    CLIP's zero-shot Imagenette numbers), the temperature two-fold cross-fitted."""

    datasets: tuple[str, ...] = ("imagenette",)
    n_bins: int = 15
    held_out: str = "two-fold cross-fit on the test set"


def classifier_compute(ctx, params: ClassifierCalibrationParams):
    from clipdash.measurements.imagenet import imagenette_indices
    from clipdash.store import EvalResult

    data = ctx.inputs.labeled("imagenette")
    logits = ctx.logits("imagenette")[:, imagenette_indices()]
    rows, tables = dataset_result("imagenette", logits, data.labels, params.n_bins)
    return EvalResult("calibration", 0.0, rows, tables)


TABLES = (
    Table(
        "calibration_predictions",
        "one test image: its top-1 confidence and log-probability of the label, before and after scaling",
        (
            ("dataset", "VARCHAR"),
            ("image_index", "INTEGER"),
            ("label", "SMALLINT"),
            ("prediction", "SMALLINT"),
            ("correct", "BOOLEAN"),
            ("fold", "SMALLINT"),  # the cross-fit fold (revision 1: -1 = scaled with CIFAR-10 train's)
            ("confidence", "FLOAT"),
            ("log_true_prob", "FLOAT"),
            ("confidence_ts", "FLOAT"),
            ("log_true_prob_ts", "FLOAT"),
        ),
    ),
    Table(
        "calibration_bins",
        "one non-empty reliability-diagram bin of one test set, before or after temperature scaling",
        (
            ("dataset", "VARCHAR"),
            ("scaled", "BOOLEAN"),
            ("bin", "SMALLINT"),
            ("lower", "DOUBLE"),
            ("upper", "DOUBLE"),
            ("count", "BIGINT"),
            ("confidence", "DOUBLE"),
            ("accuracy", "DOUBLE"),
        ),
    ),
    Table(
        "calibration_temperatures",
        "one fitted temperature: the fold it scales and what it was fitted on",
        (
            ("dataset", "VARCHAR"),
            ("fold", "SMALLINT"),
            ("fit_on", "VARCHAR"),
            ("n_fit", "INTEGER"),
            ("temperature", "DOUBLE"),
        ),
    ),
)
TABLE_NAMES = tuple(table.name for table in TABLES)


def replicates(tables, metrics, config):
    """ECE and NLL before and after scaling of each test set, over its images (each image scaled with
    its fold's fitted temperature, which is not refitted per replicate)."""
    from clipdash.evals import bootstrap
    from clipdash.evals.calibration import N_BINS

    out = {}
    for name, images in tables["calibration_predictions"].groupby("dataset", sort=False):
        counts = bootstrap.resample_counts(len(images), config)
        correct = images["correct"].to_numpy()
        for suffix in ("", "_ts"):
            confidence = images[f"confidence{suffix}"].to_numpy()
            ece = bootstrap.expected_calibration_error(counts, confidence, correct, N_BINS)
            nll = bootstrap.mean(counts, -images[f"log_true_prob{suffix}"].to_numpy())
            out[(f"ece{suffix}", name, "")] = (len(images), ece)
            out[(f"nll{suffix}", name, "")] = (len(images), nll)
    return out


MEASUREMENT = Measurement(
    name="calibration",
    description="ECE (15 bins) and NLL of the zero-shot softmax, before and after temperature scaling",
    params=lambda config: CalibrationParams(config.templates, tuple(config.zeroshot_names)),
    image_sets=lambda inputs: tuple(inputs.zeroshot_names),
    data_folders=zeroshot_folders,
    compute=compute,
    replicates=replicates,
    classifier_compute=classifier_compute,
    classifier_params=lambda config: ClassifierCalibrationParams(),
    tables=TABLES,
    series=(
        Series("ece", "cifar10", "", "ECE (CIFAR-10, zero-shot)", summary="ece"),
        Series("ece_ts", "cifar10", "", "ECE after temperature scaling (CIFAR-10)"),
        Series("nll", "cifar10", "", "NLL (CIFAR-10, zero-shot)"),
        Series("ece", "imagenette", "", "ECE (Imagenette, zero-shot)"),
    ),
    titles={
        "ece": "Expected calibration error (15 bins)",
        "ece_ts": "ECE after temperature scaling",
        "nll": "Negative log-likelihood",
        "nll_ts": "NLL after temperature scaling",
        "temperature": "Fitted temperature (T > 1: overconfident)",
        "temperature_at_bound": "Temperature fit stopped at its search range's end (1 = yes)",
    },
    revision=2,
)
