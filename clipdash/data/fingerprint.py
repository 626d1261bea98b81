"""A cheap fingerprint of the data files a measurement reads: their relative paths and sizes.

Two copies of the same data give the same fingerprint; a fuller copy (more TID2013 pairs), the official
CIFAR-10-C release beside a regenerated one, or a re-encoded file of another size give another. Contents
are not read (a same-size edit in place is not seen): hashing every image would cost more than the
evaluation it describes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path


@cache
def _entries(data_root: Path, relative: str) -> tuple[tuple[str, int], ...]:
    path = data_root / relative
    if path.is_file():
        return ((relative, path.stat().st_size),)
    if not path.is_dir():
        return ()
    files = sorted(p for p in path.rglob("*") if p.is_file())
    return tuple((p.relative_to(data_root).as_posix(), p.stat().st_size) for p in files)


def data_fingerprint(data_root: Path, relative: Iterable[str]) -> str:
    """16 hex digits of SHA-256 over the (path, size) of every file under the given paths of
    ``data_root`` (files or folders; absent ones count as empty). Each path is walked once per process."""
    entries = [entry for rel in sorted(set(relative)) for entry in _entries(Path(data_root).resolve(), rel)]
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:16]


def forget_fingerprints() -> None:
    """Walk the folders again next time (the data changed while this process ran)."""
    _entries.cache_clear()
