"""Figures and page-ready data for the Architectures page: plotly charts, a block diagram, tables.

Everything here takes a :class:`cnnviz.summary.LayerTable` (or a model) and returns plain objects (plotly
figures, DOT strings, pandas frames, sentences), so a notebook can draw the same pictures as the dashboard::

    from cnnviz.summary import layer_table
    from cnnviz.views import architectures as fa
    t = layer_table("vgg16")
    fa.layer_chart(t, "params").show()
    print(fa.highlights(t))

Units: parameters and activations are counts of numbers; memory is in bytes for the table's dtype, shown
with decimal prefixes like the CLI (1 MB = 10**6 bytes); MACs are multiply-accumulates (1 MAC = 2 FLOPs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import torch
import torch.nn as nn
from plotly.subplots import make_subplots

from cnnviz.models.registry import ModelCard, create_model, get_card
from cnnviz.summary import MACS_NOTE, cs231n_memory, human, human_bytes, param_count, writeup_errors
from cnnviz.views.charts import note_left_out, readable_log_axis

MAC_NOTE = "MACs are multiply-accumulates (1 MAC = 2 FLOPs); memory uses decimal units (1 MB = 10^6 bytes)."
__all__ = ["MACS_NOTE", "MAC_NOTE", "human", "human_bytes"]  # re-exported for pages and notebooks

# The metrics a per-layer chart can show: (row attribute, axis title, question it answers).
METRICS: dict[str, tuple[str, str, str]] = {
    "params": ("params", "parameters", "Where do the parameters live?"),
    "activation_bytes": ("activation_bytes", "activation memory per image (bytes)", "Where does the memory go?"),
    "macs": ("macs", "MACs per image", "Where does the compute go?"),
}


# ---------------------------------------------------------------- numbers
def _shape(s: tuple[int, ...] | list[int] | None) -> str:
    return "x".join(str(v) for v in s) if s else "-"


def _pair(p: tuple[int, int] | None) -> str:
    if p is None:
        return ""
    return f"{p[0]}" if len(set(p)) == 1 else "x".join(str(v) for v in p)


# ---------------------------------------------------------------- the card, the table and totals
def card_markdown(card: ModelCard, table: Any = None) -> str:
    """The model card as Markdown: paper, the paper's own figures, key ideas, deviations, 64x64 changes.

    With the page's ``table``, the card also gives our parameter count at that input and class count (the
    same :func:`cnnviz.summary.param_count` as the headline), beside the paper's own figure."""
    f = card.figures

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:g}%"

    parts = [f"**[{card.title}]({card.url})**  \n{card.authors}. *{card.venue}*, {card.year}.",
             f"**The paper's figures:** {human(f.params)} parameters, top-1 error {pct(f.top1_error)}, "
             f"top-5 error {pct(f.top5_error)}" + (f", {f.gmacs:g} GMACs" if f.gmacs else "") + "."
             + (f" _{f.note}_" if f.note else ""),
             f"**Paper's input:** {_shape(card.paper_input)}, {card.paper_classes} classes."]
    if table is not None:
        parts.append(f"**Our count at {_shape(table.input)}, {table.classes} classes:** "
                     f"{param_count(table).sentence(exact=True)}.")
    for title, items in (("Key ideas", card.key_ideas), ("Where our code differs from the paper", card.deviations),
                         ("What changes at 64x64 (Tiny ImageNet)", card.adaptations_64)):
        if items:
            parts.append(f"**{title}**\n" + "\n".join(f"- {i}" for i in items))
    return "\n\n".join(parts)


# ---------------------------------------------------------------- the table and totals
# Columns of display_frame / compare_frame by unit (the page formats counts as K/M/G and bytes as kB/MB).
COUNT_COLUMNS = ("params", "weights", "biases", "activations", "MACs", "connections", "activations / image",
                 "MACs / image", "paper params", "training-only params")
