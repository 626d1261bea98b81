"""CIFAR-10 / CIFAR-100 as uint8 N×32×32×3 arrays with CLIP's class names and 18 templates.

Formats, tried in order:
1. a class-folder copy ``<data_root>/<name>/<split>/<class>/*.{jpg,png}`` (torchvision class names; images
   ordered by class, then file name);
2. the shared CIFAR-100 test slice ``<data_root>/cifar100/test-first20/cifar100_NN_LABEL.png`` (test only);
3. the official python release ``<data_root>/cifar-10-batches-py`` / ``cifar-100-python`` (test-set order),
   fetched by torchvision when ``download=True``.
"""

from __future__ import annotations

import codecs
import logging
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipdash.data.decode import load_rgb
from clipdash.data.prompts import load_prompts
from clipdash.data.types import LabeledImages
from clipdash.errors import DatasetError

logger = logging.getLogger(__name__)

SPLITS = ("train", "test")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
FIRST20_NAME = re.compile(r"cifar100_(\d+)_(\d+)\.png")


@dataclass(frozen=True)
class _Release:
    """Where the official python release keeps one dataset's batches."""

    folder: str
    batches: dict[str, tuple[str, ...]]
    label_key: str


RELEASES = {
    "cifar10": _Release(
        "cifar-10-batches-py",
        {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
        "labels",
    ),
    "cifar100": _Release("cifar-100-python", {"train": ("train",), "test": ("test",)}, "fine_labels"),
}


def load_cifar(data_root: Path, name: str, split: str = "test", download: bool = False) -> LabeledImages:
    """Load CIFAR-10 or CIFAR-100 (``name``) ``split`` from the first format present under ``data_root``."""
    if name not in RELEASES or split not in SPLITS:
        raise DatasetError(
            f"unknown CIFAR set {name!r}/{split!r}; choose name in {list(RELEASES)}, split in {SPLITS}"
        )
    data_root = Path(data_root)
    classnames, templates = load_prompts(name)
    folder = data_root / name / split
    first20 = data_root / "cifar100" / "test-first20"
    release = data_root / RELEASES[name].folder
    if folder.is_dir():
        images, labels = _read_class_folders(folder, classnames)
    elif name == "cifar100" and split == "test" and first20.is_dir():
        images, labels = _read_first20(first20)
    elif release.is_dir() or download:
        if download:
            _download(data_root, name)
        images, labels = _read_release(release, RELEASES[name], split)
    else:
        raise DatasetError(
            f"{name} {split} split not found; tried {folder}, "
            + (f"{first20}, " if name == "cifar100" else "")
            + f"{release}. Get the official release with --download (torchvision saves it in {data_root})."
        )
    return LabeledImages(name, images, labels, classnames, templates)


def load_cifar_release(
    data_root: Path, name: str, split: str = "test", download: bool = False
) -> LabeledImages:
    """``split`` of the official python release only (lossless, in the release's order), never a copy.

    CIFAR-C's corruptions are rows of this test set in this order, so their clean counterpart is this.
    """
    release = Path(data_root) / RELEASES[name].folder
    if download and not release.is_dir():
        _download(Path(data_root), name)
    if not release.is_dir():
        raise DatasetError(
            f"the official {name} release is not at {release} (--download fetches it when online)"
        )
    images, labels = _read_release(release, RELEASES[name], split)
    classnames, templates = load_prompts(name)
    return LabeledImages(name, images, labels, classnames, templates)


def _folder_name(classname: str) -> str:
    """torchvision's name for a CLIP class name (CLIP has spaces where torchvision has underscores)."""
    return classname.replace(" ", "_")


def _read_class_folders(folder: Path, classnames: list[str]) -> tuple[np.ndarray, np.ndarray]:
    index = {_folder_name(c): i for i, c in enumerate(classnames)}
    class_dirs = sorted((d for d in folder.iterdir() if d.is_dir()), key=lambda d: index.get(d.name, -1))
    unknown = [d.name for d in class_dirs if d.name not in index]
    if unknown:
        raise DatasetError(
            f"{folder}: unknown class folders {unknown[:5]}; expected names like {list(index)[:5]}"
        )
    paths, labels = [], []
    for class_dir in class_dirs:
        files = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        paths += files
        labels += [index[class_dir.name]] * len(files)
    if not paths:
        raise DatasetError(f"{folder}: no .jpg/.png images in its class folders")
    return _decode_32(paths), np.asarray(labels, dtype=np.int64)


def _read_first20(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    found = sorted(
        (int(m[1]), int(m[2]), p) for p in folder.iterdir() if (m := FIRST20_NAME.fullmatch(p.name))
    )
    if not found:
        raise DatasetError(f"{folder}: no files named cifar100_NN_LABEL.png")
    return _decode_32([p for _, _, p in found]), np.asarray([label for _, label, _ in found], dtype=np.int64)


def _decode_32(paths: list[Path]) -> np.ndarray:
    out = np.empty((len(paths), 32, 32, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        image = load_rgb(path)
        if image.size != (32, 32):
            raise DatasetError(f"{path}: CIFAR images are 32×32, this one is {image.size[0]}×{image.size[1]}")
        out[i] = np.asarray(image)
    return out


def _download(data_root: Path, name: str) -> None:
    """Fetch and md5-check the official release with torchvision (the only network access here)."""
    from torchvision.datasets import CIFAR10, CIFAR100

    logger.info("downloading %s into %s with torchvision", name, data_root)
    (CIFAR10 if name == "cifar10" else CIFAR100)(root=str(data_root), train=True, download=True)


def _read_release(folder: Path, release: _Release, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate the release's pickled batches (rows are R,G,B planes of 32×32) into HWC uint8."""
    data, labels = [], []
    for batch in release.batches[split]:
        path = folder / batch
        if not path.is_file():
            raise DatasetError(f"CIFAR batch file missing: {path} (re-download with --download)")
        entry = _load_batch(path)
        if "data" not in entry or release.label_key not in entry:
            raise DatasetError(f"{path}: not a CIFAR batch (needs 'data' and '{release.label_key}')")
        rows = np.asarray(entry["data"], dtype=np.uint8)
        if rows.ndim != 2 or rows.shape[1] != 3 * 32 * 32:
            raise DatasetError(f"{path}: 'data' should be N×3072 uint8 rows, got shape {rows.shape}")
        data.append(rows)
        labels += list(entry[release.label_key])
    images = np.concatenate(data).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), np.asarray(labels, dtype=np.int64)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts of numpy arrays and nothing else (no arbitrary code from a downloaded file)."""

    _RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's array rebuild function, any version
    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return self.ALLOWED[(module, name)]


def _load_batch(path: Path) -> dict[str, object]:
    """One CIFAR batch as a dict with str keys (Python 2 pickles; keys may be bytes or str)."""
    try:
        with path.open("rb") as f:
            entry = _ArrayUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise DatasetError(f"{path}: cannot read CIFAR batch: {exc}") from exc
    if not isinstance(entry, dict):
        raise DatasetError(f"{path}: not a CIFAR batch (expected a dict, got {type(entry).__name__})")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}
