"""The depths worth comparing in a network, read from its own structure: one point per block.

Zeiler & Fergus compare "layer 1" with "layer 7" (Fig. 5) and probe every layer (Table 6). In a model built
from modules, a *block* is one module that holds weights (a convolution, a linear layer, a residual block, an
Inception module, an mlpconv, LeNet-5's trainable subsampling) together with the parameter-free modules that
follow it (ReLU, LRN, pooling, dropout) up to the next one. A block's *output* is what the next block
receives: its last module that is not a dropout (an identity at evaluation). This works the same for every
family, with no per-family table:

* ``nn.Sequential`` containers of single layers (``features``, ``classifier``) are opened, so each conv or fc
  layer starts its own block (AlexNet: ``conv1`` ... ``conv5``, ``fc6``, ``fc7``, ZF's seven layers);
  containers of containers (ResNet's ``layer1`` .. ``layer4``) stay whole: one point per stage, so that
  ResNet-152 gives five points, not fifty;
* the last block (the one computing the logits) is not a hidden layer and is left out;
* modules that do not run at evaluation (GoogLeNet's auxiliary heads) are not blocks.

Normalisation layers (batch norm, LRN) do not start a block: their weights only rescale.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from cnnviz.viz.hooks import private_view

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm,
          nn.modules.instancenorm._InstanceNorm)
_PASS_THROUGH = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Flatten, nn.Identity)


@dataclass(frozen=True)
class Block:
    name: str  # the module that starts the block (``features.conv1``, ``layer2``, ``inception4a``)
    output: str  # the module whose output is the block's output (``features.pool1``): a layer name
    shape: tuple[int, ...]  # that output's shape, without the batch dimension
    label: str  # for charts: the block's name, with its output module when that differs (``conv1 (pool1)``)


def _units(module: nn.Module, prefix: str = ""):
    for name, child in module.named_children():
        full = prefix + name
        kids = list(child.children())
        if type(child) is nn.Sequential and any(not list(k.children()) for k in kids):
            yield from _units(child, full + ".")
        else:
            yield full, child


def _has_weights(module: nn.Module) -> bool:
    for m in module.modules():
        if isinstance(m, _NORMS):
            continue
        if any(True for _ in m.parameters(recurse=False)) or any(True for _ in m.buffers(recurse=False)):
            return True
    return False


_CACHE: dict = {}


def blocks(model: nn.Module, input_size: tuple[int, int, int]) -> list[Block]:
    """The hidden blocks of ``model`` in execution order (see the module's docstring), from one forward pass
    of a zero image on a private view; cached per architecture, arguments and input size."""
    key = (getattr(model, "arch", None) or id(model), repr(getattr(model, "model_args", None)), tuple(input_size))
    if key in _CACHE:
        return _CACHE[key]
    view = private_view(model)
    units = dict(_units(view))
    order: list[str] = []
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    try:
        for name, m in units.items():
            def record(_m, _i, out, name=name):
                if name not in shapes and isinstance(out, torch.Tensor):
                    order.append(name)
                    shapes[name] = tuple(out.shape[1:])

            handles.append(m.register_forward_hook(record))
        p = next(iter(view.parameters()), None)
        with torch.inference_mode():
            view(torch.zeros(1, *input_size, device=p.device if p is not None else "cpu"))
    finally:
        for h in handles:
            h.remove()
    groups: list[list[str]] = []
    for name in order:
        if _has_weights(units[name]):
            groups.append([name])
        elif groups:
            groups[-1].append(name)
    out = []
    for group in groups[:-1]:  # the last block computes the logits
        kept = [n for n in group if not isinstance(units[n], _PASS_THROUGH)] or group[:1]
        last = kept[-1]
        tail = last.rsplit(".", 1)[-1]
        tail = type(units[last]).__name__.lower() if tail.isdigit() else tail  # VGG: features.1 -> relu
        out.append(Block(group[0], last, shapes[last], group[0] if last == group[0] else f"{group[0]} ({tail})"))
    _CACHE[key] = out
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
    """Chart labels for ``layers``: a block's label where the layer is a block's output, else the name."""
    by_output = {b.output: b.label for b in blocks(model, input_size)}
    return [by_output.get(n, n) for n in layers]
