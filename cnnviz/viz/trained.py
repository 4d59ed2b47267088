"""How trained are these weights? A note for every figure's caption, and how far a layer's filters moved from
their random start.

A picture of random or barely trained weights looks like a finding (noise-like filters, blotchy maps) and a
user cannot tell the difference, so every Visualize figure carries :func:`weights_note` in its caption and the
Filters view shows :func:`filter_movement`:

* **distance from the start**: ``||W - W0|| / ||W0||``, where ``W0`` is the layer's weights in the same
  architecture built with the run's seed. The training worker seeds torch with ``train_config.seed`` right
  before ``create_model``, so for a checkpoint written by it ``W0`` *is* its initialisation. Without a
  recorded seed the start is unknown and this number is left out.
* **smoothness**: the correlation between neighbouring filter pixels (horizontal and vertical neighbours,
  pooled over the layer, each filter's channel centred first). Random weights are independent: about -0.02
  for a 7x7 kernel and -0.14 for a 3x3 (centring makes neighbours anti-correlated, the more so the smaller
  the kernel); trained first layers are smooth edges and colour blobs. n/a for 1x1 kernels.

The shipped starters' first convolutions (the zoo: 10 epochs), distance / smoothness (at the random start),
measured 2026-12-07: LeNet-5 2.04 / +0.21 (-0.01), VGG-16-BN 1.97 / +0.20 (-0.15), GoogLeNet 1.41 / +0.05
(-0.02), AlexNet 1.01 / +0.27 (-0.01), ZFNet 0.60 / +0.14 (-0.02), ResNet-18 0.58 / +0.11 (-0.14), NiN 0.19 /
+0.00 (-0.03): NiN's is "near start", and the page says so. LeNet-5's shipped snapshots show the way there:
0.50 / +0.04 after epoch 1, 1.28 / +0.18 after 2, 1.94 / +0.20 after 5. The first zoo's LeNet-5 (AdamW at lr
0.002) had moved only 0.46 (+0.06): docs/benchmarks.md, "LeNet-5's optimizer".

:data:`NEAR_START` is where we warn "still close to their random start".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from cnnviz.checkpoint import CheckpointMeta

# A checkpoint whose recorded val top-1 has gone less than this fraction of the way from chance to 100% is
# "barely trained" (200 classes: below 10.4%; 10 classes: below 19%).
BARELY_TRAINED = 0.10
# A layer whose weights moved less than this fraction of their initial norm is "still close to its random
# start" (its filters look like the initialisation, whatever the accuracy says).
NEAR_START = 0.5
# Without a known start: first-layer filters smoother than random by less than this are noise-like.
SMOOTH_MARGIN = 0.1
# A first layer that has moved from its start but gained less smoothness than this is still "mostly noise-like":
# the shipped ZFNet (+0.16 over its start) and GoogLeNet (+0.07), against AlexNet's +0.28, LeNet-5's +0.22,
# ResNet-18's +0.25 and VGG-16-BN's +0.35, whose first layers show edges and colour blobs.
SMOOTH_TRAINED = 0.2


def weights_note(meta: dict[str, Any]) -> str | None:
    """What a caption must say about these weights, or None when they are trained.

    ``"random initialisation (untrained weights)"`` for a random model (``meta["init"]["random"]``), ``"barely
    trained: ..."`` when the recorded val top-1 is within :data:`BARELY_TRAINED` of chance, and ``"no recorded
    accuracy: ..."`` when the checkpoint records none."""
    meta = CheckpointMeta.of(meta)
    init = meta.extra.get("init") or {}
    if init.get("random"):
        return f"random initialisation, seed {init.get('seed', '?')} (untrained weights)"
    top1 = meta.metrics.get("val_top1")
    n = meta.num_classes or 0
    if not isinstance(top1, (int, float)):
        return "no recorded accuracy: these weights may be untrained"
    top1 = top1 / 100 if top1 > 1 else top1
    chance = 1 / n if n else 0.0
    if top1 < chance + BARELY_TRAINED * (1 - chance):
        epochs = meta.epoch
        after = f" after {epochs} epoch{'s' if epochs != 1 else ''}" if isinstance(epochs, int) else ""
        return f"barely trained: val top-1 {top1:.1%}{after} (chance {chance:.1%})"
    return None


def with_note(caption: str, meta: dict[str, Any]) -> str:
    """``caption`` followed by ``[<weights_note>]`` when the weights are untrained or barely trained."""
    note = weights_note(meta)
    return caption if note is None else f"{caption} [{note}]"


def smoothness(weight: np.ndarray) -> float | None:
    """Correlation between neighbouring pixels of the filters ``out x in x kh x kw`` (None for 1x1 kernels)."""
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim != 4 or (w.shape[2] < 2 and w.shape[3] < 2):
        return None
    w = w - w.mean(axis=(2, 3), keepdims=True)
    a = np.concatenate([w[..., :, :-1].ravel(), w[..., :-1, :].ravel()])
    b = np.concatenate([w[..., :, 1:].ravel(), w[..., 1:, :].ravel()])
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def recorded_seed(meta: dict[str, Any]) -> int | None:
    """The seed the weights were initialised with: a random model's, or the training run's."""
    meta = CheckpointMeta.of(meta)
    init = meta.extra.get("init") or {}
    seed = init.get("seed") if init.get("random") else meta.train_config.get("seed")
    return seed if isinstance(seed, int) else None


