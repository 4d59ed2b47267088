"""The depths worth comparing in a network: one point per hidden block, as the model declares them.

Zeiler & Fergus compare "layer 1" with "layer 7" (Fig. 5) and probe every layer (Table 6). Every registered
model lists its hidden blocks in ``model.feature_info`` (:class:`cnnviz.models.FeatureInfo`, timm's
convention): a module that holds weights (a conv or fc layer, a residual stage, an Inception module, an
mlpconv block, LeNet-5's trainable subsampling) with the parameter-free modules after it, up to the next one;
its *output* is the last of those that is not a dropout. AlexNet's are ``conv1`` ... ``conv5``, ``fc6``,
``fc7`` (ZF's seven layers); ResNet's are the stem and one per stage (ResNet-152 gives five points, not
fifty); GoogLeNet's auxiliary heads, which do not run at evaluation, are not blocks; the block computing the
logits is the head, not a hidden block. The blocks' output shapes come from the model's layer table
(:mod:`cnnviz.viz.layers`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from cnnviz.viz.layers import output_shapes


@dataclass(frozen=True)
class Block:
    name: str  # the module that starts the block (``features.conv1``, ``layer2``, ``inception4a``)
    output: str  # the module whose output is the block's output (``features.pool1``): a layer name
    shape: tuple[int, ...]  # that output's shape, without the batch dimension
    label: str  # for charts: the block's name, with its output module when that differs (``conv1 (pool1)``)


def blocks(model: nn.Module, input_size: tuple[int, int, int]) -> list[Block]:
    """The hidden blocks of ``model`` in execution order (its ``feature_info``), with their output shapes."""
    declared = getattr(model, "feature_info", None)
    if not declared:
        raise ValueError(f"{type(model).__name__} declares no hidden blocks (model.feature_info): "
                         "pick the layers to compare by name")
    shapes = output_shapes(model, input_size)
    modules = dict(model.named_modules())
    out = []
    for f in declared:
        tail = f.module.rsplit(".", 1)[-1]
        tail = type(modules[f.module]).__name__.lower() if tail.isdigit() else tail  # VGG: features.1 -> relu
        out.append(Block(f.name, f.module, shapes[f.module], f.name if f.module == f.name else f"{f.name} ({tail})"))
    return out


def probe_layers(model: nn.Module, input_size: tuple[int, int, int]) -> list[str]:
    """Every hidden block's output: the default layers of :func:`cnnviz.viz.probes.probe`."""
    return [b.output for b in blocks(model, input_size)]


def invariance_layers(model: nn.Module, input_size: tuple[int, int, int]) -> list[str]:
    """ZF Fig. 5's pair: the first conv block's output and the last hidden layer (the classifier's input)."""
    names = probe_layers(model, input_size)
    if not names:
        raise ValueError("this model has no hidden block to follow")
    return list(dict.fromkeys([names[0], names[-1]]))


def labels(model: nn.Module, input_size: tuple[int, int, int], layers: list[str]) -> list[str]:
    """Chart labels for ``layers``: a block's label where the layer is a block's output, else the name (every
    name, for a model that declares no blocks)."""
    declared = blocks(model, input_size) if getattr(model, "feature_info", None) else []
    by_output = {b.output: b.label for b in declared}
    return [by_output.get(n, n) for n in layers]
