"""AlexNet as published (Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional
Neural Networks", NIPS 2012), not torchvision's "one weird trick" variant (64-192-384-256-256, no LRN).

Section 3 and Figure 2 of the paper, at a 227x227 input (the paper's text says 224, but 11x11 stride-4
filters only give its 55x55 maps from 227; see the card):

    conv1 96 x 11x11 /4     -> 55x55x96  ReLU, LRN, max pool 3x3/2 -> 27x27x96
    conv2 256 x 5x5 pad 2   -> 27x27x256 ReLU, LRN, max pool 3x3/2 -> 13x13x256   (grouped: 2 x 128 on 48 maps)
    (with groups=2 the LRNs also work within each GPU's half of the maps)
    conv3 384 x 3x3 pad 1   -> 13x13x384 ReLU                                     (full: reads both GPUs)
    conv4 384 x 3x3 pad 1   -> 13x13x384 ReLU                                     (grouped: 2 x 192 on 192)
    conv5 256 x 3x3 pad 1   -> 13x13x256 ReLU, max pool 3x3/2 -> 6x6x256          (grouped: 2 x 128 on 192)
    fc6 9216 -> 4096 ReLU, dropout 0.5; fc7 4096 -> 4096 ReLU, dropout 0.5; fc8 4096 -> classes

Parameter counts at 1000 classes (ours, exact; the paper rounds to "60 million"):
    groups=2 (as published, default): 60,965,224   (convs 2,334,080 + FCs 58,631,144)
    groups=1 (one GPU, full convs):   62,378,344   (convs 3,747,200 + FCs 58,631,144)
torchvision's alexnet has 61,100,840: it is a different network.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn

from cnnviz.models.declared import FeatureInfo, VariantOption
from cnnviz.models.layers import LocalResponseNorm
from cnnviz.models.registry import InputSizeError, ModelCard, PaperFigures, register_model
from cnnviz.models.sizes import check_input, smallest_input, stack_windows, trace_sizes

# Section 3.3: b = a / (k + alpha * sum_{n adjacent maps} a^2) ^ beta with k=2, n=5, alpha=1e-4, beta=0.75.
# torch.nn.LocalResponseNorm divides alpha by n (b = a / (k + alpha/n * sum a^2)^beta), so we pass
# alpha = 1e-4 * 5 to get the paper's formula. Its window is centred (2 maps each side), as in the paper.
LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K = 5, 1e-4, 0.75, 2.0

# Below this input side the paper's strided stem leaves (almost) nothing: "auto" switches to the small stem.
SMALL_INPUT_BELOW = 128
STEMS = ("auto", "paper", "small")  # AlexNet's, ZFNet's and NiN's stem option
INITS = ("paper", "kaiming")


def paper_lrn(groups: int = 1) -> LocalResponseNorm:
    """The paper's local response normalisation (k=2, n=5, alpha=1e-4, beta=0.75) as a torch module."""
    return LocalResponseNorm(LRN_SIZE, alpha=LRN_ALPHA * LRN_SIZE, beta=LRN_BETA, k=LRN_K, groups=groups)


def paper_classifier(in_features: int, num_classes: int, dropout: float) -> nn.Sequential:
    """fc6, fc7 (each with its ReLU and dropout on its output), fc8: AlexNet's head, kept by ZFNet."""
    return nn.Sequential(OrderedDict([
        ("fc6", nn.Linear(in_features, 4096)),
        ("relu6", nn.ReLU()),
        ("drop6", nn.Dropout(p=dropout)),
        ("fc7", nn.Linear(4096, 4096)),
        ("relu7", nn.ReLU()),
        ("drop7", nn.Dropout(p=dropout)),
        ("fc8", nn.Linear(4096, num_classes)),
    ]))


# The classifier's two hidden blocks (fc8 computes the logits: the head).
FC_BLOCKS = (FeatureInfo("classifier.fc6", "classifier.relu6", "fc", 4096, None),
             FeatureInfo("classifier.fc7", "classifier.relu7", "fc", 4096, None))


