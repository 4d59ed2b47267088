"""Feature maps of any layer for one image, sorted by activation strength, and the input region of a unit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

import cnnviz.viz.render as render  # the module itself, not the package (whose __init__ imports this file)
from cnnviz.summary import input_region
from cnnviz.viz.hooks import private_view, run_to
from cnnviz.viz.layers import table


@dataclass
class FeatureMaps:
    layer: str
    maps: np.ndarray  # C x h x w float32, channel order of the layer
    strength: np.ndarray  # C, the sorting key (max or mean activation)
    order: np.ndarray  # channel indices, strongest first
    sort: str

    def grid(self, max_maps: int = 64, cell: int = 48, shared_scale: bool = False) -> np.ndarray:
        """The strongest ``max_maps`` maps as a grey grid, strongest first (row-major). Each map is scaled to
        its own range unless ``shared_scale`` (then black = 0, white = the largest activation shown). A map that
        is constant on this image (a unit whose ReLU never fires) is black, all of it at its lowest: the
        normalisation's mid-grey for a constant read as a map with something in it."""
        idx = self.order[:max_maps]
        if shared_scale:
            hi = max(float(self.maps[idx].max()), 1e-12)
            lo = min(float(self.maps[idx].min()), 0.0)
            tiles = [render.to_uint8((self.maps[c] - lo) / (hi - lo), mode=None) for c in idx]
        else:
            tiles = [render.to_uint8(self.maps[c]) if np.ptp(self.maps[c]) > 0
                     else np.zeros(self.maps[c].shape, np.uint8) for c in idx]
        return render.grid(tiles, cell=cell, pad=2)

    def table(self):
        """Channel, max, mean and rank, strongest first (the numbers behind the grid)."""
        import pandas as pd

        flat = self.maps.reshape(self.maps.shape[0], -1)
        return pd.DataFrame({"rank": np.arange(len(self.order)), "channel": self.order,
                             "max": flat.max(1)[self.order], "mean": flat.mean(1)[self.order]})


def feature_maps(model: nn.Module, x: torch.Tensor, layer: str, sort: str = "max") -> FeatureMaps:
    """All channels of ``layer`` for one preprocessed image ``x``; ``sort`` by ``"max"`` (the unit ZF would
    project), ``"mean"`` activation, or ``"none"`` (channel order)."""
    if x.dim() == 3:
        x = x.unsqueeze(0)
    view = private_view(model)
    p = next(iter(view.parameters()), None)
    with torch.inference_mode():
        fmap = run_to(view, x.to(p.device if p is not None else "cpu"), layer)
    if fmap.dim() != 4:
        raise ValueError(f"{layer!r} outputs {tuple(fmap.shape[1:])}, not feature maps: pick a convolutional layer")
    maps = fmap[0].float().cpu().numpy()
    flat = maps.reshape(maps.shape[0], -1)
    if sort == "max":
        strength = flat.max(1)
    elif sort == "mean":
        strength = flat.mean(1)
    elif sort == "none":
        strength = np.zeros(maps.shape[0], np.float32)
    else:
        raise ValueError(f"sort must be 'max', 'mean' or 'none', not {sort!r}")
    order = np.arange(maps.shape[0]) if sort == "none" else np.argsort(-strength, kind="stable")
    return FeatureMaps(layer, maps, strength, order, sort)


def unit_region(model: nn.Module, layer: str, y: int, x: int, input_size: tuple[int, int, int]
                ) -> tuple[int, int, int, int]:
    """``(top, left, bottom, right)`` input box (bottom/right exclusive, clipped) seen by unit ``(y, x)`` of
    ``layer``: its receptive field, from the model's layer table. Any layer with maps: a row, or a container
    (a residual block, an Inception module, ``features``), whose units see what their output's units see
    through every path into it (Inception: the union over branches)."""
    t = table(model, input_size)
    out = t.outputs.get(layer)
    if layer not in t.geometry and (out is None or len(out.shape) != 3):
        raise ValueError(f"{layer!r} has no spatial output, so no receptive field")
    return tuple(int(v) for v in input_region(t, layer, y, x, tuple(input_size)))


def strongest_unit(fm: FeatureMaps, channel: int) -> tuple[int, int]:
    """(y, x) of the strongest activation of ``channel``."""
    y, x = divmod(int(np.argmax(fm.maps[channel])), fm.maps.shape[2])
    return y, x


def unit_picker(fmap: np.ndarray, unit: tuple[int, int] | None = None, title: str = ""):
    """A plotly figure of one feature map (``h x w``) on which a click picks a unit.

    Plotly heatmaps report no click selection through Streamlit's ``on_select`` (streamlit/streamlit#8760), so
    the map is a heatmap for the eye with one near-transparent square marker per unit on top, which does;
    each marker carries its ``(row, column)``. The current ``unit`` is outlined. Read a click back with
    :func:`unit_from_selection`.
    """
    import plotly.graph_objects as go

    h, w = fmap.shape
    rows, cols = np.mgrid[0:h, 0:w]
    fig = go.Figure(go.Heatmap(z=fmap, colorscale="Gray", showscale=True, hoverinfo="skip",
                               colorbar={"title": "activation", "thickness": 12}))
    fig.add_trace(go.Scatter(
        x=cols.ravel(), y=rows.ravel(), mode="markers", customdata=np.stack([rows.ravel(), cols.ravel()], 1),
        marker={"symbol": "square", "size": max(4, 300 // max(h, w)), "opacity": 0.01, "color": "white"},
        hovertemplate="unit (%{y}, %{x})<br>activation %{text}<extra></extra>",
        text=[f"{v:.3g}" for v in fmap.ravel()], showlegend=False))
    if unit is not None:
        y, x = unit
        fig.add_shape(type="rect", x0=x - 0.5, x1=x + 0.5, y0=y - 0.5, y1=y + 0.5,
                      line={"color": "red", "width": 2})
    # Fixed ranges (row 0 on top) with square cells: plotly then shrinks the axis domain rather than padding a
    # range, so the plotting area is exactly the map.
    fig.update_yaxes(range=[h - 0.5, -0.5], scaleanchor="x", constrain="domain", title="row", showgrid=False)
    fig.update_xaxes(range=[-0.5, w - 0.5], constrain="domain", title="column", showgrid=False)
    fig.update_layout(title=title, height=360, margin={"l": 10, "r": 10, "t": 40, "b": 10}, clickmode="event+select",
                      dragmode=False)
    return fig


def unit_from_selection(event, shape: tuple[int, int] | None = None) -> tuple[int, int] | None:
    """The ``(row, column)`` clicked on a :func:`unit_picker` chart, from Streamlit's selection event (a dict or
    the event object ``st.plotly_chart(..., on_select="rerun")`` returns); ``None`` when nothing valid was
    clicked, or the click lies outside a map of ``shape`` when one is given (say, the layer changed since)."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return None
    for p in reversed(points or []):
        try:
            y, x = int(round(float(p["y"]))), int(round(float(p["x"])))
        except (KeyError, TypeError, ValueError):
            continue
        if y >= 0 and x >= 0 and (shape is None or (y < shape[0] and x < shape[1])):
            return y, x
    return None
