"""Gaussian-noise CIFAR-C: the corruption formula, seeding, truncation, and the official .npy layout."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from clipdash.data.noise import (
    CHUNK_ROWS,
    IMAGENET_C_SCALES,
    SEVERITY_SCALES,
    gaussian_noise,
    load_gaussian_noise,
)
from clipdash.data.types import LabeledImages
from clipdash.errors import DatasetError


def test_severity_scales_are_hendrycks():
    assert SEVERITY_SCALES == (0.04, 0.06, 0.08, 0.09, 0.10)


def test_known_answer_with_fixed_rng():
    # default_rng([0, 1]).normal(scale=0.04) draws, in order:
    #   0.00411871, -0.03922109, -0.03269913, -0.04111527, -0.02297836, 0.07884519
    # pixel 100: (100/255 - 0.03922109) * 255 = 89.9986 -> 89 (truncated; rounding would give 90)
    # pixel 255: (1 - 0.03269913) * 255 = 246.66 -> 246; pixel 30: 19.516 -> 19; pixel 200: 194.14 -> 194
    # pixel 0: 0.00411871 * 255 = 1.05 -> 1; pixel 250: 250/255 + 0.0788 > 1, clipped -> 255
    draws = np.random.default_rng([0, 1]).normal(size=6, scale=0.04)
    np.testing.assert_allclose(
        draws, [0.00411871, -0.03922109, -0.03269913, -0.04111527, -0.02297836, 0.07884519], atol=1e-8
    )
    images = np.array([[[[0, 100, 255], [30, 200, 250]]]], np.uint8)
    out = gaussian_noise(images, severity=1, seed=0)
    assert out.dtype == np.uint8
    assert out.ravel().tolist() == [1, 89, 246, 19, 194, 255]


def test_truncates_instead_of_rounding():
    images = np.full((1, 32, 32, 3), 128, np.uint8)
    out = gaussian_noise(images, severity=3, seed=5)
    draws = np.random.default_rng([5, 3]).normal(size=images.shape, scale=0.08)
    exact = np.clip(128 / 255 + draws, 0, 1) * 255
    np.testing.assert_array_equal(out, np.floor(exact).astype(np.uint8))
    assert (np.rint(exact) != out).mean() > 0.3  # about half the pixels would round up


@pytest.mark.parametrize("severity", [1, 5])
def test_noise_scale_matches_severity(severity):
    images = np.full((16, 32, 32, 3), 128, np.uint8)
    diff = gaussian_noise(images, severity).astype(np.float64) - 128
    assert diff.std() / 255 == pytest.approx(SEVERITY_SCALES[severity - 1], rel=0.03)


def test_chunked_noise_equals_one_draw_over_all_images():
    """The images are noised CHUNK_ROWS at a time; the result is that of one draw over the whole array,
    so the regenerated CIFAR-10-C is the same as before chunking."""
    images = np.random.default_rng(0).integers(0, 256, size=(2 * CHUNK_ROWS + 5, 4, 4, 3), dtype=np.uint8)
    draws = np.random.default_rng([0, 4]).normal(size=images.shape, scale=SEVERITY_SCALES[3])
    exact = (np.clip(images / 255.0 + draws, 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(gaussian_noise(images, 4, seed=0), exact)


def test_imagenet_c_scales():
    """ImageNet-C's gaussian_noise severities (Hendrycks & Dietterich 2019, imagenet_c/corruptions.py)."""
    assert IMAGENET_C_SCALES == (0.08, 0.12, 0.18, 0.26, 0.38)
    images = np.full((8, 64, 64, 3), 128, np.uint8)
    diff = gaussian_noise(images, 2, scales=IMAGENET_C_SCALES).astype(np.float64) - 128
    assert diff.std() / 255 == pytest.approx(0.12, rel=0.03)


def test_seeded_and_deterministic():
    images = np.full((2, 8, 8, 3), 100, np.uint8)
    np.testing.assert_array_equal(gaussian_noise(images, 2, seed=1), gaussian_noise(images, 2, seed=1))
    assert not np.array_equal(gaussian_noise(images, 2, seed=1), gaussian_noise(images, 2, seed=2))
    assert not np.array_equal(gaussian_noise(images, 2, seed=1), gaussian_noise(images, 3, seed=1))


def test_bad_severity():
    with pytest.raises(DatasetError, match=r"\(1, 2, 3, 4, 5\)"):
        gaussian_noise(np.zeros((1, 2, 2, 3), np.uint8), 6)


def _clean(name: str = "cifar10", n: int = 4) -> LabeledImages:
    images = np.full((n, 32, 32, 3), 128, np.uint8)
    return LabeledImages(
        name, images, np.arange(n, dtype=np.int64) % 10, [str(i) for i in range(10)], ["{c}"]
    )


def test_regenerates_without_release(tmp_path, caplog):
    clean = _clean()
    with caplog.at_level(logging.INFO, logger="clipdash.data.noise"):
        sets = load_gaussian_noise(tmp_path, clean, seed=3)
    assert sorted(sets) == [1, 2, 3, 4, 5]
    assert "regenerating" in caplog.text and "2535967" in caplog.text
    np.testing.assert_array_equal(sets[4].images, gaussian_noise(clean.images, 4, seed=3))
    np.testing.assert_array_equal(sets[4].labels, clean.labels)
    assert sets[1].name == "cifar10-c/gaussian_noise" and sets[1].templates == ["{c}"]


def test_reads_official_layout_sliced_by_clean_length(tmp_path):
    clean = _clean("cifar100", n=4)
    clean = LabeledImages(clean.name, clean.images, np.array([3, 1, 4, 1]), clean.classnames, clean.templates)
    folder = tmp_path / "CIFAR-100-C"
    folder.mkdir()
    release = np.repeat(np.arange(1, 6, dtype=np.uint8), 4)[:, None, None, None] * np.ones(
        (1, 32, 32, 3), np.uint8
    )
    np.save(folder / "gaussian_noise.npy", release)
    np.save(folder / "labels.npy", np.tile(np.array([3, 1, 4, 1], np.uint8), 5))
    sets = load_gaussian_noise(tmp_path, clean)
    for severity, data in sets.items():
        assert data.images.shape == (4, 32, 32, 3)
        assert (data.images == severity).all()
        assert data.labels.dtype == np.int64 and data.labels.tolist() == [3, 1, 4, 1]
        assert data.name == "cifar100-c/gaussian_noise"


def test_release_with_wrong_length_raises(tmp_path):
    folder = tmp_path / "CIFAR-10-C"
    folder.mkdir()
    np.save(folder / "gaussian_noise.npy", np.zeros((10, 32, 32, 3), np.uint8))
    np.save(folder / "labels.npy", np.zeros(10, np.uint8))
    with pytest.raises(DatasetError, match="for 4 clean images"):
        load_gaussian_noise(tmp_path, _clean())


def test_release_without_labels_names_the_file(tmp_path):
    folder = tmp_path / "CIFAR-10-C"
    folder.mkdir()
    np.save(folder / "gaussian_noise.npy", np.zeros((20, 32, 32, 3), np.uint8))
    with pytest.raises(DatasetError, match="labels.npy"):
        load_gaussian_noise(tmp_path, _clean())


def test_needs_a_cifar_array_set(tmp_path):
    with pytest.raises(DatasetError, match="imagenette"):
        load_gaussian_noise(tmp_path, LabeledImages("imagenette", [], np.zeros(0, np.int64), [], []))
