"""No-reference quality CSV sets and LIVE-C."""

from __future__ import annotations

import numpy as np
import pytest

from clipdash.data.quality import load_livec, load_quality_csv
from clipdash.errors import DatasetError


def test_shared_livec(shared_data):
    livec = load_livec(shared_data)
    assert livec.name == "livec" and len(livec) == 1162
    assert livec.paths[0] == shared_data / "livec-224/images/100.jpg"
    assert livec.mos[0] == pytest.approx(32.561075)  # first row of scores.csv
    assert 0 <= livec.mos.min() and livec.mos.max() <= 100


def _quality_set(root, rows, images=None):
    (root / "images").mkdir(parents=True)
    (root / "scores.csv").write_text("image,mos,extra\n" + "".join(f"{i},{m},x\n" for i, m in rows))
    for image in images if images is not None else [i for i, _ in rows]:
        (root / "images" / image).write_bytes(b"")


def test_tiny_csv(tmp_path):
    _quality_set(tmp_path, [("b.jpg", 10.5), ("a.jpg", 2)])
    data = load_quality_csv(tmp_path, name="toy")
    assert data.name == "toy"
    assert [p.name for p in data.paths] == ["b.jpg", "a.jpg"]
    np.testing.assert_array_equal(data.mos, [10.5, 2.0])


def test_missing_images_are_named(tmp_path):
    _quality_set(tmp_path, [("a.jpg", 1), ("gone.jpg", 2)], images=["a.jpg"])
    with pytest.raises(DatasetError, match="1 images.*gone.jpg"):
        load_quality_csv(tmp_path)


def test_bad_csv(tmp_path):
    tmp_path.joinpath("scores.csv").write_text("file,score\na.jpg,1\n")
    with pytest.raises(DatasetError, match=r"missing columns \['image', 'mos'\]"):
        load_quality_csv(tmp_path)
    _quality_set(tmp_path / "x", [("a.jpg", "high")])
    with pytest.raises(DatasetError, match="non-numeric MOS"):
        load_quality_csv(tmp_path / "x")


def test_livec_prefers_the_224_copy(tmp_path):
    _quality_set(tmp_path / "livec", [("a.jpg", 1)])
    assert load_livec(tmp_path).paths[0].parent.parent.name == "livec"
    _quality_set(tmp_path / "livec-224", [("b.jpg", 1)])
    assert load_livec(tmp_path).paths[0].parent.parent.name == "livec-224"


def test_livec_missing_names_paths_and_source(tmp_path):
    with pytest.raises(DatasetError) as info:
        load_livec(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "livec-224") in message and str(tmp_path / "livec") in message
    assert "utexas.edu" in message
