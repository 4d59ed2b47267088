"""Turn a PIL image into the tensor a network was trained on, and back into a picture.

Evaluation preprocessing (used by prediction and visualisation alike): resize the shorter side to the
model's input size, centre-crop a square, scale to [0, 1], normalise with the checkpoint's mean/std. A
Tiny ImageNet image (64x64) at input size 64 passes through unchanged apart from normalisation.
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


def to_tensor(img: Image.Image, size: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``1 x 3 x size x size`` float tensor, normalised."""
    arr = np.asarray(resize_center_crop(img, size), dtype=np.float32) / 255.0
    x = torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - m) / s


def to_tensor_for(img: Image.Image, meta: dict) -> torch.Tensor:
    """Preprocess exactly as a checkpoint (its metadata) was trained."""
    return to_tensor(img, int(meta["input_size"]), meta.get("mean") or TINY_IMAGENET_MEAN,
                     meta.get("std") or TINY_IMAGENET_STD)


def to_image(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> Image.Image:
    """Undo normalisation of a ``3 x H x W`` (or ``1 x 3 x H x W``) tensor: what the network saw."""
    if x.dim() == 4:
        x = x[0]
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(3, 1, 1)
    arr = ((x * s + m).clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr)
