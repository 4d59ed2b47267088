"""A small synthetic dataset in the exact Tiny ImageNet layout, for tests and for a CPU demo.

:func:`make_synthetic` writes ``wnids.txt``, ``words.txt``, ``train/<wnid>/images/<wnid>_<k>.JPEG`` (+ the
``<wnid>_boxes.txt`` file), ``val/images/val_<k>.JPEG`` and ``val/val_annotations.txt``, so every code path that
reads the real dataset (label parsing, cache, pipeline, training) runs unchanged on it.

The classes are learnable patterns (stripes, checkerboards, rings, colour blobs ...) with random phase, colours
and noise; a small network separates them within a minute on a laptop CPU. Every pattern is symmetric under a
horizontal flip (no "/" vs "\\" pair), so flip augmentation keeps labels right. A few images of the
colour-free classes are saved as grayscale JPEGs (mode ``L``), like about 1.7% of Tiny ImageNet.

The wnids (``s0000001`` ...) and names (``synthetic: vertical stripes``) make the data impossible to mistake
for the real thing; ``synthetic.json`` in the root records the generator's arguments.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 64
GRAYSCALE_FRACTION = 0.05  # of the images of classes whose colour carries no label information

_yy, _xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)


def _colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two random RGB colours far enough apart to keep the pattern visible."""
    while True:
        a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        if np.abs(a - b).sum() > 180:
            return a, b


