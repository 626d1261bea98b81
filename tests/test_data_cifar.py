"""CIFAR loaders: the shared class-folder copy, the shared CIFAR-100 slice, the official python release."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipdash.data import cifar
from clipdash.data.cifar import load_cifar
from clipdash.errors import DatasetError


@pytest.fixture(scope="module")
def cifar10_test(shared_data):
    return load_cifar(shared_data, "cifar10", "test")


def test_shared_cifar10_test_counts(cifar10_test):
    assert cifar10_test.images.shape == (10000, 32, 32, 3) and cifar10_test.images.dtype == np.uint8
    assert np.bincount(cifar10_test.labels).tolist() == [1000] * 10
    assert cifar10_test.classnames[:3] == ["airplane", "automobile", "bird"]
    assert len(cifar10_test.templates) == 18


def test_shared_cifar10_order_is_class_then_file(shared_data, cifar10_test):
    first_cat = int(np.flatnonzero(cifar10_test.labels == 3)[0])
    assert first_cat == 3000
    expected = np.asarray(Image.open(shared_data / "cifar10/test/cat/0000.jpg").convert("RGB"))
    np.testing.assert_array_equal(cifar10_test.images[first_cat], expected)


def test_shared_cifar100_first20(shared_data):
    data = load_cifar(shared_data, "cifar100", "test")
    assert data.images.shape == (20, 32, 32, 3)
    assert data.labels[:4].tolist() == [49, 33, 72, 51]  # from cifar100_00_49.png, cifar100_01_33.png, ...
    assert data.classnames[49] == "mountain" and len(data.classnames) == 100
    expected = np.asarray(Image.open(shared_data / "cifar100/test-first20/cifar100_09_0.png").convert("RGB"))
    np.testing.assert_array_equal(data.images[9], expected)


def _png(path: Path, value: int, size: int = 32) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)


def test_folder_format_maps_torchvision_names_to_clip_names(tmp_path):
    _png(tmp_path / "cifar100/train/aquarium_fish/0000.png", 7)
    _png(tmp_path / "cifar100/train/apple/0001.PNG", 3)
    _png(tmp_path / "cifar100/train/apple/0000.png", 2)
    data = load_cifar(tmp_path, "cifar100", "train")
    assert data.labels.tolist() == [0, 0, 1]
    assert data.images[:, 0, 0, 0].tolist() == [2, 3, 7]
    assert data.classnames[1] == "aquarium fish"


def test_folder_format_rejects_unknown_class_and_wrong_size(tmp_path):
    _png(tmp_path / "cifar10/test/spaceship/0000.png", 1)
    with pytest.raises(DatasetError, match="spaceship"):
        load_cifar(tmp_path, "cifar10", "test")
    _png(tmp_path / "cifar100/test/apple/0000.png", 1, size=33)
    with pytest.raises(DatasetError, match="32×32"):
        load_cifar(tmp_path, "cifar100", "test")


def _batch(rows: np.ndarray, labels: list[int], label_key: bytes) -> dict:
    """A batch as the CIFAR site documents it (read with encoding='bytes'): bytes keys."""
    return {b"batch_label": b"tiny", b"data": rows, label_key: labels}


def _write_release(root: Path, name: str, n: int = 3, str_keys: bool = False) -> np.ndarray:
    """A tiny copy of the official python release; returns the expected N×32×32×3 test images."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    rows = images.transpose(0, 3, 1, 2).reshape(n, 3072)  # R plane, G plane, B plane
    folder, files, key = {
        "cifar10": (
            "cifar-10-batches-py",
            ["test_batch", *[f"data_batch_{i}" for i in range(1, 6)]],
            b"labels",
        ),
        "cifar100": ("cifar-100-python", ["test", "train"], b"fine_labels"),
    }[name]
    (root / folder).mkdir(parents=True)
    for i, file in enumerate(files):
        batch = _batch(rows if i == 0 else rows[:1], [i % 10] * (n if i == 0 else 1), key)
        if str_keys:
            batch = {k.decode(): v for k, v in batch.items()}
        (root / folder / file).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"label_names": [b"x"] * 10} if name == "cifar10" else {b"fine_label_names": [b"x"] * 100}
    (root / folder / ("batches.meta" if name == "cifar10" else "meta")).write_bytes(pickle.dumps(meta))
    return images


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
@pytest.mark.parametrize("str_keys", [False, True])
def test_official_release_format(tmp_path, name, str_keys):
    expected = _write_release(tmp_path, name, str_keys=str_keys)
    data = load_cifar(tmp_path, name, "test")
    np.testing.assert_array_equal(data.images, expected)
    assert data.labels.tolist() == [0, 0, 0]
    train = load_cifar(tmp_path, name, "train")
    assert len(train) == (5 if name == "cifar10" else 1)
    assert train.labels.tolist() == ([1, 2, 3, 4, 5] if name == "cifar10" else [1])


