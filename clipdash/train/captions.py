"""Captioned training images: an image folder with caption templates, or a CSV of (image, caption)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipdash.data.folder import load_image_folder
from clipdash.errors import DatasetError


@dataclass(frozen=True)
class CaptionedImages:
    """Image paths, the captions each may be paired with, and the unique caption strings.

    ``caption_choices[i]`` lists indices into ``captions``; training samples one per image per step, so a
    templated folder yields every template of the image's class and a CSV yields its one caption.
    """

    paths: list[Path]
    caption_choices: list[list[int]]
    captions: list[str]
    labels: np.ndarray | None = None
    classnames: list[str] | None = None


def load_templates(path: str | Path) -> tuple[list[str], list[str] | None]:
    """Read templates (``{c}`` or ``{}`` placeholder) and optional class names from a CLIP prompts JSON."""
    data = json.loads(Path(path).read_text())
    templates = [t.replace("{}", "{c}") for t in data["templates"]]
    if not templates or any(t.count("{c}") != 1 for t in templates):
        raise DatasetError(f"{path}: every template needs one '{{}}' or '{{c}}' placeholder")
    return templates, data.get("classes")


def from_image_folder(
    root: str | Path,
    templates: list[str],
    classnames: list[str] | None = None,
    limit_per_class: int | None = None,
) -> CaptionedImages:
    """``root/<class>/*.jpg`` → captions from templates; ``classnames`` (folder order) renames classes."""
    data = load_image_folder(Path(root), "training images", classnames, templates)
    keep = np.sort(
        np.concatenate(
            [np.flatnonzero(data.labels == label)[:limit_per_class] for label in range(len(data.classnames))]
        )
    )
    captions = [t.format(c=name) for name in data.classnames for t in templates]
    n = len(templates)
    return CaptionedImages(
        [data.images[i] for i in keep],
        [list(range(data.labels[i] * n, (data.labels[i] + 1) * n)) for i in keep],
        captions,
        data.labels[keep],
        data.classnames,
    )


def from_caption_csv(csv_path: str | Path) -> CaptionedImages:
    """A CSV with ``image`` (path relative to the CSV) and ``caption`` columns."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DatasetError(f"caption CSV not found: {csv_path}")
    with csv_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"image", "caption"} <= set(rows[0]):
        raise DatasetError(f"{csv_path} needs 'image' and 'caption' columns")
    index: dict[str, int] = {}
    paths, choices = [], []
    for row in rows:
        path = csv_path.parent / row["image"]
        if not path.is_file():
            raise DatasetError(f"{csv_path}: image not found: {path}")
        paths.append(path)
        choices.append([index.setdefault(row["caption"], len(index))])
    return CaptionedImages(paths, choices, list(index))
