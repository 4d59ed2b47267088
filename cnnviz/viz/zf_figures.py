"""Figures for invariance (ZF Fig. 5) and layer probes (ZF Table 6): plotly for the page, PNG (matplotlib's
object API, no pyplot, no kaleido) for the command line. Pure builders: results in, figure out."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

RELATIVE_TITLE = "‖f(Tx) − f(x)‖ / ‖f(x)‖"
ABSOLUTE_TITLE = "‖f(Tx) − f(x)‖ (Euclidean)"
PROB_TITLE = "probability of the class"


def _colours() -> list[str]:
    """Compare's colour-blind-safe set (plotly's default drew seven probe lines in look-alike blues and cyans)."""
    from cnnviz.palette import MODEL_COLOURS

    return list(MODEL_COLOURS)


def _layer_ys(inv, layer: str, relative: bool) -> np.ndarray:
    return inv.relative(layer) if relative else inv.distance[layer]


def invariance_figure(inv, names: Sequence[str], relative: bool = True, height: int = 360):
    """ZF Fig. 5's layout: one panel per layer (how far its feature vector moves), then the probability of
    each image's class; one line per image (``names``), same colour in every panel. With ``relative`` the
    layer panels share one y scale (fraction of the untransformed vector's norm)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = len(inv.layers) + 1
    fig = make_subplots(rows=1, cols=panels, subplot_titles=[*inv.labels, PROB_TITLE], horizontal_spacing=0.07)
    colours = _colours()
    for i, name in enumerate(names):
        colour = colours[i % len(colours)]
        for j, layer in enumerate(inv.layers):
            fig.add_trace(go.Scatter(
                x=inv.values, y=_layer_ys(inv, layer, relative)[i], mode="lines+markers", name=name,
                legendgroup=name, showlegend=j == 0, line={"color": colour}, marker={"size": 5},
                hovertemplate=f"{name}<br>{inv.axis_title}: %{{x:g}}<br>distance: %{{y:.3g}}<extra>{layer}</extra>"),
                row=1, col=j + 1)
        fig.add_trace(go.Scatter(
            x=inv.values, y=inv.prob[i], mode="lines+markers", name=name, legendgroup=name, showlegend=False,
            line={"color": colour, "dash": "dot"}, marker={"size": 5},
            hovertemplate=f"{name}<br>{inv.axis_title}: %{{x:g}}<br>p: %{{y:.3f}}<extra>class {inv.targets[i]}</extra>"),
            row=1, col=panels)
    for j in range(panels):
        fig.update_xaxes(title_text=inv.axis_title, row=1, col=j + 1)
    top = max(float(np.nanmax(_layer_ys(inv, n, relative))) for n in inv.layers) if inv.layers else 1.0
    for j in range(len(inv.layers)):
        fig.update_yaxes(title_text=RELATIVE_TITLE if relative else ABSOLUTE_TITLE, row=1, col=j + 1,
                         range=[0, top * 1.05 + 1e-9] if relative else None, rangemode="tozero")
    fig.update_yaxes(title_text="p(class)", range=[0, 1.02], row=1, col=panels)
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10}, legend_title_text="image",
                      legend={"orientation": "h", "y": -0.25})
    return fig


