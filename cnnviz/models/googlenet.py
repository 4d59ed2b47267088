"""GoogLeNet / Inception v1 (Szegedy et al., "Going Deeper with Convolutions", CVPR 2015).

Follows the paper's Table 1 and Figures 2(b)/3 layer by layer:

    conv 7x7/2 (64) -> max pool 3x3/2 -> LRN -> conv 1x1 (64, reduce) -> conv 3x3 (192) -> LRN
    -> max pool 3x3/2 -> inception 3a, 3b -> max pool 3x3/2 -> inception 4a..4e -> max pool 3x3/2
    -> inception 5a, 5b -> avg pool 7x7/1 -> dropout 40% -> linear -> (softmax)

Each Inception module has four branches (Figure 2b): ``branch1`` 1x1; ``branch2`` 1x1 reduce -> 3x3;
``branch3`` 1x1 reduce -> **5x5** (torchvision's GoogLeNet uses a 3x3 here, a known bug kept for its
weights; we follow the paper); ``branch4`` 3x3/1 max pool -> 1x1 "pool proj". Every convolution is followed
by its own ReLU. Two auxiliary classifiers sit on 4a and 4d (Section 5): 5x5/3 avg pool, 1x1 conv 128 + ReLU,
FC 1024 + ReLU, dropout 70%, linear; in training mode the model returns ``(logits, aux1, aux2)`` and the
training loss adds the auxiliary losses weighted by ``aux_loss_weight`` = 0.3.

Layer names read like the paper: ``conv1``, ``pool1``, ``lrn1``, ``conv2_reduce``, ``conv2``, ``inception3a.
branch3.2`` (the 5x5 conv of 3a), ``aux1.fc1``. ``model.features`` is a Sequential *view* over the top-level
modules from ``conv1`` to ``inception5b`` (rebuilt on each access, not a registered submodule, so layer names
stay short and no module is registered twice).

``stem="small"`` (not in the paper, for 64x64 inputs; the default stays ``"paper"``): conv1 at stride 1 and
no first max pool, so a 64x64 image reaches the paper's map sizes from conv2 on (64, then 32, 16 and 8
pixels for stages 3-5, against the paper's 56, 28, 14, 7), as AlexNet's, ZFNet's and ResNet's small stems do.
With the paper's stem a 64x64 image is down to 8x8 by stage 3 and 2x2 by stage 5.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn

from cnnviz.models.declared import FeatureInfo, VariantOption
from cnnviz.models.layers import LocalResponseNorm  # nn.LocalResponseNorm, faster on a CPU
from cnnviz.models.registry import InputSizeError, ModelCard, PaperFigures, register_model
from cnnviz.models.sizes import Window, map_sizes, smallest_input


def _conv_relu(in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    # "All the convolutions, including those inside the Inception modules, use rectified linear activation."
    return [nn.Conv2d(in_ch, out_ch, kernel_size=kernel, stride=stride, padding=kernel // 2), nn.ReLU()]


class Inception(nn.Module):
    """One Inception module (Figure 2b): four parallel branches concatenated along channels.

    Args follow Table 1's columns: ``n1x1``, ``n3x3red`` -> ``n3x3``, ``n5x5red`` -> ``n5x5``, ``pool_proj``.
    """

    def __init__(self, in_ch: int, n1x1: int, n3x3red: int, n3x3: int, n5x5red: int, n5x5: int,
                 pool_proj: int) -> None:
        super().__init__()
        self.branch1 = nn.Sequential(*_conv_relu(in_ch, n1x1, 1))
        self.branch2 = nn.Sequential(*_conv_relu(in_ch, n3x3red, 1), *_conv_relu(n3x3red, n3x3, 3))
        # The paper's 5x5 (padding 2). torchvision uses 3x3 here (pytorch/vision#906).
        self.branch3 = nn.Sequential(*_conv_relu(in_ch, n5x5red, 1), *_conv_relu(n5x5red, n5x5, 5))
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True), *_conv_relu(in_ch, pool_proj, 1)
        )
        self.out_channels = n1x1 + n3x3 + n5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x C x H x W -> N x (n1x1 + n3x3 + n5x5 + pool_proj) x H x W
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier (Section 5): avg pool 5x5/3, 1x1 conv 128 + ReLU, FC 1024 + ReLU, dropout 70%, FC.

    ``map_size`` is the side of the 4a/4d map it reads (14 at 224). The paper's 5x5/3 pool turns 14x14 into
    4x4; where the map is smaller than 5x5 (64x64 input: 4x4) the pool cannot run and is left out (an
    ``nn.Identity`` named ``pool``): the map is then used as it is.
    """

    def __init__(self, in_ch: int, num_classes: int, map_size: int) -> None:
        super().__init__()
        if map_size >= 5:
            self.pool = nn.AvgPool2d(kernel_size=5, stride=3)  # 4a: 14x14x512 -> 4x4x512 at 224
            side = (map_size - 5) // 3 + 1
        else:
            self.pool = nn.Identity()  # adaptation for small inputs (see the card)
            side = map_size
        self.conv = nn.Conv2d(in_ch, 128, kernel_size=1)
        self.relu1 = nn.ReLU()
        self.fc1 = nn.Linear(128 * side * side, 1024)  # 2048 -> 1024 at 224
        self.relu2 = nn.ReLU()
        self.dropout = nn.Dropout(p=0.7)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x 512 x 14 x 14 (aux1; 528 channels for aux2)
        x = self.pool(x)
        # N x 512 x 4 x 4
        x = self.relu1(self.conv(x))
        # N x 128 x 4 x 4
        x = torch.flatten(x, 1)
        # N x 2048
        x = self.relu2(self.fc1(x))
        # N x 1024
        x = self.dropout(x)
        return self.fc2(x)  # N x num_classes