BYTE_COLUMNS = ("activation memory", "parameter memory", "activation memory / image")
COLUMN_HELP = {
    "params": "weights + biases (comparing architectures: at inference, without training-only heads)",
    "training-only params": "heads used only in training (GoogLeNet's auxiliary classifiers), not in params",
    "parameter memory": "bytes of params (at inference) in the chosen dtype",
    "activations": "output elements per image",
    "activation memory": "per image, in the chosen dtype",
    "MACs": "multiply-accumulates per image (1 MAC = 2 FLOPs); K/M/B = thousand/million/billion",
    "MACs / image": "multiply-accumulates per image at this input (K/M/B = thousand/million/billion)",
    "connections": "LeNet-style connections: one per input feeding a unit, the bias counted as one",
    "receptive field": "pixels of the input that can affect one unit (largest over all paths)",
    "jump": "distance in input pixels between neighbouring units (effective stride)",
}


def display_frame(table: Any) -> pd.DataFrame:
    """One row per layer, numbers kept as numbers (the page formats them), shapes as '64x224x224'."""
    records = []
    for r in table.rows:
        records.append({
            "layer": r.name,
            "type": r.type,
            "input": _shape(r.input_shape),
            "output": _shape(r.output_shape),
            "kernel": _pair(r.kernel),
            "stride": _pair(r.stride),
            "padding": _pair(r.padding),
            "activation": r.activation or "",
            "params": r.params,
            "weights": r.weight_params,
            "biases": r.bias_params,
            "activations": r.activations,
            "activation memory": r.activation_bytes,
            "MACs": r.macs,
            "connections": r.connections,
            "receptive field": r.rf,
            "jump": r.jump,
        })
    frame = pd.DataFrame.from_records(records)
    train_only = [bool(getattr(r, "train_only", False)) for r in table.rows]
    if any(train_only):  # GoogLeNet's auxiliary classifiers: in the table, not in the per-image totals
        frame.insert(2, "training only", train_only)
    return frame


_MEMORY_PARTS = ("weights", "grads", "optim", "activations")  # byte keys of LayerTable.training_memory


def totals(table: Any, batch_size: int = 1, optimizer: str = "sgd") -> dict[str, tuple[str, str]]:
    """Headline figures for the page: label -> (short value, exact value with units)."""
    t = table.totals
    count = param_count(table)
    mem = table.training_memory(batch_size, optimizer)
    parts = ", ".join(f"{k} {human_bytes(mem[k])}" for k in _MEMORY_PARTS)
    return {
        "Parameters": (human(count.inference), count.sentence(exact=True)),
        "Parameter memory": _param_memory(table, count),
        "Activations / image": (human(t["activations"]), f"{t['activations']:,} output elements per image"),
        "Activation memory": (human_bytes(t["activation_bytes"]), f"{t['activation_bytes']:,} bytes per image"),
        "MACs / image": (human(t["macs"]), f"{t['macs']:,} multiply-accumulates per image"),
        f"Training, batch {batch_size}": (human_bytes(mem["total"]), f"{optimizer}: {parts}"),
    }


def _param_memory(table: Any, count: Any) -> tuple[str, str]:
    """Bytes of the parameters the headline counts (at inference); training-only heads said apart."""
    size = table.totals["param_bytes"] // max(1, count.total)
    exact = f"{count.inference * size:,} bytes in {table.dtype}"
    if count.training_only:
        exact += f" at inference; {table.totals['param_bytes']:,} in training (auxiliary classifiers included)"
    return human_bytes(count.inference * size), exact


def exact_totals(table: Any) -> str:
    """One sentence with the exact totals (the metrics above it are rounded); training-only heads are named."""
    t = table.totals
    count = param_count(table)
    heads = (f" at inference (the training-only auxiliary classifiers add {count.training_only:,}: "
             f"{count.total:,} in training)" if count.training_only else "")
    return (f"Exactly {count.inference:,} parameters{heads}, {t['activations']:,} activations and {t['macs']:,} "
            f"MACs per {'x'.join(map(str, table.input))} image.")


def training_memory_frame(table: Any, batch_size: int, optimizer: str = "sgd") -> pd.DataFrame:
    """The training-memory estimate split into its parts (bytes and readable)."""
    mem = table.training_memory(batch_size, optimizer)
    return pd.DataFrame(
        [{"part": k, "bytes": int(mem[k]), "readable": human_bytes(mem[k])} for k in (*_MEMORY_PARTS, "total")]
    )


