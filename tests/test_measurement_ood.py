"""The OOD sets leave out every image of a class that the ID set has (in shape or texture), for either ID
set, and the registry and CLI know both issue-13 measurements."""

from __future__ import annotations

import pytest

from clipdash.measurements import get_measurement, list_measurements
from clipdash.measurements.ood import OVERLAPS, REMOVED, ood_rows
from clipdash.precompute.inputs import RunInputs


def test_overlapping_classes_are_removed_from_the_ood_sets_of_cifar10(shared_data):
    inputs = RunInputs(shared_data, image_size=32)
    imagenette = inputs.labeled("imagenette")
    kept = ood_rows(inputs, "imagenette", "cifar10")
    names = {imagenette.classnames[label] for label in imagenette.labels[kept]}
    assert len(kept) == 1600 and not names & set(OVERLAPS["cifar10"]["imagenette"]) and len(names) == 8
    cue = inputs.cue_conflict
    kept = ood_rows(inputs, "cue-conflict", "cifar10")
    classes = {cue.shape_class[i] for i in kept} | {cue.texture_class[i] for i in kept}
    assert classes == set(cue.classnames) - set(OVERLAPS["cifar10"]["cue-conflict"])  # the nine others
    assert len(kept) == 360


def test_overlapping_classes_are_removed_from_the_ood_sets_of_imagenette(shared_data):
    inputs = RunInputs(shared_data, image_size=32, limit=2000)
    cifar = inputs.labeled("cifar10")
    kept = ood_rows(inputs, "cifar10", "imagenette")
    names = {cifar.classnames[label] for label in cifar.labels[kept]}
    assert names == set(cifar.classnames) - {"dog", "truck"} and len(kept) == 1600
    cue = inputs.cue_conflict
    kept = ood_rows(inputs, "cue-conflict", "imagenette")
    assert not any({cue.shape_class[i], cue.texture_class[i]} & {"dog", "truck"} for i in kept)
    # 1200 conflict stimuli; dog or truck in shape (75 each) or texture: 1200 - 2 * 75 - 2 * 70 = 910
    assert len(kept) == 910
    assert len(ood_rows(inputs, "livec", "imagenette")) == len(inputs.pixels("livec"))


def test_the_removal_stated_in_the_setting_names_every_overlap():
    for id_dataset, sets in OVERLAPS.items():
        said = " ".join(REMOVED[id_dataset])
        assert all(name in said for name in sets)
        assert all(c in said for c in OVERLAPS[id_dataset].get("imagenette", {}))


@pytest.mark.parametrize("id_dataset", ["cifar10", "imagenette"])
def test_every_ood_set_of_an_id_set_is_another_set(id_dataset):
    from clipdash.measurements.ood import OOD_SETS

    assert id_dataset not in OOD_SETS[id_dataset] and len(OOD_SETS[id_dataset]) == 4


def test_the_registry_lists_calibration_and_ood_with_their_tables():
    assert {"calibration", "ood"} <= set(list_measurements())
    assert [t.name for t in get_measurement("ood").tables] == ["ood_scores"]
    assert get_measurement("ood").classifier_compute is not None
    assert [t.name for t in get_measurement("calibration").tables] == [
        "calibration_predictions",
        "calibration_bins",
        "calibration_temperatures",
    ]


def test_clip_ood_and_noise_on_imagenette_beside_the_cifar10_protocols(tmp_path, tiny_run, shared_data):
    """--ood-id imagenette and --noise-dataset imagenette are settings of their own: stored beside the
    CIFAR-10 protocols of the same checkpoints, never mixed, each recomputing from its rows."""
    import json

    import numpy as np
    from sklearn.metrics import roc_auc_score

    from clipdash.precompute.cli import main
    from clipdash.store.queries import query
    from tests.conftest import cli_args

    db = tmp_path / "results.duckdb"
    assert main(cli_args(tiny_run, shared_data, db, "--evals", "ood,noise")) == 0
    extra = ("--evals", "ood,noise", "--ood-id", "imagenette", "--noise-dataset", "imagenette")
    assert main(cli_args(tiny_run, shared_data, db, *extra)) == 0
    settings = query(db, "SELECT eval, setting, settings::VARCHAR s FROM evaluation_settings")
    by_eval = {e: [json.loads(s) for s in group["s"]] for e, group in settings.groupby("eval")}
    assert sorted(s["id_dataset"] for s in by_eval["ood"]) == ["cifar10", "imagenette"]
    assert sorted(s.get("dataset", "cifar10") for s in by_eval["noise"]) == ["cifar10", "imagenette"]
    ood = settings[settings["eval"] == "ood"]
    imagenette_setting = ood.loc[ood["s"].str.contains('"id_dataset":"imagenette"'), "setting"].item()
    scores = query(db, "SELECT * FROM ood_scores WHERE setting = ? AND epoch = 2", [imagenette_setting])
    assert set(scores.loc[scores["is_id"], "dataset"]) == {"imagenette"}
    id_scores = scores.loc[scores["is_id"], "score"]
    stored = query(
        db, "SELECT dataset, value FROM metrics WHERE metric = 'auroc' AND setting = ? AND epoch = 2",
        [imagenette_setting],
    ).set_index("dataset")["value"]  # fmt: skip
    for dataset, rows in scores[~scores["is_id"]].groupby("dataset"):
        y = np.r_[np.ones(len(id_scores)), np.zeros(len(rows))]
        assert roc_auc_score(y, np.r_[id_scores, rows["score"]]) == pytest.approx(stored[dataset], abs=1e-5)
    noisy = query(db, "SELECT DISTINCT dataset FROM metrics WHERE metric = 'noise_drop'")["dataset"]
    assert set(noisy) == {"cifar10-c/gaussian_noise", "imagenette-c/gaussian_noise"}
