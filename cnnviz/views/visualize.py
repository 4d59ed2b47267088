"""What the Visualize page draws: Zeiler & Fergus's figures (uint8 arrays with colour bars and legends) and the
captions that say what each one shows, from a :class:`cnnviz.viz.session.Subject` (the model), its input ``x``
and ``seen`` (what the network saw, :func:`cnnviz.preprocess.network_input`). The CLI draws the same figures.

The page's views (``app_pages/visualize_views.py``) get a :class:`Context` and make one call here each.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from cnnviz.catalog import CheckpointInfo, most_accurate
from cnnviz.checkpoint import CheckpointMeta
from cnnviz.views.projection import (  # noqa: F401  (re-exported: the pages and the CLI read them from here)
    DeconvFigure,
    box_text,
    covers_whole_image,
    deconv_caption,
    deconv_figure,
    fixed_projection_note,
    has_lrn,
    projection_figure,
    top9_caption,
    top9_table,
)
from cnnviz.viz import probes, render
from cnnviz.viz.attribution import LABELS
from cnnviz.viz.filters import conv_layers, filter_channels, filter_grid
from cnnviz.viz.maps import feature_maps, strongest_unit, unit_region
from cnnviz.viz.session import Subject, class_index, prepare
from cnnviz.viz.trained import FilterMovement, with_note


@dataclass
class Context:
    """What every view of the page gets: the model, the image as the network saw it, and the page's choices."""

    subject: Subject
    x: torch.Tensor  # the preprocessed input, 1 x C x H x W or C x H x W
    seen: np.ndarray  # what the network saw, H x W x 3 uint8
    layer: str  # the page's layer (feature maps, deconvnet, top-9, occlusion's map (a))
    layers: list[str]  # every layer with a spatial output
    label: int | None  # the image's true class (model output index) when known
    split: Any  # the validation Split, or None
    info: CheckpointInfo | None  # the chosen checkpoint (None: a random init)
    infos: dict[str, CheckpointInfo]  # every listed checkpoint, by picker label
    load: Callable  # path -> loaded checkpoint (cached, shared)
    random: Callable[[str], Subject]  # arch -> random-init subject (cached, shared)
    val_index: int | None = None  # the validation image shown (None: an upload or the demo image)

    @property
    def signature(self) -> str:
        """Identifies model + image: stored results are shown only while both are unchanged."""
        digest = hashlib.sha1(self.x.detach().cpu().numpy().tobytes()).hexdigest()[:16]
        return f"{self.subject.name}|{digest}"


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


SANITY_BUTTON = "Sanity check: randomise the weights"
# Adebayo et al. tested gradients, Grad-CAM, guided backprop and guided Grad-CAM, not the deconvnet: no claim
# about it here (measured on the starters it changes a lot, unlike guided backprop on ZFNet: cnnviz.viz.attribution).
SANITY_INTRO = ("Sanity check (Adebayo et al. 2018): a map that explains the model should change when its weights "
                "are randomised. In their experiments gradients and Grad-CAM did; guided backprop and guided "
                f"Grad-CAM barely changed - they mostly reconstruct the image. \"{SANITY_BUTTON}\" measures it for "
                "this model and image, also with the border taken out: at 64x64 every map fades towards the "
                "image's edges whatever the weights, and that alone makes two unrelated maps correlate.")


def attribution_caption(subject: Subject, attrs) -> str:
    """What the attribution figure explains, and which of its maps are the same for every image."""
    text = f"explaining {subject.class_name(attrs.target)}; Grad-CAM at {attrs.cam_layer}"
    if "deconvnet" in attrs.same_for_every_image:
        text += (". The deconvnet map is the same for every image of this class: with no max-pooling in the "
                 "model, the deconvnet's way back never sees the image (Springenberg et al. 2015); guided backprop "
                 "does")
    return subject.caption(text)


