"""Widgets every Visualize view uses: downloads under a figure, a class picker, the "trained vs random" numbers
beside a filter grid, and the note when every unit of a layer sees the whole image."""

from __future__ import annotations

import streamlit as st

from cnnviz.views import visualize as vv
from cnnviz.viz import render, session
from cnnviz.viz.trained import filter_movement


def downloads(name: str, png, array=None, csv: str | None = None) -> None:
    row = st.container(horizontal=True)  # side by side under their figure (three columns spread them apart)
    row.download_button("PNG", render.png_bytes(png), f"{name}.png", "image/png", key=f"png-{name}")
    if array is not None:
        row.download_button(".npy", render.npy_bytes(array), f"{name}.npy", key=f"npy-{name}")
    if csv is not None:
        row.download_button("CSV", csv, f"{name}.csv", "text/csv", key=f"csv-{name}")


def class_picker(ctx: vv.Context, key: str, label: str = "Class") -> int:
    """A searchable selectbox of the checkpoint's class names; default: the true class, else the prediction."""
    default = ctx.label if ctx.label is not None else session.predicted_class(ctx.subject, ctx.x)
    return st.selectbox(label, vv.class_options(ctx.subject.meta), index=default, key=f"{key}_class_{default}",
                        format_func=lambda k: vv.class_label(ctx.subject.meta, k),
                        help="Type to search by name. Default: the image's true class when known, else the "
                             "class the model predicts.")


@st.cache_data(show_spinner="Measuring how far the filters moved from their random start…", max_entries=64)
def _movement(key: tuple, _model, _meta: dict, layer: str):
    return filter_movement(_model, _meta, layer)  # ``key`` names the weights (checkpoint file, or a random init)


def show_movement(model, meta: dict, layer: str, key: tuple, where=st) -> None:
    """The "trained vs random" numbers beside a filter grid, with a sentence; a warning when near the start."""
    mv = _movement(key, model, meta, layer)
    for label, value, help_text in vv.movement_metrics(mv):  # one above the other: labels stay whole
        where.metric(label, value, help=help_text)
    (where.warning if mv.near_start else where.caption)(mv.sentence())


def whole_image_note(ctx: vv.Context, box) -> None:
    note = vv.whole_image_note(ctx.subject, ctx.layer, box)
    if note:
        st.info(note)
