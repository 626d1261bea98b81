"""Gaussian-noise CIFAR-C (Hendrycks & Dietterich 2019): the official release, or regenerated with a seed;
and Imagenette-C, Gaussian noise with ImageNet-C's scales for a set that 1000-way ImageNet classifiers and
CLIP models can both be scored on.

The corruption is ``clip(x/255 + N(0, c), 0, 1) * 255`` cast to uint8 (truncation, as in the official
script), with c = 0.04, 0.06, 0.08, 0.09, 0.10 for severities 1..5 on CIFAR (32 px) and c = 0.08, 0.12,
0.18, 0.26, 0.38 on ImageNet (224 px). The official script sets no seed, so a regenerated copy uses
``np.random.default_rng([seed, severity])`` and says so in the log.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from clipdash.data.types import LabeledImages
from clipdash.errors import DatasetError

logger = logging.getLogger(__name__)

SEVERITY_SCALES = (0.04, 0.06, 0.08, 0.09, 0.10)
IMAGENET_C_SCALES = (0.08, 0.12, 0.18, 0.26, 0.38)  # ImageNet-C's gaussian_noise, severities 1..5
SEVERITIES = tuple(range(1, len(SEVERITY_SCALES) + 1))
CHUNK_ROWS = 256  # images noised at a time
RELEASE_FOLDERS = {"cifar10": "CIFAR-10-C", "cifar100": "CIFAR-100-C"}
RELEASE_SOURCES = {"cifar10": "Zenodo record 2535967", "cifar100": "Zenodo record 3555552"}


def gaussian_noise(
    images: np.ndarray, severity: int, seed: int = 0, scales: tuple[float, ...] = SEVERITY_SCALES
) -> np.ndarray:
    """Hendrycks' Gaussian noise at ``severity`` (1..5) on uint8 images, with CIFAR-C's ``scales`` (or
    ``IMAGENET_C_SCALES``); deterministic in (seed, severity).

    Computed in float64 over ``CHUNK_ROWS`` images at a time (2000 Imagenette images at 292 px would need
    ~12 GB at once); the generator's stream is drawn in the same order, so the result equals one draw.
    """
    if severity not in SEVERITIES:
        raise DatasetError(f"unknown Gaussian-noise severity {severity}; choose one of {SEVERITIES}")
    rng = np.random.default_rng([seed, severity])
    noisy = np.empty_like(images, dtype=np.uint8)
    for start in range(0, len(images), CHUNK_ROWS):
        x = images[start : start + CHUNK_ROWS] / 255.0
        x = np.clip(x + rng.normal(size=x.shape, scale=scales[severity - 1]), 0, 1) * 255
        noisy[start : start + CHUNK_ROWS] = x.astype(np.uint8)
    return noisy


def release_path(data_root: Path, name: str) -> Path:
    """Where the official Gaussian-noise release of CIFAR ``name`` would be (``<root>/CIFAR-10-C/...``)."""
    return Path(data_root) / RELEASE_FOLDERS[name] / "gaussian_noise.npy"


def load_gaussian_noise(data_root: Path, clean: LabeledImages, seed: int = 0) -> dict[int, LabeledImages]:
    """Severity → Gaussian-noise copy of ``clean`` (a CIFAR-10/100 array set).

    Uses ``<data_root>/CIFAR-10-C/gaussian_noise.npy`` + ``labels.npy`` (``CIFAR-100-C`` for CIFAR-100) when
    present: severity s is rows (s−1)·n … s·n−1 with n = ``len(clean)``, and ``clean`` must then be the
    official test set in its order (its labels are checked against ``labels.npy``). Otherwise regenerates
    from ``clean``.
    """
    if clean.name not in RELEASE_FOLDERS or not isinstance(clean.images, np.ndarray):
        raise DatasetError(
            f"Gaussian-noise CIFAR-C needs a CIFAR array set {list(RELEASE_FOLDERS)}, got {clean.name!r}"
        )
    name = f"{clean.name}-c/gaussian_noise"
    folder = Path(data_root) / RELEASE_FOLDERS[clean.name]
    if release_path(data_root, clean.name).is_file():
        return _read_release(folder, clean, name)
    logger.info(
        "%s not found (official release: %s); regenerating %s from the clean images with seed %d",
        folder / "gaussian_noise.npy",
        RELEASE_SOURCES[clean.name],
        name,
        seed,
    )
    return {
        s: LabeledImages(
            name, gaussian_noise(clean.images, s, seed), clean.labels, clean.classnames, clean.templates
        )
        for s in SEVERITIES
    }


def _read_release(folder: Path, clean: LabeledImages, name: str) -> dict[int, LabeledImages]:
    images_path, labels_path = folder / "gaussian_noise.npy", folder / "labels.npy"
    if not labels_path.is_file():
        raise DatasetError(
            f"{labels_path} is missing (it comes with {images_path}, {RELEASE_SOURCES[clean.name]})"
        )
    images = np.load(images_path, mmap_mode="r")
    labels = np.load(labels_path)
    n = len(clean)
    expected = (len(SEVERITIES) * n, *clean.images.shape[1:])
    if images.shape != expected or images.dtype != np.uint8 or labels.shape != (expected[0],):
        raise DatasetError(
            f"{images_path}: expected uint8 {expected} and {expected[0]} labels for {n} clean images, "
            f"got {images.dtype} {images.shape} and labels {labels.shape}"
        )
    for s in SEVERITIES:
        if not np.array_equal(labels[(s - 1) * n : s * n], clean.labels):
            raise DatasetError(
                f"{labels_path} does not list the {clean.name} test labels in order for severity {s}: the "
                f"release pairs with the official test set ({clean.name}, {n} images) row by row"
            )
    return {
        s: LabeledImages(
            name,
            np.array(images[(s - 1) * n : s * n]),
            labels[(s - 1) * n : s * n].astype(np.int64),
            clean.classnames,
            clean.templates,
        )
        for s in SEVERITIES
    }
