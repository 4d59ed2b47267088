"""The Visualize page's views, one function each, and :data:`VIEWS`, the list the page draws its tabs from.

Only the open view runs (lazy ``st.tabs``): each view computes its own figures from the shared
:class:`Context` (model, image, layer), so adding a view is one function and one :class:`View` entry.
Widgets inside a view carry keys that start with the view's ``key`` so views never collide.
Results of buttons (occlusion, attributions, sanity check) are kept in ``st.session_state`` under a signature
of what they were computed from, so they stay on screen until an input changes.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st
import torch

from app_pages import _zf_views
from cnnviz import viz
from cnnviz.catalog import CheckpointInfo, most_accurate
from cnnviz.viz import render, session
from cnnviz.viz.occlusion import slider_ranges
from cnnviz.viz.scan_cost import progress_text, scan_note
from cnnviz.viz.trained import filter_movement, with_note


@dataclass
class Context:
    """What every view gets: the model, the image as the network saw it, and the page's choices."""

    subject: session.Subject
    x: torch.Tensor  # the preprocessed input, 1 x C x H x W or C x H x W
    seen: np.ndarray  # what the network saw, H x W x 3 uint8
    layer: str  # the page's layer (feature maps, deconvnet, top-9, occlusion's map (a))
    layers: list[str]  # every layer with a spatial output
    label: int | None  # the image's true class (model output index) when known
    split: Any  # the validation Split, or None
    info: CheckpointInfo | None  # the chosen checkpoint (None: a random init)
    infos: dict[str, CheckpointInfo]  # every listed checkpoint, by picker label
    load: Callable  # path -> loaded checkpoint (cached, shared)
    random: Callable[[str], session.Subject]  # arch -> random-init subject (cached, shared)
    val_index: int | None = None  # the validation image shown (None: an upload or the demo image)

    @property
    def signature(self) -> str:
        """Identifies model + image: stored results are shown only while both are unchanged."""
        digest = hashlib.sha1(self.x.detach().cpu().numpy().tobytes()).hexdigest()[:16]
        return f"{self.subject.name}|{digest}"


@dataclass(frozen=True)
class View:
    name: str  # the tab's label
    key: str  # prefix of the view's widget keys
    run: Callable[[Context], Any]


def downloads(name: str, png, array=None, csv: str | None = None) -> None:
    cols = st.columns(3)
    cols[0].download_button("PNG", render.png_bytes(png), f"{name}.png", "image/png", key=f"png-{name}")
    if array is not None:
        cols[1].download_button(".npy", render.npy_bytes(array), f"{name}.npy", key=f"npy-{name}")
    if csv is not None:
        cols[2].download_button("CSV", csv, f"{name}.csv", "text/csv", key=f"csv-{name}")


def class_picker(ctx: Context, key: str, label: str = "Class") -> int:
    """A searchable selectbox of the checkpoint's class names; default: the true class, else the prediction."""
    default = ctx.label if ctx.label is not None else session.predicted_class(ctx.subject, ctx.x)
    return st.selectbox(label, session.class_options(ctx.subject.meta), index=default, key=f"{key}_class_{default}",
                        format_func=lambda k: session.class_label(ctx.subject.meta, k),
                        help="Type to search by name. Default: the image's true class when known, else the "
                             "class the model predicts.")


@st.cache_data(show_spinner="Measuring how far the filters moved from their random start…", max_entries=64)
def _movement(key: tuple, _model, _meta: dict, layer: str):
    return filter_movement(_model, _meta, layer)  # ``key`` names the weights (checkpoint file, or a random init)


def show_movement(model, meta: dict, layer: str, key: tuple, where=st) -> None:
    """The "trained vs random" numbers beside a filter grid, with a sentence; a warning when near the start."""
    mv = _movement(key, model, meta, layer)
    cols = [where, where]  # one above the other: the labels stay whole in a narrow column
    cols[0].metric("moved from the random start", "n/a" if mv.distance is None else f"{mv.distance:.2f}",
                   help="||W - W0|| / ||W0||: W0 is the layer as initialised (rebuilt from the run's seed).")
    cols[1].metric("neighbour-pixel correlation", "n/a" if mv.smoothness is None else f"{mv.smoothness:+.2f}",
                   help="Random filters: about 0 (slightly negative); trained first layers: clearly positive.")
    (where.warning if mv.near_start else where.caption)(mv.sentence())