def sanity_figure(seen: np.ndarray, check, subject: Subject | None = None, cell: int = 160) -> np.ndarray:
    """Adebayo et al.'s comparison side by side: the original model's maps (top row) above the randomised
    model's (bottom row), each randomised map titled with its rank correlation to the original."""
    name = subject.class_name(check.original.target) if subject is not None else f"class {check.original.target}"
    last = check.scores[check.scores.step == check.scores.step.max()]
    def score(r) -> str:
        if r.note or not np.isfinite(r.spearman_abs):
            return "n/a"
        inner = r.spearman_abs_no_border
        return f"{r.spearman_abs:.2f}" + (f"; {inner:.2f} without the border" if np.isfinite(inner) else "")

    scores = {r.method: score(r) for r in last.itertuples()}
    image = _titled(seen, "image (the model's input)", cell)
    top = render.side_by_side([image] + _attribution_panels(check.original, name, cell, "original: "))
    blank = np.full((8, cell, 3), 255, np.uint8)
    bottom = render.side_by_side([blank] + _attribution_panels(check.randomized, name, cell, "randomised: ", scores))
    return render.stack([top, bottom], pad=8)


def class_options(meta: dict) -> list[int]:
    """The model's output indices, for a class picker (:func:`class_label` names them)."""
    return list(range(int(meta["num_classes"])))


def class_label(meta: dict, k: int) -> str:
    """``"<name> (<wnid>, #k)"``: what a class picker shows for output ``k`` (name and wnid when known)."""
    names, wnids = meta.get("class_names") or [], meta.get("classes") or []
    name = names[k] if k < len(names) and names[k] else f"class {k}"
    wnid = f"{wnids[k]}, " if k < len(wnids) and wnids[k] else ""
    return f"{name} ({wnid}#{k})"


def feature_figure(subject: Subject, x: torch.Tensor, seen: np.ndarray, layer: str, channel: int | None = None,
                   unit: tuple[int, int] | None = None, max_maps: int = 64):
    """Feature maps of ``layer`` sorted by strength, plus the chosen unit's map and its input region.

    Returns ``(maps: FeatureMaps, grid, detail, channel, unit, box)``; ``detail`` shows the unit's map (the
    unit outlined) beside the input with the unit's receptive field outlined.
    """
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


# ----------------------------------------------------------------------------------------------- the views' text
def filter_figure(model: nn.Module, conv: str, norm: str = "per_filter"):
    """The Filters view: the first conv's filters as RGB tiles, a deeper conv's filters channel by channel."""
    first = conv_layers(model)[0]
    return filter_grid(model, conv, norm) if conv == first else filter_channels(model, conv, normalise=norm)


def movement_metrics(mv: FilterMovement) -> list[tuple[str, str, str]]:
    """``(label, value, help)`` of the two "trained vs random" numbers shown beside a filter grid."""
    return [("moved from the random start", "n/a" if mv.distance is None else f"{mv.distance:.2f}",
             "||W - W0|| / ||W0||: W0 is the layer as initialised (rebuilt from the run's seed)."),
            ("neighbour-pixel correlation", "n/a" if mv.smoothness is None else f"{mv.smoothness:+.2f}",
             "Random filters: about 0 (slightly negative); trained first layers: clearly positive.")]


@dataclass
class FirstLayer:
    """One side of ZF Fig. 6: a model's first-layer filters, captioned with where the weights come from."""

    model: nn.Module
    meta: dict
    key: tuple  # names the weights (checkpoint file, or a random init), for a cache
    layer: str
    image: np.ndarray
    caption: str
    epochs: int | None = None  # epochs the weights were trained for (None: a random init, or not recorded)


def fig6_panels(infos: Iterable[CheckpointInfo], load: Callable, random: Callable[[str], Subject]) -> list[FirstLayer]:
    """ZF Fig. 6 from the most accurate AlexNet and ZFNet checkpoints; a random init, said so, where none exists."""
    panels = []
    for arch in ("alexnet", "zfnet"):
        best = most_accurate(infos, arch)
        if best is not None:
            ck = load(best.path)
            model, meta, key = ck.model, ck.meta, (best.name, str(best.path), best.mtime)
            top1 = best.metrics["val_top1"] / (100 if best.metrics["val_top1"] > 1 else 1)
            epochs = best.meta.epoch
            trained = f", {epochs} epoch{'s' if epochs != 1 else ''}" if epochs else ""
            what = f"{arch} from {best.name} (val top-1 {top1:.1%}{trained}, the most accurate {arch} checkpoint)"
        else:
            subject = random(arch)
            model, meta, key, epochs = subject.model, subject.meta, (subject.name, None), None
            what = (f"{arch}: no trained {arch} checkpoint exists, so this is a random initialisation (seed 0): "
                    "it shows what untrained filters look like, not what ZF's Fig. 6 compares")
        fig = filter_grid(model)
        panels.append(FirstLayer(model, meta, key, fig.layer, fig.image, with_note(f"{what}; {fig.caption}", meta),
                                 epochs))
    return panels