def highlights(table: Any) -> list[str]:
    """Sentences answering 'where do the parameters live?' and 'where does the memory / compute go?'."""
    out = []
    for key, noun in (("params", "Parameters"), ("activation_bytes", "Activation memory"), ("macs", "MACs")):
        # Per-image activations and MACs are those of inference, like the totals: auxiliary heads left out.
        rows = table.rows if key == "params" else [r for r in table.rows if not getattr(r, "train_only", False)]
        total = sum(getattr(r, key) for r in rows)
        if total <= 0:
            continue
        top = max(rows, key=lambda r: getattr(r, key))
        share = getattr(top, key) / total
        value = human_bytes(getattr(top, key)) if key == "activation_bytes" else human(getattr(top, key))
        aux = ", auxiliary classifier used in training only" if getattr(top, "train_only", False) else ""
        whole = " (training-only heads included)" if key == "params" and any(
            getattr(r, "train_only", False) for r in rows) else ""
        sentence = f"**{noun}:** `{top.name}` ({top.type}{aux}, output {_shape(top.output_shape)}) " \
                   f"holds {value}, {share:.0%} of the total{whole}"
        if key == "activation_bytes":
            first = [r for r in rows if r.activation_bytes][: max(1, len(rows) // 5)]
            part = sum(r.activation_bytes for r in first) / total
            sentence += f"; the first {len(first)} of {len(rows)} layers take {part:.0%}"
        out.append(sentence + ".")
    return out


# ---------------------------------------------------------------- charts
_TYPE_COLORS = {
    "conv": "#1f77b4", "linear": "#2ca02c", "pool": "#ff7f0e", "norm": "#9467bd", "act": "#8c8c8c",
    "other": "#17becf",
}


def _kind(type_name: str) -> str:
    t = type_name.lower()
    if "conv" in t or "c3" in t:
        return "conv"
    if "linear" in t or t.startswith("fc"):
        return "linear"
    if "pool" in t or "subsampl" in t:
        return "pool"
    if "norm" in t or "lrn" in t:
        return "norm"
    if any(a in t for a in ("relu", "tanh", "sigmoid", "softmax", "elu", "dropout", "flatten")):
        return "act"
    return "other"


def layer_chart(table: Any, metric: str = "params") -> go.Figure:
    """A bar per layer (layers with a zero value left out), coloured by kind, hover with the details."""
    attr, axis, question = METRICS[metric]
    rows = [r for r in table.rows if getattr(r, attr)]
    total = sum(getattr(r, attr) for r in table.rows) or 1
    fig = go.Figure()
    for kind, color in _TYPE_COLORS.items():
        sel = [r for r in rows if _kind(r.type) == kind]
        if not sel:
            continue
        values = [getattr(r, attr) for r in sel]
        readable = [human_bytes(v) if metric == "activation_bytes" else human(v) for v in values]
        fig.add_bar(
            x=[r.name for r in sel], y=values, name=kind, marker_color=color,
            customdata=[[r.type, _shape(r.output_shape), txt, f"{v / total:.1%}"]
                        for r, v, txt in zip(sel, values, readable, strict=True)],
            hovertemplate="<b>%{x}</b> (%{customdata[0]})<br>output %{customdata[1]}<br>"
                          + axis + ": %{customdata[2]} (%{customdata[3]} of total)<extra></extra>",
        )
    fig.update_layout(
        title=question, barmode="overlay", height=380, margin=dict(l=10, r=10, t=50, b=10),
        xaxis=dict(categoryorder="array", categoryarray=[r.name for r in rows], title=None, tickangle=-60),
        yaxis=dict(title=axis), legend=dict(orientation="h", y=1.12, x=1, xanchor="right"),
    )
    return fig


def receptive_field_chart(table: Any) -> go.Figure:
    """Receptive field (pixels) and jump (effective stride) of every layer of the inference path, in order.

    Through branches each row has its own field (an Inception module's 1x1 branch sees less than its 5x5
    branch), so the markers zigzag; the line is the largest field so far. Jumps are powers of two here, on a
    log2 axis. Auxiliary classifiers (training only) are left out.
    """
    rows = [r for r in table.rows if r.rf is not None and not getattr(r, "train_only", False)]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    names = [r.name for r in rows]
    custom = [[r.type, _shape(r.output_shape), r.jump] for r in rows]
    running, best = [], 0
    for r in rows:
        best = max(best, r.rf)
        running.append(best)
    fig.add_scatter(x=names, y=running, name="largest field so far (px)", mode="lines",
                    line=dict(color="#1f77b4", shape="hv"), hoverinfo="skip")
    fig.add_scatter(x=names, y=[r.rf for r in rows], name="receptive field of the layer (px)", mode="markers",
                    customdata=custom, marker=dict(color="#1f77b4", size=5),
                    hovertemplate="<b>%{x}</b> (%{customdata[0]}, output %{customdata[1]})<br>"
                                  "receptive field %{y} px, jump %{customdata[2]} px<extra></extra>")
    jumps = [r.jump for r in rows]
    fig.add_scatter(x=names, y=jumps, name="jump, effective stride (px)", mode="lines",
                    line=dict(color="#ff7f0e", dash="dot", shape="hv"), hoverinfo="skip", secondary_y=True)
    side = table.input[-1]
    fig.add_hline(y=side, line_dash="dash", line_color="gray", annotation_text=f"input {side} px",
                  annotation_position="top left")
    fig.update_layout(title="Receptive field and jump with respect to the input", height=400,
                      margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=1.14, x=1, xanchor="right"),
                      xaxis=dict(categoryorder="array", categoryarray=names, tickangle=-60))
    fig.update_yaxes(title_text="receptive field (px)", rangemode="tozero", secondary_y=False)
    top = max(jumps or [1])
    ticks = [2**i for i in range(max(1, top).bit_length() + 1)]
    fig.update_yaxes(title_text="jump (px)", type="log", tickvals=ticks, ticktext=[str(t) for t in ticks],
                     showgrid=False, secondary_y=True)
    return fig


# ---------------------------------------------------------------- compare view
def compare_frame(entries: list[tuple[ModelCard, Any]]) -> pd.DataFrame:
    """Totals of several architectures side by side, with the papers' own figures."""
    records = []
    for card, table in entries:
        t = table.totals
        f = card.figures
        count = param_count(table)
        records.append({
            "architecture": card.display_name,
            "year": card.year,
            "input": _shape(table.input),
            "classes": table.classes,
            "params": count.inference,
            "training-only params": count.training_only,
            "parameter memory": t["param_bytes"] * count.inference // max(1, count.total),
            "activations / image": t["activations"],
            "activation memory / image": t["activation_bytes"],
            "MACs / image": t["macs"],
            "paper params": f.params,
            "paper top-1 error %": f.top1_error,
            "paper top-5 error %": f.top5_error,
        })
    return pd.DataFrame.from_records(records)


def paper_accuracy_points(entries: list[tuple[ModelCard, Any]], metric: str = "top5"
                          ) -> tuple[list[tuple[ModelCard, Any]], list[str]]:
    """The entries the accuracy chart can plot, and for each other one why not ("NiN: its paper reports
    CIFAR-10 results, not ImageNet"; "GoogLeNet: its paper reports no top-1 error")."""
    key = "top1_error" if metric == "top1" else "top5_error"
    label = "top-1" if metric == "top1" else "top-5"
    points, left_out = [], []
    for card, table in entries:
        if card.figures.dataset != "ImageNet":
            left_out.append(f"{card.display_name} (its paper reports {card.figures.dataset} results, not ImageNet)")
        elif getattr(card.figures, key) is None:
            left_out.append(f"{card.display_name} (its paper reports no {label} error)")
        else:
            points.append((card, table))
    return points, left_out


def accuracy_vs_macs_chart(entries: list[tuple[ModelCard, Any]], metric: str = "top5") -> go.Figure:
    """Paper accuracy (100 - reported error) against our MACs at the paper's input; bubble area ~ parameters
    at inference (:func:`cnnviz.summary.param_count`).

    Only architectures evaluated on ImageNet (1000 classes) and reporting the chosen error can be plotted:
    LeNet-5's figures are for MNIST and NiN's for CIFAR-10 (``PaperFigures.dataset``). Every architecture
    left out is named under the chart with the reason. The log MACs axis has 1-2-5 ticks in M/G.
    """
    key = "top1_error" if metric == "top1" else "top5_error"
    pts, left_out = paper_accuracy_points(entries, metric)
    fig = go.Figure()
    if pts:
        params = [param_count(t).inference for _, t in pts]
        biggest = max(params)
        fig.add_scatter(
            x=[t.totals["macs"] for _, t in pts],
            y=[100 - getattr(c.figures, key) for c, _ in pts],
            mode="markers+text", text=[c.display_name for c, _ in pts], textposition="top center",
            marker=dict(size=[8 + 52 * (p / biggest) ** 0.5 for p in params], sizemode="diameter",
                        color=[c.year for c, _ in pts], colorscale="Viridis", showscale=True,
                        colorbar=dict(title="year", tickformat="d", dtick=1), line=dict(width=1, color="white"), opacity=0.8),
            customdata=[[human(p), c.figures.note or "", human(t.totals["macs"])]
                        for (c, t), p in zip(pts, params, strict=True)],
            hovertemplate="<b>%{text}</b><br>%{customdata[2]} MACs<br>accuracy %{y:.2f}%<br>%{customdata[0]} "
                          "parameters<br>%{customdata[1]}<extra></extra>",
        )
    label = "top-1" if metric == "top1" else "top-5"
    fig.update_layout(
        title=f"Paper {label} accuracy vs MACs (bubble size: parameters at inference)", height=460,
        xaxis=dict(title="MACs per image at the paper's input (ours, log scale)", type="log"),
        yaxis=dict(title=f"{label} accuracy % (paper, ImageNet)"), margin=dict(l=10, r=10, t=50, b=10),
    )
    readable_log_axis(fig, [t.totals["macs"] for _, t in pts])
    note_left_out(fig, left_out)
    return fig


# ---------------------------------------------------------------- variant widgets
@dataclass(frozen=True)
class VariantSpec:
    """How to ask for one variant option: kind is 'bool', 'int', 'float', 'choice' or 'text'."""

    name: str
    kind: str
    default: Any
    choices: tuple[Any, ...] = ()
    help: str = ""


def variant_specs(card: ModelCard) -> list[VariantSpec]:
    """One spec per variant keyword of a card that a user can set.

    String options offer the quoted values of the description (``'paper' or 'modern'``); an option whose
    default is ``None`` offers ``None`` ("the model's default") first, and is left out when its description
    quotes no values (e.g. LeNet's ``in_channels``, which follows the input size).
    """
    specs = []
    for name, desc in card.variants.items():
        default = card.default_variant.get(name)
        if isinstance(default, bool):
            specs.append(VariantSpec(name, "bool", default, help=desc))
        elif isinstance(default, int):
            specs.append(VariantSpec(name, "int", default, help=desc))
        elif isinstance(default, float):
            specs.append(VariantSpec(name, "float", default, help=desc))
        else:
            quoted = [a or b for a, b in re.findall(r"'([^']+)'|\"([^\"]+)\"", desc)]
            if not quoted:
                continue
            choices = tuple(dict.fromkeys([default, *quoted]))
            specs.append(VariantSpec(name, "choice", default, choices, desc))
    return specs


def _private_model(arch: str, side: int, num_classes: int | None, **variant: Any) -> nn.Module:
    """A fresh model for looking at its structure: on the ``meta`` device (no memory, no init cost) when
    its constructor allows, else on the CPU (e.g. LeNet's C3 table uses ``nonzero``, which meta lacks)."""
    try:
        with torch.device("meta"):
            return create_model(arch, num_classes=num_classes, input_size=side, **variant)
    except (NotImplementedError, RuntimeError):
        return create_model(arch, num_classes=num_classes, input_size=side, **variant)


def input_shape(arch: str, side: int | None = None, num_classes: int | None = None,
                **variant: Any) -> tuple[int, int, int]:
    """(C, H, W) an architecture takes at a square side (the paper's when None).

    The channel count comes from the model itself (LeNet-5 takes 1 channel at 32x32 and 3 elsewhere); the
    model is built on the ``meta`` device, so this costs no memory. Raises InputSizeError like create_model.
    """
    card = get_card(arch)
    side = card.paper_input[-1] if side is None else int(side)
    model = _private_model(arch, side, num_classes, **variant)
    channels = getattr(model, "in_channels", None)
    if not isinstance(channels, int):
        first = next((m for m in model.modules() if isinstance(getattr(m, "in_channels", None), int)), None)
        channels = first.in_channels if first is not None else card.paper_input[0]
    return (channels, side, side)


# ---------------------------------------------------------------- block diagram
_ABSORBED = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.ELU, nn.LeakyReLU, nn.Softmax, nn.Dropout, nn.Flatten,
             nn.modules.batchnorm._BatchNorm, nn.Identity)
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def _leaf_label(m: nn.Module) -> str:
    def kk(v: Any) -> str:
        v = v if isinstance(v, tuple) else (v, v)
        return f"{v[0]}x{v[1]}" if v[0] != v[1] else f"{v[0]}x{v[0]}"

    def ss(v: Any) -> Any:
        return v[0] if isinstance(v, tuple) else v

    if isinstance(m, nn.Conv2d):
        g = f", groups {m.groups}" if m.groups > 1 else ""
        return f"conv {kk(m.kernel_size)}/{ss(m.stride)}, {m.out_channels}{g}"
    if isinstance(m, nn.Linear):
        return f"fc {m.out_features}"
    if isinstance(m, nn.MaxPool2d):
        return f"max pool {kk(m.kernel_size)}/{ss(m.stride)}"
    if isinstance(m, nn.AvgPool2d):
        return f"avg pool {kk(m.kernel_size)}/{ss(m.stride)}"
    if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        kind = "avg" if isinstance(m, nn.AdaptiveAvgPool2d) else "max"
        return f"global {kind} pool" if m.output_size in (1, (1, 1)) else f"adaptive {kind} pool {m.output_size}"
    if isinstance(m, nn.LocalResponseNorm):
        return f"LRN (size {m.size})"
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        return "BN"
    if isinstance(m, nn.Dropout):
        return f"dropout {m.p:g}"
    if isinstance(m, nn.Flatten):
        return "flatten"
    name = type(m).__name__
    k = getattr(m, "kernel_size", None)
    label = f"{name} {kk(k)}" if k is not None else name
    if isinstance(getattr(m, "stride", None), (int, tuple)) and k is not None:
        label += f"/{ss(m.stride)}"
    if isinstance(getattr(m, "out_channels", None), int):
        label += f", {m.out_channels}"
    return label


