"""Geirhos et al. (2019) texture–shape cue-conflict stimuli, their ImageNet-16 mapping and human trials.

Layout (github rgeirhos/texture-vs-shape):
``<data_root>/cue-conflict/stimuli/<shape>/<shape>N-<texture>M.png``, ``imagenet16_indices.json`` and
``human-trials/*.csv``; ``data_root`` may also be the ``cue-conflict`` folder itself.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from clipdash.errors import DatasetError

SOURCE = "github.com/rgeirhos/texture-vs-shape (stimuli/style-transfer-preprocessed-512)"
HUMAN_COLUMNS = {"subj", "object_response", "category", "imagename"}


def texture_class_from_name(filename: str) -> str:
    """The texture class in a stimulus name: the last ``-`` token of the stem, digits removed."""
    return re.sub(r"\d", "", Path(filename).stem.split("-")[-1])


@dataclass(frozen=True, eq=False)
class CueConflict:
    """The stimuli in folder order; ``names`` are ``<shape>/<file>.png``, as in ``load_human_trials``."""

    paths: list[Path]
    names: list[str]
    shape_class: list[str]
    texture_class: list[str]
    classnames: list[str]

    def __post_init__(self) -> None:
        lengths = {len(self.paths), len(self.names), len(self.shape_class), len(self.texture_class)}
        if len(lengths) != 1:
            raise DatasetError(f"cue-conflict fields differ in length: {sorted(lengths)}")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def is_conflict(self) -> np.ndarray:
        """True where shape and texture differ (the images that count for shape bias)."""
        return np.asarray(self.shape_class) != np.asarray(self.texture_class)


def cue_conflict_root(data_root: Path) -> Path:
    """``<data_root>/cue-conflict``, or ``data_root`` itself when it holds ``stimuli/``."""
    data_root = Path(data_root)
    for root in (data_root / "cue-conflict", data_root):
        if (root / "stimuli").is_dir():
            return root
    raise DatasetError(
        f"cue-conflict stimuli not found at {data_root / 'cue-conflict' / 'stimuli'} "
        f"or {data_root / 'stimuli'}; get them from {SOURCE}"
    )


def load_cue_conflict(data_root: Path) -> CueConflict:
    """All stimuli, sorted by shape folder then file name."""
    stimuli = cue_conflict_root(data_root) / "stimuli"
    classnames = sorted(d.name for d in stimuli.iterdir() if d.is_dir())
    paths = [p for shape in classnames for p in sorted((stimuli / shape).glob("*.png"))]
    if not paths:
        raise DatasetError(f"{stimuli}: no <shape>/*.png stimuli")
    textures = [texture_class_from_name(p.name) for p in paths]
    unknown = sorted(set(textures) - set(classnames))
    if unknown:
        raise DatasetError(f"{stimuli}: texture classes {unknown[:5]} are not shape folders {classnames}")
    return CueConflict(
        paths=paths,
        names=[f"{p.parent.name}/{p.name}" for p in paths],
        shape_class=[p.parent.name for p in paths],
        texture_class=textures,
        classnames=classnames,
    )


def load_imagenet16_indices(data_root: Path) -> dict[str, list[int]]:
    """Category → ImageNet-1k class indices (for the 1000→16 mean-probability decision rule)."""
    path = cue_conflict_root(data_root) / "imagenet16_indices.json"
    if not path.is_file():
        raise DatasetError(f"{path} is missing (the 16-class ImageNet index lists, from {SOURCE})")
    categories = json.loads(path.read_text(encoding="utf-8")).get("categories")
    if not isinstance(categories, dict) or not categories:
        raise DatasetError(f"{path}: expected a non-empty 'categories' mapping")
    return {name: [int(i) for i in categories[name]] for name in sorted(categories)}


def load_human_trials(data_root: Path) -> pd.DataFrame:
    """Human answers: columns subject, image (``<shape>/<file>.png``), shape_class, texture_class, decision.

    ``decision`` is the subject's answer as recorded (``"na"`` when they gave none).
    """
    folder = cue_conflict_root(data_root) / "human-trials"
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise DatasetError(f"no human-trial CSVs in {folder} (from {SOURCE}, raw-data/style-transfer)")
    frames = []
    for path in files:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
        missing = HUMAN_COLUMNS - set(raw.columns)
        if missing:
            raise DatasetError(f"{path}: missing columns {sorted(missing)}")
        stimulus = raw["imagename"].str.split("_").str[-1]
        frames.append(
            pd.DataFrame(
                {
                    "subject": raw["subj"],
                    "image": raw["category"] + "/" + stimulus,
                    "shape_class": raw["category"],
                    "texture_class": stimulus.map(texture_class_from_name),
                    "decision": raw["object_response"],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
