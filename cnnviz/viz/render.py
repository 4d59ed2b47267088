"""Arrays -> pictures: normalisation, grids, heat maps, PNG bytes (PIL + matplotlib colour maps, no pyplot)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image


def normalise(arr: np.ndarray, mode: str = "minmax") -> np.ndarray:
    """Scale an array to [0, 1].

    ``minmax``: (a - min) / (max - min) (ZF's per-filter normalisation of conv1 filters);
    ``symmetric``: 0.5 + 0.5 * a / max|a| (zero stays mid-grey: projections and signed maps);
    ``abs``: |a| / max|a|. A constant array gives mid-grey (minmax) or its zero level.
    """
    a = np.asarray(arr, dtype=np.float64)
    if mode == "minmax":
        lo, hi = np.nanmin(a), np.nanmax(a)
        return np.full_like(a, 0.5) if hi - lo < 1e-12 else (a - lo) / (hi - lo)
    m = np.nanmax(np.abs(a)) if a.size else 0.0
    if mode == "symmetric":
        return np.full_like(a, 0.5) if m < 1e-12 else 0.5 + 0.5 * a / m
    if mode == "abs":
        return np.zeros_like(a) if m < 1e-12 else np.abs(a) / m
    raise ValueError(f"unknown normalisation {mode!r}")


def to_uint8(arr: np.ndarray, mode: str | None = "minmax") -> np.ndarray:
    """``C x H x W`` (C = 1 or 3) or ``H x W`` floats -> ``H x W x 3`` / ``H x W`` uint8 (normalised first
    unless ``mode`` is None, in which case values must already be in [0, 1])."""
    a = np.asarray(arr, dtype=np.float64)
    if mode is not None:
        a = normalise(a, mode)
    if a.ndim == 3 and a.shape[0] in (1, 3):
        a = a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)
    return (np.nan_to_num(a, nan=0.0).clip(0, 1) * 255).round().astype(np.uint8)


def colormap(arr: np.ndarray, cmap: str = "viridis", vmin: float | None = None, vmax: float | None = None
             ) -> np.ndarray:
    """``H x W`` values -> ``H x W x 3`` uint8 through a matplotlib colour map."""
    from matplotlib import colormaps

    a = np.asarray(arr, dtype=np.float64)
    lo = np.nanmin(a) if vmin is None else vmin
    hi = np.nanmax(a) if vmax is None else vmax
    t = np.full_like(a, 0.5) if hi - lo < 1e-12 else (a - lo) / (hi - lo)
    rgba = colormaps[cmap](np.nan_to_num(t, nan=0.0).clip(0, 1))
    return (rgba[..., :3] * 255).round().astype(np.uint8)


def categorical(labels: np.ndarray) -> np.ndarray:
    """Integer labels -> distinct colours (``tab20``), for the most-probable-class map."""
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    lab = np.asarray(labels)
    uniq = {v: i for i, v in enumerate(np.unique(lab))}
    idx = np.vectorize(uniq.get)(lab) if lab.size else lab
    return (np.asarray(cmap(idx % 20))[..., :3] * 255).round().astype(np.uint8)


def _as_rgb(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return img


def upscale(img: np.ndarray, size: int | tuple[int, int], nearest: bool = True) -> np.ndarray:
    """Resize a uint8 image to ``size`` (an int: the longer side) - nearest neighbour keeps pixels crisp."""
    pil = Image.fromarray(np.asarray(img))
    if isinstance(size, int):
        w, h = pil.size
        s = size / max(w, h)
        size = (max(1, round(w * s)), max(1, round(h * s)))
    resample = Image.Resampling.NEAREST if nearest else Image.Resampling.BICUBIC
    return np.asarray(pil.resize(size, resample))


def grid(images: Sequence[np.ndarray], ncols: int | None = None, pad: int = 2, cell: int | None = None,
         background: int = 255) -> np.ndarray:
    """Tile uint8 images (``H x W`` or ``H x W x 3``, any sizes) into one ``H x W x 3`` uint8 grid.

    ``cell`` resizes every tile to ``cell`` pixels on its longer side (nearest neighbour) first.
    """
    tiles = [_as_rgb(upscale(im, cell) if cell else np.asarray(im)) for im in images]
    if not tiles:
        return np.full((1, 1, 3), background, np.uint8)
    n = len(tiles)
    ncols = ncols or int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    th = max(t.shape[0] for t in tiles)
    tw = max(t.shape[1] for t in tiles)
    out = np.full((nrows * (th + pad) + pad, ncols * (tw + pad) + pad, 3), background, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, ncols)
        y, x = pad + r * (th + pad), pad + c * (tw + pad)
        out[y:y + t.shape[0], x:x + t.shape[1]] = t
    return out


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend an ``H x W x 3`` uint8 heat map over an image of the same size."""
    a = _as_rgb(np.asarray(image)).astype(np.float32)
    b = _as_rgb(np.asarray(heat)).astype(np.float32)
    if b.shape[:2] != a.shape[:2]:
        b = upscale(b.astype(np.uint8), (a.shape[1], a.shape[0]), nearest=False).astype(np.float32)
    return ((1 - alpha) * a + alpha * b).round().clip(0, 255).astype(np.uint8)


def draw_box(image: np.ndarray, box: tuple[int, int, int, int], color=(255, 0, 0), width: int = 1) -> np.ndarray:
    """Copy of ``image`` with the rectangle ``(top, left, bottom, right)`` (exclusive bottom/right) outlined."""
    from PIL import ImageDraw

    pil = Image.fromarray(_as_rgb(np.asarray(image)).copy())
    top, left, bottom, right = box
    ImageDraw.Draw(pil).rectangle([left, top, right - 1, bottom - 1], outline=tuple(color), width=width)
    return np.asarray(pil)


def png_bytes(img: np.ndarray | Image.Image) -> bytes:
    """PNG-encoded bytes of a uint8 array or PIL image (for downloads and ``--out``)."""
    pil = img if isinstance(img, Image.Image) else Image.fromarray(np.asarray(img))
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def npy_bytes(arr: np.ndarray) -> bytes:
    """``.npy`` bytes of an array (no pickle: object arrays are refused)."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(arr), allow_pickle=False)
    return buf.getvalue()


def labelled(images: Sequence[np.ndarray], labels: Sequence[str], cell: int = 160, ncols: int | None = None
             ) -> np.ndarray:
    """Tiles resized to ``cell`` pixels (longer side, nearest neighbour), each with its caption above."""
    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default()
    tiles = []
    for img, text in zip(images, labels, strict=True):
        t = _as_rgb(upscale(np.asarray(img), cell))
        canvas = Image.new("RGB", (max(cell, t.shape[1]), t.shape[0] + 16), (255, 255, 255))
        canvas.paste(Image.fromarray(t), (0, 16))
        ImageDraw.Draw(canvas).text((2, 2), str(text)[:40], fill=(0, 0, 0), font=font)
        tiles.append(np.asarray(canvas))
    return grid(tiles, ncols=ncols or len(tiles), pad=4)