def _absorbed(m: nn.Module) -> bool:
    """Activations, batch norm, dropout and flatten are folded into the node of the layer before them."""
    if isinstance(m, _ABSORBED):
        return True
    return (not list(m.children()) and not list(m.parameters(recurse=False))
            and bool(re.search(r"relu|tanh|sigmoid|swish|gelu|activation", type(m).__name__, re.I)))


def _node_kind(m: nn.Module) -> str:
    if isinstance(m, nn.Conv2d) or "conv" in type(m).__name__.lower():
        return "conv"
    if isinstance(m, nn.Linear):
        return "linear"
    if "pool" in type(m).__name__.lower() or "subsampl" in type(m).__name__.lower():
        return "pool"
    if isinstance(m, nn.LocalResponseNorm) or "norm" in type(m).__name__.lower():
        return "norm"
    if any(not isinstance(c, _CONTAINERS) for c in m.children()) or list(m.children()):
        return "block"
    return "other"


_STYLE = {
    "conv": 'shape=box, style="rounded,filled", fillcolor="#dbe9f6"',
    "linear": 'shape=box, style="filled", fillcolor="#d9f0d3"',
    "pool": 'shape=box, style="filled", fillcolor="#fde0c5"',
    "norm": 'shape=ellipse, style="filled", fillcolor="#e8e0f0"',
    "block": 'shape=record, style="rounded,filled", fillcolor="#f3e6f7"',
    "other": 'shape=box, style="filled", fillcolor="#eeeeee"',
    "input": 'shape=parallelogram, style="filled", fillcolor="#ffffff"',
}


