"""What the Predict page draws: each checkpoint's top-k as horizontal bars, coloured by correctness (validation
images) or by agreement with the other models (uploads), with a legend for every colour used; and the
validation images it draws at random.

Pure plotly; no streamlit. (What the network saw, shown beside the bars, is :func:`cnnviz.preprocess.network_input`.)
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from cnnviz.views.charts import short_name, unique_labels

CORRECT, WRONG, NEUTRAL = "#2e7d32", "#c62828", "#1f77b4"
AGREE, DISAGREE = CORRECT, "#ef6c00"  # agreement is not correctness: another colour, and its own legend


def topk_figure(result, agrees: bool | None = None, height: int = 220, *, truth: str | None = None) -> go.Figure:
    """Horizontal bars of a :class:`cnnviz.predict.PredictResult` (probability in %), best class on top, with a
    legend for every colour used.

    ``truth`` (the true class's wnid, validation images) colours by correctness: the true class green
    wherever it is in the top-k, a wrong top-1 red, the other guesses blue; the title says whether top-1 is
    right. Without it, ``agrees`` (True/False: this model's top-1 is / is not the class most models name)
    colours the top bar green / orange; None leaves every bar blue ("guesses")."""
    preds = list(result.predictions)[::-1]  # plotly draws the first category at the bottom
    kinds = ["guess"] * len(preds)
    title = None
    if truth is not None and preds:
        kinds = ["true class" if p.wnid == truth else "guess" for p in preds]
        if preds[-1].wnid != truth:
            kinds[-1] = "wrong top-1"
        rank = next((i + 1 for i, p in enumerate(result.predictions) if p.wnid == truth), None)
        title = ("top-1 correct" if rank == 1 else f"top-1 wrong; true class at rank {rank}" if rank
                 else f"top-1 wrong; true class not in the top {len(preds)}")
    elif agrees is not None and preds:
        kinds[-1] = "top-1 agrees with most models" if agrees else "top-1 differs from most models"
    colours = {"true class": CORRECT, "wrong top-1": WRONG, "guess": NEUTRAL,
               "top-1 agrees with most models": AGREE, "top-1 differs from most models": DISAGREE}
    labels = unique_labels([short_name(p.name) for p in preds])
    fig = go.Figure()
    for rank, kind in enumerate(k for k in colours if k in kinds):  # one trace per colour: one legend entry each
        idx = [i for i, k in enumerate(kinds) if k == kind]
        fig.add_bar(x=[preds[i].prob * 100 for i in idx], y=[labels[i] for i in idx], orientation="h",
                    name=kind if kind != "guess" else ("other guesses" if len(set(kinds)) > 1 else "guesses"),
                    marker_color=colours[kind], text=[f"{preds[i].prob * 100:.1f}%" for i in idx],
                    textposition="auto", hovertext=[f"{preds[i].name} ({preds[i].wnid})" for i in idx],
                    hoverinfo="text", legendrank=rank)
    coloured = len(set(kinds)) > 1 or kinds[:1] != ["guess"]
    fig.update_layout(height=height + (45 if coloured else 0), margin=dict(l=0, r=18, t=30 if title else 10,
                                                                            b=65 if coloured else 25),
                      xaxis=dict(range=[0, 100], tickvals=[0, 50, 100], ticktext=["0%", "50%", "100%"], automargin=True),
                      barmode="overlay",
                      yaxis=dict(type="category", categoryorder="array", categoryarray=labels),
                      showlegend=coloured, legend=dict(orientation="h", y=-0.2, yanchor="top", x=0,
                                                       font=dict(size=11)),
                      title=dict(text=title, font=dict(size=13)) if title else None)
    return fig


def validation_images(split, count: int, seed: int) -> list[tuple[str, Image.Image, tuple[str, str], int]]:
    """``count`` images of a validation split (:class:`cnnviz.data.Split`) drawn at random with ``seed``:
    ``(name, image, (true wnid, true class name), index)`` each, named ``"val #index"``."""
    out = []
    for i in np.random.default_rng(int(seed)).choice(len(split.labels), count, replace=False):
        label = int(split.labels[i])
        out.append((f"val #{int(i)}", Image.fromarray(np.asarray(split.images[i])),
                    (split.wnids[label], split.class_names[label]), int(i)))
    return out
