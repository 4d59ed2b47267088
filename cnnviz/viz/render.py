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
    lab = np.asarray(labels)
    colors = categorical_colors(lab)
    out = np.zeros((*lab.shape, 3), np.uint8)
    for v, rgb in colors.items():
        out[lab == v] = rgb
    return out


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


# --- heat maps that say what their colours mean -------------------------------------------------------------

def _font(size: int = 11):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one fixed bitmap font
        return ImageFont.load_default()


def _wrap(text: str, width: int, font) -> list[str]:
    """Greedy word wrap of ``text`` to lines at most ``width`` pixels wide."""
    lines: list[str] = []
    for para in str(text).split("\n"):
        line = ""
        for word in para.split(" "):
            trial = f"{line} {word}".strip()
            if line and font.getlength(trial) > width:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return lines


def text_block(text: str, width: int, size: int = 11, color=(0, 0, 0), background=(255, 255, 255),
               lines: int = 0) -> np.ndarray:
    """``text`` wrapped to ``width`` pixels (at least ``lines`` lines tall), as an ``H x width x 3`` uint8 image."""
    from PIL import ImageDraw

    font = _font(size)
    wrapped = _wrap(text, width - 4, font)
    lines = wrapped + [""] * max(0, lines - len(wrapped))
    step = size + 3
    canvas = Image.new("RGB", (width, step * len(lines) + 2), background)
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((2, 1 + i * step), line, fill=color, font=font)
    return np.asarray(canvas)


def stack(images: Sequence[np.ndarray], pad: int = 2, background: int = 255) -> np.ndarray:
    """Images one above the other, left-aligned, on a white background."""
    tiles = [_as_rgb(np.asarray(im)) for im in images]
    width = max(t.shape[1] for t in tiles)
    out = np.full((sum(t.shape[0] for t in tiles) + pad * (len(tiles) - 1), width, 3), background, np.uint8)
    y = 0
    for t in tiles:
        out[y:y + t.shape[0], :t.shape[1]] = t
        y += t.shape[0] + pad
    return out


def colorbar(cmap: str, lo: float | str, hi: float | str, meaning: str, width: int = 160, height: int = 10
             ) -> np.ndarray:
    """A horizontal colour bar: the colour map from ``lo`` (left) to ``hi`` (right), the two end values under
    it and what the colour means (``meaning``) below, as an ``H x width x 3`` uint8 image."""
    from PIL import ImageDraw

    ramp = colormap(np.tile(np.linspace(0.0, 1.0, width - 4), (height, 1)), cmap, 0.0, 1.0)
    bar = np.full((height + 2, width, 3), 255, np.uint8)
    bar[1:1 + height, 2:width - 2] = ramp
    font = _font(10)
    ends = Image.new("RGB", (width, 13), (255, 255, 255))
    draw = ImageDraw.Draw(ends)
    lo_s, hi_s = (v if isinstance(v, str) else f"{v:.3g}" for v in (lo, hi))
    draw.text((2, 0), lo_s, fill=(0, 0, 0), font=font)
    draw.text((width - 2 - font.getlength(hi_s), 0), hi_s, fill=(0, 0, 0), font=font)
    return stack([bar, np.asarray(ends), text_block(meaning, width, size=10, color=(60, 60, 60))], pad=0)


def heat_panel(values: np.ndarray, cmap: str, title: str, meaning: str, cell: int = 160,
               vmin: float | None = None, vmax: float | None = None, blank: str | None = None) -> np.ndarray:
    """One titled heat map of ``values`` (``h x w``) resized to ``cell`` pixels, with its colour bar and
    ``meaning`` under it. ``blank`` (a reason, e.g. "n/a: this layer's map is 1x1") replaces the map by a grey
    square that says so: a colour stretch of a constant map would paint float noise."""
    head = text_block(title, cell, size=11, lines=2)  # two lines for every title: the maps stay aligned
    if blank is not None:
        square = np.full((cell, cell, 3), 225, np.uint8)
        note = text_block(blank, cell - 16, size=12, background=(225, 225, 225))
        y = max(0, (cell - note.shape[0]) // 2)
        square[y:y + note.shape[0], 8:8 + note.shape[1]] = note[:cell - y]
        return stack([head, square, text_block(meaning, cell, size=10, color=(60, 60, 60))], pad=1)
    a = np.asarray(values, dtype=np.float64)
    lo = float(np.nanmin(a)) if vmin is None else vmin
    hi = float(np.nanmax(a)) if vmax is None else vmax
    tile = upscale(colormap(a, cmap, lo, hi), cell)
    return stack([head, tile, colorbar(cmap, lo, hi, meaning, width=tile.shape[1])], pad=1)


def categorical_colors(labels: np.ndarray) -> dict[int, tuple[int, int, int]]:
    """The colour :func:`categorical` gives each label value (``tab20``, by sorted value; repeats after 20)."""
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    return {int(v): tuple(int(round(c * 255)) for c in cmap(i % 20)[:3]) for i, v in enumerate(np.unique(labels))}


def legend(entries: Sequence[tuple[tuple[int, int, int], str]], width: int = 160, size: int = 10) -> np.ndarray:
    """A colour legend: one swatch and its text per line, as an ``H x width x 3`` uint8 image."""
    from PIL import ImageDraw

    font = _font(size)
    step = size + 4
    canvas = Image.new("RGB", (width, step * len(entries) + 2), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, (rgb, text) in enumerate(entries):
        y = 1 + i * step
        draw.rectangle([2, y + 1, 2 + size, y + 1 + size], fill=tuple(rgb), outline=(0, 0, 0))
        shown = str(text)
        while len(shown) > 1 and font.getlength(shown) > width - size - 10:
            shown = shown[:-2] + "…"
        draw.text((size + 7, y), shown, fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


def side_by_side(panels: Sequence[np.ndarray], pad: int = 6) -> np.ndarray:
    """Panels of any heights in one row, top-aligned, on a white background."""
    return grid(list(panels), ncols=len(panels), pad=pad)
