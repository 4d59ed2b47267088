"""What the CLI and the Visualize page share: a model to look at (a checkpoint or a fresh random one), its
preprocessing, and the ready-made figures (uint8 arrays) for each visualisation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from cnnviz.viz import render


@dataclass
class Subject:
    """A model with the metadata that says how its inputs are preprocessed."""

    model: nn.Module  # eval mode; treat as shared and read-only
    meta: dict[str, Any]
    name: str
    cache_key: str | None  # fingerprint of the checkpoint file (None for a random model)

    @property
    def input_size(self) -> tuple[int, int, int]:
        from cnnviz.preprocess import input_channels

        s = int(self.meta["input_size"])
        return (input_channels(self.meta), s, s)

    def class_name(self, k: int) -> str:
        names = self.meta.get("class_names") or []
        return str(names[k]) if 0 <= k < len(names) and names[k] else f"class {k}"


def random_subject(arch: str, num_classes: int = 200, input_size: int = 64, seed: int = 0) -> Subject:
    """A randomly initialised ``arch`` (seeded), preprocessed with Tiny ImageNet's statistics."""
    from cnnviz.checkpoint import build_meta
    from cnnviz.models import create_model
    from cnnviz.preprocess import TINY_IMAGENET_MEAN, TINY_IMAGENET_STD

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = create_model(arch, num_classes=num_classes, input_size=input_size).eval()
    meta = build_meta(model, mean=TINY_IMAGENET_MEAN, std=TINY_IMAGENET_STD)
    return Subject(model, meta, f"{arch} (random init, seed {seed})", None)


def checkpoint_subject(path: str | Path, device: str = "cpu") -> Subject:
    """A checkpoint loaded with :func:`cnnviz.checkpoint.load_checkpoint`."""
    from cnnviz.checkpoint import load_checkpoint
    from cnnviz.viz.top9 import checkpoint_fingerprint

    ckpt = load_checkpoint(path, device)
    return Subject(ckpt.model, ckpt.meta, Path(ckpt.path).stem, checkpoint_fingerprint(ckpt.path))


def prepare(img: Image.Image | np.ndarray, meta: dict) -> tuple[torch.Tensor, np.ndarray]:
    """``(x, seen)``: the network's input exactly as the checkpoint was trained (``to_tensor_for``), and what
    the network saw (``to_image`` of it) as a uint8 ``H x W x 3`` array."""
    from cnnviz.preprocess import TINY_IMAGENET_MEAN, TINY_IMAGENET_STD, to_image, to_tensor_for

    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    x = to_tensor_for(img, meta)
    seen = np.asarray(to_image(x, meta.get("mean") or TINY_IMAGENET_MEAN, meta.get("std") or TINY_IMAGENET_STD))
    return x, seen


def mean_std(meta: dict) -> tuple[tuple, tuple]:
    from cnnviz.preprocess import TINY_IMAGENET_MEAN, TINY_IMAGENET_STD

    return tuple(meta.get("mean") or TINY_IMAGENET_MEAN), tuple(meta.get("std") or TINY_IMAGENET_STD)


# --- figures ------------------------------------------------------------------------------------------------

def projection_figure(seen: np.ndarray, proj: np.ndarray, box: tuple[int, int, int, int] | None = None,
                      cell: int = 192) -> np.ndarray:
    """The input (with the unit's receptive field outlined) beside its deconvnet projection (0 = grey)."""
    left = seen if box is None else render.draw_box(seen, box)
    right = render.to_uint8(proj, "symmetric")
    return render.labelled([left, right], ["what the network saw", "deconvnet projection"], cell=cell)


def occlusion_figure(seen: np.ndarray, result, subject: Subject | None = None, cell: int = 192) -> np.ndarray:
    """ZF Fig. 7: the image; (a) the feature map's total activation; (b) p(class); (c) most probable class."""
    tiles, labels = [seen], ["image"]
    if result.activation is not None:
        tiles.append(render.colormap(result.activation, "viridis"))
        labels.append(f"(a) {result.layer}[{result.channel}] activation")
    tiles.append(render.colormap(result.prob, "magma"))
    name = subject.class_name(result.target) if subject else f"class {result.target}"
    labels.append(f"(b) p({name[:16]}) {result.prob.min():.2f}-{result.prob.max():.2f}")
    tiles.append(render.categorical(result.top_class))
    labels.append("(c) most probable class")
    return render.labelled(tiles, labels, cell=cell)


def attribution_figure(seen: np.ndarray, attrs, cell: int = 160) -> np.ndarray:
    from cnnviz.viz.attribution import LABELS

    tiles = [seen] + [render.colormap(m, "inferno") for m in attrs.maps.values()]
    return render.labelled(tiles, ["image"] + [LABELS[k] for k in attrs.maps], cell=cell)


_LAYERS: dict = {}


