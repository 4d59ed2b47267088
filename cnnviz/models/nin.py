"""Network in Network (Lin, Chen & Yan, "Network In Network", ICLR 2014).

An *mlpconv* block is a convolution followed by two 1x1 convolutions ("cascaded cross channel parametric
pooling", a small MLP shared over positions), each followed by its own ReLU. The last mlpconv block outputs one
map per class and *global average pooling* replaces the fully connected classifier (Section 3.2).

Two configurations (``config=``):

* ``"imagenet"`` (default): the authors' released ImageNet model (Caffe Model Zoo "NIN-Imagenet"), four
  mlpconv blocks 96-96-96 (11x11/4), 256-256-256 (5x5), 384-384-384 (3x3), 1024-1024-classes (3x3), 3x3/2 max
  pools after the first three, dropout before the last block, global average pooling. The paper itself reports
  no ImageNet result; it is the natural model for ImageNet-like data (Tiny ImageNet).
  At 224: 54x54x96 -> 27 -> 27x27x256 -> 13 -> 13x13x384 -> 6 -> 6x6x1024 -> 6x6xclasses -> GAP.
  7,595,176 parameters at 1000 classes.
* ``"cifar"``: the paper's own CIFAR-10/100 network: three mlpconv blocks (the widths and kernels the paper
  does not list come from the authors' released CIFAR-10 definition: 192-160-96 5x5, 192-192-192 5x5,
  192-192-classes 3x3), each but the last followed by 3x3/2 max pooling and dropout 0.5, then global average
  pooling. At 32: 32x32x96 -> 16 -> 16x16x192 -> 8 -> 8x8xclasses -> GAP. 966,986 parameters at 10 classes.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn

from cnnviz.models.alexnet import STEMS, resolve_stem
from cnnviz.models.declared import FeatureInfo, VariantOption
from cnnviz.models.registry import ModelCard, PaperFigures, register_model
from cnnviz.models.sizes import check_input, smallest_input, stack_windows, trace_sizes

# (conv out, 1x1 out, 1x1 out, kernel, stride, padding); None as the last width means "num_classes".
_IMAGENET = [(96, 96, 96, 11, 4, 0), (256, 256, 256, 5, 1, 2), (384, 384, 384, 3, 1, 1),
             (1024, 1024, None, 3, 1, 1)]
_CIFAR = [(192, 160, 96, 5, 1, 2), (192, 192, 192, 5, 1, 2), (192, 192, None, 3, 1, 1)]
CONFIGS = ("imagenet", "cifar")


class MLPConv(nn.Module):
    """conv k x k -> ReLU -> 1x1 conv -> ReLU -> 1x1 conv -> ReLU (Section 3.1, equation 2)."""

    def __init__(self, in_ch: int, widths: tuple[int, int, int], kernel: int, stride: int, padding: int) -> None:
        super().__init__()
        c0, c1, c2 = widths
        self.conv = nn.Conv2d(in_ch, c0, kernel_size=kernel, stride=stride, padding=padding)
        self.relu0 = nn.ReLU()
        self.cccp1 = nn.Conv2d(c0, c1, kernel_size=1)  # 1x1 conv == cross channel parametric pooling
        self.relu1 = nn.ReLU()
        self.cccp2 = nn.Conv2d(c1, c2, kernel_size=1)
        # The last block keeps this ReLU too (as in the authors' released models): its class maps are
        # non-negative "confidence maps" before global average pooling.
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu0(self.conv(x))
        x = self.relu1(self.cccp1(x))
        return self.relu2(self.cccp2(x))


class NiN(nn.Module):
    """Network in Network: ``features`` = the mlpconv blocks (the last one gives a map per class);
    ``forward_head`` = global average pooling and flatten (no parameters)."""

    def __init__(self, num_classes: int = 1000, input_size: int = 224, config: str = "imagenet",
                 stem: str = "auto", dropout: float = 0.5) -> None:
        super().__init__()
        if config not in CONFIGS:
            raise ValueError(f"NiN config must be 'imagenet' or 'cifar', got {config!r}")
        spec = [list(b) for b in (_IMAGENET if config == "imagenet" else _CIFAR)]
        spec[-1][2] = num_classes
        stem = resolve_stem(stem, input_size) if config == "imagenet" else "paper"
        if config == "imagenet" and stem == "small":
            # Not in the released model: at 64x64, conv1 keeps its 11x11 kernels at stride 1 (no padding):
            # 64 -> 54, the same 54x54 the released model has at 224, so every later map is that model's.
            spec[0][4] = 1
        self.input_size = input_size
        self.config = config
        self.stem = stem
        modules: list[tuple[str, nn.Module]] = []
        self.feature_info: list[FeatureInfo] = []  # every mlpconv block but the last (it gives the class maps)
        in_ch, reduction = 3, 1
        for i, (c0, c1, c2, k, s, p) in enumerate(spec, start=1):
            last = i == len(spec)
            if config == "imagenet" and last:
                # Released ImageNet model: dropout 0.5 on pool3's output, before the last mlpconv block.
                modules.append(("drop3", nn.Dropout(p=dropout)))
            modules.append((f"mlpconv{i}", MLPConv(in_ch, (c0, c1, c2), k, s, p)))
            if not last:
                # Pools: 3x3 stride 2 with ceil rounding, as in the released Caffe models (224: 54 -> 27 -> 13
                # -> 6; CIFAR 32: 32 -> 16 -> 8).
                modules.append((f"pool{i}", nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)))
                reduction *= s * 2
                self.feature_info.append(FeatureInfo(f"features.mlpconv{i}", f"features.pool{i}", "mlpconv", c2,
                                                     reduction))
                if config == "cifar":
                    # Section 4.1: "dropout is applied on the outputs of all but the last mlpconv layers".
                    modules.append((f"drop{i}", nn.Dropout(p=dropout)))
            in_ch = c2
        self.features = nn.Sequential(OrderedDict(modules))
        windows = stack_windows(self.features)
        self.sizes = trace_sizes(input_size, windows, f"NiN ({config})")
        self.min_side = smallest_input(windows)
        self.gap = nn.AdaptiveAvgPool2d(1)  # global average pooling: one score per class map (Section 3.2)
        self._init_weights()

    def _init_weights(self) -> None:
        # The paper does not describe its initialisation (the released models use small Gaussians tuned per
        # layer); He init keeps the 12-layer ReLU stack trainable from scratch.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, f"NiN ({self.config})", 3, self.min_side)
        # imagenet @224: mlpconv1 -> N x 96 x 54 x 54, pool1 -> 27; mlpconv2 -> N x 256 x 27 x 27, pool2 -> 13;
        #   mlpconv3 -> N x 384 x 13 x 13, pool3 -> 6; mlpconv4 -> N x num_classes x 6 x 6
        # cifar @32: mlpconv1 -> N x 96 x 32 x 32, pool1 -> 16; mlpconv2 -> N x 192 x 16 x 16, pool2 -> 8;
        #   mlpconv3 -> N x num_classes x 8 x 8
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        x = self.gap(x)  # N x num_classes x 1 x 1
        return torch.flatten(x, 1)  # N x num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


CARD = ModelCard(
    name="nin",
    display_name="Network in Network",
    family="NiN",
    title="Network In Network",
    authors="Min Lin, Qiang Chen, Shuicheng Yan",
    venue="ICLR 2014 (International Conference on Learning Representations)",
    year=2014,
    url="https://arxiv.org/abs/1312.4400",
    key_ideas=(
        "mlpconv layers: a micro network (an MLP, i.e. 1x1 convolutions) slides over the input instead of a "
        "linear filter, a more powerful local abstraction (Section 3.1).",
        "Global average pooling of one map per class replaces the fully connected layers: no parameters to "
        "overfit, and the maps read as class confidence maps (Section 3.2).",
        "1x1 convolutions as cross channel parametric pooling, later used by GoogLeNet and ResNet.",
        "Dropout between mlpconv layers; far fewer parameters than AlexNet-style FC heads.",
    ),
    paper_input=(3, 224, 224),
    paper_classes=1000,
    figures=PaperFigures(
        params=None,
        top1_error=10.41,
        top5_error=None,
        dataset="CIFAR-10",
        note="NOT ImageNet: CIFAR-10 test error of the paper's 3-mlpconv CIFAR network (config='cifar', 32x32, "
             "10 classes) without data augmentation (8.81% with translation and flip augmentation). Also in "
             "the paper: CIFAR-100 35.68%, SVHN 2.35%, MNIST 0.47% test error. The paper reports no ImageNet "
             "result and no parameter count; the default config='imagenet' model is the authors' later "
             "released model, not evaluated in the paper.",
    ),
    deviations=(
        "config='imagenet' (default) is the authors' released Caffe Model Zoo model, not an experiment of the "
        "paper; paper_input 224x224 and 1000 classes refer to it. The paper's experiments use "
        "config='cifar' at 32x32 (10 or 100 classes) and variants for SVHN and MNIST.",
        "config='cifar': layer widths and kernel sizes are not in the paper; ours are those of the authors' "
        "released CIFAR-10 definition (192-160-96, 192-192-192, 192-192-classes). That definition averages "
        "in its second pooling layer; we max-pool as the paper's text says ('followed by a spatial max "
        "pooling layer').",
        "Local response normalisation and the weight initialisation of the released models are not used; "
        "weights use He init (the paper does not describe its init).",
        "Training details (learning-rate schedule, augmentation, ZCA whitening for CIFAR) belong to the "
        "training code.",
    ),
    adaptations_64=(
        "config='imagenet' with stem='auto' (default): below 128x128 conv1 keeps its 96 11x11 kernels but at "
        "stride 1 instead of 4, so 64x64 -> 54x54x96, the map the released model has at 224; from there every "
        "map is that model's (27, 13, 6). The parameter count is unchanged except the class maps "
        "(1024 x 200 + 200 in the last 1x1 convolution).",
        "At 64x64 with the paper's stride 4 the maps would be 14, 7, 3 and 1x1 before global pooling.",
        "Global average pooling makes the head independent of the input size: config='cifar' runs unchanged "
        "at 64x64 (maps 64, 32, 16).",
    ),
    min_input=18,  # the small stem (stem="auto" below 128): pool3 gets 2x2 and its ceil window still fits
    options=(
        VariantOption("config", str, "imagenet", "'imagenet' (default: the authors' released 4-block ImageNet "
                      "model) or 'cifar' (the paper's 3-block CIFAR/SVHN network)", choices=CONFIGS),
        VariantOption("stem", str, "auto", "config='imagenet' only: 'auto' (default: 'paper' from 128x128 up, "
                      "'small' below), 'paper' (11x11 stride 4) or 'small' (11x11 stride 1, for 64x64)",
                      choices=STEMS),
        VariantOption("dropout", float, 0.5, "dropout probability (default 0.5)"),
    ),
)


@register_model(CARD)
def nin(num_classes: int = 1000, input_size: int = 224, config: str = "imagenet", stem: str = "auto",
        dropout: float = 0.5) -> NiN:
    """Network in Network: the released ImageNet model (default) or the paper's CIFAR network."""
    return NiN(num_classes, input_size, config=config, stem=stem, dropout=dropout)
