"""MIT1003 eye-tracking stimuli (Judd et al. 2009): natural indoor and outdoor scenes, unlabelled.

clipdash reads the stimuli as an out-of-distribution set for CIFAR-10 classifiers (``ood``); the human
fixation maps beside them are for the saliency measurement of a later issue.
"""

from __future__ import annotations

from pathlib import Path

from clipdash.data.folder import IMAGE_SUFFIXES
from clipdash.errors import DatasetError

MIT1003_FOLDERS = ("mit1003-100", "mit1003")  # the benchmark's 100-image tuning subset, or the whole set
MIT1003_SOURCE = "people.csail.mit.edu/tjudd/WherePeopleLook (ALLSTIMULI.zip)"


def load_mit1003_stimuli(data_root: Path) -> list[Path]:
    """The stimulus images under ``<data_root>/mit1003-100/stimuli`` (or ``mit1003/stimuli``), by name."""
    candidates = [Path(data_root) / folder / "stimuli" for folder in MIT1003_FOLDERS]
    for folder in candidates:
        if folder.is_dir():
            paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not paths:
                raise DatasetError(f"mit1003: no images in {folder}")
            return paths
    raise DatasetError(
        f"MIT1003 not found at {' or '.join(map(str, candidates))}: expected the stimulus images; "
        f"the release is at {MIT1003_SOURCE}"
    )