def layer_choices(subject: Subject) -> list[str]:
    """Layers with spatial outputs (the ones every visualisation here can look at), in execution order;
    cached per architecture, arguments and input size (it does not depend on the weights)."""
    from cnnviz.viz.hooks import map_layers

    key = (subject.meta.get("arch"), repr(subject.meta.get("model_args")), subject.input_size)
    if key not in _LAYERS:
        _LAYERS[key] = map_layers(subject.model, subject.input_size)
    return _LAYERS[key]


def default_layer(subject: Subject) -> str:
    """A mid-to-deep layer worth looking at: the last spatial layer inside ``features`` (or the last one)."""
    from cnnviz.viz.hooks import output_shapes

    layers = layer_choices(subject)
    shapes = output_shapes(subject.model, subject.input_size)
    spatial = [n for n in layers if shapes[n][1] * shapes[n][2] > 1] or layers  # not a 1x1 global pool
    inside = [n for n in spatial if n.startswith("features.")]
    return (inside or spatial)[-1]


def demo_image(size: int = 64, seed: int = 0) -> np.ndarray:
    """A deterministic picture (shapes on a gradient) for when no image is uploaded and no dataset is there."""
    from PIL import ImageDraw

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    base = np.stack([0.3 + 0.4 * xx, 0.4 + 0.3 * yy, 0.6 - 0.3 * xx], axis=-1)
    img = Image.fromarray((base * 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    s = size
    d.ellipse([s * 0.15, s * 0.2, s * 0.5, s * 0.55], fill=(220, 60, 40))
    d.rectangle([s * 0.55, s * 0.5, s * 0.85, s * 0.85], fill=(30, 40, 160))
    d.line([0, s * 0.9, s, s * 0.6], fill=(250, 250, 250), width=max(1, s // 20))
    arr = np.asarray(img).astype(np.int16) + rng.integers(-8, 9, (s, s, 3))
    return arr.clip(0, 255).astype(np.uint8)


def feature_figure(subject: Subject, x: torch.Tensor, seen: np.ndarray, layer: str, channel: int | None = None,
                   unit: tuple[int, int] | None = None, max_maps: int = 64):
    """Feature maps of ``layer`` sorted by strength, plus the chosen unit's map and its input region.

    Returns ``(maps: FeatureMaps, grid, detail, channel, unit, box)``; ``detail`` shows the unit's map (the
    unit outlined) beside the input with the unit's receptive field outlined.
    """
    from cnnviz.viz.maps import feature_maps, strongest_unit, unit_region

    fm = feature_maps(subject.model, x, layer)
    channel = int(fm.order[0]) if channel is None else int(channel)
    if not 0 <= channel < fm.maps.shape[0]:
        raise ValueError(f"{layer} has {fm.maps.shape[0]} feature maps; {channel} does not exist")
    h, w = fm.maps.shape[1:]
    unit = strongest_unit(fm, channel) if unit is None else (min(max(0, unit[0]), h - 1), min(max(0, unit[1]), w - 1))
    box = unit_region(subject.model, layer, unit[0], unit[1], subject.input_size)
    scale = max(1, 192 // max(h, w))
    fmap = render.upscale(render.to_uint8(fm.maps[channel]), (w * scale, h * scale))
    fmap = render.draw_box(fmap, (unit[0] * scale, unit[1] * scale, (unit[0] + 1) * scale, (unit[1] + 1) * scale))
    scale_in = max(1, 192 // seen.shape[0])
    shown = render.upscale(seen, (seen.shape[1] * scale_in, seen.shape[0] * scale_in))
    shown = render.draw_box(shown, tuple(v * scale_in for v in box), width=2)
    detail = render.labelled([fmap, shown], [f"{layer}[{channel}] unit {unit}", f"its input region {box}"], cell=192)
    return fm, fm.grid(max_maps), detail, channel, unit, box


def deconv_figure(subject: Subject, x: torch.Tensor, seen: np.ndarray, layer: str, channel: int | None = None,
                  method: str = "auto"):
    """``(projection, figure, box)``: ZF's deconvnet projection of ``channel``'s strongest activation
    (default: the channel with the strongest activation)."""
    from cnnviz.viz.deconv import deconvnet, top_channels
    from cnnviz.viz.maps import unit_region

    if channel is None:
        channel = top_channels(subject.model, x, layer, 1)[0][0]
    p = deconvnet(subject.model, x, layer, int(channel), method=method)
    box = unit_region(subject.model, layer, *p.position, subject.input_size)
    return p, projection_figure(seen, p.image, box), box


def class_index(meta: dict, wnid: str | None, label: int | None = None) -> int | None:
    """The model's output index for a dataset class (by wnid, as checkpoints store their class order); None when
    the model does not know that class. Without class names in the metadata, the dataset's index if in range."""
    classes = meta.get("classes")
    if classes and wnid is not None:
        return classes.index(wnid) if wnid in classes else None
    if label is not None and 0 <= label < int(meta["num_classes"]):
        return int(label)
    return None
