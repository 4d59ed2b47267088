"""Per-layer tables: shapes, parameters, activations, MACs, LeNet-style connections, receptive fields.

Column definitions (per image; the batch dimension is never in the shapes):

* ``params``: elements of the module's parameters (``weight_params`` + ``bias_params``), as torchinfo counts them.
* ``activations``: elements of the module's output; ``activation_bytes`` = activations x the dtype's size.
* ``macs``: multiply-accumulates, NOT FLOPs (1 MAC ~ 2 FLOPs). Conv and Linear follow torchinfo's convention
  (one MAC per weight per output position, plus one per bias: ``out_elements x (in_ch/groups x kh x kw + 1)``),
  and for those layers our numbers equal torchinfo's (tests check it). Where we count and torchinfo does not
  (it only counts layers with parameters, and BatchNorm as ``2 x C`` once):

  - pooling (max, average, adaptive): ``out_elements x kh x kw`` (one accumulate, or compare, per window element);
  - LeNet's trainable subsampling: ``out_elements x (kh x kw + 1)`` (window sum, then coefficient and bias);
  - LocalResponseNorm: ``out_elements x (size + 1)`` (the squared sum across ``size`` maps, then the scaling);
  - BatchNorm (folded scale and shift): ``out_elements``;
  - Euclidean RBF units: ``in x out`` (one squared difference accumulated per input and unit);
  - activation functions, dropout, flatten, identity: 0 (no multiply-accumulates);
  - free ops between modules (residual adds, concatenation) have no row and are not counted.
* ``connections`` (LeNet-5 paper convention, a connection = one input feeding one unit, the bias counted as one):

  - conv: ``out_elements x (in_ch/groups x kh x kw + 1)``; with a ``connection_mask`` (out x in, LeNet's C3)
    each output map counts only its connected input maps: ``out_h x out_w x sum_m(n_in(m) x kh x kw + 1)``;
  - trainable subsampling (LeNet S2/S4): ``out_elements x (kh x kw + 1)``;
  - linear: ``in x out + out``;
  - pooling: ``out_elements x kh x kw``; LocalResponseNorm: ``out_elements x size``;
  - Euclidean RBF output units (LeNet's output layer): ``in x out`` (each unit compares all inputs to its centre);
  - elementwise layers (activation functions, batch norm, dropout) and pure reshapes (flatten, identity): 0.
    The paper counts the squashing function as part of the unit it follows, not as extra connections; with
    this convention LeNet-5's rows add up to the paper's 340,908 connections.
* torchinfo: each row's ``params`` and the conv/linear ``macs`` come from torchinfo's own ``LayerInfo``
  (``calculate_num_params`` / ``calculate_macs``) built for that row's module object (identity, no printed text).
  We do not run ``torchinfo.summary`` in the table path: its hooks on every container module cost about
  0.2 s of CPU for ResNet-152, twice our whole trace; ``tests/test_summary.py`` runs ``torchinfo.summary``
  independently and checks totals, per-layer shapes and conv/linear MACs against ours.
* ``rf`` / ``jump``: receptive field and effective stride w.r.t. the input, through the real dataflow, the largest
  field over all paths for branches and residual adds (see :mod:`cnnviz.summary.trace`).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import math
import weakref
from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

from cnnviz.summary.trace import Geometry, adaptive_window, fast_forwards, meta_skeleton, run_traced

MACS_NOTE = (
    "MACs are multiply-accumulates, not FLOPs (1 MAC = 2 FLOPs); conv/linear count the bias as one MAC per "
    "output, as torchinfo does; pooling and LRN are counted too (torchinfo counts them as 0)."
)

_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float64": torch.float64, "fp64": torch.float64, "double": torch.float64,
    "int8": torch.int8, "uint8": torch.uint8,
}

_OPTIMIZER_STATE = {"sgd": 1, "sgd_momentum": 1, "momentum": 1, "sgd_plain": 0, "none": 0,
                    "rmsprop": 1, "adagrad": 1, "adam": 2, "adamw": 2}

_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
                nn.Mish, nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus,
                nn.Softsign, nn.Tanhshrink, nn.LogSigmoid)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)
_ADAPTIVE = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_ELEMENTWISE = (*_ACTIVATIONS, *_NORMS, nn.Dropout, nn.Dropout2d, nn.AlphaDropout)
_RESHAPES = (nn.Flatten, nn.Unflatten, nn.Identity)


def dtype_size(dtype: str | torch.dtype) -> int:
    """Bytes per element of a dtype name (``"float32"``, ``"float16"``, ``"bfloat16"`` ...)."""
    if isinstance(dtype, torch.dtype):
        return torch.empty((), dtype=dtype).element_size()
    key = str(dtype).lower().removeprefix("torch.")
    if key not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(sorted(set(_DTYPES)))}")
    return torch.empty((), dtype=_DTYPES[key]).element_size()


@dataclass(frozen=True)
class LayerRow:
    """One leaf module (see the module docstring for every column's definition). Shapes have no batch dim."""

    name: str
    type: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    kernel: tuple[int, int] | None
    stride: tuple[int, int] | None
    padding: tuple[int, int] | None
    activation: str | None
    params: int
    weight_params: int
    bias_params: int
    activations: int
    activation_bytes: int
    macs: int
    connections: int
    rf: int | None
    jump: int | None
    depth: int
    inputs: tuple[str, ...] = ()  # rows (or "input") whose outputs feed this one: the dataflow graph
    train_only: bool = False  # runs only in training mode (GoogLeNet's auxiliary classifiers)


_JSON_LAYER_KEYS = ("name", "type", "input_shape", "output_shape", "kernel", "stride", "padding", "params",
                    "activations", "activation_bytes", "macs", "connections", "rf", "jump")
_TOTAL_KEYS = ("params", "activations", "activation_bytes", "macs", "param_bytes")


@dataclass
class LayerTable:
    """A model's per-layer table and totals for one input size and dtype.

    ``totals``: ``params`` (all rows, = the model's parameter count), ``param_bytes``, and per image
    ``activations``, ``activation_bytes`` and ``macs`` of the inference forward pass (rows with
    ``train_only`` -- auxiliary classifiers -- are left out of those three; they count in
    :meth:`training_memory`).
    """

    arch: str | None
    input: tuple[int, int, int]
    classes: int
    dtype: str
    rows: list[LayerRow]
    totals: dict
    trainable_params: int = 0
    geometry: dict[str, Geometry] = field(default_factory=dict, repr=False)  # per-axis rf/jump/start

    def row(self, name: str) -> LayerRow:
        """The row of the layer called ``name`` (dotted module path); KeyError listing a few names if absent."""
        for r in self.rows:
            if r.name == name:
                return r
        sample = ", ".join(r.name for r in self.rows[:6])
        raise KeyError(f"no layer {name!r} in the {self.arch or 'model'} table (layers: {sample}, ...)")

    # -- memory -------------------------------------------------------------------------------------------
    def training_memory(self, batch_size: int, optimizer: str = "sgd") -> dict:
        """Estimated bytes to train at ``batch_size``: weights, grads, optimizer state, saved activations.

        Assumptions (an estimate, not a measurement):

        * weights, gradients and optimizer state are all in the table's dtype; gradients only for trainable
          parameters; optimizer state per trainable parameter: SGD with momentum 1x (``"sgd"``), plain SGD 0x
          (``"sgd_plain"``), RMSprop/Adagrad 1x, Adam/AdamW 2x (first and second moments);
        * every row's output is kept for the backward pass (``activations`` = sum of all rows' output bytes,
          auxiliary classifiers included, times ``batch_size``). Frameworks keep a bit less (in-place ops,
          views) and a bit more (max-pool indices, dropout masks, the input batch);
        * not included: the CUDA context and cuDNN workspaces, allocator fragmentation, mixed-precision master
          weights, data-loader buffers.
        """
        if int(batch_size) < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        key = optimizer.lower().replace("-", "_")
        if key not in _OPTIMIZER_STATE:
            raise ValueError(f"unknown optimizer {optimizer!r}; use one of {', '.join(_OPTIMIZER_STATE)}")
        size = dtype_size(self.dtype)
        weights = self.totals["params"] * size
        grads = self.trainable_params * size
        optim = self.trainable_params * size * _OPTIMIZER_STATE[key]
        activations = sum(r.activation_bytes for r in self.rows) * int(batch_size)
        return {"weights": weights, "grads": grads, "optim": optim, "activations": activations,
                "total": weights + grads + optim + activations, "batch_size": int(batch_size),
                "optimizer": key}

    # -- exports ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The CLI's JSON: arch, input, classes, layers (the columns below), totals; shapes as lists."""

        def conv(v):
            return list(v) if isinstance(v, tuple) else v

        return {
            "arch": self.arch,
            "input": list(self.input),
            "classes": self.classes,
            "layers": [{k: conv(getattr(r, k)) for k in _JSON_LAYER_KEYS} for r in self.rows],
            "totals": {k: int(self.totals[k]) for k in _TOTAL_KEYS},
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_dataframe(self):
        """A pandas DataFrame, one row per layer, every LayerRow column; shapes/kernels as ``"64x55x55"``."""
        import pandas as pd

        records = []
        for r in self.rows:
            d = {f.name: getattr(r, f.name) for f in fields(r)}
            for k in ("input_shape", "output_shape", "kernel", "stride", "padding"):
                d[k] = _shape_str(d[k])
            d["inputs"] = ", ".join(r.inputs)
            records.append(d)
        return pd.DataFrame.from_records(records, columns=[f.name for f in fields(LayerRow)])

    def to_csv(self) -> str:
        """CSV of :meth:`to_dataframe` (exact integers, no units)."""
        buf = io.StringIO()
        self.to_dataframe().to_csv(buf, index=False)
        return buf.getvalue()

    def to_markdown(self) -> str:
        """A Markdown table with readable units, followed by the totals and the MACs note."""
        head, body = _display_rows(self)
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
        lines += ["", *("- " + t for t in _totals_lines(self)), "", f"_{MACS_NOTE}_"]
        return "\n".join(lines) + "\n"

    def to_text(self, batch_size: int | None = None, optimizer: str = "sgd") -> str:
        """An aligned plain-text table with units (K/M/G), totals, optional training memory, MACs note."""
        head, body = _display_rows(self)
        widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(head)]
        numeric = {i for i, h in enumerate(head) if h in _NUMERIC_HEADS}

        def fmt(cells):
            return "  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                             for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

        title = (f"{self.arch or 'model'}: input {_shape_str(self.input)}, {self.classes} classes, "
                 f"dtype {self.dtype}")
        out = [title, "", fmt(head), "  ".join("-" * w for w in widths)]
        out += [fmt(r) for r in body]
        out += ["", *_totals_lines(self)]
        if batch_size:
            m = self.training_memory(batch_size, optimizer)
            out.append(
                f"Training memory estimate at batch {batch_size} ({m['optimizer']}): {human_bytes(m['total'])} "
                f"= weights {human_bytes(m['weights'])} + grads {human_bytes(m['grads'])} + optimizer "
                f"{human_bytes(m['optim'])} + saved activations {human_bytes(m['activations'])}"
            )
        out += ["", MACS_NOTE]
        return "\n".join(out) + "\n"


_NUMERIC_HEADS = {"params", "act mem", "MACs", "connections", "rf", "jump"}


def human(n: int | float | None) -> str:
    """1234567 -> '1.23M' (K/M/G/T, powers of 1000)."""
    if n is None:
        return "-"
    n = float(n)
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}" if abs(n) / scale < 100 else f"{n / scale:.0f}{unit}"
    return f"{int(n)}"


