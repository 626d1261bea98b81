"""Packaged class names / templates and the named template sets."""

from __future__ import annotations

import json

import pytest

from clipdash.data.prompts import (
    TEMPLATE_SETS,
    imagenet_templates,
    load_prompts,
    load_wnids,
    normalize_template,
    templates_for,
)
from clipdash.errors import DatasetError


def test_template_sets_are_the_documented_ones():
    assert set(TEMPLATE_SETS) == {"clip", "seed", "photo"}
    own = ["a {c} x.", "the {c}"]
    assert templates_for(own, "clip") == own
    assert templates_for(own, "seed") == ["an image of {c}"]
    assert templates_for(own, "photo") == ["a photo of a {c}."]


def test_unknown_template_set_lists_choices():
    with pytest.raises(DatasetError, match=r"'nope'.*\['clip', 'photo', 'seed'\]"):
        templates_for([], "nope")


@pytest.mark.parametrize(("name", "n_classes"), [("cifar10", 10), ("cifar100", 100)])
def test_cifar_prompts_are_clips_18_templates(name, n_classes):
    classes, templates = load_prompts(name)
    assert len(classes) == n_classes and len(set(classes)) == n_classes
    assert len(templates) == 18
    assert templates[0] == "a photo of a {c}." and templates[-1] == "a photo of the big {c}."
    assert all(t.count("{c}") == 1 for t in templates)


def test_cifar100_names_use_spaces():
    classes, _ = load_prompts("cifar100")
    assert classes[:2] == ["apple", "aquarium fish"]
    assert classes[49] == "mountain"


def test_prompt_files_carry_source_and_license():
    from importlib import resources

    for name in ("cifar10", "cifar100", "imagenette"):
        data = json.loads(resources.files("clipdash.data").joinpath(f"prompts/{name}.json").read_text())
        assert data["source"] and data["license"]


def test_imagenette_prompts_use_open_clip_imagenet_ensemble():
    classes, templates = load_prompts("imagenette")
    assert classes == [
        "tench",
        "English Springer Spaniel",
        "cassette player",
        "chainsaw",
        "church",
        "French horn",
        "garbage truck",
        "gas pump",
        "golf ball",
        "parachute",
    ]
    assert len(templates) == 80 and templates == imagenet_templates()
    assert templates[0] == "a bad photo of a {c}."
    assert load_wnids("imagenette")[0] == "n01440764"


def test_imagenette_names_match_open_clip_by_wnid(shared_data):
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    order = [
        line.split()[0]
        for line in (shared_data / "cue-conflict/imagenet1k_wnids.txt").read_text().splitlines()
    ]
    classes, _ = load_prompts("imagenette")
    assert classes == [IMAGENET_CLASSNAMES[order.index(w)] for w in load_wnids("imagenette")]


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_packaged_prompts_equal_the_shared_copy(shared_data, name):
    shared = json.loads((shared_data / "prompts" / f"{name}.json").read_text())
    templates = [t.replace("{}", "{c}") for t in shared["templates"]]
    assert load_prompts(name) == (shared["classes"], templates)


def test_cifar100_names_map_to_torchvision_fine_names(shared_data):
    fine = (shared_data / "cifar100/fine_names.txt").read_text().split()
    classes, _ = load_prompts("cifar100")
    assert [c.replace(" ", "_") for c in classes] == fine


def test_normalize_template_converts_clip_placeholder():
    assert normalize_template("a photo of a {}.") == "a photo of a {c}."
    assert normalize_template("a {c}") == "a {c}"
    for bad in ("no placeholder", "{} and {c}", "{c} {c}"):
        with pytest.raises(DatasetError, match="placeholder"):
            normalize_template(bad)


def test_unknown_prompt_file_lists_available():
    with pytest.raises(DatasetError, match="cifar10"):
        load_prompts("mnist")
    with pytest.raises(DatasetError, match="wnids"):
        load_wnids("cifar10")
