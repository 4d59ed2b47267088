"""Visualize's views that explain: the top-9 patches of a unit over the validation set (ZF Fig. 2), occlusion
(ZF Fig. 7) and captum's attributions with Adebayo et al.'s sanity check. Listed in ``visualize_views.VIEWS``."""

from __future__ import annotations

import time

import numpy as np
import streamlit as st

from app_pages._viz_widgets import class_picker, downloads
from cnnviz import viz
from cnnviz.views import visualize as vv
from cnnviz.views.visualize import Context
from cnnviz.viz import session
from cnnviz.viz.attribution import default_cam_layer
from cnnviz.viz.occlusion import slider_ranges
from cnnviz.viz.scan_cost import progress_text, scan_note

SANITY_CAPTION = ("original model (top) and the same methods with every weight re-initialised (bottom); Spearman "
                  "rank correlation of |maps| (Adebayo et al.'s measure), and the same with each map's share in the "
                  "distance to the image border taken out (a partial correlation), which the reading goes by:")


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
        channel = st.number_input("Feature map", 0, hit[2].channels - 1, int(hit[2].values[:, 0].argmax()),
                                  help="Default: the map whose strongest activation over the whole validation set is "
                                       "the largest. (Feature maps and Deconvnet start on the strongest map for "
                                       "the image above, so their default can differ.)")
        top9 = viz.patches(subject.model, split.images, hit[2], channel, mean=mean, std=std,
                           input_size=subject.input_size[1], channels=subject.input_size[0])
        fig = top9.image(cell=96)  # 64x64 images: patches of at most 48 px, drawn 2x so a patch can be read
        st.image(fig, caption=subject.caption(vv.top9_caption(layer, top9)))
        st.dataframe(vv.top9_table(top9, split), hide_index=True)  # each hit's activation, image and class
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
        fig = vv.occlusion_figure(ctx.seen, hit[1], subject)
        st.image(fig, caption=vv.occlusion_caption(subject, hit[1], size, stride))
        downloads("occlusion", fig, hit[1].prob)


def attribution_view(ctx: Context) -> None:
    subject = ctx.subject
    st.caption(vv.SANITY_INTRO)
    left, right = st.columns(2)
    with left:
        target = class_picker(ctx, "attr", "Class to explain")
    cam_default = default_cam_layer(subject.model, subject.input_size, session.layer_shapes(subject))
    cam_layer = right.selectbox("Grad-CAM layer", ctx.layers, index=ctx.layers.index(cam_default),
                                key=f"attr_cam_{cam_default}",
                                help="Default: the last conv stage's output before the final pooling, as Grad-CAM's "
                                     "authors chose (relu5 in AlexNet), unless its map is under 4x4 (then the last "
                                     "layer with 4x4); at a 1x1 layer the CAM is one number.")
    sig = (ctx.signature, target, cam_layer)
    if st.button("Compute attributions"):
        st.session_state["viz_attr"] = (sig, viz.attribute(subject.model, ctx.x, target, cam_layer=cam_layer))
    if st.button(vv.SANITY_BUTTON):
        st.session_state["viz_sanity"] = (sig, viz.sanity_check(subject.model, ctx.x, target, cam_layer=cam_layer))
    hit, check = st.session_state.get("viz_attr"), st.session_state.get("viz_sanity")
    if hit and hit[0] == sig:
        fig = vv.attribution_figure(ctx.seen, hit[1], subject)
        st.image(fig, caption=vv.attribution_caption(subject, hit[1]))
        downloads("attribution", fig, np.stack(list(hit[1].maps.values())))
    if check and check[0] == sig:
        fig = vv.sanity_figure(ctx.seen, check[1], subject)
        st.image(fig, caption=subject.caption(SANITY_CAPTION))
        st.dataframe(check[1].table(), hide_index=True)
        downloads("sanity", fig, None, check[1].scores.to_csv(index=False))
