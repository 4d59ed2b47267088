"""Visualize: a checkpoint (or a random init) + an image -> Zeiler & Fergus figures. Logic lives in cnnviz.viz."""

import time

import numpy as np
import streamlit as st

from app_pages._shared import load_checkpoint_cached, show_error, val_split_cached
from cnnviz import viz
from cnnviz.catalog import list_checkpoints
from cnnviz.images import ALLOWED_EXTENSIONS, ImageError, open_image
from cnnviz.models import list_models
from cnnviz.viz import render, session
from cnnviz.viz.occlusion import slider_ranges
from cnnviz.viz.scan_cost import progress_text, scan_note

st.title("Visualize")
st.caption("Zeiler & Fergus, *Visualizing and Understanding Convolutional Networks* (ECCV 2014), on your model.")


@st.cache_resource(show_spinner="Building a random model…", max_entries=4)
def _random(arch: str) -> session.Subject:
    return session.random_subject(arch)


def downloads(name: str, png, array=None, csv: str | None = None) -> None:
    cols = st.columns(3)
    cols[0].download_button("PNG", render.png_bytes(png), f"{name}.png", "image/png", key=f"png-{name}")
    if array is not None:
        cols[1].download_button(".npy", render.npy_bytes(array), f"{name}.npy", key=f"npy-{name}")
    if csv is not None:
        cols[2].download_button("CSV", csv, f"{name}.csv", "text/csv", key=f"csv-{name}")


infos = {i.label: i for i in list_checkpoints()}
options = list(infos) + [f"random init: {a}" for a in list_models()]
left, right = st.columns(2)
choice = left.selectbox("Model", options, help="A checkpoint, or an untrained network for comparison.")
try:
    if choice in infos:
        ckpt = load_checkpoint_cached(infos[choice].path)
        subject = session.Subject(ckpt.model, ckpt.meta, infos[choice].name, viz.top9.checkpoint_fingerprint(ckpt.path))
    else:
        subject = _random(choice.removeprefix("random init: "))
except (ValueError, OSError) as e:
    show_error(f"This model cannot be loaded: {e}", e)
    st.stop()

upload = right.file_uploader("Image", type=list(ALLOWED_EXTENSIONS), help="Empty: a validation or demo image.")
split = val_split_cached()
try:
    if upload is not None:
        image, label = open_image(upload.getvalue()), None
    elif split is not None:
        idx = right.number_input("Validation image", 0, len(split.images) - 1, 0)
        truth = int(split.labels[int(idx)])
        image, label = split.images[int(idx)], session.class_index(subject.meta, split.wnids[truth], truth)
    else:
        image, label = session.demo_image(), None
    x, seen = session.prepare(image, subject.meta)
except (ImageError, ValueError) as e:
    show_error(f"This image cannot be used: {e}", e)
    st.stop()
layers = session.layer_choices(subject)
layer = left.selectbox("Layer", layers, index=layers.index(session.default_layer(subject)))
right.image(render.upscale(seen, max(128, seen.shape[0])), caption=f"What the network saw ({seen.shape[0]}x{seen.shape[1]}, "
            "after its own preprocessing)")


def tab_filters():
    convs = viz.conv_layers(subject.model)
    conv, norm = st.selectbox("Conv layer", convs), st.radio("Scale", ["per_filter", "global"], horizontal=True)
    fig = viz.filter_grid(subject.model, conv, norm) if conv == convs[0] else \
        viz.filter_channels(subject.model, conv, normalise=norm)
    st.image(fig.image, caption=fig.caption)
    stats = viz.filter_stats(subject.model, conv)
    st.write(f"{int(stats.dead.sum())} dead and {int(stats.near_constant.sum())} near-constant filters")
    st.dataframe(stats, hide_index=True, height=200)
    downloads("filters", fig.image, viz.filters.conv_weight(subject.model, conv), stats.to_csv(index=False))
    if st.toggle("AlexNet vs ZFNet conv1 (ZF Fig. 6)"):
        pair = {a: next((load_checkpoint_cached(i.path).model for i in infos.values() if i.arch == a), None)
                or _random(a).model for a in ("alexnet", "zfnet")}
        for col, (a, f) in zip(st.columns(2), viz.compare_first_layers(pair).items(), strict=True):
            col.image(f.image, caption=f"{a}: {f.caption}")


