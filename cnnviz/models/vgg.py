"""VGG (Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition", ICLR 2015).

Configurations A, B, D and E of the paper's Table 1 (VGG-11, -13, -16, -19): stacks of 3x3 convolutions
(stride 1, padding 1) separated by 2x2 stride-2 max pools, then three fully connected layers
4096-4096-classes with dropout 0.5 after the first two. The batch-norm variants (``vgg*_bn``) are NOT in the
paper: they are a later addition (as in torchvision), a BatchNorm2d after every convolution.

At 224x224 the classifier sees 7x7x512 and the parameter counts equal torchvision's (VGG-16: 138,357,544).
torchvision puts an ``AdaptiveAvgPool2d((7, 7))`` before the classifier (an identity at 224); we do not: the
first FC layer takes the final map as it is, ``512 * s * s`` inputs with ``s = input_size // 32``. At 64x64
that is 2x2x512 = 2048 inputs instead of 25,088 (see the card's ``adaptations_64``).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnviz.models.declared import FeatureInfo, VariantOption
from cnnviz.models.registry import InputSizeError, ModelCard, PaperFigures, register_model

# Table 1 of the paper: numbers are 3x3 conv output channels, "M" a 2x2/2 max pool.
cfgs: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # VGG-11
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # VGG-13
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],  # VGG-16
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],  # VGG-19
}


def conv_blocks(cfg: list[int | str], batch_norm: bool = False) -> list[FeatureInfo]:
    """The hidden blocks of :func:`make_layers`' body: each convolution with its ReLU, and the max pool after
    it where there is one (the block's output), at the stride reached there."""
    blocks: list[FeatureInfo] = []
    index, reduction = 0, 1
    for v in cfg:
        if v == "M":
            reduction *= 2
            last = blocks[-1]
            blocks[-1] = FeatureInfo(last.name, f"features.{index}", "conv", last.num_chs, reduction)
            index += 1
        else:
            relu = index + (2 if batch_norm else 1)
            blocks.append(FeatureInfo(f"features.{index}", f"features.{relu}", "conv", int(v), reduction))
            index = relu + 1
    return blocks


def make_layers(cfg: list[int | str], batch_norm: bool = False) -> nn.Sequential:
    """The convolutional body: 3x3/1 pad-1 convs (+ BN) + ReLU, 2x2/2 max pools, as listed in ``cfg``."""
    layers: list[nn.Module] = []
    in_channels = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            out = int(v)
            layers.append(nn.Conv2d(in_channels, out, kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU())  # one non-inplace module per use (hooks/captum see each one)
            in_channels = out
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """VGG: ``features`` (conv body), then ``classifier`` on the flattened final map.

    Args:
        cfg: one of ``cfgs`` ("A", "B", "D", "E").
        num_classes: size of the last FC layer.
        input_size: square input side; fixes the first FC layer's width (``512 * (input_size // 32) ** 2``).
        batch_norm: a BatchNorm2d after every convolution (not in the paper).
        dropout: dropout probability before FC2 and FC3 (0.5 in the paper, Section 3.1).
    """

    def __init__(self, cfg: str, num_classes: int = 1000, input_size: int = 224, batch_norm: bool = False,
                 dropout: float = 0.5) -> None:
        super().__init__()
        if input_size < 32:
            raise InputSizeError(
                f"VGG halves the map five times (2x2/2 max pools), so it needs at least 32x32 pixels; "
                f"got {input_size}x{input_size}"
            )
        self.cfg = cfg
        self.features = make_layers(cfgs[cfg], batch_norm=batch_norm)
        # Five 2x2/2 pools (floor): 224 -> 7, 64 -> 2. The paper's classifier sees 7x7x512.
        self.final_size = input_size // 32
        flat = 512 * self.final_size * self.final_size
        self.classifier = nn.Sequential(
            nn.Linear(flat, 4096),  # FC-4096 (25,088 inputs at 224; 2,048 at 64)
            nn.ReLU(),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),  # FC-4096
            nn.ReLU(),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),  # FC-classes (softmax is in the loss)
        )
        self._init_weights()
        # Hidden blocks: the 3x3 convolutions (with the pool after each stage), then FC1 and FC2 (FC3: the head).
        self.feature_info = [*conv_blocks(cfgs[cfg], batch_norm),
                             FeatureInfo("classifier.0", "classifier.1", "fc", 4096, None),
                             FeatureInfo("classifier.3", "classifier.4", "fc", 4096, None)]

    def _init_weights(self) -> None:
        # Paper, Section 3.1: net A was trained from N(0, 0.01) weights and zero biases, deeper nets started
        # from A's layers; "after the paper submission we found that it is possible to initialise the weights
        # without pre-training by using the random initialisation procedure of Glorot & Bengio (2010)".
        # We use that Glorot (Xavier uniform) initialisation, biases zero. torchvision uses Kaiming instead.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # N x 3 x 224 x 224
        x = self.features(x)
        # N x 512 x 7 x 7 (N x 512 x 2 x 2 at 64x64)
        return x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, 1)
        # N x 25088 (N x 2048 at 64x64)
        x = self.classifier(x)
        # N x num_classes
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


_PAPER = dict(
    family="VGG",
    title="Very Deep Convolutional Networks for Large-Scale Image Recognition",
    authors="Karen Simonyan, Andrew Zisserman",
    venue="ICLR 2015",
    year=2015,
    url="https://arxiv.org/abs/1409.1556",
    paper_input=(3, 224, 224),
    paper_classes=1000,
    min_input=32,
    options=(
        VariantOption("dropout", float, 0.5, "dropout probability before FC2 and FC3 (default 0.5, as in the paper)"),
    ),
)

