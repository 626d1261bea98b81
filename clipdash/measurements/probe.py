"""Linear probes (logistic regression, linear SVM) on L2-normalised, standardised CIFAR-10 image
embeddings: train on the first N train images per class, test on the whole test set. Each test image's
prediction is in ``probe_predictions``; a few embeddings per class in ``image_embeddings``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from clipdash.measurements import Measurement, ReferenceRule, Series
from clipdash.measurements.common import CIFAR10_FOLDERS, Rows, metric_rows
from clipdash.measurements.table import Table

CLASSIFIERS = ("logreg", "linear_svm")


@dataclass(frozen=True)
class ProbeParams:
    train_per_class: int
    embeddings_per_class: int
    #: classifier -> solver: scikit-learn on the CPU; logistic regression by torch L-BFGS on CUDA
    solvers: tuple[tuple[str, str], ...]


def solvers(device_type: str) -> tuple[tuple[str, str], ...]:
    """Which implementation fits each classifier on a device (``CheckpointContext.probe_predictions``)."""
    return tuple(
        (c, "torch_lbfgs" if c == "logreg" and device_type == "cuda" else "sklearn") for c in CLASSIFIERS
    )


def feature_rows(split: str, index: np.ndarray, labels: np.ndarray, vectors: np.ndarray, column: str):
    """Rows of per-image vectors (embeddings or cosines) of CIFAR-10 images ``index`` of one split."""
    return pd.DataFrame(
        {
            "dataset": "cifar10",
            "split": split,
            "image_index": index.astype(np.int32),
            "label": labels.astype(np.int32),
            column: list(vectors.astype(np.float32)),
        }
    )


def feature_table(name: str, row: str, column: str) -> Table:
    """The table ``feature_rows`` fills: per probe image, its split, index, label and a vector ``column``."""
    keys = (("dataset", "VARCHAR"), ("split", "VARCHAR"), ("image_index", "INTEGER"), ("label", "INTEGER"))
    return Table(name, row, (*keys, (column, "FLOAT[]")))


def compute(ctx, params: ProbeParams):
    from clipdash.evals.linear_probe import prediction_metrics
    from clipdash.precompute.inputs import first_per_class
    from clipdash.store import EvalResult

    train, test = ctx.inputs.probe_train, ctx.inputs.labeled("cifar10")
    train_x, test_x = ctx.features("cifar10/probe_train").numpy(), ctx.features("cifar10").numpy()
    rows: Rows = []
    predictions = []
    for classifier, _ in params.solvers:
        predicted = ctx.probe_predictions(train_x, train.labels, test_x, classifier)
        rows += metric_rows(prediction_metrics(predicted, test.labels), "cifar10", classifier=classifier)
        predictions.append(
            pd.DataFrame(
                {
                    "classifier": classifier,
                    "image_index": np.arange(len(test_x), dtype=np.int32),
                    "label": test.labels.astype(np.int16),
                    "prediction": predicted.astype(np.int16),
                }
            )
        )
    embeddings = [
        feature_rows(split, index, data.labels[index], x[index], "embedding")
        for split, data, x in (("train", train, train_x), ("test", test, test_x))
        for index in [first_per_class(data.labels, params.embeddings_per_class)]
    ]
    tables = {"probe_predictions": pd.concat(predictions), "image_embeddings": pd.concat(embeddings)}
    return EvalResult("probe", 0.0, rows, tables)


def replicates(tables, metrics, config):
    """Accuracy and mean per-class recall of each fitted probe, over the test images (the probe is not
    refitted per replicate: the interval is the test set's sampling error for this probe)."""
    from clipdash.evals import bootstrap

    out = {}
    for classifier, rows in tables["probe_predictions"].groupby("classifier", sort=False):
        counts = bootstrap.resample_counts(len(rows), config)
        correct = (rows["prediction"] == rows["label"]).to_numpy()
        variant = f"classifier={classifier}"
        out[("lp_acc1", "cifar10", variant)] = (len(rows), bootstrap.mean(counts, correct))
        recall = bootstrap.mean_per_class_recall(counts, rows["label"].to_numpy(), correct)
        out[("lp_mean_per_class_recall", "cifar10", variant)] = (len(rows), recall)
    return out


MEASUREMENT = Measurement(
    name="probe",
    description="linear probes (logistic regression, linear SVM) on CIFAR-10 image embeddings",
    params=lambda config: ProbeParams(
        config.splits.probe_train, config.splits.embeddings, solvers(config.torch_device.type)
    ),
    image_sets=lambda inputs: ("cifar10/probe_train", "cifar10"),
    data_folders=lambda config: CIFAR10_FOLDERS,
    compute=compute,
    replicates=replicates,
    tables=(
        Table(
            "probe_predictions",
            "one CIFAR-10 test image under one probe classifier",
            (
                ("classifier", "VARCHAR"),
                ("image_index", "INTEGER"),
                ("label", "SMALLINT"),
                ("prediction", "SMALLINT"),
            ),
        ),
        feature_table(
            "image_embeddings",
            "the L2-normalised embedding of one probe image (a few per class), for interactive probes",
            "embedding",
        ),
    ),
    series=(
        Series(
            "lp_acc1",
            "cifar10",
            "classifier=logreg",
            "linear probe (logistic regression)",
            summary="lp_acc1",
            references=(ReferenceRule("linear_probe_top1", "cifar10"),),
        ),
        Series(
            "lp_acc1",
            "cifar10",
            "classifier=*",
            "linear probe",
            references=(ReferenceRule("linear_probe_top1", "cifar10"),),
        ),
    ),
    titles={"lp_acc1": "Linear-probe top-1 accuracy"},
)
