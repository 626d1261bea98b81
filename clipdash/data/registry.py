"""Dataset name → loader. Every loader is called as ``loader(data_root, download=False)``.

Only CIFAR can be fetched (by torchvision, with ``download=True``); the other loaders ignore ``download`` and
raise a DatasetError naming the expected path and the official source when their folder is absent.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from clipdash.data.cifar import load_cifar
from clipdash.data.cue_conflict import CueConflict, load_cue_conflict
from clipdash.data.folder import load_imagenette
from clipdash.data.mit1003 import load_mit1003_stimuli
from clipdash.data.quality import QualityImages, load_livec
from clipdash.data.tid2013 import Tid2013, load_tid2013
from clipdash.data.types import LabeledImages
from clipdash.errors import DatasetError

Dataset = LabeledImages | CueConflict | Tid2013 | QualityImages | list[Path]
Loader = Callable[..., Dataset]


def _local_only(load: Callable[[Path], Dataset]) -> Loader:
    """Adapt a loader of data that has no automatic download to the registry's call signature."""

    def loader(data_root: Path, download: bool = False) -> Dataset:
        return load(data_root)

    loader.__doc__ = load.__doc__
    return loader


DATASETS: dict[str, Loader] = {
    "cifar10": partial(load_cifar, name="cifar10", split="test"),
    "cifar100": partial(load_cifar, name="cifar100", split="test"),
    "imagenette": _local_only(load_imagenette),
    "cue-conflict": _local_only(load_cue_conflict),
    "tid2013": _local_only(load_tid2013),
    "livec": _local_only(load_livec),
    "mit1003": _local_only(load_mit1003_stimuli),
}


def list_datasets() -> list[str]:
    """The registered dataset names, sorted."""
    return sorted(DATASETS)


def load_dataset(name: str, data_root: Path, download: bool = False) -> Dataset:
    """Load dataset ``name`` from ``data_root`` (CIFAR may be downloaded when ``download`` is true)."""
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {list_datasets()}")
    return DATASETS[name](Path(data_root), download=download)
