"""Turn a PIL image into the tensor a network was trained on, and back into a picture.

Evaluation preprocessing (used by prediction, visualisation and Compare's evaluation alike): resize the shorter
side to the model's input size, centre-crop a square, scale to [0, 1], normalise with the checkpoint's
mean/std (:class:`cnnviz.checkpoint.CheckpointMeta`, whose rule fills them in when the metadata lacks them). A
Tiny ImageNet image (64x64) at input size 64 passes through unchanged apart from normalisation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from cnnviz.checkpoint import CheckpointMeta
from cnnviz.data.layout import TINY_IMAGENET_MEAN, TINY_IMAGENET_STD

__all__ = ["TINY_IMAGENET_MEAN", "TINY_IMAGENET_STD", "batch_for", "input_channels", "normalize",
           "resize_center_crop", "to_image", "to_tensor", "to_tensor_for"]


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


def normalize(pixels: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``N x H x W x 3`` uint8 RGB pixels as an ``N x 3 x H x W`` float tensor: ``(x / 255 - mean) / std``."""
    x = torch.from_numpy(np.array(pixels, dtype=np.uint8)).permute(0, 3, 1, 2).float() / 255.0
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - m) / s


def to_tensor(img: Image.Image, size: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``1 x 3 x size x size`` float tensor, normalised."""
    return normalize(np.asarray(resize_center_crop(img, size))[None], mean, std)


def input_channels(meta: Mapping[str, Any]) -> int:
    """Channels a checkpoint's model takes: 3, or 1 for a paper-style (MNIST) LeNet-5."""
    return CheckpointMeta.of(meta).in_channels


def to_tensor_for(img: Image.Image, meta: Mapping[str, Any]) -> torch.Tensor:
    """Preprocess exactly as a checkpoint (its metadata) was trained (grayscale for 1-channel models)."""
    meta = CheckpointMeta.of(meta)
    mean, std, size = meta.mean, meta.std, int(meta.input_size)
    x = to_tensor(img, size, mean[:3] if len(mean) >= 3 else mean * 3, std[:3] if len(std) >= 3 else std * 3)
    if meta.in_channels == 1:
        # ITU-R 601 luma, as Pillow's convert("L"), then the checkpoint's single-channel statistics.
        raw = to_tensor(img, size, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
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
