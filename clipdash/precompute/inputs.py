"""The images every evaluation needs, loaded and decoded once per input size and shared by all checkpoints.

Keys name an image set; ``pixels(key)`` gives its N×H×W×3 uint8 array (CIFAR at its native 32 px, the
rest at the model's input size), and ``features`` in the checkpoint context encodes each key once.
Decoded arrays are kept in a ``DecodedCache`` on disk for later runs, and ``device_pixels`` keeps them on
the GPU for the run's checkpoints when they fit.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from clipdash.data.cifar import RELEASES, load_cifar, load_cifar_release
from clipdash.data.cue_conflict import CueConflict, load_cue_conflict
from clipdash.data.decode import decode_images
from clipdash.data.noise import (
    IMAGENET_C_SCALES,
    SEVERITIES,
    gaussian_noise,
    load_gaussian_noise,
    release_path,
)
from clipdash.data.prompts import load_prompts
from clipdash.data.quality import QualityImages
from clipdash.data.registry import load_dataset
from clipdash.data.tid2013 import Tid2013, load_tid2013
from clipdash.data.types import LabeledImages
from clipdash.errors import DatasetError
from clipdash.precompute.cache import DecodedCache, DevicePixels

log = logging.getLogger(__name__)
NOISE_CLEAN_RELEASE = "cifar10-c/clean"  # image-set key: the official test set beside the CIFAR-10-C release
IMAGENETTE_C = "imagenette-c/gaussian_noise"  # image-set keys IMAGENETTE_C/<severity>


def first_per_class(labels: np.ndarray, per_class: int) -> np.ndarray:
    """Indices of the first ``per_class`` items of each class, in the original order."""
    keep = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        keep[np.flatnonzero(labels == label)[:per_class]] = True
    return np.flatnonzero(keep)


def balanced_subset(labels: np.ndarray, limit: int) -> np.ndarray:
    """Indices of ``limit`` items, the first of each class in turn (round robin), in the original order.

    Class counts differ by at most one (while a class has items left), whatever order the items are in.
    """
    labels = np.asarray(labels)
    ranks = np.empty(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        ranks[members] = np.arange(len(members))
    by_rank = np.lexsort((np.arange(len(labels)), ranks))
    return np.sort(by_rank[:limit])


def subset(data: LabeledImages, index: np.ndarray) -> LabeledImages:
    """The items of ``data`` at ``index`` (paths or pixel rows)."""
    images = data.images[index] if isinstance(data.images, np.ndarray) else [data.images[i] for i in index]
    return LabeledImages(data.name, images, data.labels[index], data.classnames, data.templates)


@dataclass
class SplitSizes:
    """How many images per class each probe split uses (the train split is CIFAR's train folder)."""

    probe_train: int = 500
    class_agnostic_train: int = 200
    class_agnostic_test: int = 100
    embeddings: int = 10


@dataclass
class RunInputs:
    """Datasets under ``data_root`` decoded for one input size; ``limit`` caps every set (quick runs).

    ``cache`` keeps decoded arrays on disk between runs; ``device`` is where the forward passes run: its
    arrays stay there when they fit, and with ``gpu_decode`` JPEGs are decoded there when it is CUDA.
    """

    data_root: Path
    image_size: int
    limit: int | None = None
    splits: SplitSizes = field(default_factory=SplitSizes)
    noise_seed: int = 0
    download: bool = False
    zeroshot_names: tuple[str, ...] = ("cifar10", "cifar100", "imagenette")
    cache: DecodedCache = field(default_factory=lambda: DecodedCache(None))
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    gpu_decode: bool = True
    noise_dataset: str = "cifar10"  # the noise measurement's clean set: cifar10 or imagenette
    _pixels: dict[str, np.ndarray] = field(default_factory=dict)
    _labeled_sets: dict[str, LabeledImages] = field(default_factory=dict)
    _failed: dict[str, DatasetError] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.device = torch.device(self.device)

    @property
    def decoder(self) -> str:
        """``nvjpeg`` (JPEGs decoded on the CUDA device) or ``pil``; part of every cache key."""
        return "nvjpeg" if self.gpu_decode and self.device.type == "cuda" else "pil"

    def _limit_index(self, labels: np.ndarray) -> np.ndarray | None:
        """The rows ``limit`` keeps (``balanced_subset``), or None for all rows."""
        if self.limit is None or len(labels) <= self.limit:
            return None
        return balanced_subset(labels, self.limit)

    def _limit_labeled(self, data: LabeledImages) -> LabeledImages:
        index = self._limit_index(data.labels)
        return data if index is None else subset(data, index)

    def loaded_labeled_sets(self) -> dict[str, LabeledImages]:
        """The labelled test sets loaded so far (for their class names), by name."""
        return dict(self._labeled_sets)

    def labeled(self, name: str) -> LabeledImages:
        """A zero-shot test set: cifar10, cifar100 (test split) or imagenette (val), loaded on first use."""
        if name not in self._labeled_sets:
            cifar = name.startswith("cifar")
            data = self._cifar(name, "test") if cifar else load_dataset(name, self.data_root)
            self._labeled_sets[name] = self._limit_labeled(data)
        return self._labeled_sets[name]

    def _cifar(self, name: str, split: str) -> LabeledImages:
        """``load_cifar`` through the decoded cache, keyed by every file it could read."""
        folders = [self.data_root / name / split, self.data_root / RELEASES[name].folder]
        if name == "cifar100" and split == "test":
            folders.insert(1, self.data_root / "cifar100" / "test-first20")
        files = [p for folder in folders if folder.is_dir() for p in sorted(folder.rglob("*")) if p.is_file()]
        load = functools.cache(lambda: load_cifar(self.data_root, name, split, download=self.download))
        images = self.cache.array(f"{name}-{split}-images", files, lambda: load().images)
        labels = np.array(self.cache.array(f"{name}-{split}-labels", files, lambda: load().labels))
        classnames, templates = load_prompts(name)
        return LabeledImages(name, images, labels, classnames, templates)

    @cached_property
    def probe_train(self) -> LabeledImages:
        """CIFAR-10 train images for the linear and class-agnostic probes (first N per class)."""
        train = self._cifar("cifar10", "train")
        per_class = self.splits.probe_train
        if self.limit is not None:
            per_class = min(per_class, math.ceil(self.limit / len(train.classnames)))
        return subset(train, first_per_class(train.labels, per_class))

    @property
    def noise_clean_key(self) -> str:
        """The image set the noisy sets are compared with: the CIFAR-10 test set of the same source."""
        return NOISE_CLEAN_RELEASE if release_path(self.data_root, "cifar10").is_file() else "cifar10"

    @property
    def noise_clean(self) -> LabeledImages:
        """The clean counterpart of ``noisy``: row i of every severity is row i of this set."""
        return self._noise_sets[0]

    @property
    def noisy(self) -> dict[int, LabeledImages]:
        """Gaussian-noise CIFAR-10-C, severities 1–5 (official release if present, else regenerated)."""
        return self._noise_sets[1]

    @cached_property
    def _noise_sets(self) -> tuple[LabeledImages, dict[int, LabeledImages]]:
        """Regenerated from the zero-shot CIFAR-10 test set, or the official release beside its own clean
        test set (lossless, test-set order; a class-folder copy is another source in another order)."""
        if self.noise_clean_key == "cifar10":
            clean = self.labeled("cifar10")
            return clean, load_gaussian_noise(self.data_root, clean, seed=self.noise_seed)
        try:
            clean = load_cifar_release(self.data_root, "cifar10", "test", download=self.download)
        except DatasetError as exc:
            raise DatasetError(
                f"{release_path(self.data_root, 'cifar10')} is here, but it pairs with the lossless CIFAR-10 "
                f"test set in its own order, and {exc}"
            ) from exc
        noisy = load_gaussian_noise(self.data_root, clean, seed=self.noise_seed)
        index = self._limit_index(clean.labels)
        if index is None:
            return clean, noisy
        return subset(clean, index), {severity: subset(data, index) for severity, data in noisy.items()}

    @cached_property
    def cue_conflict(self) -> CueConflict:
        """The conflict images (shape ≠ texture); ``limit`` keeps a subset balanced over shape classes."""
        data = load_cue_conflict(self.data_root)
        keep = np.flatnonzero(data.is_conflict)
        index = self._limit_index(np.asarray(data.shape_class)[keep])
        if index is not None:
            keep = keep[index]
        return CueConflict(
            [data.paths[i] for i in keep],
            [data.names[i] for i in keep],
            [data.shape_class[i] for i in keep],
            [data.texture_class[i] for i in keep],
            data.classnames,
        )

    @cached_property
    def tid2013(self) -> Tid2013:
        return load_tid2013(self.data_root)

    @cached_property
    def livec(self) -> QualityImages:
        data = load_dataset("livec", self.data_root)
        if self.limit is None:
            return data
        return QualityImages(data.name, data.paths[: self.limit], data.mos[: self.limit])

    @cached_property
    def mit1003(self) -> list[Path]:
        """MIT1003 stimuli (unlabelled scenes); ``limit`` keeps the first ones by name."""
        paths = load_dataset("mit1003", self.data_root)
        return paths if self.limit is None else paths[: self.limit]

    def pixels(self, key: str) -> np.ndarray:
        """uint8 pixels for an image-set key, decoded on first use (a set that failed is not retried)."""
        if key in self._failed:
            raise self._failed[key]
        if key not in self._pixels:
            try:
                self._pixels[key] = self._load_pixels(key)
            except DatasetError as exc:
                self._failed[key] = exc
                raise
        return self._pixels[key]

    def device_pixels(self, key: str) -> np.ndarray | torch.Tensor:
        """``pixels(key)`` as a uint8 tensor on a CUDA ``device`` when it fits there, else the host array."""
        return self._resident.get(key, self.pixels(key))

    @cached_property
    def _resident(self) -> DevicePixels:
        return DevicePixels(self.device)

    def image_sources(self) -> dict[str, Callable[[], list[Path] | np.ndarray]]:
        """Every image-set key the measurements can name, and how its images are found (files are decoded
        at the model's input size, arrays are used as they are): the one place that maps keys to data."""
        # cifar10: the probes' test set too; imagenette: an OOD set too
        labeled = dict.fromkeys(("cifar10", "imagenette", *self.zeroshot_names))
        return {
            **{name: functools.partial(lambda n: self.labeled(n).images, name) for name in labeled},
            "cifar10/probe_train": lambda: self.probe_train.images,
            NOISE_CLEAN_RELEASE: lambda: self.noise_clean.images,
            **{
                f"cifar10-c/gaussian_noise/{s}": functools.partial(lambda s: self.noisy[s].images, s)
                for s in SEVERITIES
            },
            **{f"{IMAGENETTE_C}/{s}": functools.partial(self._imagenette_noise, s) for s in SEVERITIES},
            "cue-conflict": lambda: self.cue_conflict.paths,
            "tid2013/reference": lambda: self.tid2013.reference_paths,
            "tid2013/distorted": lambda: self.tid2013.distorted_paths,
            "livec": lambda: self.livec.paths,
            "mit1003": lambda: self.mit1003,
        }

    def _imagenette_noise(self, severity: int) -> np.ndarray:
        """Imagenette val with ImageNet-C's Gaussian noise, added to the pixels as decoded for the model
        (at its input size; for a classifier at timm's resize size, of which it keeps the centre)."""
        return gaussian_noise(self.pixels("imagenette"), severity, self.noise_seed, IMAGENET_C_SCALES)

    def _load_pixels(self, key: str) -> np.ndarray:
        sources = self.image_sources()
        if key not in sources:
            raise KeyError(f"unknown image set {key!r}; known: {', '.join(sources)}")
        return self._as_pixels(sources[key](), key)

    def _as_pixels(self, images: list[Path] | np.ndarray, key: str) -> np.ndarray:
        if isinstance(images, np.ndarray):
            return images
        device = self.device if self.decoder == "nvjpeg" else "cpu"
        return self.cache.array(
            f"{key}-{self.image_size}px-{self.decoder}",
            images,
            lambda: decode_images(images, self.image_size, desc=f"decode {key}", device=device),
        )
