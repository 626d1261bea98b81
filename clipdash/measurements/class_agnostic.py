"""Class-agnostic probe: a linear SVC on softmax(cos/τ) over 32 generic prompts, swept over τ with a fixed
C and with C re-tuned per τ by cross-validation (``ca_C_at_edge`` flags a C at the grid's edge), plus the
profile's entropy. Per-image cosines in ``class_agnostic_features`` (the app refits from them) and
entropies in ``entropies``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from clipdash.measurements import Measurement, Series
from clipdash.measurements.common import CIFAR10_FOLDERS, Rows, metric_rows
from clipdash.measurements.probe import feature_rows, feature_table
from clipdash.measurements.table import Table


@dataclass(frozen=True)
class ClassAgnosticParams:
    train_per_class: int
    test_per_class: int
    probe_train_per_class: int  # the pool the train split is drawn from
    taus: tuple[float, ...]
    C_grid: tuple[float, ...]
    fixed_C: float = 1.0


def params(config) -> ClassAgnosticParams:
    from clipdash.evals.class_agnostic import C_GRID, TAU_GRID

    splits = config.splits
    return ClassAgnosticParams(
        splits.class_agnostic_train, splits.class_agnostic_test, splits.probe_train, TAU_GRID, C_GRID
    )


def compute(ctx, params: ClassAgnosticParams):
    from clipdash.evals import class_agnostic
    from clipdash.precompute.inputs import first_per_class
    from clipdash.store import EvalResult

    train, test = ctx.inputs.probe_train, ctx.inputs.labeled("cifar10")
    train_x, test_x = ctx.features("cifar10/probe_train").numpy(), ctx.features("cifar10").numpy()
    train_index = first_per_class(train.labels, params.train_per_class)
    test_index = first_per_class(test.labels, params.test_per_class)
    prompts = ctx.prompt_features(list(class_agnostic.GENERIC_PROMPTS)).numpy()
    train_cos, test_cos = train_x[train_index] @ prompts.T, test_x[test_index] @ prompts.T
    train_y, test_y = train.labels[train_index], test.labels[test_index]
    rows: Rows = []
    for mode, tune in (("fixed", False), ("cv", True)):
        sweep = class_agnostic.tau_sweep(
            train_cos,
            train_y,
            test_cos,
            test_y,
            taus=params.taus,
            C=params.fixed_C,
            tune_C=tune,
            C_grid=params.C_grid,
        )
        for record in sweep.to_dict("records"):
            values = {"ca_acc1": record["acc1"], "ca_C": record["C"]}
            if tune:
                edge = class_agnostic.at_grid_edge([record["C"]], params.C_grid)[0]
                values["ca_C_at_edge"] = np.nan if np.isnan(record["C"]) else float(edge)
            rows += metric_rows(values, "cifar10", C=mode, tau=record["tau"])
    entropy_frames = []
    for tau in params.taus:
        entropy = class_agnostic.entropy(class_agnostic.softmax_with_temperature(test_cos, tau))
        rows += metric_rows({"mean_entropy": float(np.mean(entropy))}, "cifar10", tau=tau)
        entropy_frames.append(
            pd.DataFrame(
                {
                    "dataset": "cifar10",
                    "tau": float(tau),
                    "image_index": test_index.astype(np.int32),
                    "entropy": entropy,
                }
            )
        )
    features = pd.concat(
        [
            feature_rows("train", train_index, train_y, train_cos, "cosines"),
            feature_rows("test", test_index, test_y, test_cos, "cosines"),
        ]
    )
    tables = {"entropies": pd.concat(entropy_frames), "class_agnostic_features": features}
    return EvalResult("class_agnostic", 0.0, rows, tables)


def refit_correct(features: pd.DataFrame, tau: float, C: float) -> np.ndarray:
    """Per test image (in image_index order), whether the probe refitted on the stored cosines at ``tau``
    with the stored ``C`` gets it right: the same fit as the sweep's (same solver, seed, features and
    sample order; GridSearchCV refits its best C on the whole train split the same way)."""
    from clipdash.evals.class_agnostic import softmax_with_temperature
    from clipdash.evals.linear_probe import make_probe

    split = {name: rows.sort_values("image_index") for name, rows in features.groupby("split")}
    train, test = split["train"], split["test"]
    model = make_probe("linear_svm", C=C, seed=0, standardize=False)
    model.fit(softmax_with_temperature(np.stack(train["cosines"]), tau), train["label"].to_numpy())
    predicted = model.predict(softmax_with_temperature(np.stack(test["cosines"]), tau))
    return predicted == test["label"].to_numpy()


def replicates(tables, metrics, config):
    """``ca_acc1`` per τ and C mode over the test images, for the probe refitted with its stored C
    (``refit_correct``: the interval is the test set's sampling error for that probe, not the refit's),
    and ``mean_entropy`` per τ over the same images."""
    from clipdash.evals import bootstrap
    from clipdash.store import parse_variant

    features = tables["class_agnostic_features"]
    n = int((features["split"] == "test").sum())
    counts = bootstrap.resample_counts(n, config)
    out = {}
    for row in metrics[metrics["metric"] == "ca_C"].itertuples():
        if np.isfinite(row.value):
            correct = refit_correct(features, float(parse_variant(row.variant)["tau"]), row.value)
            out[("ca_acc1", "cifar10", row.variant)] = (n, bootstrap.mean(counts, correct))
    entropy = metrics[metrics["metric"] == "mean_entropy"].set_index("variant")
    for tau, rows in tables["entropies"].groupby("tau"):
        variant = next(v for v in entropy.index if float(parse_variant(v)["tau"]) == tau)
        values = rows.sort_values("image_index")["entropy"].to_numpy()
        out[("mean_entropy", "cifar10", variant)] = (len(values), bootstrap.mean(counts, values))
    return out


def prompts_table(inputs) -> dict[str, pd.DataFrame]:
    from clipdash.evals.class_agnostic import GENERIC_PROMPTS

    frame = pd.DataFrame({"prompt_index": range(len(GENERIC_PROMPTS)), "prompt": list(GENERIC_PROMPTS)})
    return {"class_agnostic_prompts": frame}


MEASUREMENT = Measurement(
    name="class_agnostic",
    description="probe on softmax(cos/τ) over 32 generic prompts: τ sweep, fixed and CV-tuned C, entropy",
    params=params,
    image_sets=lambda inputs: ("cifar10/probe_train", "cifar10"),
    data_folders=lambda config: CIFAR10_FOLDERS,
    compute=compute,
    replicates=replicates,
    tables=(
        Table(
            "entropies",
            "the entropy of softmax(cos/τ) over the generic prompts of one test image at one τ",
            (("dataset", "VARCHAR"), ("tau", "DOUBLE"), ("image_index", "INTEGER"), ("entropy", "DOUBLE")),
        ),
        feature_table(
            "class_agnostic_features",
            "cosine(image, generic prompt) of one probe image, in class_agnostic_prompts order",
            "cosines",
        ),
    ),
    series=(
        Series(
            "ca_acc1",
            "cifar10",
            "C=cv;tau=0.07",
            "class-agnostic probe (C by CV, τ = 0.07)",
            summary="ca_acc1",
        ),
        Series("mean_entropy", "cifar10", "tau=*", "mean class-agnostic entropy"),
    ),
    titles={
        "ca_acc1": "Class-agnostic probe top-1 accuracy",
        "mean_entropy": "Mean class-agnostic entropy (nats)",
    },
    shared_tables=prompts_table,
)
