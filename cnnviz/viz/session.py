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
        s = int(self.meta["input_size"])
        return (3, s, s)

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
