"""Decode images once into uint8 arrays at a model's input size (open_clip's resize + centre crop).

Every checkpoint of a run shares these arrays, so the per-checkpoint work is normalisation and the forward
pass only. Resizing follows open_clip's default eval transform: shortest side to ``size`` (bicubic,
antialiased), then a centre crop.

Two decoders: PIL on CPU threads (the reference), and torch for a CUDA device, where JPEG files are decoded
by nvJPEG (``torchvision.io.decode_jpeg(device="cuda")``) and resized on the GPU with antialiased bicubic
interpolation (PIL's kernel, a = -0.5, in PIL's two passes); other formats, CMYK and EXIF-rotated JPEGs
take the PIL path. On the CPU the torch path matches PIL to within one grey level (``tests/test_cache.py``);
nvJPEG's own decoding may add a little, which ``benchmarks/precompute_throughput.py`` measures on a GPU.
torchvision 0.29 marks its image decoders deprecated (in favour of TorchCodec); they still work.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision.io import ImageReadMode, decode_jpeg
from tqdm import tqdm

from clipdash.errors import DatasetError

GPU_DECODE_CHUNK = 64
MAX_ASPECT = 8  # long side / short side beyond which only the kept box is resized
EXIF_ORIENTATION = 0x0112


def load_rgb(path: str | Path) -> Image.Image:
    """Open an image file as RGB with its EXIF orientation applied."""
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            return img.convert("RGB")
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot decode image {path}: {exc}") from exc


def resize_geometry(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """(new_w, new_h, left, top): shortest side scaled to ``size``, then the centre ``size``×``size`` box."""
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    return new_w, new_h, (new_w - size) // 2, (new_h - size) // 2


def resize_center_crop(img: Image.Image, size: int) -> np.ndarray:
    """Shortest side to ``size`` (bicubic), centre crop to ``size``×``size``; returns HWC uint8.

    Beyond ``MAX_ASPECT`` the whole-image resize would hold ``size² × aspect`` pixels (a 20,000 × 1 image
    at 224 px: 3 GB), so only the box that the crop keeps is resized (PIL's ``box``), which agrees with
    the whole-image path to within two grey levels; ordinary images keep the exact path, byte for byte.
    """
    width, height = img.size
    new_w, new_h, left, top = resize_geometry(width, height, size)
    if max(new_w, new_h) > MAX_ASPECT * size:
        scale_x, scale_y = width / new_w, height / new_h
        box = (left * scale_x, top * scale_y, (left + size) * scale_x, (top + size) * scale_y)
        return np.asarray(img.resize((size, size), Image.Resampling.BICUBIC, box=box), dtype=np.uint8)
    if (new_w, new_h) != (width, height):
        img = img.resize((new_w, new_h), Image.Resampling.BICUBIC)
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


def resize_center_crop_tensor(image: torch.Tensor, size: int) -> torch.Tensor:
    """``resize_center_crop`` on a 3×H×W uint8 tensor, on its device; returns size×size×3 uint8.

    Like PIL, the horizontal pass runs first and its output is rounded and clipped to 0..255 before the
    vertical pass; with PIL's antialiased bicubic kernel this matches PIL to within one grey level.
    """
    height, width = image.shape[-2:]
    new_w, new_h, left, top = resize_geometry(width, height, size)
    x = image[None].float()
    for shape in ((height, new_w), (new_h, new_w)):
        if tuple(x.shape[-2:]) != shape:
            x = F.interpolate(x, size=shape, mode="bicubic", align_corners=False, antialias=True)
            x = x.round_().clamp_(0, 255)
    return x[0, :, top : top + size, left : left + size].permute(1, 2, 0).to(torch.uint8)


def default_workers() -> int:
    """Threads for PIL decoding: one per core (PIL releases the GIL while decoding and resizing)."""
    return min(32, os.cpu_count() or 1)


def decode_images(
    paths: Sequence[str | Path],
    size: int,
    workers: int | None = None,
    desc: str = "decode",
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Decode ``paths`` into an N×size×size×3 uint8 array, in order, with a progress bar.

    On a CUDA ``device`` JPEG files go through ``decode_images_torch``; otherwise PIL on ``workers`` threads.
    """
    if torch.device(device).type == "cuda":
        return decode_images_torch(paths, size, device, desc=desc)
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)

    def work(i: int) -> DatasetError | None:
        try:
            out[i] = resize_center_crop(load_rgb(paths[i]), size)
        except DatasetError as exc:
            return exc
        return None

    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        failures = [
            failure
            for failure in tqdm(pool.map(work, range(len(paths))), total=len(paths), desc=desc, leave=False)
            if failure is not None
        ]
    if failures:
        raise undecodable(failures, len(paths))
    return out


