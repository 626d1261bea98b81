"""Decoded images kept between runs (on disk) and within a run (on the GPU when they fit).

``DecodedCache`` stores each decoded array as one ``.npy`` file named by the image-set key (which includes
the input size and the decoder) and a hash of the source files' paths, sizes and modification times, so a
changed, added or removed file leads to a new entry. Entries are written to a temporary file and renamed
into place, so a killed job never leaves a half-written entry, and are read back memory-mapped
(``mmap_mode="r"``): a cache larger than RAM streams from disk. Each file ends with the SHA-256 of its
pixels, checked on every read (0.7 s per GiB on a 2-core EPYC), so an entry damaged in place (same size, other
bytes) is caught too: a file whose header, length or checksum does not check out is reported and rebuilt.

``DevicePixels`` copies a run's uint8 arrays to the GPU once, while they fit in a share of its memory, so
every checkpoint of the run reads its images from device memory.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from clipdash.errors import DatasetError

log = logging.getLogger(__name__)
CACHE_ENV = "CLIPDASH_CACHE_DIR"
FORMAT_VERSION = 2  # 2: a SHA-256 trailer after the .npy data
CHECKSUM_TAG = b"clipdash-sha256:"
TRAILER_BYTES = len(CHECKSUM_TAG) + hashlib.sha256().digest_size
HASH_CHUNK_BYTES = 64 << 20
DEVICE_SHARE = 0.25  # at most this share of the GPU's memory holds resident images


def default_cache_dir() -> Path:
    """``$CLIPDASH_CACHE_DIR`` if set, else ``~/.cache/clipdash/decoded``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "clipdash" / "decoded")


def files_fingerprint(files: Sequence[str | Path]) -> str:
    """sha256 over each file's absolute path, size and modification time, in order."""
    digest = hashlib.sha256(f"clipdash-decoded-v{FORMAT_VERSION}\n".encode())
    for path in files:
        try:
            stat = os.stat(path)
        except OSError as exc:
            raise DatasetError(f"cannot read image {path}: {exc}") from exc
        digest.update(f"{os.path.abspath(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def pixels_digest(array: np.ndarray) -> bytes:
    """SHA-256 of an array's bytes in C order, read in chunks (a memory map is never copied whole)."""
    digest = hashlib.sha256()
    flat = array.reshape(-1)
    step = max(1, HASH_CHUNK_BYTES // max(1, array.itemsize))
    for start in range(0, flat.size, step):
        digest.update(np.ascontiguousarray(flat[start : start + step]).data)
    return digest.digest()


def _read_entry(path: Path) -> np.ndarray | None:
    """The memory-mapped array at ``path``; None (and a warning) if the file is unreadable, truncated or
    fails its checksum."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
        with path.open("rb") as f:
            f.seek(-TRAILER_BYTES, os.SEEK_END)
            trailer = f.read()
    except (OSError, ValueError, EOFError) as exc:
        log.warning("decoded-image cache file %s is unreadable (%s); rebuilding it", path, exc)
        return None
    if not isinstance(array, np.memmap) or array.offset + array.nbytes + TRAILER_BYTES != path.stat().st_size:
        log.warning("decoded-image cache file %s has the wrong length; rebuilding it", path)
        return None
    if trailer != CHECKSUM_TAG + pixels_digest(array):
        log.warning("decoded-image cache file %s fails its checksum (damaged on disk?); rebuilding it", path)
        return None
    return array


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_tmp(path: Path) -> None:
    """Delete temporary files of ``path`` left by killed writers (those whose process is gone)."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2 : -len(".tmp")]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _write_entry(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` atomically: a temporary file in the same folder, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as f:
            np.save(f, np.ascontiguousarray(array), allow_pickle=False)
            f.write(CHECKSUM_TAG + pixels_digest(array))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class DecodedCache:
    """A folder of decoded arrays reused across runs; ``root=None`` turns caching off."""

    root: Path | None

    def entry_path(self, key: str, files: Sequence[str | Path]) -> Path:
        """Where the entry for image set ``key`` decoded from ``files`` lives."""
        if self.root is None:
            raise ValueError("caching is off (root=None)")
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("_")
        return self.root / f"{name}-{files_fingerprint(files)[:24]}.npy"

    def array(self, key: str, files: Sequence[str | Path], build: Callable[[], np.ndarray]) -> np.ndarray:
        """The cached array for ``key`` and these source ``files``, building and storing it when absent.

        ``key`` must name everything besides the files that the array depends on (input size, decoder).
        Returns a read-only memory map when cached; a cache that cannot be written is reported and skipped.
        """
        if self.root is None or not files:
            return build()
        path = self.entry_path(key, files)
        if path.is_file():
            cached = _read_entry(path)
            if cached is not None:
                return cached
        array = build()
        if array.size == 0:
            return array
        try:
            _write_entry(path, array)
        except OSError as exc:
            log.warning("could not write decoded-image cache %s (%s); continuing without it", path, exc)
            return array
        cached = _read_entry(path)
        return array if cached is None else cached


def to_device(pixels: np.ndarray, device: torch.device, chunk: int = 1024) -> torch.Tensor:
    """Copy a (possibly read-only, memory-mapped) array to ``device`` in chunks of ``chunk`` rows."""
    out = torch.empty(pixels.shape, dtype=torch.uint8, device=device)
    for start in range(0, len(pixels), chunk):
        out[start : start + chunk].copy_(torch.from_numpy(np.array(pixels[start : start + chunk])))
    return out


@dataclass
class DevicePixels:
    """uint8 image arrays copied to a CUDA device once per run, while they fit; the host array otherwise."""

    device: torch.device
    share: float = DEVICE_SHARE
    _resident: dict[str, torch.Tensor] = field(default_factory=dict)

    def get(self, key: str, pixels: np.ndarray) -> np.ndarray | torch.Tensor:
        """``pixels`` on the device if it is CUDA and they fit, else ``pixels`` unchanged (streamed later)."""
        if self.device.type != "cuda":
            return pixels
        if key not in self._resident:
            if not self._fits(pixels.nbytes):
                return pixels
            self._resident[key] = to_device(pixels, self.device)
        return self._resident[key]

    def _fits(self, nbytes: int) -> bool:
        free, total = torch.cuda.mem_get_info(self.device)
        held = sum(t.numel() for t in self._resident.values())
        return held + nbytes <= self.share * total and nbytes <= free // 2
