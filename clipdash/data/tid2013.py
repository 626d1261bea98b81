"""TID2013 (Ponomarenko et al.): distorted/reference pairs with mean opinion scores.

Original layout under ``<data_root>/tid2013``: ``reference_images/INN.BMP``, ``distorted_images/iNN_DD_L.bmp``
(reference NN, distortion type DD in 1..24, level L in 1..5) and ``mos_with_names.txt`` (``MOS name`` lines).
File-name case varies between copies, so names are matched case-insensitively. A partial copy yields the pairs
whose two images are present and counts the others in ``n_missing``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipdash.errors import DatasetError

SOURCE = "http://www.ponomarenko.info/tid2013.htm"
DISTORTED_NAME = re.compile(r"i(\d+)_(\d+)_(\d+)\.bmp", re.IGNORECASE)


@dataclass(frozen=True, eq=False)
class Tid2013:
    """The present pairs: ``reference_index[i]`` indexes ``reference_paths`` for ``distorted_paths[i]``."""

    reference_paths: list[Path]
    distorted_paths: list[Path]
    reference_index: np.ndarray
    mos: np.ndarray
    distortion: np.ndarray
    level: np.ndarray
    n_listed: int
    n_missing: int

    def __len__(self) -> int:
        return len(self.distorted_paths)


def load_tid2013(data_root: Path) -> Tid2013:
    """The TID2013 pairs present under ``<data_root>/tid2013``, in ``mos_with_names.txt`` order."""
    root = Path(data_root) / "tid2013"
    mos_file = root / "mos_with_names.txt"
    if not mos_file.is_file():
        raise DatasetError(f"TID2013 not found: {mos_file} is missing (download TID2013 from {SOURCE})")
    references = _by_lower_name(root / "reference_images")
    distorted = _by_lower_name(root / "distorted_images")
    rows = _read_mos(mos_file)
    present = []
    for mos, name, (ref, dist, level) in rows:
        ref_name = f"i{ref:02d}.bmp"
        if name.lower() in distorted and ref_name in references:
            present.append((distorted[name.lower()], references[ref_name], mos, dist, level))
    if not present:
        raise DatasetError(
            f"none of the {len(rows)} images listed in {mos_file} (with their references) are in "
            f"{root / 'distorted_images'} / {root / 'reference_images'} (download TID2013 from {SOURCE})"
        )
    reference_paths = sorted({ref for _, ref, *_ in present})
    position = {path: i for i, path in enumerate(reference_paths)}
    return Tid2013(
        reference_paths=reference_paths,
        distorted_paths=[dist for dist, *_ in present],
        reference_index=np.asarray([position[ref] for _, ref, *_ in present], dtype=np.int64),
        mos=np.asarray([row[2] for row in present], dtype=np.float64),
        distortion=np.asarray([row[3] for row in present], dtype=np.int64),
        level=np.asarray([row[4] for row in present], dtype=np.int64),
        n_listed=len(rows),
        n_missing=len(rows) - len(present),
    )


def _by_lower_name(folder: Path) -> dict[str, Path]:
    return {p.name.lower(): p for p in folder.iterdir() if p.is_file()} if folder.is_dir() else {}


def _read_mos(path: Path) -> list[tuple[float, str, tuple[int, int, int]]]:
    """(MOS, distorted file name, (reference, distortion, level)) per line of ``mos_with_names.txt``."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="latin1").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        match = DISTORTED_NAME.fullmatch(parts[-1]) if len(parts) == 2 else None
        if match is None:
            raise DatasetError(f"{path}:{number}: expected 'MOS iNN_DD_L.bmp', got {line!r}")
        try:
            mos = float(parts[0])
        except ValueError as exc:
            raise DatasetError(f"{path}:{number}: MOS {parts[0]!r} is not a number") from exc
        rows.append((mos, parts[1], (int(match[1]), int(match[2]), int(match[3]))))
    return rows