def human_bytes(n: int | float) -> str:
    """Bytes with decimal units (1 MB = 10^6 bytes)."""
    s = human(n)
    return s + "B" if s[-1].isalpha() else s + " B"


def _shape_str(v) -> str:
    if v is None:
        return ""
    return "x".join(str(int(x)) for x in v)


def _display_rows(t: LayerTable) -> tuple[list[str], list[list[str]]]:
    head = ["layer", "type", "output", "kernel/stride/pad", "act", "params", "act mem", "MACs",
            "connections", "rf", "jump"]
    body = []
    for r in t.rows:
        ksp = ""
        if r.kernel is not None:
            ksp = f"{_shape_str(r.kernel)} /{r.stride[0] if r.stride else ''} /{r.padding[0] if r.padding else ''}"
        body.append([
            r.name + (" (train)" if r.train_only else ""), r.type, _shape_str(r.output_shape), ksp,
            r.activation or "", human(r.params) if r.params else "", human_bytes(r.activation_bytes),
            human(r.macs) if r.macs else "", human(r.connections) if r.connections else "",
            "" if r.rf is None else str(r.rf), "" if r.jump is None else str(r.jump),
        ])
    return head, body


def _totals_lines(t: LayerTable) -> list[str]:
    from cnnviz.summary.params import param_count  # the one count every view shows

    tot = t.totals
    count = param_count(t)
    return [
        f"Parameters: {count.inference:,} ({human(count.inference)})"
        + (f" at inference; the training-only auxiliary classifiers add {count.training_only:,} "
           f"({count.total:,} in training, {human_bytes(tot['param_bytes'])} as {t.dtype})" if count.training_only
           else f", {human_bytes(tot['param_bytes'])} as {t.dtype}"),
        f"Forward activations per image: {tot['activations']:,} ({human(tot['activations'])}), "
        f"{human_bytes(tot['activation_bytes'])}",
        f"MACs per image: {tot['macs']:,} ({human(tot['macs'])})",
    ] + ([f"Rows marked (train) ({n} of them: auxiliary classifiers) run only in training: they count in the "
          "training parameters and memory, not in the inference parameters, per-image activations and MACs."]
         if (n := sum(r.train_only for r in t.rows)) else [])


