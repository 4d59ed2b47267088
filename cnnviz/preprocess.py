"""Turn a PIL image into the tensor a network was trained on, and back into a picture.

Evaluation preprocessing (used by prediction and visualisation alike): resize the shorter side to the
model's input size, centre-crop a square, scale to [0, 1], normalise with the checkpoint's mean/std. A
Tiny ImageNet image (64x64) at input size 64 passes through unchanged apart from normalisation.

A checkpoint whose metadata has ``resize_size`` (torchvision's ImageNet weights, :mod:`cnnviz.imagenet`) is
preprocessed as torchvision's ``ImageClassification`` does it: shorter side to ``resize_size`` (256) with its
``interpolation`` (bilinear), then the central ``input_size`` (224) crop, with torchvision's rounding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

# Tiny ImageNet train-set statistics (RGB, [0, 1]); cnnviz.data recomputes them when it builds the cache.
TINY_IMAGENET_MEAN = (0.4802, 0.4481, 0.3975)
TINY_IMAGENET_STD = (0.2770, 0.2691, 0.2821)


def resize_center_crop(img: Image.Image, size: int) -> Image.Image:
    """Shorter side to ``size`` (bicubic, antialiased), then the central ``size`` x ``size`` square."""
    img = img.convert("RGB")
    w, h = img.size
    if (w, h) != (size, size):
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        img = img.resize((nw, nh), Image.Resampling.BICUBIC)
        left, top = (nw - size) // 2, (nh - size) // 2
        img = img.crop((left, top, left + size, top + size))
    return img


def resize_then_crop(img: Image.Image, resize: int, size: int, interpolation: str = "bilinear") -> Image.Image:
    """torchvision's ``Resize(resize)`` + ``CenterCrop(size)`` on a PIL image, with its arithmetic: the longer
    side becomes ``int(resize * long / short)``, the crop starts at ``round((side - size) / 2)``."""
    img = img.convert("RGB")
    w, h = img.size
    short, long = min(w, h), max(w, h)
    if short != resize:
        new_long = int(resize * long / short)
        img = img.resize((resize, new_long) if w <= h else (new_long, resize),
                         Image.Resampling[interpolation.upper()])
    w, h = img.size
    left, top = int(round((w - size) / 2.0)), int(round((h - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def to_tensor(img: Image.Image, size: int, mean: Sequence[float], std: Sequence[float],
              resize: int | None = None, interpolation: str = "bilinear") -> torch.Tensor:
    """``1 x 3 x size x size`` float tensor, normalised (``resize``: :func:`resize_then_crop` first)."""
    img = resize_center_crop(img, size) if resize is None else resize_then_crop(img, resize, size, interpolation)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    x = torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - m) / s


def input_channels(meta: dict) -> int:
    """Channels a checkpoint's model takes: 3, or 1 for a paper-style (MNIST) LeNet-5."""
    return int(meta.get("in_channels") or (meta.get("model_args") or {}).get("in_channels") or 3)


def normalisation(meta: dict) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(mean, std)`` a checkpoint was trained with (its metadata); Tiny ImageNet's when it records none."""
    return tuple(meta.get("mean") or TINY_IMAGENET_MEAN), tuple(meta.get("std") or TINY_IMAGENET_STD)


def to_tensor_for(img: Image.Image, meta: dict) -> torch.Tensor:
    """Preprocess exactly as a checkpoint (its metadata) was trained (grayscale for 1-channel models)."""
    mean, std = normalisation(meta)
    x = to_tensor(img, int(meta["input_size"]), mean[:3] if len(mean) >= 3 else mean * 3,
                  std[:3] if len(std) >= 3 else std * 3, meta.get("resize_size"), meta.get("interpolation") or "bilinear")
    if input_channels(meta) == 1:
        # ITU-R 601 luma, as Pillow's convert("L"), then the checkpoint's single-channel statistics.
        raw = to_tensor(img, int(meta["input_size"]), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
        luma = (raw * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        x = (luma - float(mean[0])) / float(std[0])
    return x


def to_image(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> Image.Image:
    """Undo normalisation of a ``3 x H x W`` (or ``1 x 3 x H x W``) tensor: what the network saw."""
    if x.dim() == 4:
        x = x[0]
    c = x.shape[0]  # 3, or 1 for a grayscale (paper LeNet-5) input: shown as gray RGB
    m = torch.tensor(list(mean)[:c], dtype=x.dtype, device=x.device).view(c, 1, 1)
    s = torch.tensor(list(std)[:c], dtype=x.dtype, device=x.device).view(c, 1, 1)
    if c == 1:
        x, m, s = x.expand(3, -1, -1), m.expand(3, 1, 1), s.expand(3, 1, 1)
    arr = ((x * s + m).clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr)



def network_input(img: Image.Image | np.ndarray, meta: dict) -> tuple[torch.Tensor, Image.Image]:
    """``(x, seen)``: the input of a checkpoint's network (:func:`to_tensor_for`, ``1 x C x H x W``) and what the
    network saw, that input turned back into a picture (resized, cropped, grayscale for 1-channel models).

    The one "what the network saw": Predict shows it beside each checkpoint's bars, Visualize draws every figure
    over it, and Compare's same-image occlusion is laid over it."""
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    x = to_tensor_for(img, meta)
    return x, to_image(x, *normalisation(meta))