def fig6_training_note(panels: list[FirstLayer]) -> str | None:
    """A sentence when the two sides of Fig. 6 were trained for different lengths: ZF compare two networks
    trained alike, so here part of the difference is training, not architecture."""
    if len(panels) != 2 or not all(p.epochs for p in panels) or panels[0].epochs == panels[1].epochs:
        return None
    (a, b) = panels
    return (f"Not trained alike: AlexNet had {a.epochs} epoch{'s' if a.epochs != 1 else ''} and ZFNet "
            f"{b.epochs}. ZF's Fig. 6 compares two networks trained the same way, so part of the difference "
            "between these filters comes from training length, not from the architectures.")


def fig6_comparison_note(panels: list[FirstLayer]) -> str | None:
    """What ZF's Fig. 6 claims and what differs here, when both sides are trained alike: ZF changed AlexNet's
    conv1 in two ways (filter size and stride), and a small stem at 64x64 may keep only one of them, so their
    result need not repeat. Strides and kernels are read from the models; the smoothness is measured."""
    from cnnviz.viz.trained import smoothness

    if len(panels) != 2 or not all(p.epochs for p in panels) or fig6_training_note(panels):
        return None
    convs = [p.model.get_submodule(p.layer) for p in panels]
    if not all(isinstance(c, nn.Conv2d) for c in convs):
        return None
    (ka, sa), (kz, sz) = ((c.kernel_size[0], c.stride[0]) for c in convs)
    smooth = [smoothness(c.weight.detach().float().cpu().numpy()) for c in convs]
    if any(v is None for v in smooth):
        return None
    same = ("the stride is the same, so only the filter size differs here, and ZF's contrast need not repeat"
            if sa == sz else f"the strides differ ({sa} against {sz}) as in ZF, as well as the filter sizes")
    size = panels[0].meta.get("input_size")  # a CheckpointMeta or a plain dict: both are mappings
    seen = f"These two see {size}x{size} images" if size else "Here"
    return ("ZF's Fig. 6 at 224x224: AlexNet's 11x11 first-layer filters at stride 4 mixed very high and very "
            "low frequencies with little in between (and the stride aliased layer 2); ZF report that ZFNet's 7x7 at "
            f"stride 2 fixed both. {seen}: AlexNet's conv1 is {ka}x{ka} at stride {sa}, ZFNet's {kz}x{kz} at "
            f"stride {sz}: {same}. Neighbouring filter pixels correlate {smooth[0]:+.2f} in AlexNet's and "
            f"{smooth[1]:+.2f} in ZFNet's (higher: smoother).")


def whole_image_note(subject: Subject, layer: str, box: tuple[int, int, int, int]) -> str | None:
    """A sentence when every unit of ``layer`` sees the whole input (its outlined region is then the picture)."""
    if not covers_whole_image(box, subject.input_size):
        return None
    _, h, w = subject.input_size
    return (f"Every unit of {layer} sees the whole {w}x{h} image: its receptive field covers all of the input, so the "
            "region outlined is always the whole picture. Pick an earlier layer to see what a unit looks at.")


def occlusion_caption(subject: Subject, result, size: int, stride: int) -> str:
    return subject.caption(
        f"grey square {size}x{size}, stride {stride}; unoccluded p({subject.class_name(result.target)}) = "
        f"{result.base_prob:.3f}; map cell (i, j) = the square at (x0, y0) = ({stride}j, {stride}i) in the model's "
        "input pixels")


