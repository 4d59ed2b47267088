"""Helpers every chart uses so that it tells the truth: readable log axes (1-2-5 ticks labelled in K/M/G) and a
note under the plot naming what it leaves out, and why.

Pure plotly; no streamlit. (A later refactor moves the figure modules into ``cnnviz/views/``.)
"""

from __future__ import annotations

import math

import plotly.graph_objects as go

from cnnviz.summary import human


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