def frames_image(x, transform: str, values: Sequence[float], mean, std, axis: str = "both", max_frames: int = 9,
                 cell: int = 72) -> np.ndarray:
    """What the network saw at about ``max_frames`` evenly spaced transform values (every k-th, and the
    last), each captioned with its value (ZF Fig. 5, column 1)."""
    from cnnviz.preprocess import to_image
    from cnnviz.viz import render
    from cnnviz.viz.invariance import transformed

    values = list(values)
    step = max(1, -(-(len(values) - 1) // max(1, max_frames - 1)))  # every step-th value, evenly spaced
    picks = list(range(0, len(values), step))
    picks += [len(values) - 1] if picks[-1] != len(values) - 1 else []
    frames = transformed(x, transform, [values[k] for k in picks], axis)
    tiles = [np.asarray(to_image(f, mean, std)) for f in frames]
    return render.labelled(tiles, [f"{values[k]:g}" for k in picks], cell=cell)


def probe_figure(results: Sequence, relative_depth: bool = False, height: int = 380):
    """Val top-1 against depth, one line per checkpoint; x is the hidden block's number (or, with
    ``relative_depth``, its position from 0 = first to 1 = last hidden block, so that networks of different
    depths line up); chance is the dashed line. Up to two lines, each point is labelled with its block."""
    import plotly.graph_objects as go

    fig = go.Figure()
    colours = _colours()
    named = len(results) <= 2  # block names on the points; with more lines they overlap (hover names them)
    for i, r in enumerate(results):
        n = len(r.layers)
        xs = [k / max(1, n - 1) for k in range(n)] if relative_depth else list(range(1, n + 1))
        fig.add_trace(go.Scatter(
            x=xs, y=[v * 100 for v in r.val_top1], mode="lines+markers+text" if named else "lines+markers",
            name=r.name,
            text=[lab.split(" (")[0].rsplit(".", 1)[-1] for lab in r.labels], textposition="top center",
            textfont={"size": 9}, line={"color": colours[i % len(colours)]},
            customdata=np.stack([r.labels, r.dims, [t * 100 for t in r.train_top1]], axis=1),
            hovertemplate="%{customdata[0]}<br>%{customdata[1]} features<br>val top-1 %{y:.1f}%"
                          "<br>train top-1 %{customdata[2]:.1f}%<extra>" + r.name + "</extra>"))
    if results:
        chance = 100 * max(r.chance for r in results)
        # above the line: chance (0.5% for 200 classes) lies on the x axis, and a label below it covered the ticks
        fig.add_hline(y=chance, line_dash="dash", line_color="grey", annotation_text=f"chance ({chance:.1f}%)",
                      annotation_position="top right")
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend_title_text="checkpoint",
                      xaxis_title="relative depth (0 = first hidden block, 1 = last)" if relative_depth
                      else "depth (hidden block, shallow to deep)", yaxis_title="val top-1 of a linear probe (%)",
                      yaxis_rangemode="tozero")
    if not relative_depth:
        fig.update_xaxes(dtick=1)
    return fig


# ------------------------------------------------------------------------------------------- PNG (command line)
def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def invariance_png(inv, names: Sequence[str], relative: bool = True, strip: np.ndarray | None = None) -> bytes:
    """The same panels as :func:`invariance_figure`, as a PNG; ``strip`` (:func:`frames_image`) on top."""
    from matplotlib.figure import Figure

    panels = len(inv.layers) + 1
    fig = Figure(figsize=(3.6 * panels, 3.4 + (1.6 if strip is not None else 0)))
    grid = fig.add_gridspec(2 if strip is not None else 1, panels, height_ratios=[1, 2.2] if strip is not None else None)
    row = 0
    if strip is not None:
        ax = fig.add_subplot(grid[0, :])
        ax.imshow(strip)
        ax.set_axis_off()
        ax.set_title(f"what the network saw, {inv.axis_title} (first image)", fontsize=9)
        row = 1
    axes = [fig.add_subplot(grid[row, j]) for j in range(panels)]
    for i, name in enumerate(names):
        for j, layer in enumerate(inv.layers):
            axes[j].plot(inv.values, _layer_ys(inv, layer, relative)[i], marker="o", ms=3, label=name)
        axes[-1].plot(inv.values, inv.prob[i], marker="o", ms=3, ls=":", label=name)
    for j, ax in enumerate(axes):
        ax.set_xlabel(inv.axis_title)
        ax.grid(alpha=0.3)
        if j < len(inv.layers):
            ax.set_title(inv.labels[j], fontsize=9)
            ax.set_ylabel(RELATIVE_TITLE if relative else ABSOLUTE_TITLE)
            ax.set_ylim(bottom=0)
        else:
            ax.set_title(PROB_TITLE, fontsize=9)
            ax.set_ylabel("p(class)")
            ax.set_ylim(0, 1.02)
    if relative and inv.layers:
        top = max(a.get_ylim()[1] for a in axes[:-1])
        for a in axes[:-1]:
            a.set_ylim(0, top)
    axes[-1].legend(fontsize=7, title="image", title_fontsize=7)
    fig.tight_layout()
    return _png(fig)


def probe_png(results: Sequence) -> bytes:
    """:func:`probe_figure` as a PNG (block number on x)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for r in results:
        xs = range(1, len(r.layers) + 1)
        ax.plot(xs, [v * 100 for v in r.val_top1], marker="o", label=r.name)
        for x, y, lab in zip(xs, r.val_top1, r.labels, strict=True):
            ax.annotate(lab.split(" (")[0].rsplit(".", 1)[-1], (x, y * 100), fontsize=7, ha="center",
                        xytext=(0, 4), textcoords="offset points")
    if results:
        chance = 100 * max(r.chance for r in results)
        ax.axhline(chance, ls="--", color="grey", label=f"chance ({chance:.1f}%)")
    ax.set_xlabel("depth (hidden block, shallow to deep)")
    ax.set_ylabel("val top-1 of a linear probe (%)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)