def filters_view(ctx: Context) -> None:
    model, convs = ctx.subject.model, viz.conv_layers(ctx.subject.model)
    conv = st.selectbox("Conv layer", convs, key="flt_conv")
    norm = st.radio("Scale", ["per_filter", "global"], horizontal=True, key="flt_scale")
    fig = viz.filter_grid(model, conv, norm) if conv == convs[0] else viz.filter_channels(model, conv, normalise=norm)
    left, right = st.columns([3, 2])
    left.image(fig.image, caption=ctx.subject.caption(fig.caption))
    show_movement(model, ctx.subject.meta, conv, (ctx.subject.name, ctx.subject.cache_key, conv), right)
    stats = viz.filter_stats(model, conv)
    st.write(f"{int(stats.dead.sum())} dead and {int(stats.near_constant.sum())} near-constant filters")
    st.dataframe(stats, hide_index=True, height=200)
    downloads("filters", fig.image, viz.filters.conv_weight(model, conv), stats.to_csv(index=False))
    if st.toggle("AlexNet vs ZFNet conv1 (ZF Fig. 6)", key="flt_fig6"):
        fig6(ctx)


def fig6(ctx: Context) -> None:
    """ZF Fig. 6 from the most accurate AlexNet and ZFNet checkpoints; a random init, said so, where none exists."""
    for col, arch in zip(st.columns(2), ("alexnet", "zfnet"), strict=True):
        best = most_accurate(ctx.infos.values(), arch)
        if best is not None:
            ck = ctx.load(best.path)
            model, meta, key = ck.model, ck.meta, (best.name, str(best.path), best.mtime)
            top1 = best.metrics["val_top1"] / (100 if best.metrics["val_top1"] > 1 else 1)
            what = f"{arch} from {best.name} (val top-1 {top1:.1%}, the most accurate {arch} checkpoint)"
        else:
            subject = ctx.random(arch)
            model, meta, key = subject.model, subject.meta, (subject.name, None)
            what = (f"{arch}: no trained {arch} checkpoint exists, so this is a random initialisation (seed 0): "
                    "it shows what untrained filters look like, not what ZF's Fig. 6 compares")
        fig = viz.filter_grid(model)
        col.image(fig.image, caption=with_note(f"{what}; {fig.caption}", meta))
        show_movement(model, meta, fig.layer, key + (fig.layer,), col)


def whole_image_note(ctx: Context, box) -> None:
    if session.covers_whole_image(box, ctx.subject.input_size):
        st.info(f"Every unit of {ctx.layer} sees the whole {ctx.seen.shape[1]}x{ctx.seen.shape[0]} image: its "
                "receptive field covers all of the input, so the region outlined is always the whole picture. Pick an "
                "earlier layer to see what a unit looks at.")


def maps_view(ctx: Context) -> None:
    layer, channel = ctx.layer, st.number_input("Feature map (empty = strongest)", 0, None, None, key="fm_ch")
    key = f"fm_pick_{layer}_{channel}"  # a new chart (and no stale click) for each layer and map
    picked = st.session_state.get(key)  # the click on this chart (feature_figure clamps it to the map)
    clicked = viz.maps.unit_from_selection(picked) if picked else None
    fm, grid, detail, channel, unit, box = session.feature_figure(ctx.subject, ctx.x, ctx.seen, layer, channel, clicked)
    whole_image_note(ctx, box)
    left_col, right_col = st.columns(2)
    left_col.plotly_chart(viz.maps.unit_picker(fm.maps[channel], unit, f"{layer}[{channel}]: click a unit"),
                          on_select="rerun", selection_mode="points", key=key)
    # (no "receptive field" in this caption: the other views' figures are found by that phrase)
    right_col.image(detail, caption=ctx.subject.caption(
        f"unit (row, column) {unit} ({'clicked' if clicked else 'strongest'}) and the input region "
        f"{session.box_text(box)} it sees, in the model's input pixels"))
    st.image(grid, caption=ctx.subject.caption(
        f"{layer}: the strongest {min(64, len(fm.order))} of {len(fm.order)} maps, strongest first"))
    downloads("feature_maps", grid, fm.maps, fm.table().to_csv(index=False))


