"""The Architectures page's plotly charts: per-layer bars (parameters, memory, MACs), the receptive field and
jump along the network, and the "Compare architectures" tab (totals side by side, the papers' accuracy against
our MACs)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cnnviz.models.registry import ModelCard
from cnnviz.summary import param_count
from cnnviz.views.charts import note_left_out, place_labels, readable_log_axis
from cnnviz.views.format import human, human_bytes, shape_text

# The metrics a per-layer chart can show: (row attribute, axis title, question it answers).
METRICS: dict[str, tuple[str, str, str]] = {
    "params": ("params", "parameters", "Where do the parameters live?"),
    "activation_bytes": ("activation_bytes", "activation memory per image (bytes)", "Where does the memory go?"),
    "macs": ("macs", "MACs per image", "Where does the compute go?"),
}

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
            customdata=[[r.type, shape_text(r.output_shape), txt, f"{v / total:.1%}"]
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
    custom = [[r.type, shape_text(r.output_shape), r.jump] for r in rows]
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
            "input": shape_text(table.input),
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
        xs, ys = [t.totals["macs"] for _, t in pts], [100 - getattr(c.figures, key) for c, _ in pts]
        sizes, names = [8 + 52 * (p / biggest) ** 0.5 for p in params], [c.display_name for c, _ in pts]
        fig.add_scatter(
            x=xs, y=ys, mode="markers+text", text=names, cliponaxis=False,
            # each name beside, above or below its bubble, wherever it covers no other (all eight VGGs at once)
            textposition=place_labels(xs, ys, [d / 2 for d in sizes], names, width_px=760, height_px=330),
            marker=dict(size=sizes, sizemode="diameter",
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