@dataclass
class EpochFigures:
    """The "across training" view for one epoch's snapshot, captioned."""

    filters: np.ndarray  # its first-layer filters
    filters_caption: str
    projection: Any  # the strongest deconvnet projection of the page's layer (cnnviz.viz.Projection)
    deconv: np.ndarray  # that projection beside the input
    deconv_caption: str


def epoch_figures(ckpt, epoch: int, x: torch.Tensor, seen: np.ndarray, layer: str) -> EpochFigures:
    """Filters and the strongest deconvnet projection of ``layer`` for the snapshot ``ckpt`` of ``epoch``."""
    snap = Subject(ckpt.model, ckpt.meta, f"epoch {epoch}", None)
    dc = deconv_figure(snap, x, seen, layer)
    note = fixed_projection_note(dc.projection, dc.guided is not None)
    # Every epoch's accuracy, not only a barely trained one's (whose note already gives it): the epochs are compared.
    top1 = CheckpointMeta.of(ckpt.meta).metrics.get("val_top1")
    accuracy = f" (val top-1 {top1:.1%})" if isinstance(top1, (int, float)) and snap.note is None else ""
    return EpochFigures(filter_grid(snap.model).image,
                        snap.caption(f"first-layer filters after epoch {epoch}{accuracy}"), dc.projection, dc.image,
                        snap.caption(f"strongest projection of {layer}, epoch {epoch}{accuracy}"
                                     + (f". {note}" if note else "")))


# ----------------------------------------------------------------------------------------------- invariance
UNITS = {"translate": "pixels", "scale": "factors", "rotate": "degrees"}  # of each transform's values


def parse_values(text: str) -> list[float]:
    """The invariance view's values, typed as ``"-12, -6, 0, 6, 12"`` (commas or semicolons)."""
    try:
        values = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"the values must be numbers separated by commas, not {text!r}") from None
    if not values:
        raise ValueError("give at least one value")
    return values


def invariance_inputs(subject: Subject, x: torch.Tensor, label: int | None, split=None, first: int | None = None,
                      count: int = 1) -> tuple[torch.Tensor, list[int | None], list[str]]:
    """``(xs, targets, names)`` of the images ZF Fig. 5 transforms: ``count`` val images from index ``first``
    (with ``split``), else the page's image ``x`` (class ``label`` or None)."""
    if split is None or first is None:
        return x, [label], ["this image" if label is None else f"this image ({subject.class_name(label)})"]
    idx = [i for i in range(first, first + int(count)) if i < len(split.images)]
    xs = torch.cat([prepare(split.images[i], subject.meta)[0] for i in idx])
    truth = [int(split.labels[i]) for i in idx]
    targets = [class_index(subject.meta, split.wnids[t], t) for t in truth]
    return xs, targets, [f"val {i}: {split.class_names[t]}" for i, t in zip(idx, truth, strict=True)]


def invariance_caption(targets: list[int | None]) -> str:
    followed = "the true class" if targets[0] is not None else "the class predicted for the untransformed image"
    return (f"Left: how far each layer's output (flattened) moves from the untransformed image's; right: "
            f"p({followed}). ZF Fig. 5: a trained net's low layers move a lot for small changes, its top layers "
            "less; the output is steadier under translation and scale than under rotation.")


# ----------------------------------------------------------------------------------------------- layer probes
def probes_intro() -> str:
    d = probes.DEFAULTS
    return ("ZF Section 5 / Table 6: how linearly separable the classes are at each depth. Classifier: "
            + probes.CLASSIFIER.format(l2=d["l2"], max_iter=d["max_iter"]) + "; fitted on a class-balanced "
            "train subset, scored on a class-balanced val subset.")


def probes_note(results: list) -> str:
    first = results[0]
    return (f"{first.train_images:,} train and {first.val_images:,} val images, {first.num_classes} classes; "
            "features are each block's output, globally average-pooled. With a few images per class the "
            "numbers are far below the network's own accuracy: read the trend across depth.")


def probes_table(results: list) -> pd.DataFrame:
    """One row per checkpoint and block: the probe's accuracies (the chart's numbers, for the CSV)."""
    return pd.DataFrame([{"checkpoint": r.name, **row} for r in results for row in r.rows()])