# ---------------------------------------------------------------------------------------------------------
# Columns
# ---------------------------------------------------------------------------------------------------------
def _pair_or_none(v) -> tuple[int, int] | None:
    if v is None or isinstance(v, str):
        return None
    if isinstance(v, (tuple, list)):
        return (int(v[0]), int(v[-1]))
    return (int(v), int(v))


def _is_activation(m: nn.Module) -> bool:
    if isinstance(m, _ACTIVATIONS) or getattr(m, "is_activation", False):
        return True
    name = type(m).__name__.lower()
    return not any(True for _ in m.parameters()) and any(k in name for k in ("relu", "tanh", "sigmoid", "squash"))


def _mask_in_counts(m: nn.Module) -> list[int] | None:
    """Connected input maps per output map from a LeNet-style ``connection_mask`` (out x in), if any."""
    mask = getattr(m, "connection_mask", None)
    if mask is None:
        return None
    mask = torch.as_tensor(mask)
    if mask.is_meta:
        return None
    return [int(v) for v in mask.reshape(mask.shape[0], -1).bool().sum(dim=1).tolist()]


def _columns(m: nn.Module, source: nn.Module | None, in_shape, out_shape, out_numel: int, params: int,
             bias: int) -> tuple[int, int, tuple | None, tuple | None, tuple | None]:
    """(macs, connections, kernel, stride, padding) of one row (per image; shapes without the batch dim)."""
    kernel = _pair_or_none(getattr(m, "kernel_size", None))
    stride = _pair_or_none(getattr(m, "stride", None)) if kernel else None
    padding = getattr(m, "padding", 0) if kernel else None
    if isinstance(padding, str) and kernel:  # Conv2d(padding="same"/"valid")
        padding = ((kernel[0] - 1) // 2, (kernel[1] - 1) // 2) if padding == "same" else (0, 0)
    padding = _pair_or_none(padding) if kernel else None
    if kernel and stride is None:
        stride = kernel
    out_spatial = math.prod(out_shape[1:]) if len(out_shape) >= 2 else 1
    masks = _mask_in_counts(source if source is not None else m)

    if isinstance(m, _ADAPTIVE):
        # adaptive pooling: kernel/stride are implied by the sizes.
        k = _adaptive_kernel(in_shape, out_shape)
        return out_numel * k, out_numel * k, None, None, None
    if kernel and params and (isinstance(m, nn.modules.conv._ConvNd) or hasattr(m, "in_channels")
                              or hasattr(m, "connection_mask")):
        # Conv (LeNet C3 included): torchinfo's MACs = out positions x (weights + biases) = connections.
        kk = kernel[0] * kernel[1]
        if masks is not None:
            has_bias = 1 if bias else 0
            conn = out_spatial * sum(n * kk + has_bias for n in masks)
            return conn, conn, kernel, stride, padding
        return out_spatial * params, out_spatial * params, kernel, stride, padding
    if kernel and params:
        # Trainable subsampling (LeNet S2/S4): window sum x coefficient + bias per output unit.
        n = out_numel * (kernel[0] * kernel[1] + 1)
        return n, n, kernel, stride, padding
    if kernel:  # pooling: one accumulate (or compare) per window element; torchinfo counts 0
        n = out_numel * kernel[0] * kernel[1]
        return n, n, kernel, stride, padding
    if isinstance(m, nn.Linear) or (params and type(m).__name__.lower().endswith("linear")):
        lead = math.prod(out_shape[:-1]) if len(out_shape) > 1 else 1
        return lead * params, lead * params, None, None, None
    if isinstance(m, nn.LocalResponseNorm):
        return out_numel * (m.size + 1), out_numel * m.size, None, None, None
    if isinstance(m, _NORMS):
        return out_numel, 0, None, None, None
    if isinstance(m, _RESHAPES):
        return 0, 0, None, None, None
    if "rbf" in type(m).__name__.lower() and len(in_shape) == 1 and len(out_shape) == 1:
        n = int(in_shape[0]) * int(out_shape[0])
        return n, n, None, None, None
    if isinstance(m, _ELEMENTWISE) or _is_activation(m):
        return 0, 0, None, None, None
    # Unknown leaf: None = torchinfo's count for a parameterised layer (filled in by build_table), 0 otherwise.
    return (None, None, None, None, None) if params else (0, 0, None, None, None)


def _adaptive_kernel(in_shape, out_shape) -> int:
    if len(in_shape) < 3 or len(out_shape) < 3:
        return 1
    kh, _ = adaptive_window(int(in_shape[-2]), int(out_shape[-2]))
    kw, _ = adaptive_window(int(in_shape[-1]), int(out_shape[-1]))
    return kh * kw


# ---------------------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------------------
def _parse_input(input_size) -> tuple[int, int, int]:
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

    c, h, w = _parse_input(input_size)
    size = dtype_size(dtype)
    model = _unwrap(model)
    sk = skeleton if skeleton is not None else meta_skeleton(model)
    fast_forwards(sk)
    # the input in the model's own floating dtype (a half-precision model refuses a float32 input)
    fdtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    x = torch.zeros(1, c, h, w, device="meta", dtype=fdtype)
    try:
        rows_mod, records = run_traced(sk, x, train=False)
    except Exception as e:  # a shape error deep in the model: say which input it could not take
        raise ValueError(f"{arch or type(model).__name__} cannot take an input of {c}x{h}x{w}: {e}") from e
    train_records: dict = {}
    missing = [n for n in rows_mod if n not in records]
    if missing:
        # Modules that only run in training mode (auxiliary classifiers): a second pass, train mode, batch 2
        # (BatchNorm refuses one value per channel in train mode).
        x2 = torch.zeros(2, c, h, w, device="meta", dtype=fdtype)
        try:
            _, train_records = run_traced(sk, x2, train=True)
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
        macs, conn, kernel, stride, padding = _columns(m, source, in_shape, out_shape, out_numel, params, bias)
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
            activation=type(m).__name__ if _is_activation(m) else None,
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
                      trainable_params=trainable, geometry=geometry)


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


