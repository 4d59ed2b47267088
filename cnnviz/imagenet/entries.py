"""Which of our architectures are the networks torchvision publishes ImageNet weights for.

A catalog entry ``imagenet/<name>`` is one torchvision weight set that loads, unchanged, into one of *our*
registered models (built with the variant arguments that make it torchvision's network). Matching means
the same layers in the same order with the same parameter names and shapes, and the same computation:
``tests/test_imagenet.py`` proves it for every entry by comparing our logits with torchvision's.

* VGG-11/13/16/19, with and without batch norm: torchvision's ``vgg*`` / ``vgg*_bn`` (IMAGENET1K_V1). Our VGG
  has no ``AdaptiveAvgPool2d((7, 7))`` before the classifier; at 224x224 it is an identity.
* ResNet-18/34: torchvision's ``resnet18`` / ``resnet34`` (IMAGENET1K_V1).
* ResNet-50/101/152: torchvision's are "ResNet v1.5", the stride of a bottleneck in its 3x3 convolution. Ours
  puts it in the first 1x1 by default, as the paper does (``stride_in="1x1"``); the entries build our
  ``stride_in="3x3"`` variant. Both weight sets torchvision publishes are offered: IMAGENET1K_V1 (the
  classic recipe, ``imagenet/resnet50``) and IMAGENET1K_V2 (its 2021 recipe, ``imagenet/resnet50@IMAGENET1K_V2``).

Not matching, and why (:data:`NOT_MATCHING`): AlexNet and GoogLeNet. torchvision's VGG-16
``IMAGENET1K_FEATURES`` is left out too: only its convolutional layers are trained (its classifier is not).

The file names are torchvision's (the last part of each weight enum's URL, with the SHA-256 prefix that
``torch.hub`` checks when it downloads); they are written here so that listing the catalog needs no
torchvision import (seconds on a 2-core machine), and ``tests/test_imagenet.py`` checks them against the enums.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cnnviz.errors import UnknownName

PREFIX = "imagenet/"
LICENSE_URL = "https://github.com/pytorch/vision#pre-trained-model-license"


@dataclass(frozen=True)
class ImageNetEntry:
    """One torchvision ImageNet weight set and the model of ours it loads into."""

    name: str  # catalog name without the prefix: "vgg16", "resnet50@IMAGENET1K_V2"
    arch: str  # our registry name
    weights: str  # torchvision's weight enum member, as torchvision.models.get_weight() takes it
    file: str  # torchvision's file name in the torch.hub cache (the URL's last part)
    mb: int  # the download's size in MB (torchvision's meta["_file_size"], rounded)
    variant: dict[str, Any] = field(default_factory=dict)  # our model's arguments that make it torchvision's

    @property
    def catalog_name(self) -> str:
        return PREFIX + self.name

    @property
    def model_args(self) -> dict[str, Any]:
        """``create_model`` arguments: ImageNet's 1000 classes at 224x224, plus the variant."""
        return {"num_classes": 1000, "input_size": 224, **self.variant}