# The windows that change the map's side (every other layer keeps it): Table 1's conv1 and the four max pools,
# ceil-rounded as in the reference Caffe model. Spatial side after each: 112, 56, 28, 14, 7 at 224. The small
# stem's conv1 runs at stride 1 (padding 3 keeps the side) and it has no pool1 (a 1x1/1 window: the identity).
STEMS = ("paper", "small")
_WINDOWS: dict[str, list[Window]] = {
    "paper": [("conv1", 7, 2, 3, False), ("pool1", 3, 2, 0, True), ("pool2", 3, 2, 0, True),
              ("pool3", 3, 2, 0, True), ("pool4", 3, 2, 0, True)],
    "small": [("conv1", 7, 1, 3, False), ("pool1", 1, 1, 0, False), ("pool2", 3, 2, 0, True),
              ("pool3", 3, 2, 0, True), ("pool4", 3, 2, 0, True)],
}


def _check_stem(stem: str) -> str:
    if stem not in STEMS:
        raise ValueError(f"stem must be 'paper' or 'small', got {stem!r}")
    return stem


def _map_sizes(input_size: int, stem: str = "paper") -> dict[str, int]:
    """Spatial side after each stage (Table 1's "output size" column for 224); 0 where a layer cannot run."""
    sizes = map_sizes(input_size, _WINDOWS[_check_stem(stem)])
    return {"conv1": sizes["conv1"], "pool1": sizes["pool1"], "stage3": sizes["pool2"], "stage4": sizes["pool3"],
            "stage5": sizes["pool4"]}


def _valid(input_size: int, stem: str = "paper") -> bool:
    return min(_map_sizes(input_size, stem).values()) >= 1


def min_input_size(stem: str = "paper") -> int:
    """Smallest square input for which every layer runs."""
    return smallest_input(_WINDOWS[_check_stem(stem)])


