"""Occlusion sensitivity (Zeiler & Fergus 2014, section 4.2, Fig. 7).

A grey square slides over the image; for every position we record (a) the total activation of a chosen
feature map, (b) the probability of the true (or chosen) class, (c) the most probable class. "Grey" is the
dataset mean, which is exactly 0 after normalisation with the checkpoint's mean/std.

All occluded copies are built on the device and evaluated in large batches under ``torch.inference_mode``
on a private, cached copy of the model with batch norms fused into the convolutions and channels-last
layout (:func:`cnnviz.viz.hooks.inference_copy`); the feature-map total (a) uses forwards that stop at the
layer. Positions
are the top-left corners ``0, stride, 2*stride, ...`` that keep the square inside the image (captum's
``Occlusion`` uses the same grid); ``map[i, j]`` is the value with the square at rows
``i*stride .. i*stride+size`` and columns ``j*stride .. j*stride+size``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from cnnviz.viz.hooks import capture, forward_quietly, inference_copy, private_view


@dataclass
class OcclusionResult:
    size: int
    stride: int
    target: int  # the class whose probability is mapped
    base_prob: float  # its probability on the unoccluded image
    prob: np.ndarray  # n_y x n_x, probability of ``target`` with the square at each position
    top_class: np.ndarray  # n_y x n_x int, most probable class at each position
    top_prob: np.ndarray  # n_y x n_x, its probability
    layer: str | None = None
    channel: int | None = None
    base_activation: float | None = None
    activation: np.ndarray | None = None  # n_y x n_x, total activation of layer/channel

    def to_pixels(self, values: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
        """Spread a map over the image: each pixel gets the mean over the squares that covered it (pixels no
        square covered get NaN). Handy for overlays."""
        h, w = image_size
        acc = np.zeros((h, w), dtype=np.float64)
        cnt = np.zeros((h, w), dtype=np.float64)
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                y, x = i * self.stride, j * self.stride
                acc[y:y + self.size, x:x + self.size] += values[i, j]
                cnt[y:y + self.size, x:x + self.size] += 1
        with np.errstate(invalid="ignore", divide="ignore"):
            return (acc / cnt).astype(np.float32)


def positions(h: int, w: int, size: int, stride: int) -> tuple[list[int], list[int]]:
    """Top-left corners (rows, columns) of the occluding square."""
    if size < 1 or stride < 1:
        raise ValueError("square size and stride must be at least 1 pixel")
    if size > min(h, w):
        raise ValueError(f"a {size}x{size} square does not fit in a {h}x{w} image")
    return list(range(0, h - size + 1, stride)), list(range(0, w - size + 1, stride))


def slider_ranges(input_size: int) -> dict[str, tuple[int, int, int]]:
    """``(min, max, default)`` of the square and the stride for an input of ``input_size`` pixels: 8 and 4
    (max 32 and 16) at 64x64, scaled with the input so that a 224x224 ImageNet network gets about the same
    grid (28 and 14: 15x15 positions) and not 3,136 forwards."""
    scale = max(1.0, input_size / 64)
    return {"square": (2, round(32 * scale), round(8 * scale)), "stride": (1, round(16 * scale), round(4 * scale))}


def _batch_for(batch_size: int, h: int, w: int) -> int:
    # at most batch_size 64x64 images' worth of pixels per batch: 256 at 64x64, 20 at 224x224 (VGG-16's first
    # maps of 256 images at 224 would take 13 GB)
    return max(1, min(batch_size, batch_size * 64 * 64 // (h * w)))


def occluded_batch(x: torch.Tensor, ys: list[int], xs: list[int], size: int, fill: float = 0.0,
                   start: int = 0, stop: int | None = None) -> torch.Tensor:
    """Copies of ``x`` (``1 x C x H x W``) with the square at positions ``start:stop`` of the row-major grid."""
    grid = [(y, xx) for y in ys for xx in xs][start:stop]
    batch = x.expand(len(grid), *x.shape[1:]).clone()
    for b, (y, xx) in enumerate(grid):
        batch[b, :, y:y + size, xx:xx + size] = fill
    return batch


def occlusion(model: nn.Module, x: torch.Tensor, target: int | None = None, *, size: int = 8, stride: int = 4,
              layer: str | None = None, channel: int | None = None, fill: float = 0.0, batch_size: int = 256,
              progress: Callable[[int, int], object] | None = None) -> OcclusionResult:
    """Occlusion maps for one preprocessed image ``x`` (``1 x C x H x W``).

    ``target`` defaults to the class predicted on the unoccluded image (pass the true label for ZF's (b)).
    With ``layer`` and ``channel`` the total activation of that feature map is mapped too (ZF's (a)).
    ``fill`` is the occluder's value in normalised units (0 = the dataset mean: ZF's grey square).
    The class maps use :func:`cnnviz.viz.hooks.inference_copy` (fused, channels-last, cached per model).
    """
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if (layer is None) != (channel is None):
        raise ValueError("give both layer and channel (or neither)")
    base_act = act = None
    if layer is not None:  # first: it checks layer/channel before the expensive class maps
        base_act, act = activation_occlusion(model, x, layer, channel, size=size, stride=stride, fill=fill,
                                             batch_size=batch_size, with_base=True)
    fast = inference_copy(model)
    p = next(iter(fast.parameters()), None)
    device = p.device if p is not None else torch.device("cpu")
    x = x.detach().to(device)
    h, w = x.shape[2:]
    ys, xs = positions(h, w, size, stride)
    n = len(ys) * len(xs)
    batch_size = _batch_for(batch_size, h, w)
    probs = []
    with torch.inference_mode():
        base = torch.softmax(fast(x.contiguous(memory_format=torch.channels_last)).float(), dim=1)[0]
        if target is None:
            target = int(base.argmax())
        if not 0 <= target < base.numel():
            raise ValueError(f"class {target} does not exist: the model has {base.numel()} classes")
        for start in range(0, n, batch_size):
            batch = occluded_batch(x, ys, xs, size, fill, start, start + batch_size)
            probs.append(torch.softmax(fast(batch.contiguous(memory_format=torch.channels_last)).float(), dim=1))
            if progress is not None:
                progress(min(start + batch_size, n), n)
    prob = torch.cat(probs)
    top_p, top_c = prob.max(1)
    shape = (len(ys), len(xs))
    return OcclusionResult(
        size=size, stride=stride, target=target, base_prob=float(base[target]),
        prob=prob[:, target].reshape(shape).cpu().numpy(),
        top_class=top_c.reshape(shape).cpu().numpy().astype(np.int64),
        top_prob=top_p.reshape(shape).cpu().numpy(),
        layer=layer, channel=channel, base_activation=base_act, activation=act)


def activation_occlusion(model: nn.Module, x: torch.Tensor, layer: str, channel: int, *, size: int = 8,
                         stride: int = 4, fill: float = 0.0, batch_size: int = 256, with_base: bool = False):
    """Only ZF's map (a): the total activation of ``layer``/``channel`` per square position (``n_y x n_x``);
    the forward passes stop at ``layer``. ``with_base=True`` returns ``(unoccluded total, map)``."""
    if x.dim() == 3:
        x = x.unsqueeze(0)
    view = private_view(model)
    p = next(iter(view.parameters()), None)
    x = x.detach().to(p.device if p is not None else "cpu")
    ys, xs = positions(x.shape[2], x.shape[3], size, stride)
    n = len(ys) * len(xs)
    batch_size = _batch_for(batch_size, x.shape[2], x.shape[3])
    out = []
    with torch.inference_mode(), capture(view, [layer], stop_after=layer) as store:
        forward_quietly(view, x)
        fmap = store[layer]
        if fmap.dim() != 4 or not 0 <= channel < fmap.shape[1]:
            raise ValueError(f"{layer!r} has no feature map {channel} (its output is {tuple(fmap.shape[1:])})")
        base = float(fmap[0, channel].sum())
        for start in range(0, n, batch_size):
            forward_quietly(view, occluded_batch(x, ys, xs, size, fill, start, start + batch_size))
            out.append(store[layer][:, channel].flatten(1).sum(1).float())
    amap = torch.cat(out).reshape(len(ys), len(xs)).cpu().numpy()
    return (base, amap) if with_base else amap