_V15 = {"stem": "imagenet", "stride_in": "3x3"}  # torchvision's ResNet v1.5 bottlenecks
ENTRIES: tuple[ImageNetEntry, ...] = (
    ImageNetEntry("vgg11", "vgg11", "VGG11_Weights.IMAGENET1K_V1", "vgg11-8a719046.pth", 507),
    ImageNetEntry("vgg13", "vgg13", "VGG13_Weights.IMAGENET1K_V1", "vgg13-19584684.pth", 508),
    ImageNetEntry("vgg16", "vgg16", "VGG16_Weights.IMAGENET1K_V1", "vgg16-397923af.pth", 528),
    ImageNetEntry("vgg19", "vgg19", "VGG19_Weights.IMAGENET1K_V1", "vgg19-dcbb9e9d.pth", 548),
    ImageNetEntry("vgg11_bn", "vgg11_bn", "VGG11_BN_Weights.IMAGENET1K_V1", "vgg11_bn-6002323d.pth", 507),
    ImageNetEntry("vgg13_bn", "vgg13_bn", "VGG13_BN_Weights.IMAGENET1K_V1", "vgg13_bn-abd245e5.pth", 508),
    ImageNetEntry("vgg16_bn", "vgg16_bn", "VGG16_BN_Weights.IMAGENET1K_V1", "vgg16_bn-6c64b313.pth", 528),
    ImageNetEntry("vgg19_bn", "vgg19_bn", "VGG19_BN_Weights.IMAGENET1K_V1", "vgg19_bn-c79401a0.pth", 548),
    ImageNetEntry("resnet18", "resnet18", "ResNet18_Weights.IMAGENET1K_V1", "resnet18-f37072fd.pth", 45,
                  {"stem": "imagenet"}),
    ImageNetEntry("resnet34", "resnet34", "ResNet34_Weights.IMAGENET1K_V1", "resnet34-b627a593.pth", 83,
                  {"stem": "imagenet"}),
    ImageNetEntry("resnet50", "resnet50", "ResNet50_Weights.IMAGENET1K_V1", "resnet50-0676ba61.pth", 98, _V15),
    ImageNetEntry("resnet101", "resnet101", "ResNet101_Weights.IMAGENET1K_V1", "resnet101-63fe2227.pth", 171, _V15),
    ImageNetEntry("resnet152", "resnet152", "ResNet152_Weights.IMAGENET1K_V1", "resnet152-394f9c45.pth", 230, _V15),
    ImageNetEntry("resnet50@IMAGENET1K_V2", "resnet50", "ResNet50_Weights.IMAGENET1K_V2", "resnet50-11ad3fa6.pth", 98,
                  _V15),
    ImageNetEntry("resnet101@IMAGENET1K_V2", "resnet101", "ResNet101_Weights.IMAGENET1K_V2",
                  "resnet101-cd907fc2.pth", 171, _V15),
    ImageNetEntry("resnet152@IMAGENET1K_V2", "resnet152", "ResNet152_Weights.IMAGENET1K_V2",
                  "resnet152-f82ba261.pth", 230, _V15),
)

# Registered architectures torchvision also publishes ImageNet weights for, which do NOT fit ours.
NOT_MATCHING: dict[str, str] = {
    "alexnet": (
        "torchvision's ImageNet AlexNet is a different network: the one-tower net of Krizhevsky's 'One weird "
        "trick' (2014), in a variant of its own (conv channels 64-192-384-256-256, no LRN, no grouping, an "
        "adaptive 6x6 pool; 61.1M parameters), not this 2012 two-tower net (96-256-384-384-256 with LRN). Its "
        "weights do not fit, and no variant is offered for them: it would be another network under AlexNet's name."
    ),
    "googlenet": (
        "torchvision's ImageNet GoogLeNet is a different network: batch norm after every convolution, a 3x3 "
        "convolution where the paper's branch has a 5x5 (pytorch/vision#906), and an input transform. Its weights "
        "do not fit the paper's network, and a variant built to take them would not be the paper's GoogLeNet."
    ),
}

_BY_NAME = {e.name: e for e in ENTRIES}
_BY_FILE = {e.file: e for e in ENTRIES}


def get_entry(name: str) -> ImageNetEntry:
    """The entry called ``name`` (``"vgg16"`` or ``"imagenet/vgg16"``). KeyError names the known ones."""
    key = name.removeprefix(PREFIX)
    if key in NOT_MATCHING:
        raise UnknownName(f"no ImageNet entry {name!r}: {NOT_MATCHING[key]}")
    if key not in _BY_NAME:
        raise UnknownName(f"no ImageNet entry {name!r}; known: {', '.join(e.catalog_name for e in ENTRIES)}")
    return _BY_NAME[key]


def entry_for_file(file_name: str) -> ImageNetEntry | None:
    """The entry whose torchvision file is called ``file_name`` (a base name), or None."""
    return _BY_FILE.get(file_name)


def card_note(arch: str) -> str | None:
    """A sentence for ``arch``'s model card about torchvision's ImageNet weights (None: torchvision has none)."""
    if arch in NOT_MATCHING:
        return "None. " + NOT_MATCHING[arch]
    entries = [e for e in ENTRIES if e.arch == arch]
    if not entries:
        return None
    names = " and ".join(f"`{e.catalog_name}` ({e.weights.split('.')[-1]})" for e in entries)
    if entries[0].variant.get("stride_in") == "3x3":
        text = (f"{names}: torchvision's weights, loaded unchanged into this network's stride_in='3x3' variant "
                "(torchvision's ResNet v1.5), which these entries build. The paper's default stride_in='1x1' has "
                "the same parameter shapes but computes another function, so they are never loaded into it")
    else:
        text = f"{names}: torchvision's weights, loaded unchanged into this network"
        if arch.startswith("vgg"):
            text += " (torchvision's extra AdaptiveAvgPool2d((7, 7)) is an identity at 224x224)"
    return text + f". Get them with `python -m cnnviz imagenet fetch {entries[0].name}` ([license]({LICENSE_URL}))."