class GoogLeNet(nn.Module):
    """GoogLeNet as in the paper's Table 1.

    Args:
        num_classes: outputs of the final linear layer (and of the auxiliary classifiers).
        input_size: square input side (224 in the paper); fixes the final average pool's kernel and the
            auxiliary classifiers' FC widths.
        aux_logits: build the two auxiliary classifiers (on 4a and 4d); used in training mode only.
        dropout: before the final linear layer (0.4 in the paper).
        stem: ``"paper"`` (Table 1: conv1 7x7/2, max pool 3x3/2) or ``"small"`` (conv1 7x7/1, no pool1; for
            64x64 inputs, not in the paper). The default stays the paper's, also at 64x64 (unlike AlexNet's
            "auto"): a GoogLeNet checkpoint saved before this option existed names no stem and was trained
            with the paper's, and both stems have the same weight shapes, so a default that changed with the
            input would load those weights into the other network without an error.
    """

    def __init__(self, num_classes: int = 1000, input_size: int = 224, aux_logits: bool = True,
                 dropout: float = 0.4, stem: str = "paper") -> None:
        super().__init__()
        if not _valid(input_size, stem):
            halvings = "five times (7x7/2 conv, four" if stem == "paper" else "three times (three"
            raise InputSizeError(
                f"GoogLeNet ({stem} stem) halves the map {halvings} 3x3/2 max pools) and each pool needs "
                f"a map of at least 2x2, so it needs at least {min_input_size(stem)}x{min_input_size(stem)} "
                f"pixels; got {input_size}x{input_size}"
            )
        sizes = _map_sizes(input_size, stem)
        self.stem = stem
        self.aux_logits = aux_logits
        self.aux_loss_weight = 0.3  # Section 5: "their loss is added to the total loss with a discount weight 0.3"

        # Stem (Table 1 rows 1-5, Figure 3). Pools use ceil mode as the reference Caffe model does
        # (112 -> 56 -> 28 -> 14 -> 7 with no padding); torchvision does the same.
        # Small stem (64x64): conv1 at stride 1 and pool1 an identity (kept under its name, so layer names and
        # the weights' keys stay the paper's): N x 64 x 64 x 64 from conv1 to conv2, the paper's 56 x 56.
        small = stem == "small"
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=1 if small else 2, padding=3)  # N x 64 x 112 x 112
        self.relu1 = nn.ReLU()
        self.pool1 = nn.Identity() if small else nn.MaxPool2d(3, stride=2, ceil_mode=True)  # N x 64 x 56 x 56
        # LRN: the paper gives no parameters. We use the BVLC reference GoogLeNet's (local_size 5,
        # alpha 1e-4, beta 0.75, k 1). Caffe, like torch.nn.LocalResponseNorm, divides alpha by the size,
        # b = a / (k + alpha/n * sum a^2)^beta, so the numbers carry over unchanged.
        self.lrn1 = LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=1.0)
        self.conv2_reduce = nn.Conv2d(64, 64, kernel_size=1)  # N x 64 x 56 x 56 ("3x3 reduce" of conv2)
        self.relu2_reduce = nn.ReLU()
        self.conv2 = nn.Conv2d(64, 192, kernel_size=3, padding=1)  # N x 192 x 56 x 56
        self.relu2 = nn.ReLU()
        self.lrn2 = LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=1.0)
        self.pool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # N x 192 x 28 x 28

        # Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)  # N x 256 x 28 x 28
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)  # N x 480 x 28 x 28
        self.pool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # N x 480 x 14 x 14
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)  # N x 512 x 14 x 14
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)  # N x 512 x 14 x 14
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)  # N x 512 x 14 x 14
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)  # N x 528 x 14 x 14
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)  # N x 832 x 14 x 14
        self.pool4 = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # N x 832 x 7 x 7
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)  # N x 832 x 7 x 7
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)  # N x 1024 x 7 x 7

        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes, sizes["stage4"])  # on 4a
            self.aux2 = InceptionAux(528, num_classes, sizes["stage4"])  # on 4d
        else:
            self.aux1 = None
            self.aux2 = None

        # Table 1: "avg pool 7x7/1" over the 7x7 map = a global average; at other sizes the kernel is the
        # final map's side (2x2 at 64x64, 8x8 with the small stem) so it stays a global average.
        self.final_size = sizes["stage5"]
        self.avgpool = nn.AvgPool2d(kernel_size=self.final_size, stride=1)  # N x 1024 x 1 x 1
        self.dropout = nn.Dropout(p=dropout)  # "dropout (40%)"
        self.fc = nn.Linear(1024, num_classes)  # "linear", then softmax (folded into the loss)
        self._init_weights()
        # Hidden blocks: the stem's convolutions and every Inception module (with the pool after it), each at
        # the stride its output has reached; 5b's output is the globally pooled vector. The auxiliary heads
        # run only in training and are not blocks.
        r = 1 if small else 4  # the stride reached after the stem's conv1 and pool1
        self.feature_info = [
            FeatureInfo("conv1", "lrn1", "conv", 64, r),
            FeatureInfo("conv2_reduce", "relu2_reduce", "conv", 64, r),
            FeatureInfo("conv2", "pool2", "conv", 192, 2 * r),
            FeatureInfo("inception3a", "inception3a", "inception", 256, 2 * r),
            FeatureInfo("inception3b", "pool3", "inception", 480, 4 * r),
            *(FeatureInfo(f"inception4{k}", f"inception4{k}", "inception", getattr(self, f"inception4{k}").out_channels,
                          4 * r) for k in "abcd"),
            FeatureInfo("inception4e", "pool4", "inception", 832, 8 * r),
            FeatureInfo("inception5a", "inception5a", "inception", 832, 8 * r),
            FeatureInfo("inception5b", "avgpool", "inception", 1024, None),
        ]

    _FEATURE_NAMES = (
        "conv1", "relu1", "pool1", "lrn1", "conv2_reduce", "relu2_reduce", "conv2", "relu2", "lrn2", "pool2",
        "inception3a", "inception3b", "pool3", "inception4a", "inception4b", "inception4c", "inception4d",
        "inception4e", "pool4", "inception5a", "inception5b",
    )

    @property
    def features(self) -> nn.Sequential:
        """The convolutional body conv1 .. inception5b as a Sequential view (not a registered submodule)."""
        return nn.Sequential(OrderedDict((n, getattr(self, n)) for n in self._FEATURE_NAMES))

    def _init_weights(self) -> None:
        # The paper does not state its initialisation (DistBelief, asynchronous SGD). We use the "xavier"
        # filler of the BVLC reference model (uniform, variance 1/fan_in = Kaiming-uniform with gain 1) for
        # convolutions and linear layers, and zero biases (the reference uses 0.2 for conv biases).
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_uniform_(m.weight, nonlinearity="linear")
                nn.init.zeros_(m.bias)

    def _body(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        want_aux = self.training and self.aux_logits
        # N x 3 x 224 x 224
        x = self.pool1(self.relu1(self.conv1(x)))
        # N x 64 x 56 x 56
        x = self.lrn1(x)
        x = self.relu2_reduce(self.conv2_reduce(x))
        # N x 64 x 56 x 56
        x = self.relu2(self.conv2(x))
        # N x 192 x 56 x 56
        x = self.pool2(self.lrn2(x))
        # N x 192 x 28 x 28
        x = self.inception3a(x)
        # N x 256 x 28 x 28
        x = self.inception3b(x)
        # N x 480 x 28 x 28
        x = self.pool3(x)
        # N x 480 x 14 x 14
        x = self.inception4a(x)
        # N x 512 x 14 x 14
        aux1 = self.aux1(x) if want_aux else None
        x = self.inception4b(x)
        # N x 512 x 14 x 14
        x = self.inception4c(x)
        # N x 512 x 14 x 14
        x = self.inception4d(x)
        # N x 528 x 14 x 14
        aux2 = self.aux2(x) if want_aux else None
        x = self.inception4e(x)
        # N x 832 x 14 x 14
        x = self.pool4(x)
        # N x 832 x 7 x 7
        x = self.inception5a(x)
        # N x 832 x 7 x 7
        x = self.inception5b(x)
        # N x 1024 x 7 x 7
        return x, aux1, aux2

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The inception 5b map (N x 1024 x 7 x 7 at 224; 2 x 2 at 64, 8 x 8 with the small stem)."""
        return self._body(x)[0]

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(x)
        # N x 1024 x 1 x 1
        x = torch.flatten(x, 1)
        # N x 1024
        x = self.dropout(x)
        return self.fc(x)  # N x num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits; in training mode with ``aux_logits`` the tuple ``(logits, aux1, aux2)``."""
        feats, aux1, aux2 = self._body(x)
        logits = self.forward_head(feats)
        if aux1 is not None and aux2 is not None:
            return logits, aux1, aux2
        return logits


MIN_INPUT = min_input_size()

_CARD = ModelCard(
    name="googlenet",
    display_name="GoogLeNet (Inception v1)",
    family="GoogLeNet",
    title="Going Deeper with Convolutions",
    authors="Christian Szegedy, Wei Liu, Yangqing Jia, Pierre Sermanet, Scott Reed, Dragomir Anguelov, "
            "Dumitru Erhan, Vincent Vanhoucke, Andrew Rabinovich",
    venue="CVPR 2015",
    year=2015,
    url="https://arxiv.org/abs/1409.4842",
    key_ideas=(
        "Inception modules: parallel 1x1, 3x3 and 5x5 convolutions and a 3x3 max pool, concatenated, so each "
        "stage sees several scales at once.",
        "1x1 convolutions as dimension reductions before the expensive 3x3 and 5x5 convolutions (and after the "
        "pool), which keeps 22 layers within a budget of about 1.5 billion multiply-adds.",
        "No large fully connected layers: a 7x7 average pool before a single linear layer (about 6.8M "
        "parameters in all, 12x fewer than AlexNet).",
        "Two auxiliary classifiers on 4a and 4d whose losses (weight 0.3) add gradient to the middle layers "
        "during training; they are discarded at inference.",
        "Won ILSVRC 2014 classification with 6.67% top-5 error (7 models, 144 crops each).",
    ),
    paper_input=(3, 224, 224),
    paper_classes=1000,
    figures=PaperFigures(
        params=6_800_000,
        top1_error=None,
        top5_error=10.07,
        gmacs=1.5,
        note="Table 3: single model, single crop, ILSVRC 2014 validation: 10.07% top-5 (1 model x 10 crops: "
             "9.15%; 1 model x 144 crops: 7.89%; 7 models x 144 crops: 6.67%, the winning test-set entry, "
             "Table 2). Parameters: sum of Table 1's params column "
             "(~6.8M, without the auxiliary classifiers). MACs: 'a computational budget of 1.5 billion "
             "multiply-adds at inference time' (Section 1; Table 1's ops column sums to ~1.5G). "
             "The paper reports no top-1 error.",
    ),
    deviations=(
        "LRN parameters (size 5, alpha 1e-4, beta 0.75, k 1) come from the BVLC Caffe reference model; the "
        "paper does not state them.",
        "Pooling uses ceil rounding (Caffe's rule, as in the reference model and torchvision) so that "
        "112 -> 56 -> 28 -> 14 -> 7 matches Table 1 without padding.",
        "Initialisation: the paper does not state one; we use the reference model's 'xavier' filler "
        "(uniform, variance 1/fan_in) and zero biases.",
        "Softmax layers (main and auxiliary) are folded into the cross-entropy loss; the model returns logits.",
        "The auxiliary classifiers exist only when aux_logits=True and are used in training mode only "
        "(as in the paper, they are discarded at inference).",
        "Evaluation is a single forward pass on one crop; the paper's best figures average 144 crops and "
        "7 models.",
        "Unlike torchvision, the third branch uses the paper's 5x5 convolution (torchvision's is 3x3), and "
        "there are no batch-norm layers and no input transform.",
        "Parameter count: ours is 6,998,552 without the auxiliary classifiers (13,378,280 with them), biases "
        "included, exactly what Table 1's channel numbers give; the paper's params column sums to about 6.8M "
        "(its per-module figures are rounded and a little lower, e.g. 159K for inception 3a, where the "
        "channel numbers give 163,328 weights).",
    ),
    adaptations_64=(
        "At 64x64 the maps are 32 (conv1), 16, 8 (stage 3), 4 (stage 4) and 2 (stage 5) pixels wide instead "
        "of 112, 56, 28, 14 and 7; all convolutions and pools are unchanged.",
        "The final 'avg pool 7x7/1' becomes a 2x2/1 average pool: still a global average over the last map.",
        "The auxiliary classifiers read a 4x4 map (14x14 at 224); the paper's 5x5/3 average pool cannot run "
        "on it, so it is left out (an identity named 'pool'). Conveniently 4x4 is exactly what the paper's pool "
        "produces at 224, so the auxiliary FC layer keeps its 4x4x128 = 2048 inputs and its parameter count.",
        "The classifiers have 200 outputs (Tiny ImageNet classes) instead of 1000.",
        "stem='small' (an option, not the default; the zoo trains with it): conv1 keeps its 64 7x7 kernels "
        "(same weight shape, so filters look comparable) at stride 1, and the first 3x3/2 max pool is left out "
        "(an identity named 'pool1'). A 64x64 image then runs conv1 and conv2 at 64x64 (the paper's 112 and "
        "56), stage 3 at 32, stage 4 at 16 and stage 5 at 8 (the paper's 28, 14, 7): the paper's map sizes "
        "from conv2 on, as AlexNet's and ZFNet's small stems and ResNet's tiny stem keep theirs. The auxiliary "
        "classifiers' 5x5/3 pool then runs as in the paper (16x16 -> 4x4), and the final average pool is 8x8. "
        "Parameters are unchanged; compute per image is about the paper network's at 224 (conv2 at 64x64 costs "
        "more than at 56x56, conv1 less than at 112x112).",
        "The default stays stem='paper' at every size: GoogLeNet checkpoints saved before the option existed "
        "name no stem, and the two stems have the same weight shapes, so a default that followed the input "
        "size would load them into the other network without an error.",
    ),
    min_input=MIN_INPUT,
    min_input_of=lambda variant: min_input_size(variant["stem"]),  # the small stem runs from 8 pixels
    options=(
        VariantOption("aux_logits", bool, True, "build the two auxiliary classifiers (True|False, default True; "
                      "training mode only)"),
        VariantOption("dropout", float, 0.4, "dropout before the final linear layer (default 0.4, as in the paper)"),
        VariantOption("stem", str, "paper", "'paper' (default: conv1 7x7/2 + max pool 3x3/2, Table 1) or 'small' "
                      "(conv1 7x7/1, no first pool: the paper's map sizes from conv2 on at 64x64)", choices=STEMS),
    ),
)


@register_model(_CARD)
def googlenet(num_classes: int = 1000, input_size: int = 224, aux_logits: bool = True,
              dropout: float = 0.4, stem: str = "paper") -> GoogLeNet:
    """GoogLeNet of the paper's Table 1 (see :class:`GoogLeNet`)."""
    return GoogLeNet(num_classes=num_classes, input_size=input_size, aux_logits=aux_logits, dropout=dropout,
                     stem=stem)
