"""ResNet (He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016).

The ImageNet networks of the paper's Table 1: a 7x7/2 conv and a 3x3/2 max pool, four stages conv2_x ..
conv5_x (``layer1`` .. ``layer4``) of basic blocks (two 3x3 convs; ResNet-18/34) or bottleneck blocks
(1x1 - 3x3 - 1x1, 4x expansion; ResNet-50/101/152), global average pooling and one FC layer. Batch norm
follows every convolution, before the ReLU (Section 3.4). Shortcuts are identities, and 1x1 projections with
batch norm where the shape changes (option B, Section 3.3, the one used for Tables 3/4's ResNet-50/101/152).

The original paper (and its released Caffe models) puts a bottleneck's stride 2 in the FIRST 1x1 conv;
torchvision's "ResNet v1.5" moves it to the 3x3 conv. Parameter counts are identical, MACs and receptive
fields differ. We follow the paper by default (``stride_in="1x1"``) and offer ``stride_in="3x3"``.

``stem="imagenet"`` (default, the paper's) or ``stem="tiny"``: a 3x3/1 conv and no max pool, the common
adaptation for 64x64 Tiny ImageNet / CIFAR-sized inputs (the paper's own CIFAR-10 nets, Section 4.2, also
start with a 3x3 conv and no pooling), which keeps the maps 4x larger per side.

Layer names follow torchvision (``conv1``, ``bn1``, ``relu``, ``maxpool``, ``layer1.0.conv1``,
``layer1.0.downsample.0``, ``fc``). ``model.features`` is a Sequential *view* over ``conv1`` .. ``layer4``
(rebuilt on access, not a registered submodule), so names stay torchvision-like and no module is registered
twice.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn

from cnnviz.models.declared import FeatureInfo, VariantOption
from cnnviz.models.registry import InputSizeError, ModelCard, PaperFigures, register_model


def conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    # No bias: batch norm follows every convolution.
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs (Figure 5 left): conv-BN-ReLU-conv-BN, add the shortcut, ReLU."""

    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 stride_in: str = "1x1") -> None:
        super().__init__()
        del stride_in  # only bottlenecks have a 1x1 to put the stride in
        self.conv1 = conv3x3(in_ch, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.relu2 = nn.ReLU()  # after the addition: its own module (hooks see each ReLU separately)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4) (Figure 5 right); each conv + BN, ReLU after the first two and the add.

    ``stride_in="1x1"`` (the paper and its Caffe models): the stride is in the first 1x1 conv.
    ``stride_in="3x3"`` (torchvision's v1.5): in the 3x3 conv, which then sees every input position
    (more MACs; the receptive field grows a little less because the 3x3 works at the finer step).
    """

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 stride_in: str = "1x1") -> None:
        super().__init__()
        s1, s3 = (stride, 1) if stride_in == "1x1" else (1, stride)
        self.conv1 = conv1x1(in_ch, planes, s1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = conv3x3(planes, planes, s3)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.downsample = downsample
        self.relu3 = nn.ReLU()  # after the addition

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu3(out + identity)


STEMS = ("imagenet", "tiny")
STRIDE_IN = ("1x1", "3x3")


class ResNet(nn.Module):
    """ResNet of the paper's Table 1.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: blocks per stage, e.g. ``[3, 4, 6, 3]``.
        num_classes: FC outputs.
        input_size: square input side (checked: the stages must get at least a 1x1 map).
        stem: ``"imagenet"`` (7x7/2 conv + 3x3/2 max pool, the paper) or ``"tiny"`` (3x3/1 conv, no pool).
        stride_in: where a bottleneck's stride 2 goes, ``"1x1"`` (paper) or ``"3x3"`` (torchvision v1.5).
    """

    def __init__(self, block: type[BasicBlock | Bottleneck], layers: list[int], num_classes: int = 1000,
                 input_size: int = 224, stem: str = "imagenet", stride_in: str = "1x1") -> None:
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")
        if stride_in not in STRIDE_IN:
            raise ValueError(f"stride_in must be one of {STRIDE_IN}, got {stride_in!r}")
        min_size = 32 if stem == "imagenet" else 8
        if input_size < min_size:
            raise InputSizeError(
                f"ResNet with the {stem!r} stem reduces the map {'32' if stem == 'imagenet' else '8'}x before "
                f"global pooling and needs at least {min_size}x{min_size} pixels; got {input_size}x{input_size}"
            )
        self.stem = stem
        self.stride_in = stride_in
        self.in_ch = 64
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)  # conv1: 7x7, 64, /2
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU()
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)  # conv2_x: 3x3 max pool, /2
        else:
            # Deviation (stem="tiny"): 3x3/1 conv and no max pool, so a 64x64 input reaches conv2_x at 64x64
            # (the paper's CIFAR nets, Section 4.2, start the same way); not in the ImageNet paper.
            self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU()
            self.maxpool = nn.Identity()
        self.layer1 = self._make_layer(block, 64, layers[0], stride=1)  # conv2_x
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)  # conv3_x
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)  # conv4_x
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)  # conv5_x
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))  # "global average pooling"
        self.fc = nn.Linear(512 * block.expansion, num_classes)  # "1000-way fc, softmax"
        self._init_weights()
        # Hidden blocks: the stem (conv1 .. its max pool, when there is one) and one per stage, conv2_x ..
        # conv5_x (however many residual blocks a stage holds); conv5_x's output is the globally pooled vector.
        stem_stride = 4 if stem == "imagenet" else 1
        self.feature_info = [
            FeatureInfo("conv1", "maxpool" if stem == "imagenet" else "relu", "conv", 64, stem_stride),
            *(FeatureInfo(f"layer{i}", f"layer{i}", "stage", planes * block.expansion, stem_stride * 2 ** (i - 1))
              for i, planes in ((1, 64), (2, 128), (3, 256))),
            FeatureInfo("layer4", "avgpool", "stage", 512 * block.expansion, None),
        ]

    def _make_layer(self, block: type[BasicBlock | Bottleneck], planes: int, blocks: int,
                    stride: int) -> nn.Sequential:
        downsample = None
        out_ch = planes * block.expansion
        if stride != 1 or self.in_ch != out_ch:
            # Option B (Section 3.3): projection shortcut (1x1 conv, stride 2 where the map halves) + BN
            # where the shape changes, identity elsewhere.
            downsample = nn.Sequential(conv1x1(self.in_ch, out_ch, stride), nn.BatchNorm2d(out_ch))
        layers = [block(self.in_ch, planes, stride, downsample, stride_in=self.stride_in)]
        self.in_ch = out_ch
        for _ in range(1, blocks):
            layers.append(block(self.in_ch, planes, stride_in=self.stride_in))
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        # Section 3.4: "We initialize the weights as in [13]" (He et al. 2015, "Delving deep into
        # rectifiers"): zero-mean Gaussian, std sqrt(2 / n) with n = k*k*c the fan-in (their Eq. 10, the
        # "msra" filler of the released Caffe models). BN: scale 1, shift 0. The paper does not state the FC
        # init; we keep PyTorch's default for it.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    _FEATURE_NAMES = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")

    @property
    def features(self) -> nn.Sequential:
        """The convolutional body conv1 .. layer4 as a Sequential view (not a registered submodule)."""
        return nn.Sequential(OrderedDict((n, getattr(self, n)) for n in self._FEATURE_NAMES))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # N x 3 x 224 x 224
        x = self.relu(self.bn1(self.conv1(x)))
        # N x 64 x 112 x 112 (tiny stem at 64: N x 64 x 64 x 64)
        x = self.maxpool(x)
        # N x 64 x 56 x 56
        x = self.layer1(x)
        # N x 64 x 56 x 56 (x 256 channels for bottlenecks)
        x = self.layer2(x)
        # N x 128 x 28 x 28 (512)
        x = self.layer3(x)
        # N x 256 x 14 x 14 (1024)
        x = self.layer4(x)
        # N x 512 x 7 x 7 (2048)
        return x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(x)
        # N x 512 x 1 x 1 (2048)
        x = torch.flatten(x, 1)
        return self.fc(x)  # N x num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# Table 1 of the paper.
_SPECS: dict[int, tuple[type[BasicBlock | Bottleneck], list[int], float]] = {
    18: (BasicBlock, [2, 2, 2, 2], 1.8),
    34: (BasicBlock, [3, 4, 6, 3], 3.6),
    50: (Bottleneck, [3, 4, 6, 3], 3.8),
    101: (Bottleneck, [3, 4, 23, 3], 7.6),
    152: (Bottleneck, [3, 8, 36, 3], 11.3),
}

# Table 3 (10-crop testing, ImageNet val, option B). ResNet-18 is only in Table 2 (top-1, option A).
_ERRORS: dict[int, tuple[float, float | None, str]] = {
    18: (27.88, None, "Table 2: top-1 error, 10-crop testing, ImageNet val; ResNet-18 there uses option A "
                      "(zero-padding shortcuts), ours option B. No top-5 figure for ResNet-18."),
    34: (24.52, 7.46, "Table 3: ResNet-34 B, 10-crop testing, ImageNet val. Table 4 (multi-scale, fully "
                      "convolutional): 21.84 / 5.71."),
    50: (22.85, 6.71, "Table 3: 10-crop testing, ImageNet val. Table 4 (multi-scale): 20.74 / 5.25."),
    101: (21.75, 6.05, "Table 3: 10-crop testing, ImageNet val. Table 4 (multi-scale): 19.87 / 4.60."),
    152: (21.43, 5.71, "Table 3: 10-crop testing, ImageNet val. Table 4 (multi-scale): 19.38 / 4.49."),
}

_KEY_IDEAS = (
    "Residual learning: each block learns F(x) and outputs F(x) + x through an identity shortcut, so very "
    "deep networks optimise as easily as shallow ones (the degradation problem of plain nets, Figure 1/4).",
    "Batch normalisation after every convolution, before the ReLU; no dropout.",
    "Projection shortcuts (1x1 conv) only where the shape changes (option B); identities elsewhere add no "
    "parameters.",
    "Bottleneck blocks (1x1 reduce, 3x3, 1x1 expand) make 50/101/152 layers affordable: ResNet-152 "
    "(11.3 billion multiply-adds) is cheaper than VGG-16/19 (15.3/19.6 billion).",
    "Global average pooling and a single FC layer; an ensemble won ILSVRC 2015 with 3.57% top-5 error.",
)


def _register(depth: int) -> None:
    block, layers, gmacs = _SPECS[depth]
    top1, top5, note = _ERRORS[depth]
    deviations = [
        "Softmax is folded into the cross-entropy loss; the model returns logits.",
        "Evaluation is a single forward pass on one crop; the paper's figures use 10-crop testing (Table 3) "
        "or multi-scale fully convolutional testing (Table 4).",
        "FC layer initialisation: PyTorch's default (the paper does not state one). Batch norm uses PyTorch's "
        "defaults (eps 1e-5, momentum 0.1), which the paper does not specify.",
        "stem='tiny' (an option, not the default) replaces the 7x7/2 conv and the max pool with a 3x3/1 conv.",
    ]
    if block is Bottleneck:
        deviations.append(
            "stride_in='3x3' (an option, not the default) moves a bottleneck's stride 2 from the first 1x1 conv "
            "(the paper) to the 3x3 conv (torchvision's v1.5): same parameters, more MACs (ResNet-50: 4.1 "
            "instead of 3.9 billion at 224), the 3x3 conv sees every position instead of the 1x1 skipping three "
            "in four, and slightly smaller receptive fields (the 3x3 works at the finer step). torchvision's "
            "ImageNet weights are for this variant."
        )
    if depth == 18:
        deviations.append("The paper's ResNet-18 (Table 2) uses option A shortcuts (zero padding, no "
                          "parameters); ours use option B projections like the deeper nets.")
    options = [VariantOption("stem", str, "imagenet", "'imagenet' (default; 7x7/2 conv + 3x3/2 max pool, the "
                             "paper) or 'tiny' (3x3/1 conv, no max pool: maps 4x larger per side, for 64x64 "
                             "inputs)", choices=STEMS)]
    if block is Bottleneck:
        options.append(VariantOption("stride_in", str, "1x1", "'1x1' (default; stride 2 in the first 1x1 conv, "
                                     "the paper) or '3x3' (torchvision's v1.5)", choices=STRIDE_IN))
    card = ModelCard(
        name=f"resnet{depth}",
        display_name=f"ResNet-{depth}",
        family="ResNet",
        title="Deep Residual Learning for Image Recognition",
        authors="Kaiming He, Xiangyu Zhang, Shaoqing Ren, Jian Sun",
        venue="CVPR 2016",
        year=2016,
        url="https://arxiv.org/abs/1512.03385",
        key_ideas=_KEY_IDEAS,
        paper_input=(3, 224, 224),
        paper_classes=1000,
        figures=PaperFigures(params=None, top1_error=top1, top5_error=top5, gmacs=gmacs,
                             note=note + f" MACs: Table 1's 'FLOPs' ({gmacs} x 10^9, which are multiply-adds). "
                             "The paper reports no parameter counts for its ImageNet nets."),
        deviations=tuple(deviations),
        adaptations_64=(
            "With the default 'imagenet' stem nothing changes but the size of the maps: 64x64 input gives "
            "conv1 32x32, conv2_x 16x16, conv3_x 8x8, conv4_x 4x4, conv5_x 2x2 before global pooling.",
            "stem='tiny' (recommended for training on 64x64): conv1 becomes 3x3 stride 1 (64 channels, no "
            "bias, BN, ReLU) and the max pool is removed, so the stages run at 64, 32, 16, 8 pixels like "
            "the 224 model's 56, 28, 14, 7. This is the common Tiny ImageNet/CIFAR adaptation, not the paper's. "
            "With no max pool left, ZF's deconvnet has no switches to carry the image down: it projects each "
            "unit to the same picture from every image (Visualize says so and adds guided backprop).",
            "The FC layer has 200 outputs (Tiny ImageNet classes) instead of 1000.",
        ),
        min_input=32,
        options=tuple(options),
    )

    @register_model(card)
    def factory(num_classes: int = 1000, input_size: int = 224, stem: str = "imagenet",
                stride_in: str = "1x1") -> ResNet:
        return ResNet(block, layers, num_classes=num_classes, input_size=input_size, stem=stem,
                      stride_in=stride_in)

    factory.__name__ = f"resnet{depth}"


for _depth in (18, 34, 50, 101, 152):
    _register(_depth)