def test_release_pixel_layout_known_answer(tmp_path):
    _write_release(tmp_path, "cifar10", n=1)
    row = np.zeros(3072, np.uint8)
    row[0], row[1024], row[2048], row[1] = 10, 20, 30, 40  # pixel (0,0) = RGB(10,20,30); pixel (0,1) R = 40
    path = tmp_path / "cifar-10-batches-py/test_batch"
    path.write_bytes(pickle.dumps(_batch(row[None], [9], b"labels"), protocol=2))
    data = load_cifar(tmp_path, "cifar10", "test")
    assert data.images[0, 0, 0].tolist() == [10, 20, 30]
    assert data.images[0, 0, 1].tolist() == [40, 0, 0]
    assert data.labels.tolist() == [9]


def test_folder_format_wins_over_release(tmp_path):
    _write_release(tmp_path, "cifar10")
    _png(tmp_path / "cifar10/test/truck/0000.png", 5)
    assert load_cifar(tmp_path, "cifar10", "test").labels.tolist() == [9]


def test_release_refuses_pickled_code(tmp_path):
    _write_release(tmp_path, "cifar10")
    (tmp_path / "cifar-10-batches-py/test_batch").write_bytes(pickle.dumps({"data": Path("x")}))
    with pytest.raises(DatasetError, match="refusing to load pathlib"):
        load_cifar(tmp_path, "cifar10", "test")


def test_release_with_wrong_row_size_raises(tmp_path):
    _write_release(tmp_path, "cifar10")
    batch = _batch(np.zeros((2, 100), np.uint8), [0, 1], b"labels")
    (tmp_path / "cifar-10-batches-py/test_batch").write_bytes(pickle.dumps(batch))
    with pytest.raises(DatasetError, match=r"N×3072.*\(2, 100\)"):
        load_cifar(tmp_path, "cifar10", "test")


def test_release_missing_batch_is_named(tmp_path):
    _write_release(tmp_path, "cifar10")
    (tmp_path / "cifar-10-batches-py/data_batch_3").unlink()
    with pytest.raises(DatasetError, match="data_batch_3"):
        load_cifar(tmp_path, "cifar10", "train")


def test_download_goes_through_torchvision(tmp_path, monkeypatch):
    calls = []

    class FakeCIFAR100:
        def __init__(self, root, train, download):
            calls.append((root, download))
            _write_release(Path(root), "cifar100")

    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "CIFAR100", FakeCIFAR100)
    data = load_cifar(tmp_path / "new", "cifar100", "test", download=True)
    assert calls == [(str(tmp_path / "new"), True)]
    assert len(data) == 3


def test_missing_names_every_path_tried_and_download(tmp_path):
    with pytest.raises(DatasetError) as info:
        load_cifar(tmp_path, "cifar100", "test")
    message = str(info.value)
    for path in ("cifar100/test", "cifar100/test-first20", "cifar-100-python", "--download"):
        assert path in message


def test_unknown_name_or_split(tmp_path):
    with pytest.raises(DatasetError, match="cifar10"):
        load_cifar(tmp_path, "svhn", "test")
    with pytest.raises(DatasetError, match="'val'"):
        load_cifar(tmp_path, "cifar10", "val")


def test_release_is_read_without_downloading(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar, "_download", lambda *args: pytest.fail("downloaded without download=True"))
    _write_release(tmp_path, "cifar10")
    assert len(load_cifar(tmp_path, "cifar10", "test")) == 3
