"""Filters: first-layer filters as an RGB grid (ZF Fig. 5/6), deeper filters per input channel, statistics.

ZF show each conv1 filter contrast-normalised on its own (``normalise="per_filter"``); a shared scale
(``"global"``) shows instead which filters are weak or dead. Both are offered, and the figure says which.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch.nn as nn

import cnnviz.viz.render as render  # the module itself, not the package (whose __init__ imports this file)
from cnnviz.viz.hooks import get_module

# A filter is "dead" when its norm is below this fraction of the layer's median filter norm, and
# "near-constant" when its spatial variation (std over kernel positions, per input channel, averaged) is
# below this fraction of its RMS value: such a filter only measures mean brightness.
DEAD_FRACTION = 0.01
CONSTANT_FRACTION = 0.05


def conv_layers(model: nn.Module) -> list[str]:
    """Names of the ``nn.Conv2d`` layers, in definition order."""
    return [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def first_conv(model: nn.Module) -> str:
    names = conv_layers(model)
    if not names:
        raise ValueError("this model has no convolutional layer")
    return names[0]


def conv_weight(model: nn.Module, layer: str | None = None) -> np.ndarray:
    """``out x in x kh x kw`` float32 weights of ``layer`` (default: the first conv)."""
    layer = layer or first_conv(model)
    m = get_module(model, layer)
    if not isinstance(m, nn.Conv2d):
        raise ValueError(f"{layer!r} is a {type(m).__name__}, not a convolution")
    return m.weight.detach().float().cpu().numpy().copy()


@dataclass
class FilterFigure:
    image: np.ndarray  # H x W x 3 uint8
    layer: str
    normalise: str  # "per_filter" | "global"
    filters: list[int]  # which output filters are shown, in tile order
    caption: str


def _normalise_stack(w: np.ndarray, normalise: str) -> np.ndarray:
    if normalise == "per_filter":
        return np.stack([render.normalise(f, "minmax") for f in w])
    if normalise == "global":
        return render.normalise(w, "symmetric")
    raise ValueError(f"normalise must be 'per_filter' or 'global', not {normalise!r}")


def filter_grid(model: nn.Module, layer: str | None = None, normalise: str = "per_filter",
                max_filters: int = 256, cell: int = 33, ncols: int | None = None) -> FilterFigure:
    """All filters of an RGB-input conv as colour tiles (ZF Fig. 5/6), each ``cell`` pixels wide.

    For a layer whose input is not 3 channels, each tile is the filter's mean over input channels (grey);
    :func:`filter_channels` shows them channel by channel.
    """
    layer = layer or first_conv(model)
    w = conv_weight(model, layer)[:max_filters]
    if w.shape[1] != 3:
        w = w.mean(axis=1, keepdims=True)
    normed = _normalise_stack(w, normalise)
    tiles = [render.to_uint8(f, mode=None) for f in normed]
    img = render.grid(tiles, ncols=ncols, cell=cell, pad=2)
    how = "each filter scaled to its own min..max" if normalise == "per_filter" else \
        "one scale for all filters (0 = mid-grey)"
    kind = "RGB" if conv_weight(model, layer).shape[1] == 3 else "mean over input channels"
    caption = f"{layer}: {len(w)} filters {w.shape[2]}x{w.shape[3]} ({kind}); {how}"
    return FilterFigure(img, layer, normalise, list(range(len(w))), caption)


def filter_channels(model: nn.Module, layer: str, filters: list[int] | None = None, max_filters: int = 16,
                    max_channels: int = 32, normalise: str = "per_filter", cell: int = 24) -> FilterFigure:
    """Deeper filters per input channel: one row per output filter, one grey tile per input channel."""
    w = conv_weight(model, layer)
    filters = list(range(min(max_filters, w.shape[0]))) if filters is None else list(filters)
    for f in filters:
        if not 0 <= f < w.shape[0]:
            raise ValueError(f"{layer} has {w.shape[0]} filters; {f} does not exist")
    sub = w[filters, :max_channels]
    normed = _normalise_stack(sub, normalise)
    tiles = [render.to_uint8(normed[i, c], mode=None) for i in range(len(filters)) for c in range(sub.shape[1])]
    img = render.grid(tiles, ncols=sub.shape[1], cell=cell, pad=1)
    caption = (f"{layer}: filters {filters[0]}..{filters[-1]} (rows) x input channels 0..{sub.shape[1] - 1} "
               f"(columns) of {w.shape[1]}; " + ("each filter scaled on its own" if normalise == "per_filter"
                                                else "one scale"))
    return FilterFigure(img, layer, normalise, filters, caption)


def filter_stats(model: nn.Module, layer: str | None = None) -> pd.DataFrame:
    """One row per filter: L2 norm, mean, std, min, max, spatial std, and the ``dead`` / ``near_constant``
    flags (thresholds :data:`DEAD_FRACTION`, :data:`CONSTANT_FRACTION`)."""
    layer = layer or first_conv(model)
    w = conv_weight(model, layer)
    flat = w.reshape(w.shape[0], -1)
    norm = np.linalg.norm(flat, axis=1)
    rms = np.sqrt((flat ** 2).mean(axis=1))
    spatial_std = w.reshape(w.shape[0], w.shape[1], -1).std(axis=2).mean(axis=1)
    median = float(np.median(norm)) if norm.size else 0.0
    dead = norm <= DEAD_FRACTION * max(median, 1e-12)
    near_constant = ~dead & (spatial_std <= CONSTANT_FRACTION * np.maximum(rms, 1e-12))
    if w.shape[2] * w.shape[3] == 1:
        near_constant[:] = False  # a 1x1 filter has no spatial extent to vary over
    return pd.DataFrame({
        "filter": np.arange(w.shape[0]), "norm": norm, "mean": flat.mean(axis=1), "std": flat.std(axis=1),
        "min": flat.min(axis=1), "max": flat.max(axis=1), "spatial_std": spatial_std,
        "dead": dead, "near_constant": near_constant})


def compare_first_layers(models: dict[str, nn.Module], normalise: str = "per_filter", cell: int = 33
                         ) -> dict[str, FilterFigure]:
    """First-layer filter grids of several models (AlexNet vs ZFNet conv1, ZF Fig. 6), keyed like ``models``."""
    return {name: filter_grid(m, None, normalise, cell=cell) for name, m in models.items()}
