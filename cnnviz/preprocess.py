"""Turn a PIL image into the tensor a network was trained on, and back into a picture.

Evaluation preprocessing (used by prediction, visualisation and Compare's evaluation alike): resize the shorter
side to the model's input size, centre-crop a square, scale to [0, 1], normalise with the checkpoint's
mean/std (:class:`cnnviz.checkpoint.CheckpointMeta`, whose rule fills them in when the metadata lacks them). A
Tiny ImageNet image (64x64) at input size 64 passes through unchanged apart from normalisation.

A checkpoint whose metadata has ``resize_size`` (torchvision's ImageNet weights, :mod:`cnnviz.imagenet`) is
preprocessed as torchvision's ``ImageClassification`` does it: shorter side to ``resize_size`` (256) with its
``interpolation`` (bilinear), then the central ``input_size`` (224) crop, with torchvision's rounding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from cnnviz.checkpoint import CheckpointMeta
from cnnviz.data.layout import TINY_IMAGENET_MEAN, TINY_IMAGENET_STD

__all__ = ["TINY_IMAGENET_MEAN", "TINY_IMAGENET_STD", "batch_for", "input_channels", "network_input", "normalize",
           "resize_center_crop", "resize_then_crop", "to_image", "to_tensor", "to_tensor_for"]


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


def normalize(pixels: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``N x H x W x 3`` uint8 RGB pixels as an ``N x 3 x H x W`` float tensor: ``(x / 255 - mean) / std``."""
    x = torch.from_numpy(np.array(pixels, dtype=np.uint8)).permute(0, 3, 1, 2).float() / 255.0
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - m) / s


def to_tensor(img: Image.Image, size: int, mean: Sequence[float], std: Sequence[float],
              resize: int | None = None, interpolation: str = "bilinear") -> torch.Tensor:
    """``1 x 3 x size x size`` float tensor, normalised (``resize``: :func:`resize_then_crop` first)."""
    img = resize_center_crop(img, size) if resize is None else resize_then_crop(img, resize, size, interpolation)
    return normalize(np.asarray(img)[None], mean, std)


def input_channels(meta: Mapping[str, Any]) -> int:
    """Channels a checkpoint's model takes: 3, or 1 for a paper-style (MNIST) LeNet-5."""
    return CheckpointMeta.of(meta).in_channels


def to_tensor_for(img: Image.Image, meta: Mapping[str, Any]) -> torch.Tensor:
    """Preprocess exactly as a checkpoint (its metadata) was trained (grayscale for 1-channel models)."""
    meta = CheckpointMeta.of(meta)
    mean, std, size = meta.mean, meta.std, int(meta.input_size)
    resize, interpolation = meta.extra.get("resize_size"), meta.extra.get("interpolation") or "bilinear"
    x = to_tensor(img, size, mean[:3] if len(mean) >= 3 else mean * 3, std[:3] if len(std) >= 3 else std * 3,
                  resize, interpolation)
    if meta.in_channels == 1:
        # ITU-R 601 luma, as Pillow's convert("L"), then the checkpoint's single-channel statistics.
        raw = to_tensor(img, size, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), resize, interpolation)
        luma = (raw * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        x = (luma - float(mean[0])) / float(std[0])
    return x


def batch_for(images: np.ndarray, meta: Mapping[str, Any]) -> torch.Tensor:
    """``N x H x W x 3`` uint8 images as a checkpoint's inputs: :func:`to_tensor_for` of each, in one go when
    they already have its input size and it takes RGB (the same arithmetic, vectorised)."""
    meta = CheckpointMeta.of(meta)
    images = np.asarray(images)
    if images.shape[1:3] == (meta.input_size,) * 2 and meta.in_channels == 3 and len(meta.mean) >= 3:
        return normalize(images, meta.mean[:3], meta.std[:3])
    return torch.cat([to_tensor_for(Image.fromarray(a), meta) for a in images])


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


def network_input(img: Image.Image | np.ndarray, meta: Mapping[str, Any]) -> tuple[torch.Tensor, Image.Image]:
    """``(x, seen)``: the input of a checkpoint's network (:func:`to_tensor_for`, ``1 x C x H x W``) and what the
    network saw, that input turned back into a picture (resized, cropped, grayscale for 1-channel models).

    The one "what the network saw": Predict shows it beside each checkpoint's bars, Visualize draws every figure
    over it, and Compare's same-image occlusion is laid over it."""
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    meta = CheckpointMeta.of(meta)
    x = to_tensor_for(img, meta)
    return x, to_image(x, meta.mean, meta.std)
