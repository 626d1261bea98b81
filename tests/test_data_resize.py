"""open_clip's resize + centre crop (``resize_center_crop``): exact for ordinary images, bounded in memory
for images of extreme shape (a 20,000 × 1 upload once meant a 4.5-megapixel-wide intermediate per row)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from clipdash.data.decode import MAX_ASPECT, resize_center_crop, resize_geometry
from clipdash.data.upload import MAX_SIDE


def resize_then_crop(img: Image.Image, size: int) -> np.ndarray:
    """The reference: the whole image resized (shortest side to ``size``), then the centre crop."""
    new_w, new_h, left, top = resize_geometry(*img.size, size)
    resized = img.resize((new_w, new_h), Image.Resampling.BICUBIC)
    return np.asarray(resized.crop((left, top, left + size, top + size)))


def smooth(width: int, height: int) -> Image.Image:
    """A smooth colour gradient (resampling differences stay small on it)."""
    x = np.linspace(0, 1, width)[None, :, None]
    y = np.linspace(0, 1, height)[:, None, None]
    pixels = np.concatenate([x + 0 * y, y + 0 * x, (x + y) / 2], axis=-1) * 255
    return Image.fromarray(pixels.round().astype(np.uint8))


@pytest.mark.parametrize("size", [(640, 480), (500, 500), (32, 32), (1000, 999), (31, 7), (33, 32)])
def test_ordinary_shapes_are_resized_exactly_as_before(size):
    rng = np.random.default_rng(sum(size))
    img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    for target in (32, 224):
        assert np.array_equal(resize_center_crop(img, target), resize_then_crop(img, target))


@pytest.mark.parametrize("size", [(400, 3), (3, 400), (2000, 7), (1, 300)])
def test_extreme_shapes_agree_with_the_reference_within_two_grey_levels(size):
    assert max(size) / min(size) > MAX_ASPECT
    img = smooth(*size)
    for target in (32, 64):
        out = resize_center_crop(img, target)
        assert out.shape == (target, target, 3) and out.dtype == np.uint8
        assert np.abs(out.astype(int) - resize_then_crop(img, target)).max() <= 2


@pytest.mark.parametrize("size", [(1, 1), (MAX_SIDE, 1), (1, MAX_SIDE), (2, 2)])
def test_any_allowed_shape_gives_a_square_input(size):
    assert resize_center_crop(smooth(*size), 224).shape == (224, 224, 3)


def test_the_largest_allowed_side_resizes_in_bounded_memory():
    """In a fresh process: peak memory for a MAX_SIDE × 1 image at 224 px (3 GB before, for one row)."""
    script = (
        "import resource, numpy as np; from PIL import Image; "
        "from clipdash.data.decode import resize_center_crop; "
        f"img = Image.new('RGB', ({MAX_SIDE}, 1), (200, 10, 10)); "
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
        "out = resize_center_crop(img, 224); "
        "print(out.shape, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    shape, grew_kib = done.stdout.rsplit(")", 1)
    assert shape + ")" == "(224, 224, 3)"
    assert int(grew_kib) < 100 * 1024  # KiB: under 100 MB of growth
