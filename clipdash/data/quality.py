"""No-reference image-quality sets given as a folder of images plus a CSV of mean opinion scores."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from clipdash.errors import DatasetError

LIVEC_FOLDERS = ("livec-224", "livec")
LIVEC_SOURCE = "https://live.ece.utexas.edu/research/ChallengeDB/index.html (UT Austin)"


@dataclass(frozen=True, eq=False)
class QualityImages:
    """Image files and their MOS (higher is better), in CSV order."""

    name: str
    paths: list[Path]
    mos: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)


def load_quality_csv(
    root: Path, name: str = "livec", csv_name: str = "scores.csv", image_dir: str = "images"
) -> QualityImages:
    """Read ``<root>/<csv_name>`` (columns ``image``, ``mos``) with images in ``<root>/<image_dir>``."""
    csv_path = Path(root) / csv_name
    if not csv_path.is_file():
        raise DatasetError(f"{name}: score file {csv_path} not found")
    table = pd.read_csv(csv_path)
    missing_columns = {"image", "mos"} - set(table.columns)
    if missing_columns:
        raise DatasetError(f"{csv_path}: missing columns {sorted(missing_columns)} (need image, mos)")
    if table.empty:
        raise DatasetError(f"{csv_path}: no rows")
    paths = [Path(root) / image_dir / str(image) for image in table["image"]]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DatasetError(
            f"{name}: {len(missing)} images listed in {csv_path} are missing, e.g. {missing[:3]}"
        )
    mos = pd.to_numeric(table["mos"], errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(mos).any():
        raise DatasetError(
            f"{csv_path}: non-numeric MOS in rows {np.flatnonzero(np.isnan(mos))[:5].tolist()}"
        )
    return QualityImages(name, paths, mos)


def load_livec(data_root: Path) -> QualityImages:
    """LIVE In the Wild Challenge from ``<data_root>/livec-224`` (224-px copy) or ``<data_root>/livec``."""
    candidates = [Path(data_root) / folder for folder in LIVEC_FOLDERS]
    for root in candidates:
        if root.is_dir():
            return load_quality_csv(root, name="livec")
    raise DatasetError(
        f"LIVE-C not found at {' or '.join(map(str, candidates))}: expected images/*.jpg and scores.csv "
        f"(image,mos); the release is at {LIVEC_SOURCE}"
    )
