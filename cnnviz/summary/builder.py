"""Building a layer table: one meta-device trace of the model (:mod:`cnnviz.summary.trace`) for shapes,
dataflow and receptive fields, then each row's columns (:mod:`cnnviz.summary.columns`)."""

from __future__ import annotations

import functools
import math
from dataclasses import replace

import torch
import torch.nn as nn

from cnnviz.models.meta import meta_model
from cnnviz.models.registry import create_model, get_card
from cnnviz.summary.columns import is_activation, row_columns
from cnnviz.summary.rows import LayerRow, LayerTable, dtype_size
from cnnviz.summary.skeleton import fast_forwards, meta_skeleton
from cnnviz.summary.trace import Geometry, run_traced


def parse_input(input_size) -> tuple[int, int, int]:
    if isinstance(input_size, int):
        return (3, input_size, input_size)
    t = tuple(int(v) for v in input_size)
    if len(t) == 2:
        t = (3, *t)
    if len(t) != 3 or min(t) < 1:
        raise ValueError(f"input size must be (C, H, W) with positive sides, got {input_size!r}")
    return t  # type: ignore[return-value]


def _num_classes(model: nn.Module, out_rows: list[LayerRow]) -> int:
    args = getattr(model, "model_args", None) or {}
    if "num_classes" in args:
        return int(args["num_classes"])
    for r in reversed(out_rows):
        if not r.train_only and r.output_shape:
            return int(math.prod(r.output_shape))
    return 0


def build_table(model: nn.Module, input_size=(3, 224, 224), dtype: str = "float32", arch: str | None = None,
                skeleton: nn.Module | None = None) -> LayerTable:
    """The table of ``model`` (never modified: a meta skeleton runs the forward passes).

    ``skeleton``: an already-built meta copy to use (saves the copy); ``model`` is still read for the values
    a meta tensor cannot give (LeNet's connection masks).
    """
    from torchinfo.layer_info import LayerInfo  # lazy: a heavy import, only needed here

    c, h, w = parse_input(input_size)
    size = dtype_size(dtype)
    model = _unwrap(model)
    sk = skeleton if skeleton is not None else meta_skeleton(model)
    fast_forwards(sk)
    # the input in the model's own floating dtype (a half-precision model refuses a float32 input)
    fdtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    x = torch.zeros(1, c, h, w, device="meta", dtype=fdtype)
    try:
        rows_mod, records, outputs = run_traced(sk, x, train=False)
    except Exception as e:  # a shape error deep in the model: say which input it could not take
        raise ValueError(f"{arch or type(model).__name__} cannot take an input of {c}x{h}x{w}: {e}") from e
    train_records: dict = {}
    missing = [n for n in rows_mod if n not in records]
    if missing:
        # Modules that only run in training mode (auxiliary classifiers): a second pass, train mode, batch 2
        # (BatchNorm refuses one value per channel in train mode).
        x2 = torch.zeros(2, c, h, w, device="meta", dtype=fdtype)
        try:
            _, train_records, _ = run_traced(sk, x2, train=True)
        except Exception:  # noqa: BLE001 - best effort: rows without shapes rather than no table
            train_records = {}

    # The caller's modules, by name, for what a meta tensor cannot give (mask values, pruning masks).
    source_modules = dict(model.named_modules()) if sk is not model else {}

    rows: list[LayerRow] = []
    geometry: dict[str, Geometry] = {}
    trainable = 0
    order_all = {}
    # Order: inference execution order; train-only rows where the training pass ran them.
    if train_records:
        order_all = {n: r.order for n, r in train_records.items()}
    for name, m in rows_mod.items():
        rec = records.get(name)
        train_only = rec is None and name in train_records  # e.g. auxiliary classifiers
        if rec is None:
            rec = train_records.get(name)  # None for a module that never runs: a row without shapes
        source = source_modules.get(name)
        # Parameters: torchinfo's own per-layer count (its LayerInfo, on the caller's module when we have
        # it: pruning masks are read there, not on the meta skeleton).
        li = LayerInfo(name, source if source is not None else m, name.count(".") + 1)
        li.calculate_num_params()
        params = int(li.num_params)
        bias = sum(p.numel() for n, p in m.named_parameters() if n.rsplit(".", 1)[-1] == "bias")
        trainable += sum(p.numel() for p in m.parameters() if p.requires_grad)
        if rec is not None:
            in_shape, out_shape = rec.input_shape, rec.output_shape
            out_numel = rec.output_numel // (2 if train_only else 1)  # per image (batch 2 in train mode)
        else:
            in_shape, out_shape, out_numel = (), (), 0
        macs, conn, kernel, stride, padding = row_columns(m, source, in_shape, out_shape, out_numel, params, bias)
        if out_shape and (macs is None or isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))):
            # torchinfo's MACs for the layers it counts (the same convention as ours, see the module docs),
            # and for parameterised layers we do not know.
            li.output_size = [1, *out_shape]
            li.calculate_macs()
            macs = int(li.macs)
            conn = macs if conn is None else conn
        macs, conn = macs or 0, conn or 0
        geo = rec.geometry if rec is not None else None
        if geo is not None:
            geometry[name] = geo
        rows.append(LayerRow(
            name=name, type=type(m).__name__, input_shape=in_shape, output_shape=out_shape,
            kernel=kernel, stride=stride, padding=padding,
            activation=type(m).__name__ if is_activation(m) else None,
            params=params, weight_params=params - bias, bias_params=bias,
            activations=out_numel, activation_bytes=out_numel * size, macs=macs, connections=conn,
            rf=None if geo is None else max(geo.rf_h, geo.rf_w),
            jump=None if geo is None else max(geo.jump_h, geo.jump_w),
            depth=name.count(".") + 1,
            inputs=rec.inputs if rec is not None else (), train_only=train_only,
        ))

    def sort_key(r: LayerRow):
        if r.name in records and not order_all:
            return (records[r.name].order,)
        if order_all and r.name in order_all:
            return (order_all[r.name],)
        return (math.inf,)

    rows.sort(key=sort_key)
    rows = _attach_activations(rows)
    inference = [r for r in rows if not r.train_only]
    total_params = sum(r.params for r in rows)
    totals = {
        "params": total_params,
        "param_bytes": total_params * size,
        "activations": sum(r.activations for r in inference),
        "activation_bytes": sum(r.activation_bytes for r in inference),
        "macs": sum(r.macs for r in inference),
    }
    classes = _num_classes(model, rows)
    return LayerTable(arch=arch, input=(c, h, w), classes=classes, dtype=str(dtype), rows=rows, totals=totals,
                      trainable_params=trainable, geometry=geometry, outputs=outputs)