def tab_maps():
    channel = st.number_input("Feature map (empty = strongest)", 0, None, None, key="fm_ch")
    key = f"fm_pick_{layer}_{channel}"  # a new chart (and no stale click) for each layer and map
    picked = st.session_state.get(key)  # the click on this chart (feature_figure clamps it to the map)
    clicked = viz.maps.unit_from_selection(picked) if picked else None
    fm, grid, detail, channel, unit, box = session.feature_figure(subject, x, seen, layer, channel, clicked)
    left_col, right_col = st.columns(2)
    left_col.plotly_chart(viz.maps.unit_picker(fm.maps[channel], unit, f"{layer}[{channel}]: click a unit"),
                          on_select="rerun", selection_mode="points", key=key)
    # (no "receptive field" in this caption: the other tabs' figures are found by that phrase)
    right_col.image(detail, caption=f"unit {unit} ({'clicked' if clicked else 'strongest'}) and the input "
                    f"region {box} it sees")
    st.image(grid, caption=f"{layer}: the strongest {min(64, len(fm.order))} of {len(fm.order)} maps, strongest first")
    downloads("feature_maps", grid, fm.maps, fm.table().to_csv(index=False))


def tab_deconv():
    channel = st.number_input("Feature map (empty = the most active)", 0, None, None, key="dc_ch")
    proj, fig, box = session.deconv_figure(subject, x, seen, layer, channel)
    st.image(fig, caption=f"{layer}[{proj.channel}] unit {proj.position} = {proj.value:.3g}; receptive field {box} "
             f"outlined; {proj.method} deconvnet (LRN passes the signal unchanged, as in ZF)")
    downloads("deconvnet", fig, proj.image)


def tab_top9():
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
        st.image(fig, caption="deconvnet projections (left) and receptive-field patches (right), ZF Fig. 2")
        downloads("top9", fig, None, hit[2].to_csv())


def tab_occlusion():
    c1, c2, c3 = st.columns(3)
    grid = slider_ranges(subject.input_size[1])  # 8/4 at 64x64, 28/14 at 224x224
    size, stride = c1.slider("Square", *grid["square"]), c2.slider("Stride", *grid["stride"])
    target = c3.number_input("Class (empty = true/predicted)", 0, int(subject.meta["num_classes"]) - 1, label)
    if st.button("Run occlusion"):
        channel = viz.top_channels(subject.model, x, layer, 1)[0][0]
        res = viz.occlusion(subject.model, x, target, size=size, stride=stride, layer=layer, channel=channel)
        fig = session.occlusion_figure(seen, res, subject)
        st.image(fig, caption=f"grey square {size}x{size}, stride {stride}; unoccluded p = {res.base_prob:.3f}")
        downloads("occlusion", fig, res.prob)


def tab_attribution():
    st.caption("Sanity check (Adebayo et al. 2018): guided backprop and deconvnet barely change when the weights "
               "are randomised - they mostly reconstruct the image, not what the model learnt.")
    if st.button("Compute attributions"):
        a = viz.attribute(subject.model, x, label)
        fig = session.attribution_figure(seen, a)
        st.image(fig, caption=f"explaining {subject.class_name(a.target)}")
        downloads("attribution", fig, np.stack(list(a.maps.values())))
    if st.button("Sanity check: randomise the weights"):
        sc = viz.sanity_check(subject.model, x, label)
        fig = session.attribution_figure(seen, sc.randomized)
        st.image(fig, caption="the same methods on the randomised model; Spearman rank correlation with the original:")
        st.dataframe(sc.scores, hide_index=True)
        downloads("sanity", fig, None, sc.scores.to_csv(index=False))


def tab_training():
    info = infos.get(choice)
    snaps = viz.list_snapshots(info.path.parent) if info is not None and info.kind == "run" else []
    if not snaps:
        return st.info("This model has no per-epoch snapshots (train with 'keep snapshots' to see features evolve).")
    epoch = st.select_slider("Epoch", [s.epoch for s in snaps])
    ck = load_checkpoint_cached(next(s.path for s in snaps if s.epoch == epoch))
    snap = session.Subject(ck.model, ck.meta, f"epoch {epoch}", None)
    filters, (proj, fig, _) = viz.filter_grid(snap.model).image, session.deconv_figure(snap, x, seen, layer)
    st.image(filters, caption=f"first-layer filters after epoch {epoch}")
    downloads(f"filters_epoch{epoch}", filters)
    st.image(fig, caption=f"strongest projection of {layer}, epoch {epoch}")
    downloads(f"deconvnet_epoch{epoch}", fig, proj.image)


names = ["Filters", "Feature maps", "Deconvnet", "Top-9", "Occlusion", "Attribution", "Across training"]
for tab, fn in zip(st.tabs(names), [tab_filters, tab_maps, tab_deconv, tab_top9, tab_occlusion, tab_attribution,
                                    tab_training], strict=True):
    with tab:
        try:
            fn()
        except (ValueError, KeyError, RuntimeError, OSError) as e:
            show_error(f"{e.args[0] if isinstance(e, KeyError) and e.args else e}", e)
