"""Bootstrap intervals beside the stored numbers (issue 14): the precompute writes one per headline number
of every measurement that stores its items, each recomputes from the stored per-item rows, and
``python -m clipdash.precompute.intervals`` adds them to results stored without, resuming."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from clipdash.measurements import get_measurement, list_measurements
from clipdash.precompute.cli import main
from clipdash.precompute.intervals import main as intervals_main
from clipdash.precompute.intervals import pending, stored_intervals
from clipdash.store.queries import query
from tests.conftest import cli_args

RESAMPLED = (
    "zeroshot",
    "noise",
    "tid2013",
    "livec",
    "cue_conflict",
    "probe",
    "class_agnostic",
    "calibration",
    "ood",
)
HEADLINES = {  # (metric, dataset, variant) each resampled measurement must give an interval for
    ("acc1", "cifar10", ""),
    ("acc1", "cifar10-c/gaussian_noise", "severity=mean"),
    ("noise_drop", "cifar10-c/gaussian_noise", "severity=mean"),
    ("srcc", "tid2013", "distortion=all"),
    ("srcc", "livec", ""),
    ("shape_bias", "cue-conflict", "protocol=two_prompt"),
    ("lp_acc1", "cifar10", "classifier=logreg"),
    ("ece", "cifar10", ""),
    ("auroc", "imagenette", "id=cifar10"),
    ("ca_acc1", "cifar10", "C=fixed;tau=0.07"),
    ("mean_entropy", "cifar10", "tau=0.07"),
}


@pytest.fixture(scope="module")
def interval_db(tmp_path_factory, tiny_run, shared_data):
    db = tmp_path_factory.mktemp("intervals") / "results.duckdb"
    evals = ",".join(RESAMPLED)
    assert main(cli_args(tiny_run, shared_data, db, "--evals", evals, "--bootstrap-resamples", "200")) == 0
    return db


def test_every_resampled_measurement_declares_replicates():
    declared = {name for name in list_measurements() if get_measurement(name).replicates is not None}
    assert declared == set(RESAMPLED)  # modality_gap: a distance between two means, not resampled


def test_the_precompute_stores_an_interval_beside_each_headline_number(interval_db):
    rows = query(
        interval_db,
        """SELECT i.*, m.value FROM metric_intervals i
           JOIN metrics m USING (run, epoch, setting, metric, dataset, variant)""",
    )
    stored = set(zip(rows["metric"], rows["dataset"], rows["variant"], strict=True))
    assert HEADLINES <= stored
    assert len(rows) == len(query(interval_db, "SELECT * FROM metric_intervals"))  # each belongs to a number
    assert (rows["resamples"] == 200).all() and (rows["seed"] == 0).all() and (rows["level"] == 0.95).all()
    accuracy = rows[rows["metric"] == "acc1"]
    assert (
        (accuracy["ci_low"] <= accuracy["value"] + 1e-9) & (accuracy["value"] <= accuracy["ci_high"] + 1e-9)
    ).all()
    zeroshot = rows[(rows["metric"] == "acc1") & (rows["dataset"] == "cifar10")]
    assert (zeroshot["n"] == 24).all()  # --limit 24


def test_stored_intervals_recompute_from_the_per_item_rows(interval_db):
    stored = query(interval_db, "SELECT * FROM metric_intervals")
    for (run, epoch, setting), rows in stored.groupby(["run", "epoch", "setting"]):
        eval_name = query(interval_db, "SELECT eval FROM evaluations WHERE setting = ?", [setting])["eval"][0]
        again = stored_intervals(interval_db, run, epoch, eval_name, setting, _config(rows))
        merged = rows.merge(again, on=["metric", "dataset", "variant"], suffixes=("", "_again"))
        assert len(merged) == len(rows)
        for column in ("n", "ci_low", "ci_high"):
            np.testing.assert_allclose(merged[column], merged[f"{column}_again"], rtol=1e-6, equal_nan=True)


def _config(rows):
    from clipdash.evals.bootstrap import BootstrapConfig

    return BootstrapConfig(int(rows["resamples"].iloc[0]), int(rows["seed"].iloc[0]))


def test_intervals_are_added_to_results_stored_without_and_resume(tmp_path, tiny_run, shared_data):
    db = tmp_path / "without.duckdb"
    args = cli_args(tiny_run, shared_data, db, "--evals", "zeroshot,ood", "--bootstrap-resamples", "0")
    assert main(args) == 0
    assert query(db, "SELECT count(*) n FROM metric_intervals")["n"].item() == 0
    assert intervals_main(["--db", str(db), "--bootstrap-resamples", "200"]) == 0
    added = query(db, "SELECT * FROM metric_intervals")
    assert set(added["epoch"]) == {0, 1, 2} and {"acc1", "auroc", "fpr95"} <= set(added["metric"])
    from clipdash.evals.bootstrap import BootstrapConfig

    assert pending(db, BootstrapConfig(200)).empty and len(pending(db, BootstrapConfig(300))) == 6
    copy = tmp_path / "copy.duckdb"
    shutil.copy(db, copy)
    assert intervals_main(["--db", str(copy), "--bootstrap-resamples", "200"]) == 0  # nothing left to do
    assert query(copy, "SELECT count(*) n FROM metric_intervals")["n"].item() == len(added)


def test_a_number_without_a_finite_replicate_gets_no_interval():
    from clipdash.evals.bootstrap import BootstrapConfig
    from clipdash.measurements.intervals import interval_frame

    replicates = {("srcc", "tid2013", "distortion=all"): (2, np.full(10, np.nan)),
                  ("acc1", "cifar10", ""): (3, np.linspace(0, 1, 10))}  # fmt: skip
    frame = interval_frame(replicates, BootstrapConfig(10))
    assert frame["metric"].tolist() == ["acc1"] and frame["ci_low"].notna().all()


def test_the_class_agnostic_refit_reproduces_the_stored_accuracies(interval_db):
    """Its intervals bootstrap a refit of the probe on the stored cosines: the refit must be the sweep's
    own fit, so every stored ca_acc1 (each τ, fixed and tuned C) is reproduced exactly."""
    from clipdash.measurements.class_agnostic import refit_correct
    from clipdash.store import parse_variant

    where = "WHERE epoch = 2 AND setting IN (SELECT setting FROM evaluations WHERE eval = 'class_agnostic')"
    features = query(interval_db, f"SELECT * FROM class_agnostic_features {where}")
    metrics = query(interval_db, f"SELECT metric, variant, value FROM metrics {where}")
    chosen = metrics[metrics["metric"] == "ca_C"].set_index("variant")["value"]
    accuracy = metrics[metrics["metric"] == "ca_acc1"].set_index("variant")["value"]
    checked = 0
    for variant, C in chosen.items():
        if np.isfinite(C):
            correct = refit_correct(features, float(parse_variant(variant)["tau"]), C)
            assert correct.mean() == pytest.approx(accuracy[variant], abs=1e-12)
            checked += 1
    assert checked >= 9  # at least every τ of the fixed-C sweep
