"""What several pages' charts share: readable log axes (1-2-5 ticks labelled in K/M/G), a note under the plot
naming what it leaves out and why, category labels that never merge two bars, and the one curves figure
(training curves on the Training page, one metric of several models on Compare).

Pure plotly; no streamlit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cnnviz.palette import model_colours
from cnnviz.views.format import human

# How a metric of a run's metrics.jsonl is named on a chart (legend, axis, picker).
METRIC_LABELS = {"train_loss": "train loss", "val_loss": "val loss", "train_acc": "train accuracy",
                 "val_top1": "val top-1", "val_top5": "val top-5", "lr": "learning rate",
                 "images_per_s": "images/s"}


def log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Tick values 1-2-5 per decade covering ``[lo, hi]`` and their labels in K/M/G ("500M", "1G", "2G"),
    for log axes: plotly's own labels on a short log range read "6 7 8 9 1 2"."""
    if not (lo > 0 and hi > 0):
        return [], []
    lo, hi = min(lo, hi), max(lo, hi)
    values = [m * 10.0 ** e for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
              for m in (1, 2, 5)]
    below = [v for v in values if v <= lo]
    above = [v for v in values if v >= hi]
    values = [v for v in values if (below[-1] if below else lo) <= v <= (above[0] if above else hi)]
    return values, [human(int(v)) if v >= 1 else f"{v:g}" for v in values]


def readable_log_axis(fig: go.Figure, values: list[float], axis: str = "xaxis") -> None:
    """Give ``fig``'s log ``axis`` 1-2-5 ticks labelled in K/M/G over the range of ``values``."""
    values = [float(v) for v in values if v and v > 0]
    if not values:
        return
    ticks, labels = log_ticks(min(values), max(values))
    fig.update_layout({axis: dict(type="log", tickmode="array", tickvals=ticks, ticktext=labels)})


# Where a point's label can go (plotly's textposition names), in order of preference.
LABEL_PLACES = ("middle right", "middle left", "top center", "bottom center")


def label_positions(points: Sequence[tuple[float, float, float, str]], width_px: float = 290.0,
                    height_px: float = 260.0, char_px: float = 7.5, line_px: float = 14.0,
                    gap_px: float = 3.0) -> list[str]:
    """A textposition for each labelled bubble, so that labels cover neither each other nor other bubbles.

    ``points``: ``(u, v, radius_px, text)``, with ``u`` and ``v`` the point's place across the plot's width and
    height (0..1). Plotly places labels by a fixed rule only ("top center" for all), and the zoo's AlexNet,
    ZFNet and VGG (close in MACs and in accuracy) had their names drawn on top of each other. Greedy: the
    biggest bubbles choose first, each takes the first of :data:`LABEL_PLACES` that overlaps nothing already
    placed and stays inside the plot, else the one that overlaps least. The sizes are estimates (the browser
    decides the real ones), so this avoids most collisions, not all.
    """
    boxes = [(u * width_px - r, v * height_px - r, u * width_px + r, v * height_px + r) for u, v, r, _ in points]

    def label_box(i: int, place: str) -> tuple[float, float, float, float]:
        u, v, r, text = points[i]
        x, y, w, h = u * width_px, v * height_px, char_px * len(text), line_px
        if place == "middle right":
            return x + r + gap_px, y - h / 2, x + r + gap_px + w, y + h / 2
        if place == "middle left":
            return x - r - gap_px - w, y - h / 2, x - r - gap_px, y + h / 2
        if place == "top center":
            return x - w / 2, y + r + gap_px, x + w / 2, y + r + gap_px + h
        return x - w / 2, y - r - gap_px - h, x + w / 2, y - r - gap_px

    def overlap(a, b) -> float:
        return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))

    plot = (0.0, 0.0, width_px, height_px)
    placed: list[tuple[float, float, float, float]] = []
    out = [LABEL_PLACES[0]] * len(points)
    def cost(i: int, place: str) -> float:
        box = label_box(i, place)
        area = (box[2] - box[0]) * (box[3] - box[1])
        return (area - overlap(box, plot)  # outside the plot: clipped
                + sum(overlap(box, b) for b in placed)
                + sum(overlap(box, b) for j, b in enumerate(boxes) if j != i))

    for i in sorted(range(len(points)), key=lambda i: -points[i][2]):
        costs = {place: cost(i, place) for place in LABEL_PLACES}
        out[i] = min(LABEL_PLACES, key=lambda place: (costs[place] > 0, costs[place]))  # the first clear place
        placed.append(label_box(i, out[i]))
    return out


def place_labels(xs: Sequence[float], ys: Sequence[float], radii_px: Sequence[float], texts: Sequence[str], *,
                 log_x: bool = True, width_px: float = 290.0, height_px: float = 260.0) -> list[str]:
    """:func:`label_positions` for points in data units (``xs`` on a log axis unless ``log_x`` is False).

    They are placed across the plot as plotly's autorange does, about: the padding was read off the zoo's
    bubble chart in Chromium (the lowest point about 6% in, the highest about 13% from the far side). An
    estimate, as the label sizes are."""
    def across(values: list[float]) -> list[float]:
        lo, hi = min(values), max(values)
        return [0.5 if hi == lo else 0.06 + 0.81 * (v - lo) / (hi - lo) for v in values]

    if len(xs) == 0:  # nothing plotted (every model left out)
        return []
    us = across([math.log10(x) if log_x else float(x) for x in xs])
    vs = across([float(y) for y in ys])
    return label_positions(list(zip(us, vs, radii_px, texts, strict=True)), width_px=width_px, height_px=height_px)