def _unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DataParallel / DistributedDataParallel / torch.compile wrapper (same layer names
    as the bare model: no ``module.`` or ``_orig_mod.`` prefix)."""
    for _ in range(3):
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            break
    return model


def _attach_activations(rows: list[LayerRow]) -> list[LayerRow]:
    """Give each conv/linear row the activation applied right after it (through batch norm / LRN rows)."""
    by_name = {r.name: i for i, r in enumerate(rows)}
    out = list(rows)
    passthrough = {"BatchNorm1d", "BatchNorm2d", "LocalResponseNorm", "GroupNorm", "LayerNorm"}
    for r in rows:
        if r.activation is None or r.activation != r.type or r.params:
            continue  # only activation rows propagate back to their producer
        seen = set()
        frontier = list(r.inputs)
        while len(frontier) == 1 and frontier[0] in by_name and frontier[0] not in seen:
            src = out[by_name[frontier[0]]]
            seen.add(src.name)
            if src.type in passthrough:
                frontier = list(src.inputs)
                continue
            if src.activation is None and (src.params or src.kernel):
                out[by_name[src.name]] = replace(src, activation=r.activation)
            break
    return out


def arch_table(arch: str, variant: tuple, input_size: tuple[int, int, int], num_classes: int | None,
                dtype: str) -> LayerTable:
    card = get_card(arch)
    c, h, w = input_size
    if h != w:
        raise ValueError(f"{card.display_name} is built for square inputs; got {h}x{w}")
    kwargs = dict(variant)
    if "in_channels" in card.variants:  # LeNet-5: 1 channel at 32x32 (MNIST), RGB for Tiny ImageNet
        kwargs.setdefault("in_channels", c)
    elif c != card.paper_input[0]:
        raise ValueError(f"{card.display_name} takes {card.paper_input[0]} input channel(s), got {c}")
    model = meta_model(arch, num_classes=num_classes, input_size=h, **kwargs)
    if any(isinstance(getattr(m, "connection_mask", None), torch.Tensor) and m.connection_mask.is_meta
           for m in model.modules()):
        # LeNet-5's C3 table: its values decide the connection counts, and a meta tensor has none.
        model = create_model(arch, num_classes=num_classes, input_size=h, **kwargs)
    on_meta = any(t.is_meta for t in model.parameters())
    return build_table(model, input_size, dtype, arch=arch, skeleton=model if on_meta else None)


arch_table_cached = functools.lru_cache(maxsize=128)(arch_table)

