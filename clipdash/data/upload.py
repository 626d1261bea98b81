"""Decode a user-uploaded image (bytes from the dashboard) into RGB, or refuse it with one plain sentence.

Uploads are untrusted, so decoding is defensive:

- Only PNG, JPEG (including camera MPO files), WebP, GIF and BMP are parsed; Pillow is never asked to try its
  other plugins. TIFF is refused on purpose: its many compressions, multi-page files and exotic sample formats
  add attack surface and conversions this page does not need (as do EPS, which runs Ghostscript, and SVG,
  which is vector).
- Size limits come first: the byte count, then each side and width×height, read from the header before any
  pixel is decoded. The side limit matters as much as the area: a 1.5 KB PNG of 1,500,000 × 1 px is only
  1.5 megapixels, but everything downstream that scales its short side up multiplies it (7 GB in the
  page before this limit). Pillow itself rejects images above ``2 * Image.MAX_IMAGE_PIXELS`` (about 179
  megapixels) while opening, so the effective pixel limit is the smaller of the two.
- Truncated files are refused (``ImageFile.LOAD_TRUNCATED_IMAGES`` stays off), rather than returned half grey.
- Animated GIF/WebP give their first frame; EXIF orientation is applied; transparency is composited onto
  white; 16-bit greyscale is scaled to 8 bits. ICC profiles are ignored, as in open_clip's preprocessing
  (``Image.open(...).convert("RGB")``), so the probe sees pixels the way the model's evaluations do.
"""

from __future__ import annotations

import io
import re
import struct
import zlib

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from clipdash.errors import ImageDecodeError

MAX_UPLOAD_BYTES = 20_000_000
MAX_PIXELS = 40_000_000
MAX_SIDE = 20_000  # pixels, either side: a 20,000 × 2,000 panorama is 40 megapixels
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
PREVIEW_SIDE = 1024  # pixels: the long side of the copy the page displays

SUPPORTED = "PNG, JPEG, WebP, GIF or BMP"  # the allowed formats, as the page and README name them
# Formats people try that are refused on purpose (see the module doc), named in the refusal.
_REFUSED_MAGIC = ((b"II*\0", "TIFF"), (b"MM\0*", "TIFF"), (b"%!PS", "EPS"), (b"\xc5\xd0\xd3\xc6", "EPS"))
_HEIF_BRANDS = frozenset({b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif", b"ftyphevc"})
_SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
# EXIF orientation -> the transpose that displays the image upright (as in ImageOps.exif_transpose).
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# What Pillow's plugins, codecs and EXIF parser raise on malformed input (confirmed by fuzzing);
# DecompressionBombError and UnidentifiedImageError (an OSError) get their own sentences.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, struct.error, EOFError, zlib.error)


def decode_upload(
    data: bytes, max_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_PIXELS
) -> Image.Image:
    """Return the uploaded image as RGB, or raise ``ImageDecodeError`` with a one-sentence reason."""
    if not data:
        raise ImageDecodeError("The file is empty; please choose an image to upload.")
    if len(data) > max_bytes:
        raise ImageDecodeError(
            f"The file is {len(data) / 1e6:.1f} MB, more than the limit of {max_bytes / 1e6:g} MB."
        )
    try:
        with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as img:
            _check_pixels(img.size, max_pixels)
            img.load()
            return _to_rgb(_apply_orientation(img))
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(_unidentified_message(data)) from exc
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(_bomb_message(str(exc), max_pixels)) from exc
    except _DECODE_ERRORS as exc:
        raise ImageDecodeError(
            "The image file is cut off or damaged, so it cannot be decoded; please upload it again."
        ) from exc


def preview(img: Image.Image, max_side: int = PREVIEW_SIDE) -> Image.Image:
    """A copy for display: at most ``max_side`` on its long side, at least 1 px on its short side.

    Streamlit scales an image wider than its content width (1,460 px) down and floors the height, so a
    5000 × 1 image became 1460 × 0 and raised "height and width must be > 0" in the page.
    """
    scale = max_side / max(img.size)
    if scale >= 1:
        return img
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.BOX)


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    """Refuse images whose header promises a side over ``MAX_SIDE`` or more than ``max_pixels`` pixels."""
    width, height = size
    if max(width, height) > MAX_SIDE:
        raise ImageDecodeError(
            f"The image is {width}×{height} pixels; each side may be at most {MAX_SIDE:,} pixels."
        )
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"The image is {width}×{height} pixels ({width * height / 1e6:.1f} megapixels), "
            f"more than the limit of {max_pixels / 1e6:g} megapixels."
        )


def _bomb_message(pillow_message: str, max_pixels: int) -> str:
    """Sentence for images Pillow refused while opening; its message holds the pixel count, not the size."""
    found = re.search(r"\((\d+) pixels\)", pillow_message)
    size = f"{int(found.group(1)) / 1e6:,.0f} megapixels" if found else "too many pixels"
    return f"The image has {size}, more than the limit of {max_pixels / 1e6:g} megapixels."


def _unidentified_message(data: bytes) -> str:
    """Sentence for bytes no allowed format recognises, naming SVG when the bytes are SVG markup."""
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<") and b"<svg" in head:
        return f"SVG drawings are not supported; please export it as a {SUPPORTED} image and upload that."
    named = next((name for magic, name in _REFUSED_MAGIC if data.startswith(magic)), None)
    if named is None and data[4:12] in _HEIF_BRANDS:
        named = "AVIF" if data[4:12] == b"ftypavif" else "HEIC/HEIF"
    if named:
        return f"{named} images are not supported; please convert it to a {SUPPORTED} image and upload that."
    return f"This file is not a {SUPPORTED} image, so it cannot be decoded."


def _apply_orientation(img: Image.Image) -> Image.Image:
    """Rotate/flip by the EXIF orientation tag.

    Not ``ImageOps.exif_transpose``: after transposing, it re-serialises the EXIF block, which raises
    TypeError/AttributeError on malformed tags (found by fuzzing) although the pixels are fine.
    """
    orientation = img.getexif().get(ExifTags.Base.Orientation)
    method = _ORIENTATION.get(orientation) if isinstance(orientation, int) else None
    return img.transpose(method) if method is not None else img


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any decoded mode to RGB: 16 bits scaled to 8, transparency composited onto white."""
    if img.mode in _SIXTEEN_BIT_MODES:
        img = _sixteen_bit_to_l(img)
    if img.has_transparency_data:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def _sixteen_bit_to_l(img: Image.Image) -> Image.Image:
    """Scale 16-bit greyscale (0..65535) to 8 bits with rounding; Pillow's own convert clips at 255."""
    values = np.clip(np.asarray(img, dtype=np.int64), 0, 65535)
    return Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8))
