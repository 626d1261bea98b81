"""LabeledImages checks its fields on construction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clipdash.data.types import LabeledImages
from clipdash.errors import DatasetError


def make(**overrides):
    fields = {
        "name": "toy",
        "images": np.zeros((2, 4, 4, 3), np.uint8),
        "labels": np.array([0, 1], np.int64),
        "classnames": ["a", "b"],
        "templates": ["a {c}"],
    }
    return LabeledImages(**(fields | overrides))


def test_valid_set_has_length():
    assert len(make()) == 2
    assert len(make(images=[Path("x.png"), Path("y.png")])) == 2


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"labels": np.array([0], np.int64)}, "2 images but 1 labels"),
        ({"labels": np.array([0, 1], np.int32)}, "int64"),
        ({"labels": np.array([0, 2], np.int64)}, "labels span 0..2"),
        ({"labels": np.array([-1, 1], np.int64)}, "labels span -1..1"),
        ({"images": np.zeros((2, 4, 4, 3), np.float32)}, "uint8"),
        ({"templates": ["no placeholder"]}, "placeholder"),
    ],
)
def test_invalid_fields_raise(overrides, message):
    with pytest.raises(DatasetError, match=message):
        make(**overrides)


def test_is_frozen():
    with pytest.raises(AttributeError):
        make().name = "other"
