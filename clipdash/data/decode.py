"""Decode images once into uint8 arrays at a model's input size (open_clip's resize + centre crop).

Every checkpoint of a run shares these arrays, so the per-checkpoint work is normalisation and the forward
pass only. Resizing follows open_clip's default eval transform: shortest side to ``size`` (bicubic,
antialiased), then a centre crop.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

from clipdash.errors import DatasetError


def load_rgb(path: str | Path) -> Image.Image:
    """Open an image file as RGB with its EXIF orientation applied."""
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            return img.convert("RGB")
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot decode image {path}: {exc}") from exc


def resize_center_crop(img: Image.Image, size: int) -> np.ndarray:
    """Shortest side to ``size`` (bicubic), centre crop to ``size``×``size``; returns HWC uint8."""
    width, height = img.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    if (new_w, new_h) != (width, height):
        img = img.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


def decode_images(
    paths: Sequence[str | Path], size: int, workers: int = 4, desc: str = "decode"
) -> np.ndarray:
    """Decode ``paths`` into an N×size×size×3 uint8 array, in order, with a progress bar."""
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)

    def work(i: int) -> None:
        out[i] = resize_center_crop(load_rgb(paths[i]), size)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in tqdm(pool.map(work, range(len(paths))), total=len(paths), desc=desc, leave=False):
            pass
    return out