# ---------------------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------------------
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
        from cnnviz.models.registry import get_card

        card = get_card(model_or_arch)
        if input_size is None:
            input_size = card.paper_input
        elif isinstance(input_size, int) or len(tuple(input_size)) == 2:
            side = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
            input_size = (card.paper_input[0], *side)
    c, h, w = _parse_input((3, 224, 224) if input_size is None else input_size)
    dtype_size(dtype)  # validate early, clear message
    if isinstance(model_or_arch, str):
        key_variant = tuple(sorted(variant.items()))
        try:
            hash(key_variant)
        except TypeError:
            return _arch_table(model_or_arch, key_variant, (c, h, w), num_classes, str(dtype))
        return _copy(_arch_table_cached(model_or_arch, key_variant, (c, h, w), num_classes, str(dtype)))
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
                      totals=dict(t.totals), trainable_params=t.trainable_params, geometry=dict(t.geometry))


def _arch_table(arch: str, variant: tuple, input_size: tuple[int, int, int], num_classes: int | None,
                dtype: str) -> LayerTable:
    from cnnviz.models.registry import create_model, get_card

    card = get_card(arch)
    c, h, w = input_size
    if h != w:
        raise ValueError(f"{card.display_name} is built for square inputs; got {h}x{w}")
    kwargs = dict(variant)
    if "in_channels" in card.variants:  # LeNet-5: 1 channel at 32x32 (MNIST), RGB for Tiny ImageNet
        kwargs.setdefault("in_channels", c)
    elif c != card.paper_input[0]:
        raise ValueError(f"{card.display_name} takes {card.paper_input[0]} input channel(s), got {c}")
    try:
        with torch.device("meta"), _SkipInitOnMeta():
            model = create_model(arch, num_classes=num_classes, input_size=h, **kwargs)
        needs_real = any(isinstance(getattr(m, "connection_mask", None), torch.Tensor)
                         and m.connection_mask.is_meta for m in model.modules())
    except (TypeError, ValueError):
        raise
    except Exception:  # noqa: BLE001 - a factory that cannot build on meta: build for real
        needs_real = True
    if needs_real:  # small models only in practice (LeNet): real values needed for the masks
        model = create_model(arch, num_classes=num_classes, input_size=h, **kwargs)
        return build_table(model, input_size, dtype, arch=arch)
    return build_table(model, input_size, dtype, arch=arch, skeleton=model)