def deconv_view(ctx: Context) -> None:
    channel = st.number_input("Feature map (empty = the most active)", 0, None, None, key="dc_ch")
    proj, fig, box = session.deconv_figure(ctx.subject, ctx.x, ctx.seen, ctx.layer, channel)
    whole_image_note(ctx, box)
    st.image(fig, caption=session.deconv_caption(ctx.subject, proj, box))
    downloads("deconvnet", fig, proj.image)


def top9_view(ctx: Context) -> None:
    subject, layer, split = ctx.subject, ctx.layer, ctx.split
    if split is None:
        return st.info("Top-9 needs the validation set: prepare Tiny ImageNet on the Training page.")
    mean, std = session.mean_std(subject.meta)
    st.caption(scan_note(subject.meta, layer, len(split.images), split.images.shape[1]))
    if st.button("Scan the validation set"):
        bar, start = st.progress(0.0, "scanning…"), time.perf_counter()
        top = viz.scan(subject.model, split.images, layer, mean=mean, std=std, input_size=subject.input_size[1],
                       progress=lambda d, n: bar.progress(d / n, progress_text(d, n, start)),
                       cache_dir=viz.top9.default_cache_dir() if subject.cache_key else None,
                       model_key=subject.cache_key, channels=subject.input_size[0])
        bar.progress(1.0, f"{top.images_seen:,} images in {time.perf_counter() - start:.1f} s (kept on disk for "
                     "this checkpoint and layer)")
        st.session_state["top9"] = (subject.name, layer, top)
    hit = st.session_state.get("top9")
    if hit and hit[:2] == (subject.name, layer):
        channel = st.number_input("Feature map", 0, hit[2].channels - 1, int(hit[2].values[:, 0].argmax()))
        fig = viz.patches(subject.model, split.images, hit[2], channel, mean=mean, std=std,
                          input_size=subject.input_size[1], channels=subject.input_size[0]).image()
        st.image(fig, caption=subject.caption("deconvnet projections (left) and receptive-field patches (right), "
                                              "ZF Fig. 2"))
        downloads("top9", fig, None, hit[2].to_csv())


def occlusion_view(ctx: Context) -> None:
    subject, c1, c2, c3 = ctx.subject, *st.columns(3)
    grid = slider_ranges(subject.input_size[1])  # 8/4 at 64x64, 28/14 at 224x224 (ImageNet networks)
    size = c1.slider("Square", *grid["square"], key="occ_size")
    stride = c2.slider("Stride", *grid["stride"], key="occ_stride")
    with c3:
        target = class_picker(ctx, "occ")
    sig = (ctx.signature, ctx.layer, size, stride, target)
    if st.button("Run occlusion"):
        channel = viz.top_channels(subject.model, ctx.x, ctx.layer, 1)[0][0]
        res = viz.occlusion(subject.model, ctx.x, target, size=size, stride=stride, layer=ctx.layer, channel=channel)
        st.session_state["viz_occlusion"] = (sig, res)
    hit = st.session_state.get("viz_occlusion")
    if hit and hit[0] == sig:
        res = hit[1]
        fig = session.occlusion_figure(ctx.seen, res, subject)
        st.image(fig, caption=subject.caption(
            f"grey square {size}x{size}, stride {stride}; unoccluded p({subject.class_name(res.target)}) = "
            f"{res.base_prob:.3f}; map cell (i, j) = the square at (x0, y0) = ({stride}j, {stride}i) in the model's "
            "input pixels"))
        downloads("occlusion", fig, res.prob)


