"""The layers a visualisation can look at, read from the model's one layer table (:mod:`cnnviz.summary`).

A *layer* is a named module (a dotted path) and its output, containers included (``features``, ``layer2``,
``inception4a``), the same meaning as in the tables: the table's meta-device trace records every layer's
output shape and receptive field, so nothing here runs the model. Tables are cached per architecture,
arguments and input size (they do not depend on the weights); a model without an ``arch`` is cached by
:func:`cnnviz.summary.layer_table` itself (per model object).
"""

from __future__ import annotations

import torch.nn as nn

from cnnviz.summary import LayerTable, layer_table

_TABLES: dict[tuple, LayerTable] = {}


def table(model: nn.Module, input_size: tuple[int, int, int]) -> LayerTable:
    """The layer table of ``model`` at ``input_size`` (C, H, W); the model is never touched."""
    arch = getattr(model, "arch", None)
    if arch is None:
        return layer_table(model, tuple(input_size))
    key = (arch, repr(getattr(model, "model_args", None)), tuple(input_size))
    if key not in _TABLES:
        _TABLES[key] = layer_table(model, tuple(input_size))
    return _TABLES[key]


def output_shapes(model: nn.Module, input_size: tuple[int, int, int]) -> dict[str, tuple[int, ...]]:
    """Output shape (no batch dimension) of every layer that runs at inference, in the order they finish
    (a container after the layers inside it)."""
    return {name: out.shape for name, out in table(model, input_size).outputs.items()}


def map_layers(model: nn.Module, input_size: tuple[int, int, int]) -> list[str]:
    """Names of the layers whose output is a spatial map (``C x H x W``), in execution order: the layers
    that feature maps, deconvnet, top-9 and occlusion can look at."""
    return [n for n, s in output_shapes(model, input_size).items() if len(s) == 3]