_KEY_IDEAS = (
    "Depth with small filters: only 3x3 convolutions (stride 1, padding 1); a stack of two has a 5x5 and a "
    "stack of three a 7x7 receptive field, with fewer parameters (27C^2 vs 49C^2) and more non-linearities.",
    "A uniform design: five stages separated by 2x2 stride-2 max pooling, channels doubling "
    "64-128-256-512-512, then FC-4096, FC-4096, FC-1000 with dropout 0.5.",
    "Depth matters: error falls from 11 (A) to 16/19 (D/E) weight layers on ILSVRC-2012 (Table 3).",
    "Scale jittering at training (S in [256, 512]) and dense multi-scale evaluation at test time "
    "(the FC layers turned into convolutions).",
    "Most parameters live in the first FC layer (7x7x512x4096 = 102.8M of VGG-16's 138M); most memory "
    "and compute go to the early high-resolution convolutions.",
)

_DEVIATIONS = (
    "No AdaptiveAvgPool2d((7, 7)) before the classifier (torchvision has one; the paper does not): the first "
    "FC layer takes the final map as it is. At 224 this changes nothing.",
    "Evaluation is a single forward pass on the whole input; the paper's figures use dense (fully "
    "convolutional) evaluation over rescaled images and multi-crop (Section 3.2).",
    "Initialisation: Glorot/Xavier uniform, zero biases (the method the paper's Section 3.1 says works "
    "without pre-training); the paper's own runs initialised D and E from the trained net A.",
    "Configurations A-LRN and C (Table 1: LRN, and 1x1 convolutions) are not offered.",
    "Softmax is folded into the cross-entropy loss; the model returns logits.",
)

_DEVIATIONS_BN = _DEVIATIONS + (
    "Batch normalisation after every convolution is NOT in the paper (it appeared later, Ioffe & Szegedy "
    "2015); this variant follows torchvision's vgg*_bn: Conv -> BatchNorm2d -> ReLU.",
)

_ADAPT_64 = (
    "At 64x64 the five 2x2/2 pools leave a 2x2x512 map (7x7x512 at 224), so the first FC layer takes "
    "2x2x512 = 2,048 inputs instead of 25,088: FC1 has 2048*4096 + 4096 = 8.4M parameters instead of 102.8M. "
    "We do not resample the map back up to 7x7 (as torchvision's AdaptiveAvgPool2d((7, 7)) would): that "
    "would spread each of the 4 positions over 16 of the 49 cells and keep FC1's 102.8M parameters fed by "
    "2,048 distinct numbers.",
    "The last FC layer has 200 outputs (Tiny ImageNet classes) instead of 1000.",
    "The convolutional layers are unchanged (same kernels, strides, paddings and channel counts).",
)

# Table 2 of the paper: parameters in millions; Table 3: single test scale, S=256 train, Q=256 test.
_FIGURES = {
    "A": PaperFigures(params=133_000_000, top1_error=29.6, top5_error=10.4, gmacs=None,
                      note="Table 2: 133M parameters. Table 3: ILSVRC-2012 val, single model, single test "
                           "scale (train S=256, test Q=256, dense evaluation)."),
    "B": PaperFigures(params=133_000_000, top1_error=28.7, top5_error=9.9, gmacs=None,
                      note="Table 2: 133M parameters. Table 3: ILSVRC-2012 val, single model, single test "
                           "scale (train S=256, test Q=256, dense evaluation)."),
    "D": PaperFigures(params=138_000_000, top1_error=27.0, top5_error=8.8, gmacs=None,
                      note="Table 2: 138M parameters. Table 3: ILSVRC-2012 val, single model, single test "
                           "scale (train S=256, test Q=256, dense evaluation); with scale jittering "
                           "S in [256;512], Q=384: 25.6 / 8.1."),
    "E": PaperFigures(params=144_000_000, top1_error=27.3, top5_error=9.0, gmacs=None,
                      note="Table 2: 144M parameters. Table 3: ILSVRC-2012 val, single model, single test "
                           "scale (train S=256, test Q=256, dense evaluation); with scale jittering "
                           "S in [256;512], Q=384: 25.5 / 8.0."),
}

_DEPTH = {"A": 11, "B": 13, "D": 16, "E": 19}


def _register(cfg: str, batch_norm: bool) -> None:
    depth = _DEPTH[cfg]
    name = f"vgg{depth}" + ("_bn" if batch_norm else "")
    display = f"VGG-{depth}" + (" (batch norm)" if batch_norm else "") + f" (config {cfg})"
    figures = _FIGURES[cfg]
    if batch_norm:
        figures = PaperFigures(
            params=None, top1_error=None, top5_error=None,
            note=f"The paper has no batch-norm variant. Plain config {cfg} (vgg{depth}): "
                 f"{figures.params // 1_000_000}M parameters (Table 2), {figures.top1_error} / "
                 f"{figures.top5_error} % top-1 / top-5 error (Table 3, single scale S=Q=256).",
        )
    card = ModelCard(
        name=name,
        display_name=display,
        key_ideas=_KEY_IDEAS,
        figures=figures,
        deviations=_DEVIATIONS_BN if batch_norm else _DEVIATIONS,
        adaptations_64=_ADAPT_64,
        **_PAPER,
    )

    @register_model(card)
    def factory(num_classes: int = 1000, input_size: int = 224, dropout: float = 0.5) -> VGG:
        return VGG(cfg, num_classes=num_classes, input_size=input_size, batch_norm=batch_norm, dropout=dropout)

    factory.__name__ = name


for _bn in (False, True):
    for _cfg in ("A", "B", "D", "E"):
        _register(_cfg, _bn)
