"""The layer tables' public face: :func:`layer_table` of a model or an architecture (cached), and from a
table, :func:`receptive_fields`, :func:`input_region` and, for an architecture, :func:`parameter_count`.

How a table is built: :mod:`cnnviz.summary.builder`; its rows: :mod:`cnnviz.summary.rows`; what each column
counts: :mod:`cnnviz.summary.columns`.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Any

import torch.nn as nn

from cnnviz.models.registry import get_card
from cnnviz.summary.builder import arch_table, arch_table_cached, build_table, parse_input
from cnnviz.summary.params import ParamCount, param_count
from cnnviz.summary.rows import LayerTable, dtype_size


def layer_table(model_or_arch: nn.Module | str, input_size=None, dtype: str = "float32",
                num_classes: int | None = None, **variant: Any) -> LayerTable:
    """The per-layer table of a model (an ``nn.Module``, left untouched) or of a registered architecture.

    For an architecture name the model is built on the meta device (no weights allocated) and the result is
    cached by (arch, variant, input, classes, dtype); ``num_classes`` defaults to the paper's. ``input_size``
    is ``(C, H, W)``, or ``(H, W)`` / an int side with the architecture's own channels (3 for a model);
    default: the paper's input for an architecture, 3x224x224 for a model. Raises ``KeyError`` for an unknown
    architecture and ``ValueError`` (with the reason) for an input the model cannot take.
    """
    if isinstance(model_or_arch, str):
        card = get_card(model_or_arch)
        if input_size is None:
            input_size = card.paper_input
        elif isinstance(input_size, int) or len(tuple(input_size)) == 2:
            side = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
            input_size = (card.paper_input[0], *side)
    c, h, w = parse_input((3, 224, 224) if input_size is None else input_size)
    dtype_size(dtype)  # validate early, clear message
    if isinstance(model_or_arch, str):
        key_variant = tuple(sorted(variant.items()))
        try:
            hash(key_variant)
        except TypeError:
            return arch_table(model_or_arch, key_variant, (c, h, w), num_classes, str(dtype))
        return _copy(arch_table_cached(model_or_arch, key_variant, (c, h, w), num_classes, str(dtype)))
    if variant or num_classes is not None:
        raise TypeError("num_classes and variant options only apply to an architecture name, not a model")
    model = model_or_arch
    # Per-model cache (a Visualize page calls input_region on every click): keyed by the model object
    # (weakly) and a structural fingerprint, so a model whose layers or trainable flags change is rebuilt.
    key = ((c, h, w), str(dtype), _fingerprint(model))
    per_model = _MODEL_CACHE.get(model)
    if per_model is not None and key in per_model:
        return _copy(per_model[key])
    table = build_table(model, (c, h, w), dtype, arch=getattr(model, "arch", None))
    with contextlib.suppress(TypeError):  # not weak-referenceable: no caching
        _MODEL_CACHE.setdefault(model, {})[key] = table
    return _copy(table)


_MODEL_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _fingerprint(model: nn.Module) -> tuple:
    """What the table depends on besides the input: every module's type and window, parameter shapes and
    trainable flags (values do not matter)."""
    mods = tuple((name, type(m).__name__, str(getattr(m, "kernel_size", "")), str(getattr(m, "stride", "")),
                  str(getattr(m, "padding", "")), str(getattr(m, "dilation", "")))
                 for name, m in model.named_modules())
    params = tuple((tuple(p.shape), p.requires_grad) for p in model.parameters())
    return mods, params


def _copy(t: LayerTable) -> LayerTable:
    # Rows are frozen; a fresh list and dicts so that callers cannot change the cached table.
    return LayerTable(arch=t.arch, input=t.input, classes=t.classes, dtype=t.dtype, rows=list(t.rows),
                      totals=dict(t.totals), trainable_params=t.trainable_params, geometry=dict(t.geometry),
                      outputs=dict(t.outputs))



def receptive_fields(model: nn.Module | str | LayerTable, input_size=None) -> dict[str, tuple[int, int, int]]:
    """Layer name -> (rf, jump, start) along the height axis (square kernels: width is the same).

    ``start`` is the input row of the top-left pixel of unit 0's field (negative inside the zero padding);
    unit ``i`` sees rows ``start + i * jump`` to ``start + i * jump + rf - 1``.
    """
    t = model if isinstance(model, LayerTable) else layer_table(model, input_size)
    return {n: (g.rf_h, g.jump_h, g.start_h) for n, g in t.geometry.items()}


def input_region(table_or_model: LayerTable | nn.Module | str, layer: str, y: int, x: int,
                 input_size=None) -> tuple[int, int, int, int]:
    """Input pixel box ``(top, left, bottom, right)`` seen by unit ``(y, x)`` of ``layer``'s output map (any
    layer: a row or a container such as a residual stage or an Inception module).

    ``bottom`` and ``right`` are exclusive (``image[top:bottom, left:right]``; PIL's crop box is
    ``(left, top, right, bottom)``). The box is ``start + y * jump`` .. ``+ rf`` per axis (start offset:
    the top-left corner of unit 0's field, possibly negative in the padding), clipped to the image.
    For a vector layer (after flatten) the box is the whole field of the last map.
    """
    if isinstance(table_or_model, LayerTable):
        t = table_or_model
        if input_size is not None and parse_input(input_size)[1:] != t.input[1:]:
            raise ValueError(f"table is for input {t.input}, asked for {input_size}")
    else:
        t = layer_table(table_or_model, input_size)
    g = t.region_geometry(layer)
    _, h, w = t.input
    top = g.start_h + int(y) * g.jump_h
    left = g.start_w + int(x) * g.jump_w
    bottom, right = top + g.rf_h, left + g.rf_w
    top, left = max(0, min(h, top)), max(0, min(w, left))
    bottom, right = max(top, min(h, bottom)), max(left, min(w, right))
    return top, left, bottom, right


def parameter_count(arch: str, input_size: tuple[int, int, int] | None = None, num_classes: int | None = None,
                    **variant: Any) -> ParamCount:
    """The count of a registered architecture at an input ``(C, H, W)`` and class count (None: the paper's)."""
    card = get_card(arch)
    table = layer_table(arch, input_size=tuple(input_size or card.paper_input),
                        num_classes=num_classes or card.paper_classes, **variant)
    return param_count(table)
