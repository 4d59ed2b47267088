"""LeNet-5 (LeCun, Bottou, Bengio & Haffner, "Gradient-Based Learning Applied to Document Recognition",
Proceedings of the IEEE, 1998), Section II.B and Appendix A.

Two variants:

* ``variant="paper"`` (default), as published: 32x32 input; the scaled tanh ``f(a) = 1.7159 tanh(2a/3)``
  (Appendix A) after every layer up to F6; S2/S4 are *trainable subsampling* layers (the 2x2 sum times one
  trainable coefficient plus one trainable bias per map, then the squashing function); C3 takes only the S2 maps
  of the paper's Table I (1,516 parameters, 151,600 connections, not a full 2,416-parameter convolution); C5 is
  a 5x5 convolution (1x1 output at 32x32); F6 has 84 units; the output layer is the paper's Euclidean RBF
  (``output="rbf"``) or a plain linear layer (``output="linear"``).
* ``variant="modern"``: the usual re-implementation of today: ReLU, 2x2 max pooling, a full C3, linear output.
  It is not in the paper.

Layer names follow the paper: ``features.c1``, ``features.s2``, ``features.c3``, ``features.s4``,
``features.c5``, ``f6``, ``output``.

Shapes at the paper's input (N x 1 x 32 x 32): C1 6x28x28, S2 6x14x14, C3 16x10x10, S4 16x5x5, C5 120x1x1,
F6 84, output 10. Parameters: C1 156, S2 12, C3 1,516, S4 32, C5 48,120, F6 10,164 = 60,000 (the paper's
"60,000 trainable free parameters"), plus the output layer: 0 trainable for the RBF (its centres are fixed, a
buffer), 850 for a linear layer.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnviz.models.declared import FeatureInfo, VariantOption
from cnnviz.models.registry import InputSizeError, ModelCard, PaperFigures, register_model
from cnnviz.models.sizes import map_sizes, stack_windows

# Table I of the paper: the S2 feature maps combined by each C3 feature map (columns 0..15 of the table).
# 6 maps take 3 contiguous S2 maps, 6 take 4 contiguous, 3 take 4 discontinuous, the last takes all 6.
C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


def c3_connection_mask() -> torch.Tensor:
    """Table I as a bool tensor ``[16 C3 maps, 6 S2 maps]`` (True where the C3 map reads the S2 map)."""
    return torch.tensor([[i in inputs for i in range(6)] for inputs in C3_TABLE], dtype=torch.bool, device="cpu")


class ScaledTanh(nn.Module):
    """The paper's squashing function ``f(a) = A tanh(S a)``, A = 1.7159, S = 2/3 (Appendix A).

    The constants make ``f(1) = 1`` and ``f(-1) = -1`` and put the maximum of the second derivative at
    ``a = 1``, so targets of +-1 sit where the function is still far from saturation.
    """

    def __init__(self, amplitude: float = 1.7159, slope: float = 2.0 / 3.0) -> None:
        super().__init__()
        self.amplitude = amplitude
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.amplitude * torch.tanh(self.slope * x)

    def extra_repr(self) -> str:
        return f"amplitude={self.amplitude}, slope={self.slope:.6g}"


class TrainableSubsampling(nn.Module):
    """S2/S4: each map's non-overlapping ``k x k`` sums, times a trainable coefficient, plus a trainable bias.

    Two parameters per map (S2: 12, S4: 32). The squashing function is a separate module after it, so hooks
    see the pre-activation. ``kernel_size``/``stride``/``padding`` are exposed for the layer tables.
    """

    def __init__(self, channels: int, kernel_size: int = 2, stride: int = 2) -> None:
        super().__init__()
        self.channels = channels
        self.kernel_size = (kernel_size, kernel_size)
        self.stride = (stride, stride)
        self.padding = (0, 0)
        self.weight = nn.Parameter(torch.ones(channels))  # the trainable coefficient, one per map
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size[0]
        # average * k^2 == the sum of the k x k inputs ("the four inputs ... are added").
        summed = F.avg_pool2d(x, self.kernel_size, self.stride) * (k * k)
        return summed * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.channels}, kernel_size={self.kernel_size}, stride={self.stride}"


class PartialConv2d(nn.Module):
    """A convolution where output map ``o`` reads input map ``i`` only where ``connection_mask[o, i]``.

    Only the connected kernels are parameters (``weight`` is ``[connections, kH, kW]``), so the parameter
    count is the paper's (C3: 60 kernels x 25 + 16 biases = 1,516), not a masked full convolution's (2,416).
    ``connection_mask`` (bool, out x in), ``in_channels``, ``out_channels``, ``kernel_size``, ``stride`` and
    ``padding`` are exposed for the layer tables (connections = output positions x (connected weights + 1)).
    """

    def __init__(self, connection_mask: torch.Tensor | list[list[bool]], kernel_size: int = 5) -> None:
        super().__init__()
        # The table is read in Python (not with nonzero()), so the module also builds on the meta device,
        # where the layer tables construct models without allocating weights.
        rows = [[bool(v) for v in row] for row in (
            connection_mask.tolist() if isinstance(connection_mask, torch.Tensor) else connection_mask)]
        self.out_channels, self.in_channels = len(rows), len(rows[0])
        self.kernel_size = (kernel_size, kernel_size)
        self.stride = (1, 1)
        self.padding = (0, 0)
        pairs = [(o, i) for o, row in enumerate(rows) for i, v in enumerate(row) if v]  # grouped by output map
        self.register_buffer("connection_mask", torch.tensor(rows, dtype=torch.bool), persistent=False)
        self.register_buffer("_out_idx", torch.tensor([o for o, _ in pairs], dtype=torch.long), persistent=False)
        self.register_buffer("_in_idx", torch.tensor([i for _, i in pairs], dtype=torch.long), persistent=False)
        self.weight = nn.Parameter(torch.empty(len(pairs), kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(self.out_channels))

    def dense_weight(self) -> torch.Tensor:
        """The equivalent full ``[out, in, kH, kW]`` kernel (zeros where the table has no connection)."""
        full = self.weight.new_zeros(self.out_channels, self.in_channels, *self.kernel_size)
        return full.index_put((self._out_idx, self._in_idx), self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.dense_weight(), self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"connections={int(self.connection_mask.sum())}")


class EuclideanRBF(nn.Module):
    """The paper's output layer: ``y_i = sum_j (x_j - w_ij)^2`` with fixed +-1 centres ``w_i`` (Section II.B).

    Returns ``-y_i`` as logits, so the largest logit is the nearest centre. Softmax cross-entropy on ``-y`` is the
    paper's discriminative criterion (its equation 9) without the constant "rubbish class" term ``e^-j``.
    The paper drew its centres by hand as 7x12 bitmaps of the characters (kept fixed); we do not have those
    bitmaps, so the centres are fixed pseudo-random +-1 codes (seeded, a buffer: not trained, saved with the
    weights).
    """

    def __init__(self, in_features: int, out_features: int, seed: int = 0) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        gen = torch.Generator().manual_seed(seed)  # a CPU generator: same codes on every device
        centres = torch.randint(0, 2, (out_features, in_features), generator=gen, device="cpu").float() * 2 - 1
        # onto the default device (meta when the layer tables build without weights)
        self.register_buffer("centres", centres.to(torch.empty(0).device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # ||x||^2 - 2 x.c + ||c||^2, computed densely (cheaper than broadcasting N x C x 84).
        dist = (x * x).sum(1, keepdim=True) - 2 * x @ self.centres.t() + (self.centres * self.centres).sum(1)
        return -dist

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


def _uniform_fan_in_(tensor: torch.Tensor, fan_in: float) -> None:
    # Section II.B / Appendix: weights "initialized with random values using a uniform distribution between
    # -2.4/F_i and 2.4/F_i where F_i is the number of inputs (fan-in) of the unit".
    bound = 2.4 / fan_in
    with torch.no_grad():
        tensor.uniform_(-bound, bound)


class LeNet5(nn.Module):
    """LeNet-5: ``features`` = C1, S2, C3, S4, C5 (each followed by its activation); head = F6 and the output.

    At inputs larger than 32x32 C5 gives a map larger than 1x1 (the paper points this out as the reason C5 is
    a convolution); we then average it over positions (``pool``) before F6, so F6 keeps its 120 inputs.
    """

    def __init__(self, num_classes: int = 10, input_size: int = 32, in_channels: int = 1,
                 variant: str = "paper", output: str = "rbf") -> None:
        super().__init__()
        if variant not in ("paper", "modern"):
            raise ValueError(f"LeNet-5 variant must be 'paper' or 'modern', got {variant!r}")
        if output not in ("rbf", "linear"):
            raise ValueError(f"LeNet-5 output must be 'rbf' or 'linear', got {output!r}")
        self.variant = variant
        self.input_size = input_size
        self.in_channels = in_channels
        paper = variant == "paper"

        def act() -> nn.Module:
            return ScaledTanh() if paper else nn.ReLU()

        def sub(ch: int) -> nn.Module:
            return TrainableSubsampling(ch) if paper else nn.MaxPool2d(kernel_size=2, stride=2)

        # Paper: the squashing function follows every layer up to F6, subsampling layers included.
        # Modern: no activation after the (max) pooling layers.
        layers: list[tuple[str, nn.Module]] = [
            ("c1", nn.Conv2d(in_channels, 6, kernel_size=5)), ("act1", act()),
            ("s2", sub(6)),
        ]
        if paper:
            layers.append(("act2", act()))
        layers += [("c3", PartialConv2d(c3_connection_mask(), 5) if paper else nn.Conv2d(6, 16, 5)),
                   ("act3", act()), ("s4", sub(16))]
        if paper:
            layers.append(("act4", act()))
        layers += [("c5", nn.Conv2d(16, 120, kernel_size=5)), ("act5", act())]
        if not paper:  # modern naming: the activations are ReLUs
            layers = [(n.replace("act", "relu"), m) for n, m in layers]
        self.features = nn.Sequential(OrderedDict(layers))
        self.c5_size = map_sizes(input_size, stack_windows(self.features))["c5"]
        if self.c5_size < 1:
            raise InputSizeError(
                f"LeNet-5 needs at least 32x32 pixels: at {input_size}x{input_size} the maps shrink below the "
                f"5x5 window of C5 (C1 and C3 take 4 pixels each, S2 and S4 halve the map)"
            )
        # Only when C5's map is larger than 1x1 (inputs above 32): not in the paper, see the card.
        self.pool = nn.AdaptiveAvgPool2d(1) if self.c5_size > 1 else None
        self.f6 = nn.Linear(120, 84)
        self.act6 = act()
        self.output = EuclideanRBF(84, num_classes) if output == "rbf" else nn.Linear(84, num_classes)
        self._init_weights(paper)
        # The hidden blocks: each layer with weights (the paper's trainable subsampling included) and what
        # follows it; the output layer is the head. C5's output is the pooled vector when there is a pool.
        c5_output, c5_reduction = ("pool", None) if self.pool is not None else (f"features.{layers[-1][0]}", 4)
        self.feature_info = [
            FeatureInfo("features.c1", "features.act1" if paper else "features.s2", "conv", 6, 1 if paper else 2),
            *([FeatureInfo("features.s2", "features.act2", "subsampling", 6, 2)] if paper else []),
            FeatureInfo("features.c3", "features.act3" if paper else "features.s4", "conv", 16, 2 if paper else 4),
            *([FeatureInfo("features.s4", "features.act4", "subsampling", 16, 4)] if paper else []),
            FeatureInfo("features.c5", c5_output, "conv", 120, c5_reduction),
            FeatureInfo("f6", "act6", "fc", 84, None),
        ]

    def _init_weights(self, paper: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                if paper:
                    fan_in = m.weight[0].numel()
                    _uniform_fan_in_(m.weight, fan_in)
                else:  # modern variant: He init for ReLU (not in the paper)
                    nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, PartialConv2d):
                # Fan-in differs per C3 map (3, 4 or 6 S2 maps x 25): bound each map's kernels by its own.
                with torch.no_grad():
                    per_map = m.connection_mask.sum(1)[m._out_idx].float() * 25
                    bound = (2.4 / per_map).view(-1, 1, 1)
                    m.weight.uniform_(-1, 1).mul_(bound)
                nn.init.zeros_(m.bias)
            elif isinstance(m, TrainableSubsampling):
                _uniform_fan_in_(m.weight, 4)  # fan-in 4 (the 2x2 sum); bias 0
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise InputSizeError(
                f"LeNet-5 was built for {self.in_channels}-channel images (N x {self.in_channels} x H x W), "
                f"got a tensor of shape {tuple(x.shape)}"
            )
        if min(x.shape[-2:]) < 32:
            raise InputSizeError(f"LeNet-5 needs images of at least 32x32 pixels, got {x.shape[-2]}x{x.shape[-1]}")
        # paper input: N x 1 x 32 x 32
        # c1 -> N x 6 x 28 x 28; s2 -> N x 6 x 14 x 14; c3 -> N x 16 x 10 x 10; s4 -> N x 16 x 5 x 5
        return self.features(x)  # c5 -> N x 120 x 1 x 1 (N x 120 x 9 x 9 at 64x64)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = self.pool(x)  # N x 120 x 1 x 1
        elif x.shape[-2:] != (1, 1):
            raise InputSizeError(
                f"this LeNet-5 was built for {self.input_size}x{self.input_size} inputs (C5 1x1) but C5 gave "
                f"{x.shape[-2]}x{x.shape[-1]}: build it with input_size set to your images' side"
            )
        x = torch.flatten(x, 1)  # N x 120
        x = self.act6(self.f6(x))  # N x 84
        return self.output(x)  # N x num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


CARD = ModelCard(
    name="lenet5",
    display_name="LeNet-5",
    family="LeNet",
    title="Gradient-Based Learning Applied to Document Recognition",
    authors="Yann LeCun, Léon Bottou, Yoshua Bengio, Patrick Haffner",
    venue="Proceedings of the IEEE, 86(11)",
    year=1998,
    url="http://vision.stanford.edu/cs598_spring07/papers/Lecun98.pdf",
    key_ideas=(
        "Convolutional layers: local receptive fields with shared weights (C1, C3, C5), trained end to end by "
        "back-propagation.",
        "Subsampling layers (S2, S4): 2x2 sums times a trainable coefficient plus a trainable bias, then the "
        "squashing function: reduces resolution and sensitivity to shifts and distortions.",
        "C3 connects to only some S2 maps (Table I): fewer connections (151,600) and parameters (1,516) and a "
        "forced break of symmetry, so different C3 maps learn different features.",
        "Scaled tanh squashing f(a) = 1.7159 tanh(2a/3), so f(+-1) = +-1 (Appendix A).",
        "Euclidean RBF output units with fixed +-1 centres: the output is the distance to a class prototype.",
        "About 60,000 trainable parameters but 340,908 connections thanks to weight sharing.",
    ),
    paper_input=(1, 32, 32),
    paper_classes=10,
    figures=PaperFigures(
        params=60_000,
        top1_error=0.95,
        dataset="MNIST",
        note="MNIST test set (10 digits, 28x28 padded to 32x32), no distortions. The paper reports 0.8% error "
             "when the training set is augmented with artificial distortions. Params: the paper's "
             "'60,000 trainable free parameters' (C1..F6; its RBF centres are fixed).",
    ),
    deviations=(
        "Output layer (paper variant, output='rbf'): the paper's RBF centres were hand-drawn 7x12 bitmaps of "
        "the characters; we use fixed pseudo-random +-1 codes (seeded buffer, not trained).",
        "Loss: train the RBF output with softmax cross-entropy on minus the distances; this is the paper's "
        "MAP criterion (eq. 9) without its constant e^-j 'rubbish class' term.",
        "output='linear' replaces the RBF with a trainable linear layer (84 x classes + biases; 850 parameters "
        "at 10 classes) read with softmax: not in the paper.",
        "Initialisation follows the paper (uniform in +-2.4/fan-in, per C3 map for the partial table); biases "
        "start at 0 (the paper does not say).",
        "Input normalisation is left to the data pipeline (the paper scaled pixels so the background is -0.1 "
        "and the ink 1.175, mean about 0 and variance about 1).",
        "Training tricks of the paper (stochastic diagonal Levenberg-Marquardt, its learning-rate schedule) are "
        "not part of the model.",
        "variant='modern' (ReLU, 2x2 max pooling, a full 2,416-parameter C3, linear output, He init) is not in "
        "the paper: it is the common re-implementation, offered for comparison.",
    ),
    adaptations_64=(
        "Tiny ImageNet is RGB: in_channels defaults to 3 at any input other than the paper's 32x32 (1 channel "
        "there); C1 then has 6 x (3x5x5 + 1) = 456 parameters instead of 156.",
        "Every layer keeps its kernel: at 64x64 the maps are C1 60x60, S2 30x30, C3 26x26, S4 13x13, C5 9x9. "
        "The paper notes C5 is a convolution precisely because a bigger input gives a map larger than 1x1.",
        "C5's 9x9x120 map is averaged over positions (an adaptive average pool, not in the paper) before F6, so "
        "F6 keeps its 120 inputs and 10,164 parameters instead of growing to 9,720 inputs.",
        "The output layer has 200 units (200 RBF centres or a 84x200 linear layer).",
    ),
    min_input=32,
    options=(
        VariantOption("variant", str, "paper", "'paper' (default: scaled tanh, trainable subsampling, Table I "
                      "partial C3) or 'modern' (ReLU, max pooling, full C3)", choices=("paper", "modern")),
        VariantOption("output", str, None, "None (default: 'rbf' for the paper variant, 'linear' for the modern "
                      "one), 'rbf' (Euclidean RBF with fixed +-1 centres) or 'linear'",
                      choices=(None, "rbf", "linear")),
        # The app's input size decides it (1 channel only at the paper's 32x32): no widget of its own.
        VariantOption("in_channels", int, None, "None (default: 1 at the paper's 32x32, 3 = RGB at any other "
                      "size) or an integer", in_forms=False),
    ),
)


@register_model(CARD)
def lenet5(num_classes: int = 10, input_size: int = 32, variant: str = "paper", output: str | None = None,
           in_channels: int | None = None) -> LeNet5:
    """LeNet-5 as published (``variant="paper"``) or the modern ReLU/max-pool variant."""
    if output is None:
        output = "rbf" if variant == "paper" else "linear"
    if in_channels is None:
        in_channels = 1 if input_size == 32 else 3
    if in_channels < 1:
        raise ValueError(f"in_channels must be at least 1, got {in_channels}")
    return LeNet5(num_classes, input_size, in_channels=int(in_channels), variant=variant, output=output)
