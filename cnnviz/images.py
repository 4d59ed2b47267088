"""The one safe image opener: every uploaded or user-supplied image goes through :func:`open_image`.

* a format allow-list (JPEG, PNG, WebP, BMP, GIF; GIFs give their first frame);
* our own pixel cap, well below Pillow's decompression-bomb limits (Pillow only *warns* between about 89 and
  179 megapixels), checked from the header before any pixels are decoded;
* ``load()`` forced, because a truncated JPEG passes ``open()`` and ``verify()`` and fails only when decoded;
* EXIF orientation applied (``ImageOps.exif_transpose``), every mode converted to RGB (transparency over white).

Failures raise :class:`ImageError` whose message can be shown to a user as it is.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF")
ALLOWED_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "gif")
MAX_PIXELS = 40_000_000  # 40 Mpx: a large phone photo is ~12-50 Mpx; the network sees 64x64 anyway
MAX_BYTES = 20 * 1024 * 1024


class ImageError(ValueError):
    """An image that cannot be used; the message is meant for the user."""


def open_image(source: bytes | str | Path | BinaryIO, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open, fully decode, orient and convert an image to RGB, or raise :class:`ImageError`."""
    if isinstance(source, (str, Path)):
        data = Path(source).read_bytes()
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        data = source.read()
    if not data:
        raise ImageError("the file is empty")
    if len(data) > MAX_BYTES:
        raise ImageError(f"the file is {len(data) / 2**20:.1f} MB; the limit is {MAX_BYTES // 2**20} MB")
    try:
        img = Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
    except UnidentifiedImageError:
        raise ImageError("not a supported image: use JPEG, PNG, WebP, BMP or GIF") from None
    except Image.DecompressionBombError:
        raise ImageError("the image declares too many pixels (a decompression bomb?)") from None
    except OSError as e:
        raise ImageError(f"the image cannot be read ({e})") from None
    w, h = img.size
    if w < 1 or h < 1:
        raise ImageError("the image has no pixels")
    if w * h > max_pixels:
        raise ImageError(f"the image is {w}x{h} = {w * h / 1e6:.0f} megapixels; the limit is "
                         f"{max_pixels / 1e6:.0f} megapixels")
    try:
        if getattr(img, "is_animated", False):
            img.seek(0)  # first frame of an animated GIF/WebP
        img.load()
        img = ImageOps.exif_transpose(img) or img
        return to_rgb(img)
    except Image.DecompressionBombError:
        raise ImageError("the image declares too many pixels (a decompression bomb?)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"the image is damaged or truncated and cannot be decoded ({e})") from None


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode to RGB; transparent pixels become white (as a viewer would show them)."""
    if img.mode == "RGB":
        return img
    if img.mode == "I" or img.mode.startswith("I;16"):
        # 16-bit grey (PNG; Pillow loads it as I;16, or I): 0..65535 is black to white. Pillow's own I -> RGB
        # clips at 255 instead, so everything above 1/256 of full scale came out white.
        grey = np.clip(np.asarray(img, dtype=np.float64), 0, 65535) / 257.0
        return Image.fromarray(np.rint(grey).astype(np.uint8), "L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, I;16, F ...


def safe_display_name(name: str | None, limit: int = 80) -> str:
    """A file name fit for display only (never used as a path): control characters escaped, length capped."""
    if not name:
        return "(unnamed)"
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(name))
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"
