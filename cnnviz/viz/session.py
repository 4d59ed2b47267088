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


def box_text(box: tuple[int, int, int, int]) -> str:
    """An input box ``(top, left, bottom, right)`` (as :func:`cnnviz.viz.maps.unit_region` gives it) written
    the way the page labels boxes: ``(x0, y0, x1, y1)``, in the model's input pixels, x1 and y1 exclusive."""
    top, left, bottom, right = (int(v) for v in box)
    return f"(x0, y0, x1, y1) = ({left}, {top}, {right}, {bottom})"


def covers_whole_image(box: tuple[int, int, int, int], input_size: tuple[int, int, int]) -> bool:
    """True when the box is the whole input (every unit of the layer then sees all of the image)."""
    top, left, bottom, right = box
    return top <= 0 and left <= 0 and bottom >= input_size[1] and right >= input_size[2]


def _titled(image: np.ndarray, title: str, cell: int) -> np.ndarray:
    """An image resized to ``cell`` under a two-line title (aligned with :func:`render.heat_panel`'s maps)."""
    return render.stack([render.text_block(title, cell, lines=2), render.upscale(image, cell)], pad=1)


def occlusion_figure(seen: np.ndarray, result, subject: Subject | None = None, cell: int = 192) -> np.ndarray:
    """ZF Fig. 7: the image; (a) the feature map's total activation; (b) p(class); (c) most probable class.

    Each map has a colour bar saying what its colour means; (c) has a legend of the classes it shows (most
    positions first), with the share of square positions where each class wins."""
    name = subject.class_name if subject is not None else (lambda k: f"class {k}")
    target = name(result.target)
    panels = [_titled(seen, "image (the model's input)", cell)]
    if result.activation is not None:
        panels.append(render.heat_panel(
            result.activation, "viridis", f"(a) {result.layer}[{result.channel}] activation",
            f"total activation of {result.layer}[{result.channel}] with the grey square at each position", cell))
    panels.append(render.heat_panel(result.prob, "magma", f"(b) p({target})",
                                    f"probability of {target} with the grey square at each position", cell))
    colors = render.categorical_colors(result.top_class)
    values, counts = np.unique(result.top_class, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    shown = [(colors[int(values[i])], f"{name(int(values[i]))} ({counts[i] / counts.sum():.0%})") for i in order[:10]]
    if len(order) > 10:
        shown.append(((255, 255, 255), f"+{len(order) - 10} more classes"))
    panels.append(render.stack([_titled(render.categorical(result.top_class), "(c) most probable class", cell),
                                render.text_block("colour = the class the model finds most probable with the grey "
                                                  "square at each position (share of positions):", cell, size=10,
                                                  color=(60, 60, 60)),
                                render.legend(shown, cell)]))
    return render.side_by_side(panels)


# What each attribution map's colour measures (its colour bar's caption); {c} is the class explained.
MEANINGS = {"saliency": "|gradient| of the {c} score (max over colour channels)",
            "deconvnet": "|deconvnet signal| for {c} (max over colour channels)",
            "guided_backprop": "|guided backprop signal| for {c} (max over colour channels)",
            "integrated_gradients": "|integrated gradients| for {c} (max over colour channels)",
            "grad_cam": "Grad-CAM evidence for {c} at {layer} ({size} map, upsampled); 0 = none",
            "guided_grad_cam": "|guided Grad-CAM| for {c} at {layer} (max over colour channels)"}


def _attribution_panels(attrs, class_name: str, cell: int, prefix: str = "", scores: dict | None = None
                        ) -> list[np.ndarray]:
    from cnnviz.viz.attribution import LABELS

    size = "x".join(str(v) for v in attrs.cam_size) if attrs.cam_size else "?"
    panels = []
    for m, values in attrs.maps.items():
        title = f"{prefix}{LABELS[m]}" + (f" (rank corr. {scores[m]})" if scores and m in scores else "")
        meaning = MEANINGS[m].format(c=class_name, layer=attrs.cam_layer, size=size)
        panels.append(render.heat_panel(values, "inferno", title, meaning, cell, vmin=0.0, blank=attrs.blank(m)))
    return panels


def attribution_figure(seen: np.ndarray, attrs, subject: Subject | None = None, cell: int = 160) -> np.ndarray:
    """The image beside each method's map, every map with a colour bar (0 = no attribution) or, where the map
    is constant, the reason it is not shown (:func:`cnnviz.viz.attribution.blank_reason`)."""
    name = subject.class_name(attrs.target) if subject is not None else f"class {attrs.target}"
    image = _titled(seen, "image (the model's input)", cell)
    return render.side_by_side([image] + _attribution_panels(attrs, name, cell))


def sanity_figure(seen: np.ndarray, check, subject: Subject | None = None, cell: int = 160) -> np.ndarray:
    """Adebayo et al.'s comparison side by side: the original model's maps (top row) above the randomised
    model's (bottom row), each randomised map titled with its rank correlation to the original."""
    name = subject.class_name(check.original.target) if subject is not None else f"class {check.original.target}"
    last = check.scores[check.scores.step == check.scores.step.max()]
    scores = {r.method: ("n/a" if r.note or not np.isfinite(r.spearman_abs) else f"{r.spearman_abs:.2f}")
              for r in last.itertuples()}
    image = _titled(seen, "image (the model's input)", cell)
    top = render.side_by_side([image] + _attribution_panels(check.original, name, cell, "original: "))
    blank = np.full((8, cell, 3), 255, np.uint8)
    bottom = render.side_by_side([blank] + _attribution_panels(check.randomized, name, cell, "randomised: ", scores))
    return render.stack([top, bottom], pad=8)


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


def class_options(meta: dict) -> list[int]:
    """The model's output indices, for a class picker (:func:`class_label` names them)."""
    return list(range(int(meta["num_classes"])))


def class_label(meta: dict, k: int) -> str:
    """``"<name> (<wnid>, #k)"``: what a class picker shows for output ``k`` (name and wnid when known)."""
    names, wnids = meta.get("class_names") or [], meta.get("classes") or []
    name = names[k] if k < len(names) and names[k] else f"class {k}"
    wnid = f"{wnids[k]}, " if k < len(wnids) and wnids[k] else ""
    return f"{name} ({wnid}#{k})"


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
    values = fm.maps[channel]
    fmap = render.upscale(render.to_uint8(values), (w * scale, h * scale))
    fmap = render.draw_box(fmap, (unit[0] * scale, unit[1] * scale, (unit[0] + 1) * scale, (unit[1] + 1) * scale))
    lo, hi = float(values.min()), float(values.max())
    fmap = render.stack([render.text_block(f"{layer}[{channel}] unit (row, column) {unit}", fmap.shape[1]), fmap,
                         render.colorbar("gray", lo, hi, f"activation of {layer}[{channel}]", fmap.shape[1])])
    scale_in = max(1, 192 // seen.shape[0])
    shown = render.upscale(seen, (seen.shape[1] * scale_in, seen.shape[0] * scale_in))
    shown = render.draw_box(shown, tuple(v * scale_in for v in box), width=2)
    whole = " - the whole image" if covers_whole_image(box, subject.input_size) else ""
    shown = render.stack([render.text_block(f"its input region {box_text(box)}{whole}", shown.shape[1]), shown,
                          render.text_block("in the model's input pixels (x1, y1 exclusive)", shown.shape[1], size=10,
                                            color=(60, 60, 60))])
    detail = render.side_by_side([fmap, shown])
    return fm, maps_figure(fm, max_maps), detail, channel, unit, box


def maps_figure(fm, max_maps: int = 64) -> np.ndarray:
    """The strongest ``max_maps`` feature maps as a grid (:meth:`FeatureMaps.grid`) with its grey colour bar."""
    maps_grid = fm.grid(max_maps)
    return render.stack([maps_grid, render.colorbar(
        "gray", "lowest", "highest", "activation: each map on its own scale, black = its lowest, white = its highest",
        min(maps_grid.shape[1], 360))])


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


def has_lrn(model: nn.Module) -> bool:
    """True when the model has a local response normalisation layer (AlexNet, ZFNet, GoogLeNet; not ResNet)."""
    return any("LocalResponseNorm" in type(m).__name__ for m in model.modules())


def deconv_caption(subject: Subject, proj, box: tuple[int, int, int, int]) -> str:
    """What a deconvnet figure shows: the unit, its receptive field, the method; LRN is mentioned only for
    models that have one, and a receptive field that covers the whole image is said to."""
    text = (f"{proj.layer}[{proj.channel}] unit (row, column) {proj.position} = {proj.value:.3g}; its receptive field "
            f"{box_text(box)} in the model's input pixels is outlined; {proj.method} deconvnet")
    if has_lrn(subject.model):
        text += " (LRN passes the signal unchanged, as in ZF)"
    if covers_whole_image(box, subject.input_size):
        text += "; this unit's receptive field covers the whole image"
    return subject.caption(text)
