"""Class-per-folder image sets (torchvision ImageFolder layout) and Imagenette's validation split."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clipdash.data.prompts import TEMPLATE_SETS, load_prompts, load_wnids
from clipdash.data.types import LabeledImages
from clipdash.errors import DatasetError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
IMAGENETTE_SOURCE = "https://github.com/fastai/imagenette (imagenette2, val split)"


def load_image_folder(
    root: Path, name: str, classnames: list[str] | None = None, templates: list[str] | None = None
) -> LabeledImages:
    """``<root>/<class>/<image>``: label i is the i-th class folder in sorted order.

    ``classnames`` (aligned with the sorted folders) defaults to the folder names, ``templates`` to
    ``["a photo of a {c}."]``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{name}: image folder {root} not found")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir())
    if not class_dirs:
        raise DatasetError(f"{name}: {root} has no class folders")
    if classnames is not None and len(classnames) != len(class_dirs):
        raise DatasetError(
            f"{name}: {len(classnames)} class names for {len(class_dirs)} folders in {root}: "
            f"{[d.name for d in class_dirs][:10]}"
        )
    paths, labels = [], []
    for label, class_dir in enumerate(class_dirs):
        files = sorted(p for p in class_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DatasetError(f"{name}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {class_dir}")
        paths += files
        labels += [label] * len(files)
    return LabeledImages(
        name=name,
        images=paths,
        labels=np.asarray(labels, dtype=np.int64),
        classnames=list(classnames) if classnames is not None else [d.name for d in class_dirs],
        templates=list(templates) if templates is not None else list(TEMPLATE_SETS["photo"]),
    )


def load_imagenette(data_root: Path) -> LabeledImages:
    """Imagenette validation images ``<data_root>/imagenette/val/<wnid>/*.JPEG`` with CLIP's names."""
    root = Path(data_root) / "imagenette" / "val"
    if not root.is_dir():
        raise DatasetError(f"imagenette: {root} not found; get the val split from {IMAGENETTE_SOURCE}")
    wnids = load_wnids("imagenette")
    found = sorted(d.name for d in root.iterdir() if d.is_dir())
    if found != sorted(wnids):
        raise DatasetError(
            f"imagenette: {root} should hold exactly the folders {sorted(wnids)}, found {found}"
        )
    names, templates = load_prompts("imagenette")
    by_wnid = dict(zip(wnids, names, strict=True))
    return load_image_folder(root, "imagenette", [by_wnid[w] for w in found], templates)
