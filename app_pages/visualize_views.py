"""The Visualize page's views, one function each, and :data:`VIEWS`, the list the page draws its tabs from.

Only the open view runs (lazy ``st.tabs``): each view computes its own figures from the shared
:class:`cnnviz.views.visualize.Context` (model, image, layer), so adding a view is one function and one
:class:`View` entry. A view is widgets, one call to :mod:`cnnviz.views.visualize` (or :mod:`cnnviz.viz`), and
the figure with its caption; the widgets every view shares are in ``_viz_widgets.py``, the explaining views in
``_explain_views.py`` and Zeiler & Fergus's invariance and probes in ``_zf_views.py``.
Widgets inside a view carry keys that start with the view's ``key`` so views never collide.
Results of buttons (occlusion, attributions, sanity check) are kept in ``st.session_state`` under a signature
of what they were computed from, so they stay on screen until an input changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import streamlit as st

from app_pages import _explain_views, _zf_views
from app_pages._viz_widgets import downloads, show_movement, whole_image_note
from cnnviz import viz
from cnnviz.views import visualize as vv
from cnnviz.views.visualize import Context
from cnnviz.viz import render


@dataclass(frozen=True)
class View:
    name: str  # the tab's label
    key: str  # prefix of the view's widget keys
    run: Callable[[Context], Any]


def filters_view(ctx: Context) -> None:
    model, convs = ctx.subject.model, viz.conv_layers(ctx.subject.model)
    conv = st.selectbox("Conv layer", convs, key="flt_conv")
    norm = st.radio("Scale", ["per_filter", "global"], horizontal=True, key="flt_scale")
    fig = vv.filter_figure(model, conv, norm)
    left, right = st.columns([3, 2])
    left.image(fig.image, caption=ctx.subject.caption(fig.caption))
    show_movement(model, ctx.subject.meta, conv, (ctx.subject.name, ctx.subject.cache_key, conv), right)
    stats = viz.filter_stats(model, conv)
    st.write(f"{int(stats.dead.sum())} dead and {int(stats.near_constant.sum())} near-constant filters")
    st.dataframe(stats, hide_index=True, height=200)
    downloads("filters", fig.image, viz.filters.conv_weight(model, conv), stats.to_csv(index=False))
    if st.toggle("AlexNet vs ZFNet conv1 (ZF Fig. 6)", key="flt_fig6"):
        panels = vv.fig6_panels(ctx.infos.values(), ctx.load, ctx.random)
        for col, panel in zip(st.columns(2), panels, strict=True):
            col.image(panel.image, caption=panel.caption)
            show_movement(panel.model, panel.meta, panel.layer, panel.key + (panel.layer,), col)
        if note := vv.fig6_training_note(panels):
            st.warning(note)
        if note := vv.fig6_comparison_note(panels):
            st.info(note)


def maps_view(ctx: Context) -> None:
    layer, channel = ctx.layer, st.number_input("Feature map (empty = strongest)", 0, None, None, key="fm_ch")
    key = f"fm_pick_{layer}_{channel}"  # a new chart (and no stale click) for each layer and map
    picked = st.session_state.get(key)  # the click on this chart (feature_figure clamps it to the map)
    clicked = viz.maps.unit_from_selection(picked) if picked else None
    fm, grid, detail, channel, unit, box = vv.feature_figure(ctx.subject, ctx.x, ctx.seen, layer, channel, clicked)
    whole_image_note(ctx, box)
    left_col, right_col = st.columns(2)
    left_col.plotly_chart(viz.maps.unit_picker(fm.maps[channel], unit, f"{layer}[{channel}]: click a unit"),
                          on_select="rerun", selection_mode="points", key=key)
    # (no "receptive field" in this caption: the other views' figures are found by that phrase)
    right_col.image(detail, caption=ctx.subject.caption(
        f"unit (row, column) {unit} ({'clicked' if clicked else 'strongest'}) and the input region "
        f"{vv.box_text(box)} it sees, in the model's input pixels"))
    st.image(grid, caption=ctx.subject.caption(
        f"{layer}: the strongest {min(64, len(fm.order))} of {len(fm.order)} maps, strongest first"))
    downloads("feature_maps", grid, fm.maps, fm.table().to_csv(index=False))


def deconv_view(ctx: Context) -> None:
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    channel = left.number_input("Feature map (empty = the most active)", 0, None, None, key="dc_ch")
    what = ("Springenberg et al. 2015: the same way back, but each ReLU also stops the signal where it was off in "
            "the forward pass.")
    asked = bool(st.session_state.get("dc_guided", False))
    dc = vv.deconv_figure(ctx.subject, ctx.x, ctx.seen, ctx.layer, channel, with_guided=asked)
    if dc.guided is not None and not asked:  # shown anyway: the switch says so rather than reading "off"
        right.toggle("Guided backprop beside it", value=True, disabled=True, key="dc_guided_forced",
                     help=f"{what} Shown here whatever the switch: the deconvnet's picture of this unit is the same "
                          "for every image, and guided backprop's is the one that comes from this image.")
    else:
        right.toggle("Guided backprop beside it", key="dc_guided",
                     help=f"{what} Shown anyway where the deconvnet's picture would be the same for every image.")
    whole_image_note(ctx, dc.box)
    st.image(dc.image, caption=dc.caption(ctx.subject))
    downloads("deconvnet", dc.image, dc.projection.image)
    if dc.guided is not None:
        st.download_button("Guided backprop .npy", render.npy_bytes(dc.guided.image), "guided_backprop.npy",
                           key="npy-guided")


def training_view(ctx: Context) -> None:
    info = ctx.info
    snaps = viz.snapshots_of(info.path, info.kind, info.meta.epoch) if info is not None else []
    if not snaps:
        return st.info("This model has no per-epoch snapshots (of the starters only LeNet-5 ships some: the others' "
                       "would not fit the repository's 48 MiB). To see features evolve, pick "
                       "`starter/lenet5_tinyimagenet`, or train a model with **Keep every epoch's weights** ticked "
                       "on the Training page (`--keep-snapshots` on the command line); it estimates an epoch's "
                       "time before you start (measured on a 2-core CPU: LeNet-5 2,800-4,300 images/s, ZFNet "
                       "66-88, for Tiny ImageNet's 100,000).")
    # Buttons, not a slider: the snapshots are a few uneven epochs (LeNet-5's 1, 2, 5, 10), and a slider labelled
    # only its ends hid the ones in between.
    epochs = [s.epoch for s in snaps]
    epoch = st.radio("Epoch", epochs, key="trn_epoch", horizontal=True, format_func=lambda e: f"after epoch {e}")
    figs = vv.epoch_figures(ctx.load(next(s.path for s in snaps if s.epoch == epoch)), epoch, ctx.x, ctx.seen,
                            ctx.layer)
    # Fixed widths: a caption wider than its image (epoch 1's "barely trained" note) stretches the image, and
    # the epochs must be compared at one size.
    st.image(figs.filters, caption=figs.filters_caption, width=max(figs.filters.shape[1], 400))
    downloads(f"filters_epoch{epoch}", figs.filters)
    st.image(figs.deconv, caption=figs.deconv_caption, width=max(figs.deconv.shape[1], 520))
    downloads(f"deconvnet_epoch{epoch}", figs.deconv, figs.projection.image)


VIEWS: list[View] = [
    View("Filters", "flt", filters_view),
    View("Feature maps", "fm", maps_view),
    View("Deconvnet", "dc", deconv_view),
    View("Top-9", "top9", _explain_views.top9_view),
    View("Occlusion", "occ", _explain_views.occlusion_view),
    View("Attribution", "attr", _explain_views.attribution_view),
    View("Across training", "trn", training_view),
    View("Invariance", "inv", _zf_views.invariance_view),
    View("Layer probes", "prb", _zf_views.probes_view),
]
