"""The dataset registry: names, dispatch, and errors for unknown names and missing data."""

from __future__ import annotations

import pytest

from clipdash.data.cue_conflict import CueConflict
from clipdash.data.quality import QualityImages
from clipdash.data.registry import DATASETS, list_datasets, load_dataset
from clipdash.data.tid2013 import Tid2013
from clipdash.data.types import LabeledImages
from clipdash.errors import DatasetError

NAMES = ["cifar10", "cifar100", "cue-conflict", "imagenette", "livec", "mit1003", "tid2013"]


def test_list_datasets():
    assert list_datasets() == NAMES == sorted(DATASETS)


def test_unknown_name_lists_choices(tmp_path):
    with pytest.raises(DatasetError, match=r"'mnist'.*'cifar10'.*'tid2013'"):
        load_dataset("mnist", tmp_path)


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("cifar10", "--download"),
        ("cifar100", "--download"),
        ("cue-conflict", "rgeirhos/texture-vs-shape"),
        ("imagenette", "fastai/imagenette"),
        ("livec", "utexas.edu"),
        ("mit1003", "WherePeopleLook"),
        ("tid2013", "ponomarenko.info"),
    ],
)
def test_missing_data_names_path_and_source(tmp_path, name, hint):
    with pytest.raises(DatasetError) as info:
        load_dataset(name, tmp_path / "data", download=False)
    assert str(tmp_path / "data") in str(info.value) and hint in str(info.value)


@pytest.mark.parametrize(
    ("name", "kind", "count"),
    [
        ("cifar100", LabeledImages, 20),
        ("cue-conflict", CueConflict, 1280),
        ("livec", QualityImages, 1162),
        ("tid2013", Tid2013, 7),
    ],
)
def test_registry_loads_shared_data(shared_data, name, kind, count):
    data = DATASETS[name](shared_data, download=False)
    assert isinstance(data, kind) and len(data) == count


def test_mit1003_stimuli_load_by_name(shared_data):
    stimuli = DATASETS["mit1003"](shared_data, download=False)
    assert len(stimuli) == 100 and stimuli == sorted(stimuli) and all(p.suffix == ".jpg" for p in stimuli)
