"""What the Compare page draws: accuracy against cost, per-class accuracy, confusion, the same image through
every model, the sentences that say which models can be compared, and the export bundle's PNGs (matplotlib,
because plotly's static export needs kaleido and a browser, which the project does not depend on).

Curves are the one :func:`cnnviz.views.charts.curves_figure`; top-k bars are :func:`cnnviz.views.predict.topk_figure`.
Pure builders: data in, figure out; no streamlit, no file access (the evaluation plan looks for a dataset).
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from cnnviz.comparable import class_groups, evaluation_root
from cnnviz.compare import (
    CompareEntry,
    EvalResult,
    compare_table,
    curves_frame,
    most_confused,
    per_class_frame,
)
from cnnviz.summary import human, percent
from cnnviz.views.charts import (
    METRIC_LABELS,
    Panel,
    curves_figure,
    model_colours,
    note_left_out,
    place_labels,
    readable_log_axis,
    short_name,
    unique_labels,
)
from cnnviz.views.format import COUNT_NOTE, duration_text, to_markdown

# The table writes its numbers as docs/zoo.md and the CLI do (1.05G, 25.10%), not with Streamlit's "compact" and
# "percent" column formats: those keep two significant digits and drop trailing zeros, so ZFNet's 1.05G MACs read
# "1B" and LeNet-5's 25.10% read "25.1%" beside "38.55%". The page applies TABLE_FORMATS through pandas' Styler;
# the underlying numbers stay numbers, so a column still sorts by value.
COUNT_HELP = f"{COUNT_NOTE}, as in docs/zoo.md"
MACS_HELP = f"multiply-accumulates per image at the model's input; {COUNT_HELP}"
SHIPPED_HELP = ("val top-1 of the starter file that Visualize and Predict load, measured from that file on the whole "
                "val split; it is compressed (int8, SVD of the fc layers: the model card says what it cost), so it "
                "can be a point or two below best val top-1, the uncompressed weights'")
DEVICE_HELP = "the card or CPU the training time and images/s were measured on: a CPU's and a GPU's do not compare"


# ----------------------------------------------------------------------------------------------- comparable?
def mixed_classes(entries: Sequence[CompareEntry]) -> str | None:
    """None when every entry was trained on the same classes; else a sentence naming each group, e.g.
    ``"Tiny ImageNet, 200 classes at 64x64 (starter/a, starter/b); synthetic demo set, 10 classes at 64x64
    (run-x)"``. Accuracies of such groups are not comparable: chance alone is 0.5% for 200 classes and 10%
    for 10."""
    groups = class_groups(entries)
    if len(groups) < 2:
        return None
    return "; ".join(f"{g[0].dataset.label} ({', '.join(e.id for e in g)})" for g in groups.values())


@dataclass
class EvaluationPlan:
    """Whether a per-class comparison of ``entries`` can be made, and on which validation set."""

    root: Path | None  # the dataset to evaluate on (None: see refusal / missing)
    entries: list[CompareEntry]  # those with a checkpoint to evaluate
    refusal: str | None = None  # why the comparison would mislead (mixed classes)
    missing: str | None = None  # the dataset is not on this machine


def evaluation_plan(entries: Sequence[CompareEntry]) -> EvaluationPlan:
    """Per-class accuracy and confusion compare models class by class, so every entry must have the same
    classes (else ``refusal``); they are evaluated on the validation split of the dataset they were trained
    on (a synthetic run on the synthetic set, not on Tiny ImageNet)."""
    usable = [e for e in entries if e.checkpoint is not None and e.evaluation is None]
    mixed = mixed_classes([e for e in entries if e.checkpoint is not None or e.evaluation is not None])
    if mixed:
        return EvaluationPlan(None, usable, refusal=(
            "Per-class accuracy and confusion compare models class by class, so they need models trained on "
            f"the same classes. The selection mixes {mixed}. Choose the models of one dataset."))
    if not usable:
        return EvaluationPlan(None, usable, missing="None of the selected models has a checkpoint to evaluate yet.")
    root = evaluation_root(usable[0])
    if root is None:
        ds = usable[0].dataset
        if ds.name == "synthetic demo set":
            missing = ("No synthetic demo set found on this machine: the first training run on it generates it "
                       "(Training page, dataset 'Synthetic').")
        elif ds.data and ds.data != "auto":
            missing = f"The dataset {ds.data} that {usable[0].id} was trained on is not on this machine."
        else:
            missing = ("No Tiny ImageNet dataset found: per-class accuracy and confusion need the validation set "
                       "(prepare it on the Training page or with `python -m cnnviz data prepare`).")
        return EvaluationPlan(None, usable, missing=missing)
    return EvaluationPlan(root, usable)


# ----------------------------------------------------------------------------------------------- the table
# Columns that say what a model is rather than how it did, each with how a shared value is written. Seven zoo rows
# of "zoo, Tiny ImageNet, 64, 200, 10, NVIDIA H200, done" pushed training time, images/s and the highlighted
# hyper-parameters past the right edge of a 1500 px window; a value every row shares is said once instead.
SHARED_WORDING = {
    "kind": "kind {}", "dataset": "{}", "input": "{0}x{0} input", "classes": "{} classes", "epochs": "{} epochs",
    "device": "trained on {} (where the training time and images/s were measured)", "state": "state {}",
}


def fold_shared_columns(frame: pd.DataFrame, escape=str) -> tuple[list[str], str]:
    """The context columns (:data:`SHARED_WORDING`) on which every row of the comparison table agrees, and the
    sentence that says their values once, e.g. ``"All selected models: kind zoo, Tiny ImageNet, 64x64 input, ..."``.
    Nothing folds for a single row (that row is the whole story) or for a column with a missing value. ``escape``
    is applied to each value (the page passes its Markdown escape: dataset names come from files)."""
    if len(frame) < 2:
        return [], ""
    folded = [c for c in SHARED_WORDING if c in frame and frame[c].notna().all() and frame[c].astype(str).nunique() == 1]
    if not folded:
        return [], ""
    said = [SHARED_WORDING[c].format(escape(frame[c].iloc[0])) for c in folded]
    return folded, f"All selected models: {', '.join(said)}."


def _percent_cell(x: float | None) -> str:
    return percent(x, missing="-")  # "-" as the table's other unknown cells


TABLE_FORMATS = {"best_val_top1": _percent_cell, "best_val_top5": _percent_cell, "shipped_top1": _percent_cell,
                 "params": human,
                 "training-only params": human, "macs": human}


def table_formats(frame: pd.DataFrame) -> dict[str, Any]:
    """The display formatter of each of :data:`TABLE_FORMATS`' columns that ``frame`` has (pandas' Styler.format
    refuses a column the frame lacks)."""
    return {c: f for c, f in TABLE_FORMATS.items() if c in frame}


def devices_note(frame: pd.DataFrame) -> str | None:
    """A warning for the charts that use training time when the selected models trained on different machines
    (the zoo's LeNet-5 on a 2-core CPU, the others on a GPU): their times compare machines as well as networks."""
    if "device" not in frame:
        return None
    devices = frame["device"].dropna().astype(str)
    if devices.nunique() < 2:
        return None
    return ("These models trained on different machines (the table's device column says which): training time, "
            "bubble size and the wall-clock axis compare the machines as well as the networks.")


# ----------------------------------------------------------------------------------------------- charts
def metric_curves_figure(curves: pd.DataFrame, metric: str = "val_top1", x: str = "epoch") -> go.Figure:
    """One metric of every model overlaid (:func:`cnnviz.views.charts.curves_figure`), by ``epoch`` or by
    ``elapsed_s`` (wall clock); the learning rate on a log axis."""
    return curves_figure(curves, [Panel((metric,), log=metric == "lr")], x)


def bubble_figure(table: pd.DataFrame, x: str = "macs", y: str = "best_val_top1") -> go.Figure:
    """Accuracy against MACs or parameters (log x, 1-2-5 ticks in K/M/G); bubble area ~ training time (or
    parameters). Models without the numbers are named under the chart with the reason, never dropped silently."""
    labels = {"macs": "MACs per image", "params": "parameters", "best_val_top1": "best val top-1",
              "train_time_s": "training time (s)"}
    missing = table[table[x].isna() | table[y].isna()] if x in table and y in table else table
    left_out = [f"{r['model']} (no {labels.get(x, x) if pd.isna(r.get(x)) else labels.get(y, y)} yet)"
                for _, r in missing.iterrows()]
    df = table.dropna(subset=[x, y]).copy()
    size_col = "train_time_s" if df.get("train_time_s") is not None and df["train_time_s"].notna().all() else "params"
    df["_size"] = df[size_col].astype(float).fillna(1.0) if size_col in df else 1.0
    # coloured by model, as on the curves and per-class charts; each bubble is named, so no legend
    fig = px.scatter(df, x=x, y=y, size="_size", color="model", text="model", log_x=True, size_max=32,
                     color_discrete_map=model_colours(table["model"].astype(str)),
                     hover_data={"_size": False, "arch": True, "params": True, "macs": True,
                                 **({size_col: ":.0f"} if size_col == "train_time_s" else {})},
                     labels=labels, opacity=0.75)
    fig.update_traces(marker_sizemin=6)  # a 7-second demo run stays visible
    biggest = float(df["_size"].max()) or 1.0  # plotly's area-scaled markers: diameter ~ sqrt(size), 6 to 32 px
    radii = [max(6.0, 32 * math.sqrt(max(float(v), 0.0) / biggest)) / 2 for v in df["_size"]]
    places = dict(zip(df["model"], place_labels(df[x].astype(float), df[y].astype(float), radii,
                                                list(df["model"].astype(str))), strict=True))
    fig.for_each_trace(lambda t: t.update(textposition=[places[m] for m in t.text], cliponaxis=False))
    fig.update_layout(height=380, margin=dict(l=0, r=10, t=30, b=0), yaxis_tickformat=".0%", showlegend=False)
    if len(df) and size_col in df:  # the bubbles' key, in the chart: which model the largest and smallest are
        lo, hi = df.loc[df["_size"].idxmin()], df.loc[df["_size"].idxmax()]
        name, value = ("training time", duration_text) if size_col == "train_time_s" else ("parameters", human)
        key = (f"bubble area: {name}, from {value(float(lo[size_col]))} ({lo['model']}) to "
               f"{value(float(hi[size_col]))} ({hi['model']})")
        fig.add_annotation(text=key, xref="paper", yref="paper", x=0, y=1.02, xanchor="left", yanchor="bottom",
                           showarrow=False, font=dict(size=11, color="#555"))
    readable_log_axis(fig, list(df[x].astype(float)))
    note_left_out(fig, left_out)
    return fig


def per_class_figure(per_class: pd.DataFrame, models: Sequence[str], top: int = 20) -> go.Figure:
    """Grouped bars: per-class accuracy of each model for the ``top`` classes where they differ most."""
    df = per_class.head(top)
    # unique labels: two classes shortened alike ("synthetic: vertic…") would stack into one taller bar
    labels = unique_labels([short_name(n, 18) for n in df["name"]])
    colours = model_colours(models)
    fig = go.Figure([go.Bar(name=m, x=labels, y=df[m], hovertext=list(df["name"]), marker_color=colours[m],
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
    names = unique_labels([short_name(ev.names[i], 20) for i in idx])  # a repeated label would merge two rows
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
    colours = model_colours(table.frame["model"].astype(str))  # the page's colours, in its table's order
    for metric in ("val_top1", "val_loss", "train_loss"):
        sub = curves[curves["metric"] == metric]
        if sub.empty:
            continue
        for x, label in (("epoch", "epoch"), ("elapsed_s", "wall clock (s)")):
            fig, ax = _subplots(6, 3.6)
            for model, g in sub.groupby("model", sort=False):
                ax.plot(g[x], g["value"], marker="o", label=model, color=colours.get(model))
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
                   s=40 + 400 * sizes / max(1.0, float(sizes.max())), alpha=0.6,
                   color=[colours.get(str(m), "#0072B2") for m in df["model"]])
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


# ----------------------------------------------------------------------------------------------- the export bundle
def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:100] or "model"


def export_bundle(entries: Sequence[CompareEntry], evals: dict[str, EvalResult] | None = None, *,
                  figures: bool = True) -> bytes:
    """One zip with ``tables/`` (CSV and Markdown), ``figures/`` (PNG) and ``configs/`` (JSON per model)."""
    table = compare_table(entries)
    curves = curves_frame(entries)
    tables: dict[str, pd.DataFrame] = {"runs": table.frame, "curves": curves}
    if evals:
        tables["per_class"] = per_class_frame(evals)
        for name, ev in evals.items():
            tables[f"confused_{_safe(name)}"] = most_confused(ev, 20)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, df in tables.items():
            z.writestr(f"tables/{name}.csv", df.to_csv(index=False))
            z.writestr(f"tables/{name}.md", to_markdown(df))
        for e in entries:
            z.writestr(f"configs/{_safe(e.id)}.json", json.dumps(
                {"id": e.id, "kind": e.kind, "arch": e.arch, "model_args": e.model_args, "config": e.config,
                 "checkpoint": e.checkpoint.name if e.checkpoint else None}, indent=2, default=str))
        if figures:
            for name, png in bundle_pngs(table, curves, evals or {}).items():
                z.writestr(f"figures/{name}.png", png)
        z.writestr("README.md", "# cnnviz comparison\n\nModels: " + ", ".join(e.id for e in entries) +
                   "\n\n- `tables/`: CSV and Markdown\n- `figures/`: PNG\n- `configs/`: each model's training "
                   "configuration (JSON)\n\nDifferent hyper-parameters: " + (", ".join(table.differing) or "none")
                   + "\n")
    return buf.getvalue()
