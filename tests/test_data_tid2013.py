"""TID2013: case-insensitive matching, partial copies, MOS parsing."""

from __future__ import annotations

import pytest

from clipdash.data.tid2013 import load_tid2013
from clipdash.errors import DatasetError


def test_shared_partial_copy(shared_data):
    tid = load_tid2013(shared_data)
    assert tid.n_listed == 3000 and len(tid) == 7 and tid.n_missing == 2993
    assert [p.name for p in tid.reference_paths] == [
        "I01.BMP",
        "I03.BMP",
        "I04.BMP",
        "I06.BMP",
        "I08.BMP",
        "I19.BMP",
    ]
    names = [p.name for p in tid.distorted_paths]
    assert names[:3] == ["i01_01_5.bmp", "I03_01_1.bmp", "i03_11_5.bmp"]
    assert [tid.reference_paths[i].name for i in tid.reference_index[:3]] == ["I01.BMP", "I03.BMP", "I03.BMP"]
    assert tid.mos[0] == pytest.approx(3.86486)  # line 5 of mos_with_names.txt: "3.86486 i01_01_5.bmp"
    assert tid.distortion.tolist() == [1, 1, 11, 18, 18, 15, 10]
    assert tid.level.tolist() == [5, 1, 5, 5, 3, 3, 5]


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"BM")


def test_tiny_copy_matches_case_insensitively(tmp_path):
    root = tmp_path / "tid2013"
    root.mkdir()
    (root / "mos_with_names.txt").write_text("5.5 I01_01_1.bmp\n1.25 i02_24_5.bmp\n\n3.0 i03_02_2.bmp\n")
    _touch(root / "reference_images/i01.bmp")
    _touch(root / "reference_images/I02.BMP")
    _touch(root / "distorted_images/i01_01_1.BMP")
    _touch(root / "distorted_images/I02_24_5.bmp")
    _touch(root / "distorted_images/i03_02_2.bmp")  # its reference I03 is absent
    tid = load_tid2013(tmp_path)
    assert [p.name for p in tid.distorted_paths] == ["i01_01_1.BMP", "I02_24_5.bmp"]
    assert [p.name for p in tid.reference_paths] == ["I02.BMP", "i01.bmp"]  # sorted paths
    assert tid.reference_index.tolist() == [1, 0]
    assert tid.mos.tolist() == [5.5, 1.25]
    assert tid.distortion.tolist() == [1, 24] and tid.level.tolist() == [1, 5]
    assert (tid.n_listed, tid.n_missing) == (3, 1)


def test_no_images_present_raises(tmp_path):
    root = tmp_path / "tid2013"
    root.mkdir()
    (root / "mos_with_names.txt").write_text("5.5 i01_01_1.bmp\n")
    with pytest.raises(DatasetError, match="none of the 1 images"):
        load_tid2013(tmp_path)


def test_malformed_line_names_file_and_line(tmp_path):
    root = tmp_path / "tid2013"
    root.mkdir()
    (root / "mos_with_names.txt").write_text("5.5 i01_01_1.bmp\nfive i01_01_2.bmp\n")
    with pytest.raises(DatasetError, match=r"mos_with_names.txt:2"):
        load_tid2013(tmp_path)
    (root / "mos_with_names.txt").write_text("5.5 picture.png\n")
    with pytest.raises(DatasetError, match=r"mos_with_names.txt:1"):
        load_tid2013(tmp_path)


def test_missing_folder_names_path_and_source(tmp_path):
    with pytest.raises(DatasetError) as info:
        load_tid2013(tmp_path)
    assert str(tmp_path / "tid2013" / "mos_with_names.txt") in str(info.value)
    assert "ponomarenko.info" in str(info.value)
