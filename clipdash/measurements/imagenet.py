"""ImageNet-1k label space helpers for the classifier baselines: where a dataset's classes sit among
the 1000 ImageNet classes (by WordNet id, in the standard sorted order that timm lists)."""

from __future__ import annotations

import numpy as np


def imagenet_indices(wnids: list[str]) -> np.ndarray:
    """The ImageNet-1k class index of each WordNet id (timm's ``ImageNetInfo``: the standard order)."""
    from timm.data import ImageNetInfo

    order = {wnid: i for i, wnid in enumerate(ImageNetInfo().label_names())}
    missing = [w for w in wnids if w not in order]
    if missing:
        raise ValueError(f"not ImageNet-1k classes: {missing}")
    return np.array([order[w] for w in wnids], dtype=np.int64)


def imagenette_indices() -> np.ndarray:
    """Imagenette's ten classes (clipdash's label order: sorted WordNet ids) among ImageNet-1k's."""
    from clipdash.data.prompts import load_wnids

    return imagenet_indices(sorted(load_wnids("imagenette")))