_arch_table_cached = functools.lru_cache(maxsize=128)(_arch_table)


class _SkipInitOnMeta(TorchFunctionMode):
    """Skips weight initialisation (``normal_``, ``uniform_``, ``fill_`` ...) on meta tensors.

    A meta tensor has no values, so an in-place fill of one is a no-op that returns it -- but on the meta
    device these ops run as Python decompositions, and ResNet-152's 155 ``kaiming_normal_`` calls were about
    a third of its whole table time. Only in-place value fills are skipped (never shape-changing ops), only
    for meta tensors, and the mode is thread-local (it is active only while this thread builds a model).
    """

    _FILLS = frozenset({"uniform_", "normal_", "fill_", "zero_", "erfinv_", "mul_", "add_", "sub_", "div_",
                        "clamp_", "copy_", "exponential_", "random_", "bernoulli_", "log_normal_", "cauchy_",
                        "geometric_", "trunc_normal_"})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if (getattr(func, "__name__", "") in self._FILLS and args and isinstance(args[0], torch.Tensor)
                and args[0].is_meta):
            return args[0]
        return func(*args, **(kwargs or {}))


def receptive_fields(model: nn.Module | str | LayerTable, input_size=None) -> dict[str, tuple[int, int, int]]:
    """Layer name -> (rf, jump, start) along the height axis (square kernels: width is the same).

    ``start`` is the input row of the top-left pixel of unit 0's field (negative inside the zero padding);
    unit ``i`` sees rows ``start + i * jump`` to ``start + i * jump + rf - 1``.
    """
    t = model if isinstance(model, LayerTable) else layer_table(model, input_size)
    return {n: (g.rf_h, g.jump_h, g.start_h) for n, g in t.geometry.items()}