def fc_head(model: nn.Module, x: torch.Tensor, arch: str) -> torch.Tensor:
    """AlexNet/ZFNet head: check pool5 is the size the FC layers were built for, flatten, classify."""
    expected = (256, model.feature_size, model.feature_size)
    if tuple(x.shape[1:]) != expected:
        raise InputSizeError(
            f"this {arch} was built for {model.input_size}x{model.input_size} inputs (pool5 "
            f"{model.feature_size}x{model.feature_size}x256) but got a feature map of shape "
            f"{tuple(x.shape[1:])}: build it with input_size set to your images' side"
        )
    x = torch.flatten(x, 1)  # N x 9216
    return model.classifier(x)  # fc6, fc7 -> N x 4096; fc8 -> N x num_classes


def resolve_stem(stem: str, input_size: int) -> str:
    if stem not in STEMS:
        raise ValueError(f"stem must be 'auto', 'paper' or 'small', got {stem!r}")
    if stem == "auto":
        return "small" if input_size < SMALL_INPUT_BELOW else "paper"
    return stem


def init_paper_alexnet(model: nn.Module, biases_one: set[str]) -> None:
    """Section 5: weights ~ N(0, 0.01); biases 1 in conv2, conv4, conv5 and the hidden FCs, 0 elsewhere.

    (Bias 1 gives the ReLUs positive inputs early on, which the paper says accelerates learning.)
    """
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.01)
            nn.init.constant_(m.bias, 1.0 if name.split(".")[-1] in biases_one else 0.0)


