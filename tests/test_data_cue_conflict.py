"""Cue-conflict stimuli, ImageNet-16 indices and human trials."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from clipdash.data.cue_conflict import (
    load_cue_conflict,
    load_human_trials,
    load_imagenet16_indices,
    texture_class_from_name,
)
from clipdash.errors import DatasetError


@pytest.mark.parametrize(
    ("name", "texture"),
    [
        ("bear1-airplane3.png", "airplane"),
        ("knife10-oven11.png", "oven"),
        ("0001_s5n_s01_0_bird_00_bird3-bird2.png", "bird"),
        ("stimuli/car/car2-elephant1.png", "elephant"),
    ],
)
def test_texture_class_from_name(name, texture):
    assert texture_class_from_name(name) == texture


def test_shared_stimuli(shared_data):
    stimuli = load_cue_conflict(shared_data)
    assert len(stimuli) == 1280 and int(stimuli.is_conflict.sum()) == 1200
    assert len(stimuli.classnames) == 16 and stimuli.classnames == sorted(stimuli.classnames)
    assert all(stimuli.shape_class.count(c) == 80 for c in stimuli.classnames)
    i = stimuli.names.index("bear/bear1-airplane3.png")
    assert stimuli.shape_class[i] == "bear" and stimuli.texture_class[i] == "airplane"
    assert stimuli.paths[i] == shared_data / "cue-conflict/stimuli/bear/bear1-airplane3.png"


def test_data_root_may_be_the_cue_conflict_folder(shared_data):
    assert len(load_cue_conflict(shared_data / "cue-conflict")) == 1280


def test_shared_imagenet16_indices(shared_data):
    indices = load_imagenet16_indices(shared_data)
    assert len(indices) == 16 and indices["airplane"] == [404]
    flat = [i for ids in indices.values() for i in ids]
    assert len(flat) == len(set(flat)) and 0 <= min(flat) and max(flat) < 1000


def test_shared_human_trials_reproduce_published_shape_bias(shared_data):
    trials = load_human_trials(shared_data)
    assert list(trials.columns) == ["subject", "image", "shape_class", "texture_class", "decision"]
    assert len(trials) == 12800 and trials["subject"].nunique() == 10
    assert set(trials["image"]) == set(load_cue_conflict(shared_data).names)
    conflict = trials[trials["shape_class"] != trials["texture_class"]]
    shape = (conflict["decision"] == conflict["shape_class"]).groupby(conflict["subject"]).sum()
    texture = (conflict["decision"] == conflict["texture_class"]).groupby(conflict["subject"]).sum()
    bias = shape / (shape + texture)
    assert bias.min() == pytest.approx(0.919, abs=5e-4) and bias.max() == pytest.approx(0.987, abs=5e-4)
    assert bias.mean() == pytest.approx(0.958, abs=5e-4)


def _stimulus(root, shape, name):
    path = root / "cue-conflict/stimuli" / shape / name
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)


def test_tiny_layout(tmp_path):
    _stimulus(tmp_path, "cat", "cat1-dog2.png")
    _stimulus(tmp_path, "cat", "cat1-cat1.png")
    _stimulus(tmp_path, "dog", "dog3-cat1.png")
    stimuli = load_cue_conflict(tmp_path)
    assert stimuli.names == ["cat/cat1-cat1.png", "cat/cat1-dog2.png", "dog/dog3-cat1.png"]
    assert stimuli.texture_class == ["cat", "dog", "cat"]
    assert stimuli.is_conflict.tolist() == [False, True, True]
    assert stimuli.classnames == ["cat", "dog"]


def test_texture_outside_the_shape_classes_raises(tmp_path):
    _stimulus(tmp_path, "cat", "cat1-zebra2.png")
    with pytest.raises(DatasetError, match="zebra"):
        load_cue_conflict(tmp_path)


def test_tiny_human_trials(tmp_path):
    folder = tmp_path / "cue-conflict/human-trials"
    folder.mkdir(parents=True)
    (tmp_path / "cue-conflict/stimuli").mkdir()
    (folder / "s1.csv").write_text(
        "subj,session,trial,rt,object_response,category,condition,imagename\n"
        "subject-01,1,1,0.9,dog,cat,0,0001_s5n_s01_0_cat_00_cat1-dog2.png\n"
        "subject-01,1,2,0.9,na,dog,0,0002_s5n_s01_0_dog_00_dog3-cat1.png\n"
    )
    trials = load_human_trials(tmp_path)
    assert trials.to_dict("list") == {
        "subject": ["subject-01", "subject-01"],
        "image": ["cat/cat1-dog2.png", "dog/dog3-cat1.png"],
        "shape_class": ["cat", "dog"],
        "texture_class": ["dog", "cat"],
        "decision": ["dog", "na"],
    }


def test_missing_folder_names_path_and_source(tmp_path):
    with pytest.raises(DatasetError) as info:
        load_cue_conflict(tmp_path)
    assert str(tmp_path / "cue-conflict" / "stimuli") in str(info.value)
    assert "rgeirhos/texture-vs-shape" in str(info.value)


def test_missing_indices_and_trials_are_named(tmp_path):
    (tmp_path / "cue-conflict/stimuli").mkdir(parents=True)
    with pytest.raises(DatasetError, match="imagenet16_indices.json"):
        load_imagenet16_indices(tmp_path)
    with pytest.raises(DatasetError, match="human-trials"):
        load_human_trials(tmp_path)


@pytest.mark.parametrize("limit", [16, 32, 50])
def test_limit_draws_conflict_images_from_every_shape_class(shared_data, limit):
    """--limit used to keep the first N conflict images in folder order: the first shape classes only."""
    from clipdash.precompute.inputs import RunInputs

    data = RunInputs(shared_data, 32, limit=limit).cue_conflict
    counts = pd.Series(data.shape_class).value_counts()
    assert len(data) == limit and all(
        s != t for s, t in zip(data.shape_class, data.texture_class, strict=True)
    )
    assert len(counts) == 16 and counts.max() - counts.min() <= 1
    full = load_cue_conflict(shared_data)
    order = {name: i for i, name in enumerate(full.names)}
    assert [order[n] for n in data.names] == sorted(order[n] for n in data.names)  # folder order kept
