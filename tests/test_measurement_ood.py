"""The OOD sets leave out every image of a class that CIFAR-10 has (in shape or texture), and the
registry and CLI know both issue-13 measurements."""

from __future__ import annotations

from clipdash.measurements import get_measurement, list_measurements
from clipdash.measurements.ood import CUE_CONFLICT_OVERLAP, IMAGENETTE_OVERLAP, ood_rows
from clipdash.precompute.inputs import RunInputs


def test_overlapping_classes_are_removed_from_the_ood_sets(shared_data):
    inputs = RunInputs(shared_data, image_size=32)
    imagenette = inputs.labeled("imagenette")
    kept = ood_rows(inputs, "imagenette")
    names = {imagenette.classnames[label] for label in imagenette.labels[kept]}
    assert len(kept) == 1600 and not names & set(IMAGENETTE_OVERLAP) and len(names) == 8
    cue = inputs.cue_conflict
    kept = ood_rows(inputs, "cue-conflict")
    classes = {cue.shape_class[i] for i in kept} | {cue.texture_class[i] for i in kept}
    assert classes == set(cue.classnames) - set(CUE_CONFLICT_OVERLAP)  # the nine non-CIFAR classes
    assert 0 < len(kept) < len(cue.paths) / 3


def test_the_registry_lists_calibration_and_ood_with_their_tables():
    assert {"calibration", "ood"} <= set(list_measurements())
    assert [t.name for t in get_measurement("ood").tables] == ["ood_scores"]
    assert [t.name for t in get_measurement("calibration").tables] == [
        "calibration_predictions",
        "calibration_bins",
        "calibration_temperatures",
    ]
