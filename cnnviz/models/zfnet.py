"""ZFNet (Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014), the model of
the paper's Figure 3, at a 224x224 input:

    conv1 96 x 7x7 /2 pad 1   -> 110x110x96  ReLU, max pool 3x3/2 -> 55x55x96, contrast norm.
    conv2 256 x 5x5 /2        -> 26x26x256   ReLU, max pool 3x3/2 -> 13x13x256, contrast norm.
    conv3 384 x 3x3 pad 1     -> 13x13x384   ReLU
    conv4 384 x 3x3 pad 1     -> 13x13x384   ReLU
    conv5 256 x 3x3 pad 1     -> 13x13x256   ReLU, max pool 3x3/2 -> 6x6x256
    fc6 9216 -> 4096 ReLU, dropout; fc7 4096 -> 4096 ReLU, dropout; fc8 4096 -> classes

The figure gives only kernel sizes, strides and map sizes; the paddings and pooling rounding that reproduce
them exactly are ours (each is derived where it is used below). 62,357,608 parameters at 1000 classes.
The paper's changes to AlexNet: 7x7 stride-2 conv1 (instead of 11x11 stride 4, which aliased and left dead
filters, Section 4.1), stride-2 conv2, no GPU grouping ("dense connections" in layers 3, 4, 5).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn

from cnnviz.models.alexnet import (
    FC_BLOCKS,
    INITS,
    STEMS,
    fc_head,
    init_kaiming,
    paper_classifier,
    paper_lrn,
    resolve_stem,
)
from cnnviz.models.declared import FeatureInfo, VariantOption
from cnnviz.models.registry import ModelCard, PaperFigures, register_model
from cnnviz.models.sizes import check_input, smallest_input, stack_windows, trace_sizes


class ZFNet(nn.Module):
    """ZFNet (2013/2014): ``features`` = conv1..pool5; ``classifier`` = fc6, fc7, fc8 with dropout."""

    def __init__(self, num_classes: int = 1000, input_size: int = 224, stem: str = "auto",
                 dropout: float = 0.5, init: str = "paper") -> None:
        super().__init__()
        if init not in INITS:
            raise ValueError(f"init must be 'paper' or 'kaiming', got {init!r}")
        stem = resolve_stem(stem, input_size)
        # conv1: Figure 3 has 224 -> 110 with 7x7 stride 2: floor((224 + 2p - 7) / 2) + 1 = 110 needs p = 1
        # (p = 0 gives 109). conv2: 55 -> 26 with 5x5 stride 2 needs p = 0 (floor(50 / 2) + 1 = 26).
        # Small stem (inputs below 128, e.g. 64x64; not in the paper): conv1 and conv2 at stride 1, kernels and
        # paddings unchanged: 64 -> 60 -> pool 30 -> conv2 26 -> pool 13 -> 6, the paper's sizes from conv2 on.
        stride = 2 if stem == "paper" else 1
        self.input_size = input_size
        self.stem = stem
        self.features = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(3, 96, kernel_size=7, stride=stride, padding=1)),
            ("relu1", nn.ReLU()),
            # Pools: 3x3 stride 2 with ceil rounding (cuda-convnet/Caffe style): 110 -> 55 and 26 -> 13 as in
            # the figure; floor rounding would give 54 and 12. At 13 -> 6 both roundings agree.
            ("pool1", nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)),
            # Figure 3: "contrast normalized across feature maps" after pooling. The paper gives no constants;
            # we use AlexNet's local response normalisation (n=5, k=2, alpha=1e-4, beta=0.75), whose model
            # ZFNet modifies (Section 3: "similar to that used by Krizhevsky et al.").
            ("norm1", paper_lrn()),
            ("conv2", nn.Conv2d(96, 256, kernel_size=5, stride=stride, padding=0)),
            ("relu2", nn.ReLU()),
            ("pool2", nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)),
            ("norm2", paper_lrn()),
            ("conv3", nn.Conv2d(256, 384, kernel_size=3, padding=1)),
            ("relu3", nn.ReLU()),
            ("conv4", nn.Conv2d(384, 384, kernel_size=3, padding=1)),
            ("relu4", nn.ReLU()),
            ("conv5", nn.Conv2d(384, 256, kernel_size=3, padding=1)),
            ("relu5", nn.ReLU()),
            ("pool5", nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)),
        ]))
        windows = stack_windows(self.features)
        self.sizes = trace_sizes(input_size, windows, f"ZFNet ({stem} stem)")
        self.min_side = smallest_input(windows)
        self.feature_size = self.sizes["pool5"]
        # Figure 3: "dropout" on layers 6 and 7 (their outputs), as in AlexNet.
        self.classifier = paper_classifier(256 * self.feature_size ** 2, num_classes, dropout)
        # The paper's seven layers (Figure 3) and the stride each one's output has reached.
        s2 = 2 * stride * stride
        self.feature_info = [
            FeatureInfo("features.conv1", "features.norm1", "conv", 96, 2 * stride),
            FeatureInfo("features.conv2", "features.norm2", "conv", 256, 2 * s2),
            FeatureInfo("features.conv3", "features.relu3", "conv", 384, 2 * s2),
            FeatureInfo("features.conv4", "features.relu4", "conv", 384, 2 * s2),
            FeatureInfo("features.conv5", "features.pool5", "conv", 256, 4 * s2),
            *FC_BLOCKS,
        ]
        if init == "paper":
            # Section 3: "All weights are initialized to 10^-2 and biases are set to 0." A constant would make
            # every filter identical, so we read it as AlexNet's N(0, 0.01) draw.
            for m in self.modules():
                if isinstance(m, nn.Conv2d | nn.Linear):
                    nn.init.normal_(m.weight, 0.0, 0.01)
                    nn.init.zeros_(m.bias)
        else:
            init_kaiming(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, "ZFNet", 3, self.min_side)
        # N x 3 x 224 x 224 (paper stem)              | N x 3 x 64 x 64 (small stem)
        # conv1 -> N x 96 x 110 x 110, pool1 -> 55      | conv1 -> N x 96 x 60 x 60, pool1 -> 30
        # conv2 -> N x 256 x 26 x 26, pool2 -> 13; conv3/conv4 -> N x 384 x 13 x 13; conv5 -> N x 256 x 13 x 13
        return self.features(x)  # pool5 -> N x 256 x 6 x 6

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return fc_head(self, x, "ZFNet")  # N x 256 x 6 x 6 -> N x 9216 -> N x num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@torch.no_grad()
def renormalize_filters(model: nn.Module, radius: float = 0.1) -> int:
    """Section 3: rescale every conv filter whose RMS exceeds ``radius`` (10^-1) back to that radius.

    The paper does this during training (it matters most for the first layer, where the input is in
    [-128, 128]); call it after each optimiser step. Returns the number of filters rescaled.
    """
    count = 0
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            w = m.weight
            rms = w.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt()
            too_big = rms > radius
            count += int(too_big.sum())
            w.mul_(torch.where(too_big, radius / rms.clamp_min(1e-12), torch.ones_like(rms)))
    return count


CARD = ModelCard(
    name="zfnet",
    display_name="ZFNet",
    family="ZFNet",
    title="Visualizing and Understanding Convolutional Networks",
    authors="Matthew D. Zeiler, Rob Fergus",
    venue="ECCV 2014 (European Conference on Computer Vision)",
    year=2014,
    url="https://arxiv.org/abs/1311.2901",
    key_ideas=(
        "A deconvnet projects a feature's activation back to pixel space (unpooling with switches, "
        "rectification, transposed filters) to see what each layer has learnt.",
        "Visualisation-guided design: a 7x7 stride-2 conv1 instead of 11x11 stride 4 (AlexNet) removes "
        "aliasing artifacts and dead first-layer filters; conv2 gets stride 2.",
        "Dense connections in conv3-5 (no two-GPU grouping); contrast normalisation after pool1 and pool2.",
        "Filter renormalisation: conv filters whose RMS exceeds 0.1 are scaled back to 0.1.",
        "Occlusion sensitivity shows the model localises objects; features transfer to Caltech-101/256 and "
        "PASCAL 2012 by retraining only the softmax classifier.",
    ),
    paper_input=(3, 224, 224),
    paper_classes=1000,
    figures=PaperFigures(
        params=None,
        top1_error=38.4,
        top5_error=16.5,
        note="ILSVRC-2012 validation set, one convnet 'as per Fig. 3' (Table 2; 10-crop test). Ensembles: "
             "5 convnets 36.7/15.3 (val), 6 convnets 36.0/14.7 (val) and 14.8% top-5 on the test set. Their "
             "AlexNet replication: 40.5/18.1. The paper states no parameter count. (An earlier draft "
             "of the paper lists 38.3/16.4 for its single model.)",
    ),
    deviations=(
        "Paddings and pool rounding are not in the paper: conv1 padding 1 and 3x3/2 max pools with ceil "
        "rounding are what reproduce Figure 3's 110, 55, 26, 13 and 6.",
        "Contrast normalisation: the paper gives no constants; we use AlexNet's LRN (5 maps, k=2, alpha=1e-4, "
        "beta=0.75).",
        "init='paper' reads 'all weights are initialized to 10^-2' as N(0, 0.01) weights; biases 0.",
        "Filter RMS renormalisation is not applied by our training (the Training page, `cnnviz train`, the zoo); "
        "cnnviz.models.zfnet.renormalize_filters(model) does it for a loop that calls it after each step. Here "
        "it would not bind: the radius 0.1 is set for pixels in [-128, 128], our inputs are normalised about 70x "
        "smaller (so conv1's equivalent radius is about 7), and the zoo's ZFNet ends with every conv filter's "
        "RMS at or below 0.042 (conv1 0.027; measured on the starter, 2026-12-07).",
        "Training details (256x256 images, 224 crops and flips, SGD lr 0.01 momentum 0.9, 70 epochs) belong to "
        "the training code.",
    ),
    adaptations_64=(
        "stem='auto' (default) uses the paper's stem from 128x128 up and a small stem below. At 64x64 the "
        "paper's strides leave 30x30 after conv1 and a 3x3x256 conv5 map, 1x1 after pool5.",
        "Small stem: conv1 (7x7) and conv2 (5x5) keep their kernels and paddings but use stride 1: "
        "64x64 -> conv1 60x60x96 -> pool1 30x30 -> conv2 26x26x256 -> pool2 13x13; from conv2 on every map is "
        "the paper's (26, 13, 13, 13, 13, 6), so fc6 keeps 9216 inputs and every weight has the paper's shape.",
        "At other sizes the FC input follows the final map (256 x s x s, no adaptive pooling).",
    ),
    min_input=20,  # the small stem (stem="auto" below 128): pool5 gets 2x2 and its ceil window still fits
    options=(
        VariantOption("stem", str, "auto", "'auto' (default: 'paper' from 128x128 up, 'small' below), 'paper' "
                      "(strides 2 in conv1 and conv2) or 'small' (stride 1 in both; for 64x64)", choices=STEMS),
        VariantOption("dropout", float, 0.5, "dropout probability after fc6 and fc7 (default 0.5)"),
        VariantOption("init", str, "paper", "'paper' (default: N(0, 0.01) weights, zero biases) or 'kaiming'",
                      choices=INITS),
    ),
)


@register_model(CARD)
def zfnet(num_classes: int = 1000, input_size: int = 224, stem: str = "auto", dropout: float = 0.5,
          init: str = "paper") -> ZFNet:
    """ZFNet as in Figure 3 of the paper."""
    return ZFNet(num_classes, input_size, stem=stem, dropout=dropout, init=init)
