"""Tests for clipdash.data.upload: every file is generated here, in memory."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from clipdash.data.upload import MAX_PIXELS, MAX_SIDE, SUPPORTED, decode_upload, preview
from clipdash.errors import ImageDecodeError

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def encode(img: Image.Image, fmt: str, **params) -> bytes:
    """Save ``img`` as ``fmt`` into bytes."""
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def refusal(data: bytes, **limits) -> str:
    """The ImageDecodeError message for ``data``, checked to be one plain sentence."""
    with pytest.raises(ImageDecodeError) as info:
        decode_upload(data, **limits)
    message = str(info.value)
    assert message[0].isupper() and message.endswith(".")
    assert "\n" not in message and ". " not in message
    assert "<_io" not in message and "Traceback" not in message and "BytesIO" not in message
    return message


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR claims ``width``×``height`` (8-bit RGB) with one small IDAT of zeros."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 4096, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def close(actual: tuple[int, ...], expected: tuple[int, ...], tol: int) -> bool:
    return all(abs(a - e) <= tol for a, e in zip(actual, expected, strict=True))


# --- refusals ---------------------------------------------------------------------------------------------


def test_empty_bytes_are_refused():
    assert "empty" in refusal(b"")


def test_too_many_bytes_are_refused_before_decoding():
    data = encode(Image.new("RGB", (64, 64), RED), "PNG")
    message = refusal(data, max_bytes=len(data) - 1)
    assert "MB" in message and "limit" in message


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image_is_refused_not_half_grey(fmt):
    rng = np.random.default_rng(0)
    noisy = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = encode(noisy, fmt)
    assert decode_upload(data).size == (64, 64)
    assert "cut off or damaged" in refusal(data[: len(data) // 2])


def test_decompression_bomb_is_refused_from_the_header():
    data = png_header_only(30000, 30000)
    assert len(data) < 200
    message = refusal(data)
    assert "900 megapixels" in message and "40 megapixels" in message


def test_image_over_the_pixel_limit_names_its_size():
    message = refusal(png_header_only(8000, 6000))
    assert "8000×6000" in message and "48.0 megapixels" in message and "40 megapixels" in message


def test_pixel_limit_is_a_parameter():
    data = encode(Image.new("RGB", (100, 100), RED), "PNG")
    assert "100×100" in refusal(data, max_pixels=9999)
    assert decode_upload(data, max_pixels=10000).size == (100, 100)


@pytest.mark.parametrize("size", [(1_500_000, 1), (2_000_000, 1), (1, 1_500_000), (20_001, 2)])
def test_a_side_over_the_limit_is_refused_before_decoding(size):
    """Area alone let a 1.5 KB PNG of 1,500,000 × 1 px through, and resizing it took 7 GB."""
    data = png_header_only(*size)
    assert len(data) < 200
    message = refusal(data)
    assert f"{size[0]}×{size[1]}" in message and f"at most {MAX_SIDE:,} pixels" in message


def test_a_real_file_one_pixel_high_at_the_side_limit_decodes():
    data = encode(Image.new("RGB", (MAX_SIDE, 1), RED), "PNG")
    assert len(data) < 2000
    assert decode_upload(data).size == (MAX_SIDE, 1)


def zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("photo.png", "not really")
    return buf.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        b"hello, this is a text file renamed to cat.png\n",
        b"<!DOCTYPE html><html><body><img src='cat.png'></body></html>",
        zip_bytes(),
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n",
        b"\x89PNG\r\n\x1a\n",
        b"\xff\xd8\xff",
    ],
    ids=["text", "html", "zip", "pdf", "png-signature-only", "jpeg-signature-only"],
)
def test_non_images_are_refused(data):
    message = refusal(data)
    assert "not a PNG, JPEG, WebP, GIF or BMP image" in message or "cut off or damaged" in message


@pytest.mark.parametrize(
    "svg",
    [
        b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"><rect width="9" height="9"/></svg>',
        b'\xef\xbb\xbf  <?xml version="1.0"?>\n<!DOCTYPE svg>\n<SVG xmlns="http://www.w3.org/2000/svg"/>',
    ],
)
def test_svg_is_refused_with_advice(svg):
    message = refusal(svg)
    assert message.startswith("SVG") and "PNG, JPEG, WebP" in message


def test_tiff_is_refused_by_name():
    tiff = encode(Image.new("RGB", (4, 4), RED), "TIFF")
    message = refusal(tiff)
    assert message.startswith("TIFF images are not supported") and "PNG, JPEG, WebP, GIF or BMP" in message


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP"])
def test_every_format_the_page_names_decodes(fmt):
    assert fmt.lower() in SUPPORTED.lower()
    assert decode_upload(encode(Image.new("RGB", (5, 4), RED), fmt)).size == (5, 4)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + bytes(64), "HEIC/HEIF"),
        (b"\0\0\0\x1cftypavif\0\0\0\0avifmif1" + bytes(64), "AVIF"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9\n", "EPS"),
    ],
)
def test_other_refused_formats_are_named(data, named):
    message = refusal(data)
    assert message.startswith(f"{named} images are not supported") and SUPPORTED in message


# --- conversions ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt, params", [("GIF", {}), ("WEBP", {"lossless": True})])
def test_animation_gives_its_first_frame(fmt, params):
    frames = [Image.new("RGB", (16, 16), RED), Image.new("RGB", (16, 16), BLUE)]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **params)
    with Image.open(io.BytesIO(data)) as check:
        assert check.n_frames == 2
    out = decode_upload(data)
    assert out.mode == "RGB" and out.size == (16, 16)
    assert close(out.getpixel((8, 8)), RED, tol=2)


def test_cmyk_jpeg_converts_to_the_expected_rgb():
    img = Image.new("CMYK", (32, 16), (0, 255, 255, 0))  # pure red ink-free cyan, full magenta+yellow
    img.paste((0, 0, 0, 128), (16, 0, 32, 16))  # half black: (255 - 128) grey
    out = decode_upload(encode(img, "JPEG", quality=95))
    assert out.mode == "RGB"
    assert close(out.getpixel((4, 8)), RED, tol=4)
    assert close(out.getpixel((28, 8)), (127, 127, 127), tol=4)


def test_sixteen_bit_png_is_scaled_not_clipped():
    values = np.array([[65535, 32768, 0, 257]], dtype=np.uint16)
    data = encode(Image.fromarray(values), "PNG")
    with Image.open(io.BytesIO(data)) as check:
        assert check.mode.startswith("I")
    out = decode_upload(data)
    assert [out.getpixel((x, 0)) for x in range(4)] == [(255,) * 3, (128,) * 3, (0,) * 3, (1,) * 3]


def test_palette_png_transparency_becomes_white():
    img = Image.new("P", (2, 1))
    img.putpalette([0, 0, 0] + list(RED))
    img.putpixel((0, 0), 0)
    img.putpixel((1, 0), 1)
    out = decode_upload(encode(img, "PNG", transparency=0))
    assert out.getpixel((0, 0)) == WHITE and out.getpixel((1, 0)) == RED


def test_gif_transparency_becomes_white():
    img = Image.new("P", (2, 1))
    img.putpalette([0, 0, 0] + list(BLUE))
    img.putpixel((1, 0), 1)
    out = decode_upload(encode(img, "GIF", transparency=0))
    assert out.getpixel((0, 0)) == WHITE and out.getpixel((1, 0)) == BLUE


@pytest.mark.parametrize(
    "mode, transparent, half",
    [("RGBA", (0, 0, 0, 0), (0, 0, 0, 128)), ("LA", (0, 0), (0, 128))],
)
def test_alpha_is_composited_onto_white(mode, transparent, half):
    img = Image.new(mode, (2, 1))
    img.putpixel((0, 0), transparent)
    img.putpixel((1, 0), half)
    out = decode_upload(encode(img, "PNG"))
    assert out.getpixel((0, 0)) == WHITE
    assert close(out.getpixel((1, 0)), (127, 127, 127), tol=1)


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (64, 32), BLUE)
    img.paste(RED, (0, 0, 16, 16))  # marks the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": stored top-left ends top-right
    out = decode_upload(encode(img, "JPEG", quality=95, exif=exif.tobytes()))
    assert out.size == (32, 64)
    assert close(out.getpixel((24, 8)), RED, tol=8)
    assert close(out.getpixel((8, 8)), BLUE, tol=8)
    assert close(out.getpixel((24, 56)), BLUE, tol=8)


def test_greyscale_and_bilevel_become_rgb():
    assert decode_upload(encode(Image.new("L", (3, 3), 77), "PNG")).getpixel((1, 1)) == (77, 77, 77)
    bilevel = Image.new("1", (2, 1), 0)
    bilevel.putpixel((1, 0), 1)
    out = decode_upload(encode(bilevel, "PNG"))
    assert out.getpixel((0, 0)) == (0, 0, 0) and out.getpixel((1, 0)) == WHITE


@pytest.mark.parametrize("size", [(1, 1), (10000, 10), (10, 10000)])
def test_extreme_shapes_decode(size):
    out = decode_upload(encode(Image.new("RGB", size, RED), "PNG"))
    assert out.mode == "RGB" and out.size == size and out.getpixel((0, 0)) == RED


@pytest.mark.parametrize("fmt", ["BMP", "WEBP"])
def test_other_allowed_formats(fmt):
    out = decode_upload(
        encode(Image.new("RGB", (8, 8), RED), fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    )
    assert out.mode == "RGB" and out.getpixel((4, 4)) == RED


# --- properties -------------------------------------------------------------------------------------------

SIGNATURES = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"RIFF\0\0\0\0WEBPVP8 ", b"BM"]


def decodes_or_refuses(data: bytes) -> None:
    """The whole contract: an RGB image, or an ImageDecodeError with one plain sentence."""
    try:
        out = decode_upload(data)
    except ImageDecodeError as exc:
        message = str(exc)
        assert "\n" not in message and "<_io" not in message and message.endswith(".")
    else:
        assert out.mode == "RGB" and out.width * out.height <= MAX_PIXELS


@FUZZ
@given(prefix=st.sampled_from(SIGNATURES), body=st.binary(max_size=4096))
def test_random_bytes_decode_or_refuse(prefix, body):
    decodes_or_refuses(prefix + body)


@FUZZ
@given(data=st.data(), fmt=st.sampled_from(["PNG", "JPEG", "GIF", "WEBP", "BMP"]))
def test_damaged_valid_images_decode_or_refuse(data, fmt):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    raw = bytearray(encode(Image.fromarray(rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)), fmt))
    for _ in range(data.draw(st.integers(0, 8))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    decodes_or_refuses(bytes(raw[: data.draw(st.integers(0, len(raw)))]))


# Which modes each format can store (Pillow converts RGB for GIF by quantising, which is fine here).
WRITABLE = [
    *(("PNG", m) for m in ("RGB", "RGBA", "L", "P", "I;16")),
    *(("JPEG", m) for m in ("RGB", "L", "CMYK")),
    *(("WEBP", m) for m in ("RGB", "RGBA")),
    *(("GIF", m) for m in ("RGB", "L", "P")),
    *(("BMP", m) for m in ("RGB", "RGBA", "L", "P")),
]
CHANNELS = {"RGB": 3, "RGBA": 4, "CMYK": 4}


def random_image(rng: np.random.Generator, mode: str, width: int, height: int) -> Image.Image:
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    shape = (height, width, CHANNELS[mode]) if mode in CHANNELS else (height, width)
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    if mode == "P":
        img = Image.fromarray(pixels).convert("P")
        img.putpalette(rng.integers(0, 256, 768, dtype=np.uint8).tobytes())
        return img
    return Image.frombytes(mode, (width, height), pixels.tobytes())


@FUZZ
@given(
    kind=st.sampled_from(WRITABLE),
    width=st.integers(1, 64),
    height=st.integers(1, 64),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_valid_images_decode_to_rgb_of_the_same_size(kind, width, height, seed):
    fmt, mode = kind
    img = random_image(np.random.default_rng(seed), mode, width, height)
    out = decode_upload(encode(img, fmt))
    assert out.mode == "RGB" and out.size == (width, height)
    if fmt in ("PNG", "BMP") and mode in ("RGB", "L", "P"):  # lossless and opaque: exact pixels
        assert np.array_equal(np.asarray(out), np.asarray(img.convert("RGB")))


@pytest.mark.parametrize(
    ("size", "shown"),
    [((5000, 1), (1024, 1)), ((1, 5000), (1, 1024)), ((1, 1), (1, 1)), ((3000, 2000), (1024, 683))],
)
def test_the_preview_keeps_every_side_at_least_one_pixel(size, shown):
    assert preview(Image.new("RGB", size, RED)).size == shown