def _units(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The diagram's units: containers are opened; leaves and custom blocks (their own forward) are kept."""
    out: list[tuple[str, nn.Module]] = []

    def walk(mod: nn.Module, prefix: str) -> None:
        for name, child in mod.named_children():
            full = f"{prefix}.{name}" if prefix else name
            if isinstance(child, _CONTAINERS):
                walk(child, full)
            else:
                out.append((full, child))

    walk(model, "")
    return out


def _escape(s: str) -> str:
    return re.sub(r'([{}|<>"\\])', r"\\\1", s)


def _block_label(name: str, m: nn.Module) -> str:
    """A record label for a custom block: parallel branches side by side, else the chain of its leaves."""
    children = list(m.named_children())
    branches = [(n, c) for n, c in children if isinstance(c, _CONTAINERS) or list(c.children())]
    shortcut = [n for n, _ in children if re.search(r"short|downsample|proj", n)]
    title = f"{_escape(name)}: {type(m).__name__}"
    if len(branches) >= 2 and not shortcut:
        cols = []
        for _, b in branches:
            leaves = [re.sub(r"/1(?=,|$)", "", _leaf_label(x))  # stride 1 goes without saying in a branch
                      for x in b.modules() if not list(x.children()) and not _absorbed(x)]
            # One step per line: four branches side by side stay narrow enough to read.
            cols.append("\\n".join(_escape(t) for t in leaves) or _escape(type(b).__name__))
        return "{" + title + "|{" + "|".join(cols) + "}}"
    main = [x for n, x in children if n not in shortcut]
    leaves = []
    for x in main:
        leaves += [_leaf_label(y) for y in ([x] + list(x.modules())[1:])
                   if not list(y.children()) and not _absorbed(y)]
    body = _escape(" → ".join(leaves) or type(m).__name__)
    if shortcut:
        body += "\\n+ shortcut (" + _escape(", ".join(_leaf_label(y) for y in getattr(m, shortcut[0]).modules()
                                                      if not list(y.children()) and not _absorbed(y))
                                        or "identity") + ")"
    elif re.search(r"block|bottleneck|residual", type(m).__name__, re.I):
        body += "\\n+ identity shortcut"
    return "{" + title + "|" + body + "}"


def _unit_shapes(table: Any, units: list[tuple[str, nn.Module]]) -> tuple[list[str], dict[str, tuple], set[str]]:
    """Execution order, output shape and training-only flag of each unit, read from the layer table.

    A unit's rows are its own row or its descendants' rows. A block's output (after its free residual add or
    concatenation, which have no row) is the input of the first row outside it that reads one of its rows.
    """
    index = {r.name: i for i, r in enumerate(table.rows)}
    owned: dict[str, list[int]] = {}
    for name, _ in units:
        owned[name] = [i for n, i in index.items() if n == name or n.startswith(name + ".")]
    present = [(min(ix), name) for name, ix in owned.items() if ix]
    order = [name for _, name in sorted(present)]
    shapes: dict[str, tuple] = {}
    train_only = set()
    for name in order:
        ix = set(owned[name])
        rows = [table.rows[i] for i in sorted(ix)]
        if all(getattr(r, "train_only", False) for r in rows):
            train_only.add(name)
        mine = {r.name for r in rows}
        consumer = next((r for i, r in enumerate(table.rows)
                         if i not in ix and mine.intersection(getattr(r, "inputs", ()) or ())), None)
        shapes[name] = tuple(consumer.input_shape) if consumer is not None and len(rows) > 1 \
            else tuple(rows[-1].output_shape)
    return order, shapes, train_only


def block_diagram(table: Any, **variant: Any) -> str:
    """A Graphviz DOT string of the network's blocks (rendered in the browser by ``st.graphviz_chart``).

    ``table`` is the architecture's :class:`~cnnviz.summary.LayerTable` (shapes and order come from it) and
    ``variant`` the options it was built with. Containers (``nn.Sequential``) are opened, custom blocks
    (Inception modules, residual blocks) are one node each with their branches or shortcut spelled out;
    activations, batch norm and dropout are folded into the layer before them; stacks of identical
    convolutions and runs of identical residual blocks are collapsed (``x 3``). The model is built on
    PyTorch's ``meta`` device when it allows (no memory) and only its structure is read.
    """
    model = _private_model(table.arch, table.input[-1], table.classes, **variant)
    units = _units(model)
    order, shapes, train_only = _unit_shapes(table, units)
    input_size = table.input
    modules = dict(units)
    # Fold activations/BN/dropout into the unit before them; collapse repeated residual blocks.
    nodes: list[dict[str, Any]] = []
    for name in order:
        m = modules[name]
        aux = name in train_only or bool(re.search(r"(^|\.)aux", name))
        if _absorbed(m) and nodes and nodes[-1]["aux"] == aux:
            nodes[-1]["extra"].append(_leaf_label(m))
            nodes[-1]["shape"] = shapes[name]
            continue
        kind = _node_kind(m)
        label = _block_label(name, m) if kind == "block" else _leaf_label(m)
        params = sum(p.numel() for p in m.parameters())
        prev = nodes[-1] if nodes else None
        if (prev and kind == "conv" and prev["kind"] == "conv" and prev["label"] == label
                and prev["shape"] == shapes[name] and not aux and not prev["aux"]):
            # A stack of identical convolutions (VGG's 3x3 stages): one node, "x 3".
            prev["repeat"] += 1
            prev["params"] += params
            prev["last"] = name
            continue
        if (prev and kind == "block" and prev["kind"] == "block" and type(prev["module"]) is type(m)
                and prev["shape"] == shapes[name] and name.rsplit(".", 1)[0] == prev["name"].rsplit(".", 1)[0]
                and prev["label"].split("|", 1)[1] == label.split("|", 1)[1] and not aux):
            prev["repeat"] += 1
            prev["params"] += params
            prev["last"] = name
            continue
        nodes.append({"name": name, "last": name, "module": m, "kind": kind, "label": label, "extra": [],
                      "shape": shapes[name], "params": params, "repeat": 1, "aux": aux})
    lines = ["digraph G {", '  graph [rankdir=TB, nodesep=0.25, ranksep=0.22, fontname="Helvetica"];',
             '  node [fontname="Helvetica", fontsize=11, margin="0.12,0.05"];',
             '  edge [color="#666666", arrowsize=0.6];',
             f'  n_in [label="input {_shape(input_size)}", {_STYLE["input"]}];']
    last_main = "n_in"
    prev_aux: tuple[str, str] | None = None  # (aux prefix, node id) of the previous auxiliary node
    for i, n in enumerate(nodes):
        nid = f"n{i}"
        shape_txt = f"→ {_shape(n['shape'])}"
        p_txt = f"{human(n['params'])} params" if n["params"] else ""
        extra = (" + " + " + ".join(dict.fromkeys(n["extra"]))) if n["extra"] else ""
        if n["kind"] == "block":
            title, body = n["label"][1:-1].split("|", 1)
            if n["repeat"] > 1:
                title = f"{_escape(n['name'])} … {_escape(n['last'])}: {type(n['module']).__name__} × {n['repeat']}"
            info = _escape(f"{shape_txt}   {p_txt}".strip())
            label = "{" + title + "|" + body + "|" + info + "}"
            lines.append(f'  {nid} [label="{label}", {_STYLE["block"]}];')
        else:
            title = n["name"] if n["repeat"] == 1 else f"{n['name']} … {n['last']} (× {n['repeat']})"
            text = f"{_escape(title)}\\n{_escape(n['label'] + extra)}\\n{_escape(shape_txt)}"
            if p_txt:
                text += f"   {p_txt}"
            lines.append(f'  {nid} [label="{text}", {_STYLE[n["kind"]]}];')
        if n["aux"]:
            prefix = re.match(r"(.*?aux[^.]*)", n["name"], re.I).group(1)
            lines[-1] = lines[-1][:-2] + ', color="#999999", fontcolor="#555555"];'
            if prev_aux and prev_aux[0] == prefix:
                lines.append(f"  {prev_aux[1]} -> {nid} [style=dashed];")
            else:
                lines.append(f'  {last_main} -> {nid} [style=dashed, label=" training only", fontsize=9];')
            prev_aux = (prefix, nid)
        else:
            lines.append(f"  {last_main} -> {nid} [weight=10];")  # keeps the main path straight
            last_main, prev_aux = nid, None
    lines.append("}")
    return "\n".join(lines)


# ---------------------------------------------------------------- notes on popular write-ups
def writeup_notes(arch: str, table: Any) -> list[str]:
    """Markdown notes where a popular write-up disagrees with our figures for this architecture.

    The figures come from :mod:`cnnviz.summary.notes`; for VGG-16 the CS231n-style activation count is
    recomputed from this very table (it is only the notes' 15.2M at 224x224).
    """
    notes = []
    for e in writeup_errors(arch):
        text = (f"**A popular figure that is wrong: {e.quantity}.** {e.source} says **{e.claimed:,}**; "
                f"the right figure is **{e.correct:,}**. {e.explanation}")
        if arch == "vgg16":
            text += (f" Counted the notes' way, this table ({'x'.join(map(str, table.input))}) has "
                     f"**{cs231n_memory(table):,}** values; our own total, one row per module, is "
                     f"{table.totals['activations']:,}.")
        notes.append(text)
    return notes