def attribution_view(ctx: Context) -> None:
    from cnnviz.viz.attribution import default_cam_layer

    subject = ctx.subject
    st.caption("Sanity check (Adebayo et al. 2018): guided backprop and deconvnet barely change when the weights "
               "are randomised - they mostly reconstruct the image, not what the model learnt.")
    left, right = st.columns(2)
    with left:
        target = class_picker(ctx, "attr", "Class to explain")
    cam_default = default_cam_layer(subject.model, subject.input_size, session.layer_shapes(subject))
    cam_layer = right.selectbox("Grad-CAM layer", ctx.layers, index=ctx.layers.index(cam_default),
                                key=f"attr_cam_{cam_default}",
                                help="Default: the last layer whose maps are larger than 1x1 (at a 1x1 layer the "
                                     "CAM is one number).")
    sig = (ctx.signature, target, cam_layer)
    if st.button("Compute attributions"):
        st.session_state["viz_attr"] = (sig, viz.attribute(subject.model, ctx.x, target, cam_layer=cam_layer))
    if st.button("Sanity check: randomise the weights"):
        st.session_state["viz_sanity"] = (sig, viz.sanity_check(subject.model, ctx.x, target, cam_layer=cam_layer))
    hit, check = st.session_state.get("viz_attr"), st.session_state.get("viz_sanity")
    if hit and hit[0] == sig:
        fig = session.attribution_figure(ctx.seen, hit[1], subject)
        st.image(fig, caption=subject.caption(f"explaining {subject.class_name(hit[1].target)}; Grad-CAM at "
                                              f"{hit[1].cam_layer}"))
        downloads("attribution", fig, np.stack(list(hit[1].maps.values())))
    if check and check[0] == sig:
        sc = check[1]
        fig = session.sanity_figure(ctx.seen, sc, subject)
        st.image(fig, caption=subject.caption("original model (top) and the same methods with every weight "
                                              "re-initialised (bottom); Spearman rank correlation of |maps|:"))
        st.dataframe(sc.table(), hide_index=True)
        downloads("sanity", fig, None, sc.scores.to_csv(index=False))


def training_view(ctx: Context) -> None:
    info = ctx.info
    snaps = viz.list_snapshots(info.path.parent) if info is not None and info.kind == "run" else []
    if not snaps:
        return st.info("This model has no per-epoch snapshots (train with 'keep snapshots' to see features evolve).")
    epoch = st.select_slider("Epoch", [s.epoch for s in snaps], key="trn_epoch")
    ck = ctx.load(next(s.path for s in snaps if s.epoch == epoch))
    snap = session.Subject(ck.model, ck.meta, f"epoch {epoch}", None)
    filters, (proj, fig, _) = viz.filter_grid(snap.model).image, session.deconv_figure(snap, ctx.x, ctx.seen, ctx.layer)
    st.image(filters, caption=snap.caption(f"first-layer filters after epoch {epoch}"))
    downloads(f"filters_epoch{epoch}", filters)
    st.image(fig, caption=snap.caption(f"strongest projection of {ctx.layer}, epoch {epoch}"))
    downloads(f"deconvnet_epoch{epoch}", fig, proj.image)


def invariance_view(ctx: Context) -> None:
    """ZF Fig. 5 (app_pages/_zf_views.py): the val image and its neighbours, or the upload alone."""
    _zf_views.render_invariance(ctx.subject, ctx.x, ctx.label, ctx.split if ctx.val_index is not None else None,
                                ctx.val_index)


def probes_view(ctx: Context) -> None:
    """ZF Section 5 / Table 6 (app_pages/_zf_views.py): linear probes per block, several checkpoints."""
    _zf_views.render_probes(ctx.subject, ctx.infos)


VIEWS: list[View] = [
    View("Filters", "flt", filters_view),
    View("Feature maps", "fm", maps_view),
    View("Deconvnet", "dc", deconv_view),
    View("Top-9", "top9", top9_view),
    View("Occlusion", "occ", occlusion_view),
    View("Attribution", "attr", attribution_view),
    View("Across training", "trn", training_view),
    View("Invariance", "inv", invariance_view),
    View("Layer probes", "prb", probes_view),
]
