"""The return type shared by the classification loaders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipdash.errors import DatasetError


@dataclass(frozen=True, eq=False)
class LabeledImages:
    """A labelled classification set: image files (or a uint8 N×H×W×3 array), int64 labels, prompts.

    ``templates`` is the dataset's CLIP prompt ensemble, each with one ``{c}`` placeholder for the class name.
    """

    name: str
    images: list[Path] | np.ndarray
    labels: np.ndarray
    classnames: list[str]
    templates: list[str]

    def __post_init__(self) -> None:
        if len(self.images) != len(self.labels):
            raise DatasetError(f"{self.name}: {len(self.images)} images but {len(self.labels)} labels")
        if self.labels.dtype != np.int64:
            raise DatasetError(f"{self.name}: labels must be int64, got {self.labels.dtype}")
        if len(self.labels) and not 0 <= self.labels.min() <= self.labels.max() < len(self.classnames):
            raise DatasetError(
                f"{self.name}: labels span {self.labels.min()}..{self.labels.max()} "
                f"but there are {len(self.classnames)} class names"
            )
        if isinstance(self.images, np.ndarray) and (
            self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] != 3
        ):
            raise DatasetError(
                f"{self.name}: image array must be uint8 N×H×W×3, got {self.images.dtype} {self.images.shape}"
            )
        bad = [t for t in self.templates if t.count("{c}") != 1]
        if bad:
            raise DatasetError(f"{self.name}: templates need exactly one '{{}}' placeholder: {bad[:3]}")

    def __len__(self) -> int:
        return len(self.labels)