def note_left_out(fig: go.Figure, left_out: list[str]) -> None:
    """Say under the plot which entries are not drawn, and why (a chart never drops a model silently)."""
    if left_out:
        text = "Not plotted: " + "; ".join(left_out) + "."
        wrapped = _wrap(text, 130)
        lines = wrapped.count("<br>") + 1
        fig.add_annotation(text=wrapped, xref="paper", yref="paper", x=0, y=-0.16, xanchor="left",
                           yanchor="top", showarrow=False, align="left", font=dict(size=11, color="#555555"))
        fig.update_layout(margin=dict(b=70 + 16 * lines), height=(fig.layout.height or 400) + 16 * lines)


def _wrap(text: str, width: int) -> str:
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "<br>".join([*lines, line])


def unique_labels(labels: list[str]) -> list[str]:
    """Category labels made unique (two classes can share a first synonym), so no bar hides another."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return out


def short_name(name: str, limit: int = 28) -> str:
    """A class name's first synonym ("tabby, tabby cat" -> "tabby"), cut to ``limit`` characters."""
    first = name.split(",")[0].strip()
    return first if len(first) <= limit else first[: limit - 1] + "…"


# ----------------------------------------------------------------------------------------------- curves
@dataclass(frozen=True)
class Panel:
    """One chart of a curves figure: the metrics it draws (keys of a run's metrics.jsonl) and how."""

    metrics: tuple[str, ...]
    title: str = ""  # the panel's title in a grid (a single chart has its axis titles instead)
    percent: bool = False  # fractions drawn as 0-100 on a 0-100 axis, "(%)" after each name
    log: bool = False  # a log y axis (the learning rate across models)


def metrics_frame(metrics: Sequence[dict[str, Any]], model: str = "") -> pd.DataFrame:
    """One run's per-epoch metrics (a list of metrics.jsonl records) in the long format :func:`curves_figure`
    draws: ``model, epoch, elapsed_s, metric, value`` (numbers only; ``cnnviz.compare.curves_frame`` gives the
    same columns for several models)."""
    rows = [{"model": model, "epoch": m.get("epoch", i + 1), "elapsed_s": m.get("elapsed_s"), "metric": k,
             "value": float(v)}
            for i, m in enumerate(metrics) for k, v in m.items()
            if k in METRIC_LABELS and isinstance(v, (int, float)) and not isinstance(v, bool)]
    return pd.DataFrame(rows, columns=["model", "epoch", "elapsed_s", "metric", "value"])


def curves_figure(curves: pd.DataFrame, panels: Sequence[Panel], x: str = "epoch",
                  height: int | None = None) -> go.Figure:
    """Per-epoch curves from a long frame (:func:`metrics_frame`, ``cnnviz.compare.curves_frame``): a line with
    markers per model and metric, by ``epoch`` or by ``elapsed_s`` (drawn in minutes of wall clock).

    One panel is one chart with titled axes (Compare: one metric, a line per model, named by the model); several
    panels are a two-column grid of titled charts (Training: one run, a line per metric, named by the metric),
    with "epoch" only under the bottom row and whole epochs as ticks up to 20 epochs."""
    grid = len(panels) > 1
    rows = math.ceil(len(panels) / 2)
    fig = make_subplots(rows=rows, cols=2, subplot_titles=[p.title for p in panels], vertical_spacing=0.16,
                        horizontal_spacing=0.08) if grid else go.Figure()
    models = list(dict.fromkeys(curves["model"]))
    colours = model_colours(models) if len(models) > 1 else {}  # one model's metrics keep the theme's colours
    xcol, xtitle = ("elapsed_s", "wall clock (min)") if x == "elapsed_s" else ("epoch", "epoch")
    for i, panel in enumerate(panels):
        where = dict(row=i // 2 + 1, col=i % 2 + 1) if grid else {}
        for metric in panel.metrics:
            for model in models:
                df = curves[(curves["metric"] == metric) & (curves["model"] == model)]
                if df.empty:
                    continue
                scale = 100 if panel.percent else 1
                label = METRIC_LABELS.get(metric, metric) + (" (%)" if panel.percent else "")
                fig.add_trace(go.Scatter(
                    x=df[xcol] / 60 if xcol == "elapsed_s" else df[xcol], y=df["value"] * scale, mode="lines+markers",
                    showlegend=True, name=label if len(models) == 1 and grid else str(model),
                    legendgroup=f"{where['row']}{where['col']}" if len(models) == 1 and grid else str(model),
                    line_color=colours.get(model), marker_color=colours.get(model)),
                    **where)
        if panel.percent:
            fig.update_yaxes(range=[0, 100], **where)
        if panel.log:
            fig.update_yaxes(type="log", **where)
    if grid:
        fig.update_xaxes(dtick=1 if curves["epoch"].nunique() <= 20 else None)
        # "epoch" under the bottom row only: under the top row it sat on the bottom row's subplot titles
        fig.update_xaxes(title_text=xtitle, title_standoff=4, row=rows)
        fig.update_layout(height=height or 520, margin=dict(l=10, r=10, t=40, b=10),
                          legend=dict(orientation="h", y=-0.16))
    else:
        metric = panels[0].metrics[0] if panels and panels[0].metrics else ""
        fig.update_layout(height=height or 340, margin=dict(l=0, r=10, t=30, b=0), legend_title_text="",
                          legend_tracegroupgap=0,
                          xaxis_title=xtitle, yaxis_title=METRIC_LABELS.get(metric, metric))
    return fig
