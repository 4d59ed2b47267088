"""Invariance to translation, scale and rotation (Zeiler & Fergus, Fig. 5).

:func:`invariance` transforms an image step by step and measures, for each chosen layer, how far the layer's
feature vector moves: the Euclidean distance ``||f(T x) - f(x)||`` between the flattened outputs for the
transformed and the untransformed image (ZF's measure), also kept relative to ``||f(x)||`` so that layers of
different sizes compare on one scale. It also records the probability of the true class (or, for an image
with no label, of the class predicted for the untransformed image). The default layers are the first conv
block and the last hidden layer (:func:`cnnviz.viz.depth.invariance_layers`), ZF's "layer 1" and "layer 7".

The transforms act on the preprocessed input; pixels that come in from outside the picture are the dataset's
mean colour (0 after normalisation), the same grey as the occlusion square:

* ``translate``: whole-pixel shifts, exact (no resampling), by ``v`` pixels to the right and down
  (``axis="both"``, the default: a diagonal move), or along ``"x"`` (right) or ``"y"`` (down) only;
  negative values move the other way;
* ``scale``: zoom about the centre by a factor (``> 1`` enlarges and crops, ``< 1`` shrinks and pads),
  bilinear;
* ``rotate``: in-plane rotation about the centre by ``v`` degrees counter-clockwise, bilinear (the corners
  fill with grey). Rotation out of the image plane is out of scope.

What to expect (the paper's finding, for a trained network): small transforms move layer 1 a lot and the top
layers less; the output is fairly stable to translation and scale, not to rotation (except for objects with
rotational symmetry). At 64x64 a 4-pixel shift is 6% of the image. On the ResNet-18 starter (5 epochs), on
the first eight Tiny ImageNet val images, a 4-pixel diagonal shift either way moves the first conv block's
output (``maxpool``) by 0.55-0.75 of its norm (mean 0.66) and the last hidden layer's (``avgpool``) by
0.28-0.60 (mean 0.39): more at layer 1 for every image and direction, though for one image only barely
(0.605 against 0.597); see ``tests/test_zf_real.py``. A trained-longer network should separate them more.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnviz.viz.hooks import capture, private_view
from cnnviz.viz.probes import threads_for_load

TRANSFORMS = ("translate", "scale", "rotate")
AXIS_TITLES = {"translate": "shift (pixels)", "scale": "scale factor", "rotate": "rotation (degrees)"}
NEUTRAL = {"translate": 0.0, "scale": 1.0, "rotate": 0.0}


def default_values(transform: str, input_size: int = 64) -> np.ndarray:
    """ZF's ranges scaled to the input: shifts up to +-3/16 of the side (+-12 px at 64), scale 0.6-1.6,
    rotation 0-360 degrees in 15-degree steps."""
    if transform == "translate":
        reach = max(2, (input_size * 3 // 16) // 2 * 2)
        return np.arange(-reach, reach + 1, 2, dtype=np.float64)
    if transform == "scale":
        return np.round(np.arange(0.6, 1.61, 0.1), 2)
    if transform == "rotate":
        return np.arange(0, 361, 15, dtype=np.float64)
    raise ValueError(f"transform must be one of {', '.join(TRANSFORMS)}, not {transform!r}")


def _shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    out = torch.zeros_like(x)
    out[..., max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)] = \
        x[..., max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    return out


def transformed(x: torch.Tensor, transform: str, values: Sequence[float], axis: str = "both") -> torch.Tensor:
    """``V x C x H x W``: ``x`` (``C x H x W`` or ``1 x C x H x W``, preprocessed) under each value."""
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    if x.dim() == 4:
        x = x[0]
    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {', '.join(TRANSFORMS)}, not {transform!r}")
    if axis not in ("both", "x", "y"):
        raise ValueError(f"axis must be 'both', 'x' or 'y', not {axis!r}")
    h, w = x.shape[-2:]
    frames = []
    for v in values:
        v = float(v)
        if v == NEUTRAL[transform]:
            frames.append(x)
        elif transform == "translate":
            if v != round(v) or abs(v) >= min(h, w):
                raise ValueError(f"shifts must be whole pixels smaller than the image ({min(h, w)}), not {v:g}")
            d = int(round(v))
            frames.append(_shift(x, d if axis != "x" else 0, d if axis != "y" else 0))
        elif transform == "scale":
            if not 0.05 <= v <= 20:
                raise ValueError(f"scale factors must lie between 0.05 and 20, not {v:g}")
            frames.append(TF.affine(x, angle=0.0, translate=[0, 0], scale=v, shear=[0.0, 0.0],
                                    interpolation=InterpolationMode.BILINEAR, fill=0.0))
        else:
            frames.append(TF.rotate(x, v, interpolation=InterpolationMode.BILINEAR, fill=0.0))
    return torch.stack(frames)


@dataclass
class Invariance:
    """Distances and probabilities under one transform, for ``N`` images and ``V`` transform values."""

    transform: str
    values: np.ndarray  # V
    layers: list[str]
    distance: dict[str, np.ndarray]  # layer -> N x V, ||f(T x) - f(x)||
    norm: dict[str, np.ndarray]  # layer -> N, ||f(x)||
    prob: np.ndarray  # N x V, probability of the target class
    targets: list[int]  # per image: the class whose probability is followed
    axis: str = "both"
    labels: list[str] = field(default_factory=list)  # chart labels of the layers

    def relative(self, layer: str) -> np.ndarray:
        """N x V: the distance as a fraction of the untransformed feature vector's norm."""
        return self.distance[layer] / np.maximum(self.norm[layer], 1e-12)[:, None]

    @property
    def axis_title(self) -> str:
        t = AXIS_TITLES[self.transform]
        return t if self.transform != "translate" or self.axis == "both" else f"{t}, {self.axis} only"

    def npz_bytes(self) -> bytes:
        """``.npz`` (no pickle): ``transform``, ``axis``, ``values``, ``layers``, ``prob`` (N x V), ``targets``,
        and per layer ``distance_<layer>`` (N x V), ``relative_<layer>`` (N x V) and ``norm_<layer>`` (N)."""
        arrays = {"transform": np.array(self.transform), "axis": np.array(self.axis), "values": self.values,
                  "layers": np.array(self.layers), "prob": self.prob, "targets": np.array(self.targets)}
        for name in self.layers:
            arrays[f"distance_{name}"] = self.distance[name]
            arrays[f"relative_{name}"] = self.relative(name)
            arrays[f"norm_{name}"] = self.norm[name]
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()