def input_region(table_or_model: LayerTable | nn.Module | str, layer: str, y: int, x: int,
                 input_size=None) -> tuple[int, int, int, int]:
    """Input pixel box ``(top, left, bottom, right)`` seen by unit ``(y, x)`` of ``layer``'s output map.

    ``bottom`` and ``right`` are exclusive (``image[top:bottom, left:right]``; PIL's crop box is
    ``(left, top, right, bottom)``). The box is ``start + y * jump`` .. ``+ rf`` per axis (start offset:
    the top-left corner of unit 0's field, possibly negative in the padding), clipped to the image.
    For a vector layer (after flatten) the box is the whole field of the last map.
    """
    if isinstance(table_or_model, LayerTable):
        t = table_or_model
        if input_size is not None and _parse_input(input_size)[1:] != t.input[1:]:
            raise ValueError(f"table is for input {t.input}, asked for {input_size}")
    else:
        t = layer_table(table_or_model, input_size)
    if layer not in t.geometry:
        t.row(layer)  # KeyError with the known names when the layer does not exist
        raise ValueError(f"layer {layer!r} has no receptive field (it does not run in inference)")
    g = t.geometry[layer]
    _, h, w = t.input
    top = g.start_h + int(y) * g.jump_h
    left = g.start_w + int(x) * g.jump_w
    bottom, right = top + g.rf_h, left + g.rf_w
    top, left = max(0, min(h, top)), max(0, min(w, left))
    bottom, right = max(top, min(h, bottom)), max(left, min(w, right))
    return top, left, bottom, right