def init_kaiming(model: nn.Module) -> None:
    """He et al. (2015) init for ReLU nets, not in the paper (a stable default for training from scratch)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)


class AlexNet(nn.Module):
    """AlexNet (2012): ``features`` = conv1..pool5; ``classifier`` = fc6, fc7, fc8 with dropout.

    ``groups=2`` reproduces the two-GPU split of Figure 2 (conv2, conv4 and conv5 only see the maps on their
    own GPU; conv3 and the FC layers see both); ``groups=1`` is the same network on one device, fully connected.
    """

    def __init__(self, num_classes: int = 1000, input_size: int = 227, groups: int = 2, stem: str = "auto",
                 dropout: float = 0.5, init: str = "paper") -> None:
        super().__init__()
        if groups not in (1, 2):
            raise ValueError(f"AlexNet groups must be 1 (one GPU) or 2 (the paper's two GPUs), got {groups}")
        if init not in INITS:
            raise ValueError(f"init must be 'paper' or 'kaiming', got {init!r}")
        stem = resolve_stem(stem, input_size)
        # paper stem: 11x11 stride 4, no padding (227 -> 55). Small stem (64x64 inputs, not in the paper):
        # the same 11x11 kernels at stride 1 with padding 1 (64 -> 56), so pool1 gives 27x27 as in the paper
        # and every later map, weight shape and the FC sizes are the paper's.
        c1_stride, c1_pad = (4, 0) if stem == "paper" else (1, 1)
        self.input_size = input_size
        self.stem = stem
        self.groups = groups
        self.features = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(3, 96, kernel_size=11, stride=c1_stride, padding=c1_pad)),
            ("relu1", nn.ReLU()),
            ("norm1", paper_lrn(groups)),  # per GPU: each normalises its own 48 maps
            ("pool1", nn.MaxPool2d(kernel_size=3, stride=2)),  # overlapping pooling, s=2 < z=3 (Section 3.4)
            ("conv2", nn.Conv2d(96, 256, kernel_size=5, padding=2, groups=groups)),
            ("relu2", nn.ReLU()),
            ("norm2", paper_lrn(groups)),
            ("pool2", nn.MaxPool2d(kernel_size=3, stride=2)),
            ("conv3", nn.Conv2d(256, 384, kernel_size=3, padding=1)),  # never grouped: crosses GPUs
            ("relu3", nn.ReLU()),
            ("conv4", nn.Conv2d(384, 384, kernel_size=3, padding=1, groups=groups)),
            ("relu4", nn.ReLU()),
            ("conv5", nn.Conv2d(384, 256, kernel_size=3, padding=1, groups=groups)),
            ("relu5", nn.ReLU()),
            ("pool5", nn.MaxPool2d(kernel_size=3, stride=2)),
        ]))
        windows = stack_windows(self.features)
        self.sizes = trace_sizes(input_size, windows, f"AlexNet ({stem} stem)")
        self.min_side = smallest_input(windows)
        self.feature_size = self.sizes["pool5"]
        # Section 4.2: "We use dropout in the first two fully-connected layers": the outputs of fc6 and fc7
        # are dropped (as in the authors' cuda-convnet and Caffe's bvlc_alexnet). torchvision instead puts
        # dropout before fc6 and fc7 (on the pool5 features); we follow the paper.
        self.classifier = paper_classifier(256 * self.feature_size ** 2, num_classes, dropout)
        # The hidden blocks (ZF's layers 1-7) and the stride each block's output has reached.
        s = c1_stride
        self.feature_info = [
            FeatureInfo("features.conv1", "features.pool1", "conv", 96, 2 * s),
            FeatureInfo("features.conv2", "features.pool2", "conv", 256, 4 * s),
            FeatureInfo("features.conv3", "features.relu3", "conv", 384, 4 * s),
            FeatureInfo("features.conv4", "features.relu4", "conv", 384, 4 * s),
            FeatureInfo("features.conv5", "features.pool5", "conv", 256, 8 * s),
            *FC_BLOCKS,
        ]
        if init == "paper":
            init_paper_alexnet(self, {"conv2", "conv4", "conv5", "fc6", "fc7"})
        else:
            init_kaiming(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, "AlexNet", 3, self.min_side)
        # N x 3 x 227 x 227 (paper stem)          | N x 3 x 64 x 64 (small stem)
        # conv1 -> N x 96 x 55 x 55, pool1 -> 27   | conv1 -> N x 96 x 56 x 56, pool1 -> 27
        # conv2 -> N x 256 x 27 x 27, pool2 -> 13; conv3/conv4 -> N x 384 x 13 x 13; conv5 -> N x 256 x 13 x 13
        return self.features(x)  # pool5 -> N x 256 x 6 x 6

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return fc_head(self, x, "AlexNet")  # N x 256 x 6 x 6 -> N x 9216 -> N x num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


CARD = ModelCard(
    name="alexnet",
    display_name="AlexNet",
    family="AlexNet",
    title="ImageNet Classification with Deep Convolutional Neural Networks",
    authors="Alex Krizhevsky, Ilya Sutskever, Geoffrey E. Hinton",
    venue="NIPS 2012 (Advances in Neural Information Processing Systems 25)",
    year=2012,
    url="https://papers.nips.cc/paper/4824-imagenet-classification-with-deep-convolutional-neural-networks",
    key_ideas=(
        "ReLU non-linearities: several times faster training than tanh units (Section 3.1).",
        "Training on two GPUs: half the kernels on each; conv2, conv4 and conv5 only read maps on their own "
        "GPU (groups=2 here), conv3 and the FC layers read both (Section 3.2).",
        "Local response normalisation across 5 adjacent maps after conv1 and conv2 (k=2, alpha=1e-4, "
        "beta=0.75; -1.4% top-1 error, Section 3.3).",
        "Overlapping max pooling, 3x3 windows with stride 2 (-0.4% top-1, Section 3.4).",
        "Dropout 0.5 on the first two FC layers against overfitting (Section 4.2).",
        "Data augmentation: random 224x224 crops and flips of 256x256 images, PCA colour jitter (Section 4.1).",
        "60 million parameters and 650,000 neurons; SGD with momentum 0.9, weight decay 5e-4.",
    ),
    paper_input=(3, 227, 227),
    paper_classes=1000,
    figures=PaperFigures(
        params=60_000_000,
        top1_error=40.7,
        top5_error=18.2,
        note="ILSVRC-2012 validation set, one CNN, centre+corner crops and flips averaged (Table 2). "
             "ILSVRC-2010 test set: 37.5% top-1 / 17.0% top-5 (Table 1). Ensembles on ILSVRC-2012: 5 CNNs "
             "38.1/16.4 (val), 7 CNNs 36.7/15.4 (val), 15.3% top-5 on the test set. Params: the paper's "
             "rounded '60 million'; ours are 60,965,224 (groups=2) or 62,378,344 (groups=1) at 1000 classes.",
    ),
    deviations=(
        "Input 227x227: the paper's text says 224x224x3, but its 55x55 conv1 maps need 227 with 11x11 stride-4 "
        "filters and no padding ((227 - 11) / 4 + 1 = 55). Its neuron count for conv1 (253,440) also differs "
        "from 55x55x96 = 290,400.",
        "groups=2 keeps the two-GPU connectivity on one device: grouped conv2/conv4/conv5 and LRN within each "
        "half of the maps (each GPU normalised its own maps). It does not reproduce the split of the work "
        "itself (one device computes both halves).",
        "groups=1 (not in the paper) makes conv2, conv4 and conv5 full convolutions and LRN spans all maps: "
        "62.4M parameters.",
        "init='paper' (default) follows Section 5 (weights N(0, 0.01); biases 1 in conv2, conv4, conv5, fc6, "
        "fc7, 0 elsewhere); init='kaiming' (He init, zero biases) is not in the paper.",
        "Augmentation, PCA colour jitter, the training schedule and test-time 10-crop averaging belong to the "
        "training and evaluation code, not the model.",
    ),
    adaptations_64=(
        "stem='auto' (default) uses the paper's stem from 128x128 up and a small stem below: the 11x11 stride-4 "
        "conv1 would leave 14x14 maps at 64x64 and pool5 would get a 2x2 map, too small for its 3x3 window "
        "(a 0x0 output). The smallest input the paper stem takes is 67x67.",
        "Small stem: conv1 keeps its 96 11x11 kernels (same weight shape, so filters look comparable) but "
        "with stride 1 and padding 1: 64x64 -> 56x56x96, pool1 -> 27x27x96; from there every map is the "
        "paper's (27x27x256, 13x13x256, 13x13x384, 13x13x384, 13x13x256, 6x6x256), so fc6 keeps its 9216 "
        "inputs and the parameter count equals the paper network's except fc8 (200 classes: 57,687,624 with "
        "groups=2). Compute per image stays about the paper's (conv1 costs 56x56 instead of 55x55 positions).",
        "At other sizes the FC input follows the final map (256 x s x s, no adaptive pooling).",
    ),
    min_input=23,
    options=(
        VariantOption("groups", int, 2, "2 (default: the paper's two-GPU grouping of conv2, conv4, conv5) or 1 "
                      "(full convolutions)"),
        VariantOption("stem", str, "auto", "'auto' (default: 'paper' from 128x128 up, 'small' below), 'paper' "
                      "(11x11 stride 4, needs >= 67x67) or 'small' (11x11 stride 1, padding 1; for 64x64)",
                      choices=STEMS),
        VariantOption("dropout", float, 0.5, "dropout probability after fc6 and fc7 (default 0.5, the paper's)"),
        VariantOption("init", str, "paper", "'paper' (default: N(0, 0.01), biases 1 in conv2/4/5 and fc6/7) or "
                      "'kaiming'", choices=INITS),
    ),
)


@register_model(CARD)
def alexnet(num_classes: int = 1000, input_size: int = 227, groups: int = 2, stem: str = "auto",
            dropout: float = 0.5, init: str = "paper") -> AlexNet:
    """AlexNet as published in 2012 (two-GPU grouping with ``groups=2``)."""
    return AlexNet(num_classes, input_size, groups=groups, stem=stem, dropout=dropout, init=init)