def initial_model(meta: dict[str, Any], seed: int | None = None) -> nn.Module | None:
    """The model exactly as the training worker initialised it (seeded with ``train_config.seed`` just before
    ``create_model``; ``seed`` overrides it), or None when there is no seed or the model cannot be rebuilt."""
    from cnnviz.models import create_model

    meta = CheckpointMeta.of(meta)
    seed = recorded_seed(meta) if seed is None else seed
    if seed is None or meta.arch is None:
        return None
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return create_model(meta.arch, **meta.model_args).eval()
    except (TypeError, ValueError, KeyError):
        return None


@dataclass
class FilterMovement:
    """How far ``layer``'s filters are from a random start."""

    layer: str
    smoothness: float | None  # neighbouring-pixel correlation of the filters (None: 1x1 kernels)
    random_smoothness: float | None  # the same for the layer at its (same-seed) random initialisation
    distance: float | None  # ||W - W0|| / ||W0|| (None: the start is unknown)
    random: bool  # the weights are a random initialisation
    first_layer: bool = True  # the model's first convolution (the one expected to show edges and colour blobs)

    @property
    def mostly_noise(self) -> bool:
        """A first layer that has left its start (not :attr:`near_start`) but is barely smoother than it was."""
        return (self.first_layer and not self.near_start and self.smoothness is not None
                and self.random_smoothness is not None and self.smoothness - self.random_smoothness < SMOOTH_TRAINED)

    @property
    def near_start(self) -> bool:
        """True when the filters are still close to their random start (see the module's docstring)."""
        if self.random:
            return True
        if self.distance is not None:
            return self.distance < NEAR_START
        if self.smoothness is not None and self.random_smoothness is not None:
            return self.smoothness < self.random_smoothness + SMOOTH_MARGIN
        return False

    def sentence(self) -> str:
        """The numbers with what they mean, for a caption beside the filters."""
        if self.random:
            return (f"{self.layer} is a random initialisation: these filters have not learnt anything, so neighbouring "
                    f"pixels are unrelated (correlation {_fmt(self.smoothness)}).")
        parts = []
        if self.distance is not None:
            parts.append(f"the weights have moved {self.distance:.2f} of their initial size away from their random "
                         "start (||W - W0|| / ||W0||, W0 rebuilt from the run's seed)")
        if self.smoothness is not None:
            parts.append(f"neighbouring filter pixels correlate {_fmt(self.smoothness)} (at the random start "
                         f"{_fmt(self.random_smoothness)}; trained first layers are smooth edges and colour blobs, "
                         "so the number grows as they learn)")
        if not parts:
            return f"{self.layer}: no measure of training applies (1x1 kernels and no recorded seed)."
        text = f"{self.layer}: " + "; ".join(parts) + "."
        if self.near_start:
            text += " These filters are still close to their random start: read them as noise, not as features."
        elif self.mostly_noise:
            gain = self.smoothness - self.random_smoothness
            text += (f" They have moved, but their pixels are only {gain:+.2f} more correlated than at the start: "
                     "still mostly noise-like, with an edge or a colour blob in only some filters.")
        return text


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.2f}"


def filter_movement(model: nn.Module, meta: dict[str, Any], layer: str | None = None,
                    start: nn.Module | None = None) -> FilterMovement:
    """:class:`FilterMovement` of ``layer`` (default: the first convolution). ``start`` is the initial model
    when the caller has it (default: :func:`initial_model`)."""
    from cnnviz.viz.filters import conv_weight, first_conv

    layer = layer or first_conv(model)
    w = conv_weight(model, layer)
    random = bool((CheckpointMeta.of(meta).extra.get("init") or {}).get("random"))
    if random:
        return FilterMovement(layer, smoothness(w), smoothness(w), 0.0, True)
    known = start is not None or recorded_seed(meta) is not None
    # Without a recorded seed, a seed-0 initialisation of the same architecture still gives the smoothness of
    # random filters (the baseline), though not the distance travelled.
    start = start if start is not None else initial_model(meta, None if known else 0)
    w0 = _weight_or_none(start, layer, w.shape)
    distance = None
    if known and w0 is not None and np.linalg.norm(w0) > 0:
        distance = float(np.linalg.norm(w - w0) / np.linalg.norm(w0))
    return FilterMovement(layer, smoothness(w), None if w0 is None else smoothness(w0), distance, False,
                          first_layer=layer == first_conv(model))


def _weight_or_none(model: nn.Module | None, layer: str, shape: tuple[int, ...]) -> np.ndarray | None:
    from cnnviz.viz.filters import conv_weight

    if model is None:
        return None
    try:
        w0 = conv_weight(model, layer)
    except (KeyError, ValueError):
        return None
    return w0 if w0.shape == shape else None