def undecodable(failures: Sequence[DatasetError], total: int) -> DatasetError:
    """One error for every image of a set that failed to decode: how many, and the first one's reason."""
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    return DatasetError(f"{len(failures)} of {total} images cannot be decoded: {failures[0]}{more}")


def _read_bytes(path: Path) -> torch.Tensor:
    try:
        return torch.from_numpy(np.fromfile(path, dtype=np.uint8))
    except OSError as exc:
        raise DatasetError(f"cannot read image {path}: {exc}") from exc


def device_decodable(path: Path) -> bool:
    """True for a baseline RGB or greyscale JPEG without EXIF rotation, read from its header only.

    nvJPEG ignores EXIF orientation and may refuse CMYK, so those files take the PIL path.
    """
    try:
        with Image.open(path) as img:
            return (
                img.format == "JPEG"
                and img.mode in ("RGB", "L")
                and img.getexif().get(EXIF_ORIENTATION, 1) == 1
            )
    except (OSError, UnidentifiedImageError):
        return False  # PIL's path then reports the file


def _decode_jpeg(data: torch.Tensor | list[torch.Tensor], device: torch.device):
    images = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # nvJPEG may work on its own stream
    return images


def _decode_jpegs(paths: list[Path], device: torch.device) -> list[torch.Tensor]:
    """3×H×W uint8 tensors on ``device``; a batch nvJPEG refuses (a corrupt file) is decoded one by one."""
    data = [_read_bytes(path) for path in paths]
    try:
        return _decode_jpeg(data, device)
    except RuntimeError:
        images = []
        for path, raw in zip(paths, data, strict=True):
            try:
                images.append(_decode_jpeg(raw, device))
            except RuntimeError:
                images.append(torch.from_numpy(np.asarray(load_rgb(path))).permute(2, 0, 1).to(device))
        return images


def decode_images_torch(
    paths: Sequence[str | Path], size: int, device: str | torch.device, desc: str = "decode"
) -> np.ndarray:
    """``decode_images`` in torch: JPEGs decoded and resized on ``device`` (nvJPEG on CUDA); others by PIL.

    PIL also takes the JPEGs that ``device_decodable`` turns away (EXIF-rotated, CMYK). Returns the same
    N×size×size×3 uint8 host array as the PIL path, within rounding (see the module doc).
    """
    device = torch.device(device)
    paths = [Path(p) for p in paths]
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    jpegs = [i for i, p in enumerate(paths) if device_decodable(p)]
    others = sorted(set(range(len(paths))) - set(jpegs))
    with tqdm(total=len(paths), desc=desc, leave=False) as bar:
        for start in range(0, len(jpegs), GPU_DECODE_CHUNK):
            chunk = jpegs[start : start + GPU_DECODE_CHUNK]
            images = _decode_jpegs([paths[i] for i in chunk], device)
            crops = torch.stack([resize_center_crop_tensor(image, size) for image in images])
            out[chunk] = crops.cpu().numpy()
            bar.update(len(chunk))
        for i in others:
            out[i] = resize_center_crop(load_rgb(paths[i]), size)
            bar.update(1)
    return out