def _mix(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blend two random colours by a [0, 1] mask -> H x W x 3 float."""
    a, b = _colours(rng)
    return mask[..., None] * a + (1 - mask[..., None]) * b


def _stripes(axis: str, band: int) -> Callable[[np.random.Generator], np.ndarray]:
    def draw(rng: np.random.Generator) -> np.ndarray:
        period = rng.uniform(6, 10) if band == 0 else rng.uniform(12, 18)
        phase = rng.uniform(0, 2 * np.pi)
        if axis == "v":
            t = _xx
        elif axis == "h":
            t = _yy
        else:  # diagonal: "/" or "\" at random, so the class is closed under horizontal flips
            t = (_xx + _yy) / np.sqrt(2) if rng.random() < 0.5 else (_xx - _yy) / np.sqrt(2)
        return _mix((np.sin(2 * np.pi * t / period + phase) > 0).astype(np.float32), rng)
    return draw


def _checker(band: int) -> Callable[[np.random.Generator], np.ndarray]:
    def draw(rng: np.random.Generator) -> np.ndarray:
        cell = rng.uniform(5, 9) if band == 0 else rng.uniform(11, 16)
        ox, oy = rng.uniform(0, cell, 2)
        mask = ((np.floor((_xx + ox) / cell) + np.floor((_yy + oy) / cell)) % 2).astype(np.float32)
        return _mix(mask, rng)
    return draw


def _rings(band: int) -> Callable[[np.random.Generator], np.ndarray]:
    def draw(rng: np.random.Generator) -> np.ndarray:
        cx, cy = rng.uniform(16, 48, 2)
        period = rng.uniform(6, 10) if band == 0 else rng.uniform(12, 18)
        r = np.hypot(_xx - cx, _yy - cy)
        return _mix((np.sin(2 * np.pi * r / period) > 0).astype(np.float32), rng)
    return draw


def _dots(band: int) -> Callable[[np.random.Generator], np.ndarray]:
    def draw(rng: np.random.Generator) -> np.ndarray:
        period = rng.uniform(9, 13) if band == 0 else rng.uniform(15, 20)
        ox, oy = rng.uniform(0, period, 2)
        dx = (_xx + ox) % period - period / 2
        dy = (_yy + oy) % period - period / 2
        return _mix((np.hypot(dx, dy) < period * 0.25).astype(np.float32), rng)
    return draw


def _blob(channel: int, band: int) -> Callable[[np.random.Generator], np.ndarray]:
    """A soft blob of one dominant colour on a dull background: colour is the label."""
    def draw(rng: np.random.Generator) -> np.ndarray:
        cx, cy = rng.uniform(14, 50, 2)
        radius = rng.uniform(10, 20) if band == 0 else rng.uniform(6, 10)
        mask = np.exp(-((_xx - cx) ** 2 + (_yy - cy) ** 2) / (2 * radius**2))
        colour = rng.uniform(0, 70, 3)
        colour[channel] = rng.uniform(190, 255)
        background = rng.uniform(60, 140, 3)
        return mask[..., None] * colour + (1 - mask[..., None]) * background
    return draw


# (name, draw factory, colour carries the label?)
_FAMILIES: list[tuple[str, Callable[[int], Callable], bool]] = [
    ("vertical stripes", lambda b: _stripes("v", b), False),
    ("horizontal stripes", lambda b: _stripes("h", b), False),
    ("diagonal stripes", lambda b: _stripes("d", b), False),
    ("checkerboard", _checker, False),
    ("concentric rings", _rings, False),
    ("red blob", lambda b: _blob(0, b), True),
    ("green blob", lambda b: _blob(1, b), True),
    ("blue blob", lambda b: _blob(2, b), True),
    ("polka dots", _dots, False),
]


def synthetic_classes(num_classes: int) -> list[tuple[str, str]]:
    """``(wnid, name)`` of the first ``num_classes`` synthetic classes."""
    limit = len(_FAMILIES) * 2
    if not 1 <= num_classes <= limit:
        raise ValueError(f"num_classes must be between 1 and {limit} for the synthetic dataset, got {num_classes}")
    out = []
    for k in range(num_classes):
        family, band = k % len(_FAMILIES), k // len(_FAMILIES)
        name = _FAMILIES[family][0]
        suffix = (" (small)" if _FAMILIES[family][2] else " (coarse)") if band else ""
        out.append((f"s{k + 1:07d}", f"synthetic: {name}{suffix}"))
    return out


def _render(k: int, rng: np.random.Generator) -> tuple[Image.Image, bool]:
    family, band = k % len(_FAMILIES), k // len(_FAMILIES)
    _, factory, colour_matters = _FAMILIES[family]
    img = factory(band)(rng)
    img = img + rng.normal(0, 12, img.shape)  # sensor-like noise so the task is not trivially separable
    arr = np.clip(img, 0, 255).astype(np.uint8)
    gray = (not colour_matters) and rng.random() < GRAYSCALE_FRACTION
    pil = Image.fromarray(arr, "RGB")
    return (pil.convert("L") if gray else pil), gray


def make_synthetic(root: str | Path, num_classes: int = 10, train_per_class: int = 100, val_per_class: int = 20,
                   seed: int = 0) -> Path:
    """Write a synthetic dataset in the Tiny ImageNet layout under ``root`` (created) and return ``root``.

    ``root`` becomes a dataset root (it holds ``wnids.txt``); an earlier synthetic dataset in the same folder is
    replaced whole (its images and caches removed first: a smaller set written over a larger one kept the
    larger one's extra classes and images, and its cache counted them). Deterministic for a given ``seed``.
    """
    root = Path(root)
    if (root / "wnids.txt").exists() and not (root / "synthetic.json").exists():
        raise ValueError(f"{root} already holds a dataset that is not synthetic; pick an empty folder")
    if train_per_class < 1 or val_per_class < 1:
        raise ValueError("train_per_class and val_per_class must be at least 1")
    classes = synthetic_classes(num_classes)
    rng = np.random.default_rng(seed)
    if (root / "synthetic.json").exists():  # ours: nothing in it but what an earlier call generated
        for part in ("train", "val", "cache"):
            shutil.rmtree(root / part, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    (root / "wnids.txt").write_text("".join(f"{w}\n" for w, _ in classes))
    # words.txt covers more wnids than wnids.txt in the real dataset too (all of ImageNet): add decoys.
    decoys = [("s9999998", "synthetic: unused class, decoy"), ("s9999999", "synthetic: another unused class")]
    (root / "words.txt").write_text("".join(f"{w}\t{n}\n" for w, n in decoys[:1] + classes + decoys[1:]))
    grayscale = 0
    for k, (wnid, _) in enumerate(classes):
        folder = root / "train" / wnid / "images"
        folder.mkdir(parents=True, exist_ok=True)
        boxes = []
        for i in range(train_per_class):
            img, gray = _render(k, rng)
            grayscale += gray
            img.save(folder / f"{wnid}_{i}.JPEG", quality=90)
            boxes.append(f"{wnid}_{i}.JPEG\t0\t0\t{SIZE - 1}\t{SIZE - 1}\n")
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("".join(boxes))
    # val: one flat folder, classes shuffled, labels only in val_annotations.txt (as in the real dataset)
    val_labels = np.repeat(np.arange(num_classes), val_per_class)
    rng.shuffle(val_labels)
    (root / "val" / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for i, k in enumerate(val_labels):
        img, gray = _render(int(k), rng)
        grayscale += gray
        img.save(root / "val" / "images" / f"val_{i}.JPEG", quality=90)
        lines.append(f"val_{i}.JPEG\t{classes[k][0]}\t0\t0\t{SIZE - 1}\t{SIZE - 1}\n")
    (root / "val" / "val_annotations.txt").write_text("".join(lines))
    meta = {"generator": "cnnviz.data.make_synthetic", "num_classes": num_classes,
            "train_per_class": train_per_class, "val_per_class": val_per_class, "seed": seed,
            "grayscale_images": int(grayscale)}
    (root / "synthetic.json").write_text(json.dumps(meta, indent=2) + "\n")
    return root
