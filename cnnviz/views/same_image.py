"""Compare's same-image view: one image through several models, side by side: each model's top-5, its feature maps
at the same relative depth (through its hidden blocks, :func:`depth_layers`) and, on request, an occlusion map of
its top class (Zeiler & Fergus). Uses :mod:`cnnviz.viz`, which never mutates the shared models."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cnnviz.predict import class_labels, topk
from cnnviz.preprocess import network_input
from cnnviz.viz import feature_maps, map_layers, occlusion
from cnnviz.viz.render import colormap, overlay


@dataclass
class SameImageView:
    """One model's view of an image: prediction, feature maps at a relative depth, occlusion sensitivity."""

    model: str
    prediction: Any  # cnnviz.predict.PredictResult
    layer: str | None = None  # the layer whose maps are shown: a hidden block's output
    depth: str = ""  # "block 3 of 5: conv3 (relu3)"
    maps: np.ndarray | None = None  # uint8 grid of the strongest feature maps, each on its own scale
    occlusion: np.ndarray | None = None  # uint8 overlay: red = hiding this region lowers the top class most
    error: str | None = None
    truth: str | None = None  # the image's true wnid, when it is known and among this model's classes


def validation_image(split: Any, index: int) -> tuple[Any, str, str]:
    """Validation image ``index`` of a Tiny ImageNet split as a PIL image (what :func:`same_image` takes), a
    caption naming its true class, so a reader can judge the predictions beside it, and that class's wnid
    (:func:`same_image`'s ``truth``: the bars then colour the true class)."""
    from PIL import Image

    index = min(max(int(index), 0), len(split) - 1)
    truth = int(split.labels[index])
    return (Image.fromarray(np.asarray(split.images[index])), f"validation image {index}: {split.class_names[truth]}",
            str(split.wnids[truth]))


def depth_layers(model: torch.nn.Module, input_size: tuple[int, int, int]) -> list[tuple[str, str]]:
    """``(layer, label)`` of the depths the same-image view steps through: each hidden block's output whose output
    is a map (:func:`cnnviz.viz.depth.blocks`: ZFNet's conv1..conv5, ResNet's stem and four stages), so that a
    depth is the same kind of layer in every model. Stepping through every layer instead put a conv's raw output
    (negative values) in one model beside a ReLU's in another at one depth. A model that declares no blocks:
    every layer with a map, named as it is."""
    from cnnviz.viz.depth import blocks
    from cnnviz.viz.layers import output_shapes

    if not getattr(model, "feature_info", None):
        return [(n, n) for n in map_layers(model, input_size)]
    shapes = output_shapes(model, input_size)  # in the order the layers finish
    order, modules, out = list(shapes), dict(model.named_modules()), []

    def is_map(n: str) -> bool:
        return len(shapes.get(n, ())) == 3 and shapes[n][1] * shapes[n][2] > 1

    for b in blocks(model, input_size):
        if len(b.shape) != 3:
            continue  # fc blocks
        if is_map(b.output):
            out.append((b.output, b.label))
            continue
        # A global pool ends the block (ResNet's layer4, GoogLeNet's inception5b, LeNet-5's c5): show the map it
        # averages. A container block's own output is that map (a stage, an Inception module's concatenation);
        # after a single conv it is the last layer with a map between the conv and the pool (its ReLU).
        if list(modules[b.name].children()) and is_map(b.name):
            out.append((b.name, b.name))
            continue
        between = [n for n in order[order.index(b.name) + 1:order.index(b.output)]
                   if is_map(n) and not list(modules[n].children())]
        if between:
            out.append((between[-1], f"{b.name} ({between[-1].rsplit('.', 1)[-1]})"))
        elif is_map(b.name):
            out.append((b.name, b.name))
    return out


def maps_caption(view: SameImageView) -> str:
    """What the same-image grid shows: the layer, its depth, the order and the scale of its grey levels."""
    return (f"{view.layer} ({view.depth}): the strongest maps first, each on its own scale (black = its lowest, "
            "white = its highest; an all-black tile is a map that stays at zero on this image)")


def same_image(models: Sequence[tuple[str, torch.nn.Module, dict]], img: Any, *, depth: float = 0.5, k: int = 5,
               max_maps: int = 16, occlusion_size: int | None = 8, truth: str | None = None) -> list[SameImageView]:
    """The same PIL image through several models: top-``k``, the feature maps of the hidden block at relative
    ``depth`` (0 = the first block with maps, 1 = the last: :func:`depth_layers`) and, unless ``occlusion_size`` is None, an occlusion map
    (Zeiler & Fergus) of the top class. Uses :mod:`cnnviz.viz`, which never mutates the shared models.

    ``truth`` (the image's true wnid) is kept on each view whose model has that class among its outputs, so
    its bars can say right or wrong; a model trained on other classes cannot be right or wrong about it, and
    its view keeps None (plain bars) rather than a "true class not in the top 5" that would blame it."""
    out = []
    for name, model, meta in models:
        try:
            pred = topk(model, img, meta, k, checkpoint=name)
        except (RuntimeError, ValueError) as e:
            out.append(SameImageView(model=name, prediction=None, error=str(e)))
            continue
        knows = truth is not None and truth in class_labels(meta)[0]
        view = SameImageView(model=name, prediction=pred, truth=truth if knows else None)
        try:
            size = int(meta["input_size"])
            x, seen = network_input(img, meta)
            layers = depth_layers(model, (x.shape[1], size, size))
            if layers:
                i = round(min(1.0, max(0.0, depth)) * (len(layers) - 1))
                (view.layer, label), what = layers[i], "block" if getattr(model, "feature_info", None) else "layer"
                view.depth = f"{what} {i + 1} of {len(layers)}" + (f": {label}" if label != view.layer else "")
                # each map on its own scale, as Visualize's Feature maps: on one scale a few strong maps left
                # the rest black, and the point here is what each model's maps pick out of the image
                view.maps = feature_maps(model, x, view.layer).grid(max_maps=max_maps, cell=40)
            if occlusion_size:
                square = min(size, max(1, round(occlusion_size * size / 64)))  # 28 at 224: 15x15 positions
                occ = occlusion(model, x, pred.top1.index, size=square, stride=max(1, square // 2))
                drop = occ.to_pixels(occ.base_prob - occ.prob, (size, size))
                view.occlusion = overlay(np.asarray(seen), colormap(np.nan_to_num(drop), "inferno", vmin=0), alpha=0.6)
        except (RuntimeError, ValueError) as e:
            view.error = str(e).splitlines()[0] if str(e) else type(e).__name__
        out.append(view)
    return out
