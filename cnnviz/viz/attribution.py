"""Attribution maps side by side (captum), and the model-randomisation sanity check (Adebayo et al. 2018).

Methods (captum classes): ``saliency`` (``Saliency``, |gradient|, Simonyan et al. 2014), ``deconvnet``
(``Deconvolution``, ZF's backward rule), ``guided_backprop`` (``GuidedBackprop``), ``integrated_gradients``
(``IntegratedGradients``, baseline = the dataset mean, i.e. 0 after normalisation), ``grad_cam``
(``LayerGradCam``, upsampled) and ``guided_grad_cam`` (``GuidedGradCam``). Both Grad-CAMs look at the chosen
layer or, by default, the last convolutional stage's output before the final pooling whose maps are at least
4x4 (:func:`default_cam_layer`, read from the model's own output shapes): at a 1x1 layer (a global average
pool) the CAM is one number, a constant picture, and a 2x2 map only names a quarter of the image.

A map that is constant (a CAM at a 1x1 layer, or a ReLU'd CAM with nothing positive) is not drawn as a colour
stretch of float noise: :func:`blank_reason` says why it is empty and the figures show that text instead.

Pixel maps are reduced over colour channels by the maximum absolute value (Simonyan et al.). Everything runs
on a private view of the model (captum's hooks never touch a shared model).

The sanity check re-runs the methods on a copy whose weights are re-initialised: either all of them
(``"full"``) or progressively from the top layer down (``"cascading"``), and compares each map with the
original by the Spearman rank correlation of the absolute values, as Adebayo et al. did, and by the same
correlation with the distance to the image border taken out (:func:`spearman_without_border`: at 64x64 every
map's fade towards the border makes any two maps correlate; the reading goes by this one). A map that explains
the *model* changes a lot. Adebayo et al. ("Sanity Checks for Saliency Maps", NeurIPS 2018) found gradients and
Grad-CAM pass, and guided backprop and guided Grad-CAM barely change: they mostly reconstruct the image (Nie et
al. 2018 explain why); integrated gradients, which multiplies by the input, stayed close to the image too. They
did not test the deconvnet, and it need not behave like guided backprop here. Measured on the shipped starters,
full randomisation, val images 0 and 7, Spearman of |maps| then without the border (2026-12-07):
ZFNet saliency 0.63 / 0.31, without the border 0.17 / 0.10; guided backprop 0.72 / 0.68, 0.46 / 0.49;
integrated gradients 0.71 / 0.58, 0.55 / 0.48; deconvnet 0.06 / -0.32, 0.13 / -0.12. Tiny-stem ResNet-18
saliency 0.14 / 0.17, 0.07 / 0.14; guided backprop 0.38 / 0.34, 0.32 / 0.28; integrated gradients 0.47 / 0.51,
0.44 / 0.44; deconvnet 0.40 / 0.31, 0.31 / 0.18.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from cnnviz.viz.hooks import get_module, private_view
from cnnviz.viz.layers import output_shapes

# Integrated gradients' steps, the same for the attributions and the sanity check's original row (the check used
# 16 and the page showed one map with two different peaks, 0.068 and 0.072, under one label).
IG_STEPS = 32
METHODS = ("saliency", "deconvnet", "guided_backprop", "integrated_gradients", "grad_cam", "guided_grad_cam")
CAM_METHODS = frozenset({"grad_cam", "guided_grad_cam"})  # the methods that look at a layer (cam_layer)
LABELS = {"saliency": "Saliency (gradient)", "deconvnet": "Deconvnet", "guided_backprop": "Guided backprop",
          "integrated_gradients": "Integrated gradients", "grad_cam": "Grad-CAM",
          "guided_grad_cam": "Guided Grad-CAM"}


# Layers whose output is a pooled copy of the map before them (Dropout and Identity pass it on unchanged).
POOLING = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool2d)
PASS_THROUGH = (nn.Dropout, nn.Dropout2d, nn.Identity)


def ends_in_pooling(module: nn.Module) -> bool:
    """True when ``module``'s output is a pooling layer's: it is one, or its last layer (in registration order,
    which is execution order for our Sequentials; Dropout and Identity skipped) is one."""
    leaves = [m for m in module.modules() if next(m.children(), None) is None]
    for leaf in reversed(leaves):
        if not isinstance(leaf, PASS_THROUGH):
            return isinstance(leaf, POOLING)
    return False


# The coarsest map Grad-CAM looks at by default: 4x4, each cell a 16x16 patch of a 64x64 image (VGG-16's conv5_3
# at 64x64). A 2x2 map can only say which quarter of the image mattered: GoogLeNet's inception5b with the paper's
# stem at 64x64 is 2x2, and its upsampled CAM was one smooth blob over whatever image was shown.
MIN_CAM_SIDE = 4


def default_cam_layer(model: nn.Module, input_size: tuple[int, int, int],
                      shapes: dict[str, tuple[int, ...]] | None = None) -> str:
    """The layer Grad-CAM looks at by default: the last one, in execution order, whose output is a map at least
    :data:`MIN_CAM_SIDE` on each side and is not a pooling layer's output (ResNet: ``layer4``, GoogLeNet:
    ``inception5b``, AlexNet and ZFNet: ``features.relu5``, VGG-16-BN: ``features.42``, conv5_3's ReLU).

    Why not the pool after it: Grad-CAM's authors took the last conv layer's rectified output (their code's
    defaults: ``relu5_3`` for VGG-16, ``relu5`` for AlexNet; github.com/ramprs/grad-cam, classification.lua),
    and the max pool after it halves the map (ZFNet at 64x64: 13x13 -> 6x6, VGG-16: 4x4 -> 2x2). Why not a
    smaller map: after a global average pool the CAM is one number, a constant picture, and a 2x2 map only
    names a quarter. Deviation from the authors' choice, stated: where the last conv layer's map is smaller than
    4x4 (GoogLeNet with the paper's stem at 64x64: inception5b is 2x2) the default goes back to the last layer
    that has 4x4 (inception4e); at 224x224 and with the small stems nothing changes. When no layer has 4x4
    (a model for tiny inputs), the last layer larger than 1x1 is taken as before. ``shapes``: the model's output
    shapes when the caller has them (:func:`cnnviz.viz.layers.output_shapes`)."""
    shapes = shapes if shapes is not None else output_shapes(model, input_size)
    names = [n for n, s in shapes.items() if len(s) == 3 and s[1] * s[2] > 1]
    if not names:
        raise ValueError("this model has no layer with maps larger than 1x1 for Grad-CAM")
    modules = dict(model.named_modules())
    unpooled = [n for n in names if n in modules and not ends_in_pooling(modules[n])] or names
    readable = [n for n in unpooled if min(shapes[n][1:]) >= MIN_CAM_SIDE]
    return (readable or unpooled)[-1]


# A map whose spread is below this fraction of its largest magnitude is constant (float noise, not signal).
CONSTANT_TOLERANCE = 1e-5


def blank_reason(values: np.ndarray, cam_size: tuple[int, int] | None = None) -> str | None:
    """Why a map must not be drawn as a heat map (None when it can be): the CAM's layer has 1x1 maps, or the map
    is constant (every value the same up to float noise)."""
    if cam_size is not None and cam_size[0] * cam_size[1] == 1:
        return "n/a: this layer's map is 1x1"
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0 or not np.isfinite(a).all():
        return "n/a: no finite values"
    scale = max(float(np.abs(a).max()), 1e-30)
    if float(np.ptp(a)) <= CONSTANT_TOLERANCE * scale:
        return f"n/a: constant map ({float(a.flat[0]):.3g} everywhere)"
    return None


@dataclass
class Attributions:
    target: int
    maps: dict[str, np.ndarray]  # method -> H x W float32 (pixel maps: max |a| over channels; CAMs: >= 0)
    raw: dict[str, np.ndarray] = field(default_factory=dict)  # method -> C x H x W (or 1 x H x W) float32
    cam_layer: str | None = None
    cam_size: tuple[int, int] | None = None  # (h, w) of the CAM layer's maps, before upsampling
    # Methods whose map for this class was measured to be the same from any image (the deconvnet of a network
    # with no max-pooling: cnnviz.viz.deconv's docstring says why). They show the class, not the image.
    same_for_every_image: tuple[str, ...] = ()

    def blank(self, method: str) -> str | None:
        """Why ``method``'s map is not a picture (see :func:`blank_reason`), or None."""
        cam = self.cam_size if method in CAM_METHODS else None
        return blank_reason(self.maps[method], cam)


def _reduce(a: torch.Tensor) -> np.ndarray:
    return a.detach().abs().amax(dim=1)[0].float().cpu().numpy()


def attribute(model: nn.Module, x: torch.Tensor, target: int | None = None, methods=METHODS, *,
              cam_layer: str | None = None, ig_steps: int = IG_STEPS) -> Attributions:
    """The chosen attribution ``methods`` for one preprocessed image ``x`` and class ``target`` (default: the
    predicted class)."""
    from captum.attr import (
        Deconvolution,
        GuidedBackprop,
        GuidedGradCam,
        IntegratedGradients,
        LayerAttribution,
        LayerGradCam,
        Saliency,
    )

    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown attribution method(s) {sorted(unknown)}; known: {', '.join(METHODS)}")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    view = private_view(model)
    p = next(iter(view.parameters()), None)
    x = x.detach().to(p.device if p is not None else "cpu")
    with torch.no_grad():
        logits = view(x)
    if target is None:
        target = int(logits.argmax(1))
    if not 0 <= target < logits.shape[1]:
        raise ValueError(f"class {target} does not exist: the model has {logits.shape[1]} classes")
    if CAM_METHODS & set(methods):
        if cam_layer:  # a name typed by the user (the CLI's --layer): checked before any work
            get_module(view, cam_layer)
            shape = output_shapes(view, tuple(x.shape[1:])).get(cam_layer)
            if shape is None or len(shape) != 3:
                raise ValueError(f"Grad-CAM needs a layer whose output is a map (channels x height x width); "
                                 f"{cam_layer}'s is {'x'.join(map(str, shape)) if shape else 'not used at evaluation'}")
        cam_layer = cam_layer or default_cam_layer(view, tuple(x.shape[1:]))
    raw: dict[str, torch.Tensor] = {}
    maps: dict[str, np.ndarray] = {}
    cam_size = None
    with torch.enable_grad(), warnings.catch_warnings():
        # captum warns that it sets (and removes) backward hooks on the ReLUs: of the private view, by design
        warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
        for m in methods:
            xi = x.clone().requires_grad_(True)
            if m == "saliency":
                a = Saliency(view).attribute(xi, target=target, abs=False)
            elif m == "deconvnet":
                a = Deconvolution(view).attribute(xi, target=target)
            elif m == "guided_backprop":
                a = GuidedBackprop(view).attribute(xi, target=target)
            elif m == "integrated_gradients":
                a = IntegratedGradients(view).attribute(xi, baselines=torch.zeros_like(xi), target=target,
                                                        n_steps=ig_steps, internal_batch_size=ig_steps)
            elif m == "grad_cam":
                layer = get_module(view, cam_layer)
                cam = LayerGradCam(view, layer).attribute(xi, target=target, relu_attributions=True)
                cam_size = tuple(int(v) for v in cam.shape[2:])
                a = LayerAttribution.interpolate(cam, tuple(x.shape[2:]), interpolate_mode="bilinear")
            else:  # guided_grad_cam
                layer = get_module(view, cam_layer)
                a = GuidedGradCam(view, layer).attribute(xi, target=target)
            raw[m] = a.detach()
            maps[m] = a.detach()[0, 0].float().cpu().numpy() if m == "grad_cam" else _reduce(a)
        fixed = ("deconvnet",) if "deconvnet" in methods and _deconvnet_ignores_image(view, x, raw["deconvnet"],
                                                                                       target) else ()
    if cam_layer is not None and cam_size is None:
        shape = output_shapes(view, tuple(x.shape[1:])).get(cam_layer)
        cam_size = tuple(shape[1:]) if shape is not None and len(shape) == 3 else None
    return Attributions(target, maps, {k: v[0].float().cpu().numpy() for k, v in raw.items()}, cam_layer, cam_size,
                        fixed)


def _deconvnet_ignores_image(view: nn.Module, x: torch.Tensor, mine: torch.Tensor, target: int) -> bool:
    """True when captum's deconvnet gives this class the same map from a random input as from ``x`` (up to
    scale): one more backward pass, measured rather than read from the architecture."""
    from captum.attr import Deconvolution

    from cnnviz.viz.deconv import random_probe, same_picture

    other = Deconvolution(view).attribute(random_probe(x).requires_grad_(True), target=target).detach()
    return same_picture(mine.cpu().numpy(), other.cpu().numpy())


def parametrised_layers(model: nn.Module) -> list[str]:
    """Leaf modules with weights, in definition order (the cascading randomisation goes through them from
    the last one back)."""
    return [n for n, m in model.named_modules()
            if not list(m.children()) and any(True for _ in m.parameters(recurse=False))]


def randomized_copy(model: nn.Module, mode: str = "full", layers: int | None = None, seed: int = 0) -> nn.Module:
    """A deep copy (new weight tensors; ``model`` is untouched) with re-initialised weights.

    ``mode="full"``: every layer; ``"cascading"``: the top ``layers`` parametrised layers (from the output
    down). Each layer gets its own ``reset_parameters()`` (PyTorch's default initialisation), seeded.
    """
    if mode not in ("full", "cascading"):
        raise ValueError(f"mode must be 'full' or 'cascading', not {mode!r}")
    rand = copy.deepcopy(model).eval()
    names = parametrised_layers(rand)
    if mode == "cascading":
        names = names[len(names) - (layers if layers is not None else len(names)):]
    modules = dict(rand.named_modules())
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for n in names:
            m = modules[n]
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
            else:
                for prm in m.parameters(recurse=False):
                    prm.normal_(0, 0.01)
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
    return rand


def _ranks(a: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(a.ravel(), kind="stable"), kind="stable").astype(np.float64)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two arrays (ties broken by position; NaN when one is constant)."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(np.corrcoef(_ranks(a), _ranks(b))[0, 1])


def border_distance(h: int, w: int) -> np.ndarray:
    """Each pixel's distance, in pixels, to the nearest edge of an ``h x w`` image (0 on the edge)."""
    yy, xx = np.mgrid[:h, :w]
    return np.minimum.reduce([yy, xx, h - 1 - yy, w - 1 - xx]).astype(np.float64)


def spearman_without_border(a: np.ndarray, b: np.ndarray) -> float:
    """The rank correlation of two ``H x W`` maps with what each shares with the distance to the image border
    taken out (the partial Spearman correlation given :func:`border_distance`); NaN when a map is constant.

    Why: every attribution map of a CNN fades towards the image border, whatever its weights, because fewer
    units see a pixel near the edge (padding, and receptive fields cut off by the edge). At 64x64 the border is a
    large share of the image, and that shared fade alone gives two unrelated maps a high rank correlation: ZFNet's
    saliency on val image 0 scored 0.63 against its randomised copy's, with 0.71 and 0.77 between each map and
    the distance to the border, while the two maps look nothing alike (0.15 with an 8-pixel margin left out).
    Adebayo et al. measured at 224x224, where the border matters less, and reported the plain correlation; the
    sanity check reports both."""
    if a.ndim != 2 or a.shape != b.shape or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    c = np.corrcoef(np.stack([_ranks(a), _ranks(b), _ranks(border_distance(*a.shape))]))
    r_ab, r_ac, r_bc = c[0, 1], c[0, 2], c[1, 2]
    denominator = np.sqrt(max(0.0, (1 - r_ac**2) * (1 - r_bc**2)))
    return float((r_ab - r_ac * r_bc) / denominator) if denominator > 1e-9 else float("nan")


@dataclass
class SanityCheck:
    original: Attributions
    randomized: Attributions  # after the last randomisation step
    # columns: step, randomized (layers re-initialised, top-down), method, spearman_abs (Adebayo et al.'s),
    # spearman_abs_no_border (:func:`spearman_without_border`, what the reading goes by), note
    scores: pd.DataFrame
    mode: str

    def table(self) -> pd.DataFrame:
        """The last step's scores for people: method, the rank correlation as Adebayo et al. measured it and with
        the border's fade taken out, as text (never empty: "n/a: ..." with the reason when a map is constant),
        and what it means (read from the second: the first is high for any two maps at 64x64)."""
        last = self.scores[self.scores.step == self.scores.step.max()]
        rows = []
        for r in last.itertuples():
            if r.note or not np.isfinite(r.spearman_abs):
                score = inner = r.note or "n/a: a map is constant"
                reading = "no score: one of the two maps has no picture"
            else:
                score = f"{r.spearman_abs:.2f}"
                adjusted = r.spearman_abs_no_border
                inner = f"{adjusted:.2f}" if np.isfinite(adjusted) else "n/a"
                judged = adjusted if np.isfinite(adjusted) else r.spearman_abs
                reading = ("similar: the map depends little on what the model learnt" if judged > 0.5 else
                           "partly changed" if judged > 0.2 else "changed: the map depends on the learnt weights")
            rows.append({"method": LABELS.get(r.method, r.method), "rank correlation, original vs randomised": score,
                         "without the border's fade": inner, "reading": reading})
        return pd.DataFrame(rows)


def sanity_check(model: nn.Module, x: torch.Tensor, target: int | None = None, methods=METHODS, *,
                 mode: str = "full", steps: int = 4, seed: int = 0, ig_steps: int = IG_STEPS,
                 cam_layer: str | None = None) -> SanityCheck:
    """Adebayo et al.'s model-randomisation test: attributions on the trained model vs on re-initialised copies.

    ``mode="full"`` re-initialises every layer at once; ``"cascading"`` re-initialises ``steps`` growing
    top-down slices (the top layer, ..., all layers), reporting the similarity at each step. A similarity near
    1 means the method does not depend on what the model learnt.
    """
    original = attribute(model, x, target, methods, cam_layer=cam_layer, ig_steps=ig_steps)
    target = original.target
    n_layers = len(parametrised_layers(model))
    if mode == "full":
        plan = [n_layers]
    else:
        plan = sorted({max(1, round(n_layers * (i + 1) / steps)) for i in range(steps)})
    rows = []
    rand_attr = original
    for n in plan:
        rand = randomized_copy(model, "full" if mode == "full" else "cascading", layers=n, seed=seed)
        rand_attr = attribute(rand, x, target, methods, cam_layer=original.cam_layer, ig_steps=ig_steps)
        for m in methods:
            why = original.blank(m) or rand_attr.blank(m)
            note = "" if why is None else \
                f"{why} ({'original' if original.blank(m) else 'randomised'} model): no rank correlation"
            a, b = np.abs(original.maps[m]), np.abs(rand_attr.maps[m])
            rows.append({"step": len(rows) // len(methods), "randomized": n, "method": m,
                         "spearman_abs": float("nan") if why else spearman(a, b),
                         "spearman_abs_no_border": float("nan") if why else spearman_without_border(a, b),
                         "note": note})
    return SanityCheck(original, rand_attr, pd.DataFrame(rows), mode)
