"""With the official CIFAR-10-C release present, the noise evaluation scores its images against its own
labels, in its own (test-set) order, next to clean images from the same lossless source.

Before, the release's noisy images (test-set order) were scored against the labels of the clean class-folder
JPEG copy (sorted by class), giving chance accuracy. Built here in the official formats: a
``cifar-10-batches-py/test_batch`` pickle, ``CIFAR-10-C/{gaussian_noise,labels}.npy``, and a class-folder
JPEG copy sorted by class. The release's "noisy" rows are the clean images themselves, so every severity
must score exactly like the clean set.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clipdash.data.prompts import load_prompts
from clipdash.errors import DatasetError
from clipdash.measurements import get_measurement
from clipdash.measurements.noise import NoiseParams
from clipdash.models.encode import TextEncoder
from clipdash.models.loading import create_architecture
from clipdash.precompute import context
from clipdash.precompute.context import CheckpointContext
from clipdash.precompute.execute import prepare_measurement as prepare_evaluation
from clipdash.precompute.inputs import RunInputs

PER_CLASS = 10


def _official_cifar10(
    root: Path, with_clean_release: bool = True, shuffle_labels: bool = False
) -> np.ndarray:
    """Write the three formats under ``root``; returns the test-order images."""
    rng = np.random.default_rng(0)
    labels = rng.permutation(np.repeat(np.arange(10), PER_CLASS))  # test-set order: classes interleaved
    images = rng.integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8)
    if with_clean_release:
        batches = root / "cifar-10-batches-py"
        batches.mkdir(parents=True)
        rows = images.transpose(0, 3, 1, 2).reshape(len(labels), -1)
        with (batches / "test_batch").open("wb") as f:
            pickle.dump({b"data": rows, b"labels": labels.tolist()}, f)
    release = root / "CIFAR-10-C"
    release.mkdir(parents=True)
    np.save(release / "gaussian_noise.npy", np.concatenate([images] * 5))
    release_labels = rng.permutation(labels) if shuffle_labels else labels
    np.save(release / "labels.npy", np.tile(release_labels, 5).astype(np.uint8))
    classnames, _ = load_prompts("cifar10")
    for label in range(10):  # the class-folder copy: per class in test order, as in ../shared/data
        folder = root / "cifar10" / "test" / classnames[label].replace(" ", "_")
        folder.mkdir(parents=True)
        for k, index in enumerate(np.flatnonzero(labels == label)):
            Image.fromarray(images[index]).save(folder / f"{k:04d}.jpg", quality=75)
    return images


@pytest.fixture
def tiny_context(tiny_arch):
    loaded = create_architecture(tiny_arch)
    text = TextEncoder(torch.device("cpu"))
    text.start_checkpoint(loaded)

    def make(inputs: RunInputs) -> CheckpointContext:
        return CheckpointContext(loaded, inputs, text, torch.device("cpu"), 64, "photo")

    return make


@pytest.mark.parametrize("limit", [None, 30])
def test_the_release_is_scored_with_its_own_labels_and_clean_images(
    tmp_path, tiny_context, limit, monkeypatch
):
    images = _official_cifar10(tmp_path)
    inputs = RunInputs(tmp_path, 32, limit=limit)
    prepare_evaluation("noise", inputs)
    lossless = {row.tobytes() for row in images}
    assert all(row.tobytes() in lossless for row in inputs.noise_clean.images)  # not the JPEG copy
    if limit is None:
        assert np.array_equal(inputs.noise_clean.images, images)  # in test-set order
    for severity in range(1, 6):
        assert np.array_equal(inputs.noisy[severity].labels, inputs.noise_clean.labels)
        assert np.array_equal(inputs.noisy[severity].images, inputs.noise_clean.images)
    if limit is not None:  # a class-balanced subset, the same rows for clean and every severity
        assert len(inputs.noise_clean) == limit
        assert np.bincount(inputs.noise_clean.labels, minlength=10).tolist() == [3] * 10
    scored = []  # (features, labels) of every zero-shot scoring the noise measurement does
    original = context.zero_shot_outcomes

    def recording(features, classifier, labels, logit_scale):
        scored.append((features.clone(), torch.as_tensor(labels).clone()))
        return original(features, classifier, labels, logit_scale)

    monkeypatch.setattr(context, "zero_shot_outcomes", recording)
    result = get_measurement("noise").compute(tiny_context(inputs), NoiseParams("photo", 0))
    rows = dict(((m, v), value) for m, _, v, value in result.metrics)
    assert len(scored) == 6  # clean, then severities 1..5
    clean_features, clean_labels = scored[0]
    assert torch.equal(clean_labels, torch.as_tensor(inputs.noise_clean.labels))
    for features, labels in scored[1:]:  # the same images in the same order with the same labels
        assert torch.equal(labels, clean_labels) and torch.allclose(features, clean_features)
    for severity in (1, 2, 3, 4, 5):
        assert rows[("noise_drop", f"severity={severity}")] == 0.0
    per_image = result.tables["noise_predictions"]  # severity 0 = the clean rows
    assert sorted(set(per_image["severity"])) == [0, 1, 2, 3, 4, 5]
    for _, rows_at in per_image.groupby("severity"):
        assert rows_at["label"].tolist() == inputs.noise_clean.labels.tolist()
        assert rows_at["prediction"].tolist() == per_image[per_image["severity"] == 0]["prediction"].tolist()


def test_the_release_without_its_clean_test_set_is_refused(tmp_path):
    _official_cifar10(tmp_path, with_clean_release=False)
    with pytest.raises(DatasetError, match="pairs with the lossless CIFAR-10 test set"):
        prepare_evaluation("noise", RunInputs(tmp_path, 32))


def test_a_release_whose_labels_disagree_with_the_test_set_is_refused(tmp_path):
    _official_cifar10(tmp_path, shuffle_labels=True)
    with pytest.raises(DatasetError, match="labels.npy does not list the cifar10 test labels in order"):
        prepare_evaluation("noise", RunInputs(tmp_path, 32))
