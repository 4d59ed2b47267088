"""A layer table's rows and the table: :class:`LayerRow` (one row), :class:`LayerTable` (the rows, their totals
and receptive-field geometry, the exports and the training-memory estimate). What each column counts:
:mod:`cnnviz.summary.columns`; how a table is built: :mod:`cnnviz.summary.builder`.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field, fields

import torch

from cnnviz.errors import UnknownName
from cnnviz.summary.columns import MACS_NOTE
from cnnviz.summary.params import param_count  # the one count every view shows
from cnnviz.summary.trace import Geometry, LayerOutput
from cnnviz.summary.units import human, human_bytes

_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float64": torch.float64, "fp64": torch.float64, "double": torch.float64,
    "int8": torch.int8, "uint8": torch.uint8,
}

_OPTIMIZER_STATE = {"sgd": 1, "sgd_momentum": 1, "momentum": 1, "sgd_plain": 0, "none": 0,
                    "rmsprop": 1, "adagrad": 1, "adam": 2, "adamw": 2}


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

    ``rows`` are the layers the table counts (leaves, and modules with weights of their own); ``outputs`` has
    every layer that runs at inference, containers included (a residual stage, an Inception module,
    ``features``), in the order they finish: its output's shape and receptive-field geometry. ``geometry`` is
    the rows' geometry (rows that run only in training included).
    """

    arch: str | None
    input: tuple[int, int, int]
    classes: int
    dtype: str
    rows: list[LayerRow]
    totals: dict
    trainable_params: int = 0
    geometry: dict[str, Geometry] = field(default_factory=dict, repr=False)  # per-axis rf/jump/start
    outputs: dict[str, LayerOutput] = field(default_factory=dict, repr=False)  # every layer, containers too

    def region_geometry(self, layer: str) -> Geometry:
        """The receptive-field geometry of any layer's units (a row or a container); ``KeyError`` naming a few
        layers when there is no such layer, ``ValueError`` when it has no receptive field (it does not run in
        inference)."""
        out = self.outputs.get(layer)
        geometry = self.geometry.get(layer) or (out.geometry if out is not None else None)
        if geometry is None:
            if out is None:
                self.row(layer)  # KeyError with the known names when the layer does not exist
            raise ValueError(f"layer {layer!r} has no receptive field (it does not run in inference)")
        return geometry

    def row(self, name: str) -> LayerRow:
        """The row of the layer called ``name`` (dotted module path); KeyError listing a few names if absent."""
        for r in self.rows:
            if r.name == name:
                return r
        sample = ", ".join(r.name for r in self.rows[:6])
        raise UnknownName(f"no layer {name!r} in the {self.arch or 'model'} table (layers: {sample}, ...)")

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
        import pandas as pd  # lazy: only the exports need pandas, not the training worker

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
