"""Every upload a user can make, through the same path the Predict page and CLI use:
``open_image`` -> ``to_tensor_for`` -> ``topk``. Good images of any format/mode predict; bad ones raise
ImageError with a message meant for a person."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from cnnviz.checkpoint import load_checkpoint
from cnnviz.images import ImageError, open_image
from cnnviz.predict import topk
from cnnviz.preprocess import to_tensor_for
from tests.predict_helpers import image_bytes, make_checkpoint

META = {"input_size": 64, "mean": [0.48, 0.45, 0.40], "std": [0.28, 0.27, 0.28], "num_classes": 10}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return load_checkpoint(make_checkpoint(tmp_path_factory.mktemp("ck") / "m"))


def _gif_two_frames() -> bytes:
    red, blue = Image.new("RGB", (40, 40), (255, 0, 0)), Image.new("RGB", (40, 40), (0, 0, 255))
    buf = io.BytesIO()
    red.save(buf, "GIF", save_all=True, append_images=[blue], duration=100, loop=0)
    return buf.getvalue()


def _palette_with_transparency() -> bytes:
    img = Image.new("P", (50, 30), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.paste(1, (25, 0, 50, 30))
    buf = io.BytesIO()
    img.save(buf, "PNG", transparency=0)  # left half transparent -> white, right half red
    return buf.getvalue()


def _png16() -> bytes:
    arr = (np.linspace(0, 65535, 70 * 50).reshape(50, 70)).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


GOOD = {
    "jpeg": lambda: image_bytes("JPEG", (300, 200), quality=90),
    "png": lambda: image_bytes("PNG", (64, 64)),
    "webp": lambda: image_bytes("WEBP", (120, 90)),
    "bmp": lambda: image_bytes("BMP", (33, 77)),
    "gif-animated": _gif_two_frames,
    "cmyk-jpeg": lambda: image_bytes("JPEG", (80, 80), mode="CMYK"),
    "palette-transparent-png": _palette_with_transparency,
    "one-pixel": lambda: image_bytes("PNG", (1, 1)),
    "grayscale": lambda: image_bytes("PNG", (64, 64), mode="L"),
    "grayscale-alpha": lambda: image_bytes("PNG", (64, 64), mode="LA"),
    "16-bit": _png16,
    "rgba": lambda: image_bytes("PNG", (64, 48), mode="RGBA"),
    "large-photo": lambda: image_bytes("JPEG", (1600, 1200)),
}


@pytest.mark.parametrize("kind", sorted(GOOD))
def test_every_supported_format_and_mode_predicts(kind, ckpt):
    img = open_image(GOOD[kind]())
    assert img.mode == "RGB"
    x = to_tensor_for(img, ckpt.meta)
    assert x.shape == (1, 3, 64, 64) and torch.isfinite(x).all()
    r = topk(ckpt.model, img, ckpt.meta, 5)
    assert len(r.predictions) == 5 and sum(p.prob for p in r.predictions) <= 1.0 + 1e-5


def test_gif_gives_its_first_frame():
    img = open_image(_gif_two_frames())
    r, g, b = img.getpixel((20, 20))
    assert r > 200 and b < 50


def test_transparency_becomes_white_not_black():
    img = open_image(_palette_with_transparency())
    assert img.getpixel((5, 5)) == (255, 255, 255)
    assert img.getpixel((45, 5)) == (255, 0, 0)


def test_16_bit_keeps_its_range():
    img = open_image(_png16())
    lo, hi = img.getpixel((0, 0))[0], img.getpixel((69, 49))[0]
    assert lo < 10 and hi > 245
    # the whole ramp, not only its ends: Pillow's I;16 -> RGB clips at 255, which turned all but the first
    # 1/256 of the ramp white (and the ends alone did not show it)
    grey = np.asarray(img)[..., 0].astype(int).ravel()
    expected = np.rint(np.linspace(0, 65535, grey.size).astype(np.uint16) / 257)
    assert np.abs(grey - expected).max() <= 1 and np.all(np.diff(grey) >= 0)


def _exif_jpeg(img: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=100, subsampling=0, exif=exif.tobytes())
    return buf.getvalue()


# how a camera stores an upright picture for each EXIF orientation (the inverse of what a viewer applies)
STORED = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270,
          2: Image.Transpose.FLIP_LEFT_RIGHT}


@pytest.mark.parametrize("orientation", sorted(STORED))
def test_exif_rotated_photo_is_seen_upright(orientation):
    upright = open_image(image_bytes("PNG", (120, 80), seed=3))
    stored = upright.transpose(STORED[orientation])
    rotated_file = _exif_jpeg(stored, orientation)
    upright_file = _exif_jpeg(upright, 1)
    x_rot = to_tensor_for(open_image(rotated_file), META)
    x_up = to_tensor_for(open_image(upright_file), META)
    x_ignored = to_tensor_for(Image.open(io.BytesIO(rotated_file)).convert("RGB"), META)  # EXIF not applied
    err = (x_rot - x_up).abs().mean().item()
    wrong = (x_ignored - x_up).abs().mean().item()
    assert err < 0.05, f"EXIF orientation {orientation} not honoured (mean abs diff {err:.3f})"
    assert wrong > 10 * err  # the check can fail: without EXIF handling the tensors differ a lot


def _bomb_png(width=30000, height=30000) -> bytes:
    """A tiny PNG whose header declares ``width x height`` pixels (900 Mpx): a decompression bomb."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _tiff() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (20, 20), "green").save(buf, "TIFF")
    return buf.getvalue()


BAD = {
    "empty": (lambda: b"", "empty"),
    "random-bytes.png": (lambda: np.random.default_rng(0).bytes(4096), "not a supported image"),
    "truncated.jpg": (lambda: image_bytes("JPEG", (400, 300))[:3000], "damaged or truncated"),
    "tiff-renamed.jpg": (_tiff, "not a supported image"),
    "bomb.png": (_bomb_png, "megapixels|too many pixels"),
    "text.png": (lambda: b"hello, I am not a picture\n" * 10, "not a supported image"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_uploads_are_rejected_with_a_message(name):
    make, pattern = BAD[name]
    with pytest.raises(ImageError, match=pattern) as e:
        open_image(make())
    msg = str(e.value)
    assert msg and "Traceback" not in msg and len(msg) < 300