def invariance(model: nn.Module, x: torch.Tensor, transform: str, values: Sequence[float] | None = None,
               layers: Sequence[str] | None = None, targets: Sequence[int | None] | None = None,
               axis: str = "both") -> Invariance:
    """ZF Fig. 5 for the images ``x`` (``N x C x H x W``, preprocessed as the checkpoint was trained).

    ``values``: the transform's steps (default :func:`default_values`); ``layers``: any layer names (default:
    the first conv block and the last hidden layer); ``targets``: per image, the class whose probability is
    followed (``None``: the class predicted for the untransformed image). Runs in float32 on a private view:
    the model is never modified; on one thread while the machine is busy (see :mod:`cnnviz.viz.probes`).
    """
    from cnnviz.viz import depth

    if x.dim() == 3:
        x = x.unsqueeze(0)
    size = tuple(x.shape[1:])
    values = np.asarray(default_values(transform, size[-1]) if values is None else values, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError("give at least one transform value")
    layers = list(layers) if layers else depth.invariance_layers(model, size)
    targets = list(targets) if targets is not None else [None] * len(x)
    if len(targets) != len(x):
        raise ValueError(f"{len(x)} images but {len(targets)} targets")
    view = private_view(model)
    p = next(iter(view.parameters()), None)
    device = p.device if p is not None else torch.device("cpu")
    num_classes = None
    distance = {n: np.zeros((len(x), len(values))) for n in layers}
    norm = {n: np.zeros(len(x)) for n in layers}
    prob = np.zeros((len(x), len(values)))
    chosen: list[int] = []
    with torch.inference_mode(), threads_for_load(), capture(view, layers) as store:
        for i in range(len(x)):
            batch = torch.cat([x[i:i + 1], transformed(x[i], transform, values, axis)]).to(device)
            logits = view(batch)
            if not isinstance(logits, torch.Tensor):
                logits = logits[0]
            num_classes = logits.shape[1]
            target = targets[i]
            if target is None:
                target = int(logits[0].argmax())
            if not 0 <= int(target) < num_classes:
                raise ValueError(f"class {target} does not exist: the model has {num_classes} classes")
            chosen.append(int(target))
            prob[i] = F.softmax(logits[1:].float(), dim=1)[:, int(target)].cpu().numpy()
            for name in layers:
                if name not in store:
                    raise RuntimeError(f"layer {name!r} was not reached in the forward pass")
                f = store[name].float().flatten(1)
                distance[name][i] = (f[1:] - f[:1]).norm(dim=1).cpu().numpy()
                norm[name][i] = float(f[0].norm())
    return Invariance(transform, values, layers, distance, norm, prob, chosen, axis,
                      depth.labels(model, size, layers))
