"""Figures for the Predict and Compare pages (plotly, interactive) and the export bundle (PNG via matplotlib,
because plotly's static export needs kaleido and a browser, which the project does not depend on).

Pure builders: data in, figure out; no streamlit, no file access.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

METRIC_LABELS = {"train_loss": "train loss", "val_loss": "val loss", "train_acc": "train accuracy",
                 "val_top1": "val top-1", "val_top5": "val top-5", "lr": "learning rate",
                 "images_per_s": "images/s"}
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
    labels = _unique([_short(p.name) for p in preds])
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


def _unique(labels: list[str]) -> list[str]:
    """Category labels made unique (two classes can share a first synonym), so no bar hides another."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return out


def _short(name: str, limit: int = 28) -> str:
    first = name.split(",")[0].strip()  # Tiny ImageNet names list synonyms: "tabby, tabby cat"
    return first if len(first) <= limit else first[: limit - 1] + "…"


def curves_figure(curves: pd.DataFrame, metric: str = "val_top1", x: str = "epoch") -> go.Figure:
    """One metric of every model overlaid, by ``epoch`` or by ``elapsed_s`` (wall clock)."""
    df = curves[curves["metric"] == metric].copy()
    if x == "elapsed_s":
        df["wall clock (min)"] = df["elapsed_s"] / 60
        xcol = "wall clock (min)"
    else:
        xcol = "epoch"
    fig = px.line(df, x=xcol, y="value", color="model", markers=True,
                  labels={"value": METRIC_LABELS.get(metric, metric)})
    fig.update_layout(height=340, margin=dict(l=0, r=10, t=30, b=0), legend_title_text="")
    if metric == "lr":
        fig.update_yaxes(type="log")
    return fig


def bubble_figure(table: pd.DataFrame, x: str = "macs", y: str = "best_val_top1") -> go.Figure:
    """Accuracy against MACs or parameters (log x, 1-2-5 ticks in K/M/G); bubble area ~ training time (or
    parameters). Models without the numbers are named under the chart with the reason, never dropped silently."""
    from cnnviz.views.charts import note_left_out, readable_log_axis

    labels = {"macs": "MACs per image", "params": "parameters", "best_val_top1": "best val top-1",
              "train_time_s": "training time (s)"}
    missing = table[table[x].isna() | table[y].isna()] if x in table and y in table else table
    left_out = [f"{r['model']} (no {labels.get(x, x) if pd.isna(r.get(x)) else labels.get(y, y)} yet)"
                for _, r in missing.iterrows()]
    df = table.dropna(subset=[x, y]).copy()
    size_col = "train_time_s" if df.get("train_time_s") is not None and df["train_time_s"].notna().all() else "params"
    df["_size"] = df[size_col].astype(float).fillna(1.0) if size_col in df else 1.0
    fig = px.scatter(df, x=x, y=y, size="_size", color="arch", text="model", log_x=True, size_max=45,
                     hover_data={"_size": False, "params": True, "macs": True}, labels=labels)
    fig.update_traces(textposition="top center", marker_sizemin=6)  # a 7-second demo run stays visible
    fig.update_layout(height=380, margin=dict(l=0, r=10, t=30, b=0), yaxis_tickformat=".0%")
    readable_log_axis(fig, list(df[x].astype(float)))
    note_left_out(fig, left_out)
    return fig


def per_class_figure(per_class: pd.DataFrame, models: Sequence[str], top: int = 20) -> go.Figure:
    """Grouped bars: per-class accuracy of each model for the ``top`` classes where they differ most."""
    df = per_class.head(top)
    # unique labels: two classes shortened alike ("synthetic: vertic…") would stack into one taller bar
    labels = _unique([_short(n, 18) for n in df["name"]])
    fig = go.Figure([go.Bar(name=m, x=labels, y=df[m], hovertext=list(df["name"]),
                            hovertemplate="%{hovertext}: %{y:.0%}<extra>" + m + "</extra>") for m in models])
    fig.update_layout(barmode="group", height=360, margin=dict(l=0, r=10, t=30, b=0), yaxis_tickformat=".0%",
                      yaxis_title="val accuracy", legend_title_text="")
    return fig


def confusion_figure(ev, max_classes: int = 200) -> go.Figure:
    """Heatmap of row-normalised confusion (the classes with most errors first when there are too many)."""
    cm = ev.confusion.astype(float)
    idx = np.arange(len(cm))
    if len(cm) > max_classes:
        errors = cm.sum(1) - np.diag(cm)
        idx = np.sort(np.argsort(-errors, kind="stable")[:max_classes])
    sub = cm[np.ix_(idx, idx)]
    norm = sub / np.maximum(sub.sum(1, keepdims=True), 1)
    names = _unique([_short(ev.names[i], 20) for i in idx])  # a repeated label would merge two rows
    fig = go.Figure(go.Heatmap(z=norm, x=names, y=names, colorscale="Blues", zmin=0, zmax=1,
                               hovertemplate="true %{y}<br>predicted %{x}<br>%{z:.0%}<extra></extra>"))
    fig.update_layout(height=520, margin=dict(l=0, r=0, t=30, b=0), xaxis_title="predicted",
                      yaxis_title="true", yaxis_autorange="reversed")
    return fig


# ----------------------------------------------------------------------------------------------- PNG (export)
def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _subplots(w: float, h: float):
    # matplotlib's object API, not pyplot: no global figure registry, so sessions exporting at the same time
    # in the server's threads cannot draw into each other's figures
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h))
    return fig, fig.subplots()


def bundle_pngs(table, curves: pd.DataFrame, evals: dict) -> dict[str, bytes]:
    """Static PNGs of the comparison: curves (by epoch and wall clock), accuracy vs MACs/params, confusions."""
    out: dict[str, bytes] = {}
    for metric in ("val_top1", "val_loss", "train_loss"):
        sub = curves[curves["metric"] == metric]
        if sub.empty:
            continue
        for x, label in (("epoch", "epoch"), ("elapsed_s", "wall clock (s)")):
            fig, ax = _subplots(6, 3.6)
            for model, g in sub.groupby("model", sort=False):
                ax.plot(g[x], g["value"], marker="o", label=model)
            ax.set_xlabel(label)
            ax.set_ylabel(METRIC_LABELS.get(metric, metric))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
            out[f"{metric}_by_{'epoch' if x == 'epoch' else 'time'}"] = _png(fig)
    frame = table.frame
    for x in ("macs", "params"):
        df = frame.dropna(subset=[x, "best_val_top1"]) if x in frame else frame.iloc[:0]
        if df.empty:
            continue
        fig, ax = _subplots(6, 3.6)
        sizes = df["params"].astype(float)
        ax.scatter(df[x].astype(float), df["best_val_top1"].astype(float),
                   s=40 + 400 * sizes / max(1.0, float(sizes.max())), alpha=0.6)
        for _, r in df.iterrows():
            ax.annotate(str(r["model"]), (float(r[x]), float(r["best_val_top1"])), fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("MACs per image" if x == "macs" else "parameters")
        ax.set_ylabel("best val top-1")
        ax.grid(alpha=0.3)
        out[f"top1_vs_{x}"] = _png(fig)
    for name, ev in evals.items():
        cm = ev.confusion.astype(float)
        norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        side = max(4.0, min(12.0, math.sqrt(len(cm)) * 0.9))
        fig, ax = _subplots(side, side)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(f"{name}: top-1 {ev.top1:.1%}")
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        out[f"confusion_{safe}"] = _png(fig)
    return out
