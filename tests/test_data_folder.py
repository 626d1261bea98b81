"""ImageFolder layout and Imagenette."""

from __future__ import annotations

import numpy as np
import pytest

from clipdash.data.folder import load_image_folder, load_imagenette
from clipdash.errors import DatasetError


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def test_tiny_folder(tmp_path):
    for name in ("b/2.JPEG", "b/1.png", "a/x.WebP", "a/notes.txt", "a/y.bmp"):
        _touch(tmp_path / name)
    data = load_image_folder(tmp_path, "toy")
    assert [p.relative_to(tmp_path).as_posix() for p in data.images] == [
        "a/x.WebP",
        "a/y.bmp",
        "b/1.png",
        "b/2.JPEG",
    ]
    assert data.labels.tolist() == [0, 0, 1, 1]
    assert data.classnames == ["a", "b"] and data.templates == ["a photo of a {c}."]
    named = load_image_folder(tmp_path, "toy", classnames=["ant", "bee"], templates=["an {c}"])
    assert named.classnames == ["ant", "bee"] and named.templates == ["an {c}"]


def test_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_image_folder(tmp_path / "none", "toy")
    with pytest.raises(DatasetError, match="no class folders"):
        load_image_folder(tmp_path, "toy")
    _touch(tmp_path / "a/readme.txt")
    with pytest.raises(DatasetError, match="no images"):
        load_image_folder(tmp_path, "toy")
    _touch(tmp_path / "a/1.jpg")
    with pytest.raises(DatasetError, match="2 class names for 1 folders"):
        load_image_folder(tmp_path, "toy", classnames=["a", "b"])


def test_shared_imagenette(shared_data):
    data = load_imagenette(shared_data)
    assert len(data) == 2000 and np.bincount(data.labels).tolist() == [200] * 10
    assert data.classnames[0] == "tench" and data.classnames[1] == "English Springer Spaniel"
    assert data.images[0].parent.name == "n01440764" and data.images[-1].parent.name == "n03888257"
    assert len(data.templates) == 80


def test_imagenette_needs_its_ten_wnids(tmp_path):
    _touch(tmp_path / "imagenette/val/n01440764/a.JPEG")
    with pytest.raises(DatasetError, match="n03888257"):
        load_imagenette(tmp_path)


def test_imagenette_missing_names_path(tmp_path):
    with pytest.raises(DatasetError, match=str(tmp_path / "imagenette" / "val")):
        load_imagenette(tmp_path)


def test_balanced_subset_takes_classes_in_turn_and_keeps_the_order():
    from clipdash.precompute.inputs import balanced_subset

    labels = np.array([0, 0, 0, 0, 1, 1, 2, 0, 2, 2])  # sorted-ish, as class folders are
    assert balanced_subset(labels, 5).tolist() == [0, 1, 4, 5, 6]
    assert balanced_subset(labels, 3).tolist() == [0, 4, 6]
    assert balanced_subset(labels, 8).tolist() == [0, 1, 2, 4, 5, 6, 8, 9]
    assert balanced_subset(labels, 99).tolist() == list(range(10))


def test_a_limit_on_a_class_sorted_set_reaches_every_class(shared_data):
    """The first-per-class rule truncated in folder order: --limit 24 on CIFAR-10 left two classes empty."""
    from clipdash.precompute.inputs import RunInputs

    counts = np.bincount(RunInputs(shared_data, 32, limit=24).labeled("cifar10").labels, minlength=10)
    assert counts.sum() == 24 and counts.min() == 2 and counts.max() == 3
