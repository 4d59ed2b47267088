"""What the CLI and the Visualize page share: a model to look at (a checkpoint or a fresh random one), its
preprocessing, the layers worth looking at, and the class it predicts. The figures drawn from them are in
:mod:`cnnviz.views.visualize`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from cnnviz.checkpoint import CheckpointMeta
from cnnviz.preprocess import network_input


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

    @property
    def note(self) -> str | None:
        """What every figure's caption must say about these weights (random, barely trained), or None."""
        from cnnviz.viz.trained import weights_note

        return weights_note(self.meta)

    def caption(self, text: str) -> str:
        """``text`` with :attr:`note` appended when the weights are untrained or barely trained."""
        from cnnviz.viz.trained import with_note

        return with_note(text, self.meta)


def random_subject(arch: str, num_classes: int = 200, input_size: int = 64, seed: int = 0) -> Subject:
    """A randomly initialised ``arch`` (seeded), preprocessed with Tiny ImageNet's statistics."""
    from cnnviz.checkpoint import build_meta
    from cnnviz.models import create_model
    from cnnviz.preprocess import TINY_IMAGENET_MEAN, TINY_IMAGENET_STD

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = create_model(arch, num_classes=num_classes, input_size=input_size).eval()
    meta = build_meta(model, mean=TINY_IMAGENET_MEAN, std=TINY_IMAGENET_STD, init={"random": True, "seed": seed})
    return Subject(model, meta, f"{arch} (random init, seed {seed})", None)


def checkpoint_subject(path: str | Path, device: str = "cpu") -> Subject:
    """A checkpoint loaded with :func:`cnnviz.checkpoint.load_checkpoint`."""
    from cnnviz.checkpoint import load_checkpoint
    from cnnviz.viz.top9 import checkpoint_fingerprint

    ckpt = load_checkpoint(path, device)
    return Subject(ckpt.model, ckpt.meta, Path(ckpt.path).stem, checkpoint_fingerprint(ckpt.path))


def prepare(img: Image.Image | np.ndarray, meta: dict) -> tuple[torch.Tensor, np.ndarray]:
    """``(x, seen)``: the network's input exactly as the checkpoint was trained, and what the network saw as a
    uint8 ``H x W x 3`` array (the one :func:`cnnviz.preprocess.network_input`, which Predict shows too)."""
    x, seen = network_input(img, meta)
    return x, np.asarray(seen)


def mean_std(meta: dict) -> tuple[tuple, tuple]:
    """The statistics a checkpoint's inputs were normalised with (the one rule: cnnviz.checkpoint)."""
    meta = CheckpointMeta.of(meta)
    return meta.mean, meta.std


def layer_shapes(subject: Subject) -> dict[str, tuple[int, ...]]:
    """Output shape of every layer, containers included (:func:`cnnviz.viz.layers.output_shapes`: the model's
    layer table, cached per architecture, arguments and input size)."""
    from cnnviz.viz.layers import output_shapes

    return output_shapes(subject.model, subject.input_size)


def layer_choices(subject: Subject) -> list[str]:
    """Layers with spatial outputs (the ones every visualisation here can look at), in execution order."""
    return [n for n, s in layer_shapes(subject).items() if len(s) == 3]


# The Visualize page opens on the deepest layer whose maps are at least this many units a side: deeper maps
# (ResNet-18's layer4 at 64x64 is 2x2) are checkerboards whose every unit sees the whole image.
MIN_DEFAULT_MAP = 8


def default_layer(subject: Subject) -> str:
    """A mid-to-deep layer worth looking at: the last layer (inside ``features`` when the model has one) whose
    maps are at least :data:`MIN_DEFAULT_MAP` x :data:`MIN_DEFAULT_MAP`; else the last one larger than 1x1."""
    layers, shapes = layer_choices(subject), layer_shapes(subject)
    for keep in (lambda h, w: min(h, w) >= MIN_DEFAULT_MAP, lambda h, w: h * w > 1):
        picked = [n for n in layers if keep(*shapes[n][1:])]
        inside = [n for n in picked if n.startswith("features.")]
        if picked:
            return (inside or picked)[-1]
    return layers[-1]


def predicted_class(subject: Subject, x: torch.Tensor) -> int:
    """The class the model predicts for the preprocessed image ``x`` (on a private view of the model)."""
    from cnnviz.viz.hooks import private_view

    view = private_view(subject.model)
    p = next(iter(view.parameters()), None)
    with torch.inference_mode():
        logits = view((x if x.dim() == 4 else x.unsqueeze(0)).to(p.device if p is not None else "cpu"))
    return int(logits.argmax(1)[0])


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


def class_index(meta: dict, wnid: str | None, label: int | None = None) -> int | None:
    """The model's output index for a dataset class (by wnid, as checkpoints store their class order); None when
    the model does not know that class. Without class names in the metadata, the dataset's index if in range."""
    classes = meta.get("classes")
    if classes and wnid is not None:
        return classes.index(wnid) if wnid in classes else None
    if label is not None and 0 <= label < int(meta["num_classes"]):
        return int(label)
    return None
