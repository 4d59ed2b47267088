"""Visualize's two Zeiler & Fergus analyses beyond pictures: invariance (Fig. 5) and layer probes (Table 6).

Listed in ``visualize_views.VIEWS``; each is widgets, one cnnviz call and a plotly figure.
"""

from __future__ import annotations

import time

import streamlit as st

from app_pages._shared import load_checkpoint_cached, val_split_cached
from cnnviz.data import find_dataset, load_split
from cnnviz.summary import percent
from cnnviz.views import visualize as vv
from cnnviz.views.visualize import Context
from cnnviz.viz import depth, invariance, probes, session, zf_figures
from cnnviz.viz.top9 import checkpoint_fingerprint, default_cache_dir

# The probes' accuracies as percentages, as the chart above the table writes them (they were bare fractions):
# two decimals through pandas' Styler (Streamlit's "percent" format drops trailing zeros, "10.7%" over "26.05%").
PROBE_FORMATS = {"val_top1": percent, "train_top1": percent}
PROBE_COLUMNS = {
    "val_top1": st.column_config.NumberColumn("val top-1", help="the probe's accuracy on the held-out val images"),
    "train_top1": st.column_config.NumberColumn("train top-1", help="the probe's accuracy on the images it was "
                                                "fitted on"),
    "dim": st.column_config.NumberColumn(help="features the probe reads: the block's channels after average pooling"),
}


def invariance_view(ctx: Context) -> None:
    """ZF Fig. 5 for the page's image or, when it is a val image, for up to eight val images from it on."""
    subject, split, first = ctx.subject, ctx.split if ctx.val_index is not None else None, ctx.val_index
    c1, c2, c3 = st.columns([2, 3, 2])
    transform = c1.radio("Transform", invariance.TRANSFORMS, horizontal=True, key="inv_tf")
    default = ", ".join(f"{v:g}" for v in invariance.default_values(transform, subject.input_size[1]))
    text = c2.text_input(f"Values ({vv.UNITS[transform]})", default, key=f"inv_values_{transform}")
    axis = c3.selectbox("Direction", ["both", "x", "y"], key="inv_axis", disabled=transform != "translate",
                        help="translate: diagonal (right and down), right only, or down only")
    blocks = depth.probe_layers(subject.model, subject.input_size)
    layers = st.multiselect("Layers", blocks, depth.invariance_layers(subject.model, subject.input_size),
                            key=f"inv_layers_{subject.name}",  # each model starts from its own default
                            help="each hidden block's output; default: the first conv block and the last hidden "
                            "layer (ZF's layers 1 and 7)")
    c1, c2 = st.columns(2)
    count = c1.number_input("Val images (from the chosen one)", 1, 8, 3, key="inv_count") \
        if split is not None and first is not None else 1
    relative = c2.toggle("Distance relative to the feature vector's norm", True, key="inv_rel",
                         help="off: the raw Euclidean distance, as in ZF's figure (each layer on its own scale)")
    if not layers:
        return st.info("Choose at least one layer.")
    xs, targets, names = vv.invariance_inputs(subject, ctx.x, ctx.label, split, first, int(count))
    key = (subject.name, transform, text, axis, tuple(layers), tuple(names))
    if st.button("Transform and measure", key="inv_run"):
        st.session_state["invariance"] = (key, invariance.invariance(subject.model, xs, transform,
                                                                     vv.parse_values(text), layers, targets, axis))
    hit = st.session_state.get("invariance")
    if not hit or hit[0] != key:
        return
    inv = hit[1]
    mean, std = session.mean_std(subject.meta)
    st.image(zf_figures.frames_image(xs[0], transform, inv.values, mean, std, axis),
             caption=f"what the network saw, {inv.axis_title}; outside the picture: the mean colour")
    st.plotly_chart(zf_figures.invariance_figure(inv, names, relative), key="inv_chart")
    st.caption(vv.invariance_caption(targets))
    st.download_button("Numbers (.npz)", inv.npz_bytes(), "invariance.npz", key="inv_npz")


@st.cache_resource(show_spinner="Reading the training set…", max_entries=1)
def _train_split(root: str):
    return load_split(root, "train")


def _subject_for(name: str, infos: dict, current: session.Subject) -> session.Subject:
    if name == current.name:
        return current
    info = next(i for i in infos.values() if i.name == name)
    ck = load_checkpoint_cached(info.path)
    return session.Subject(ck.model, ck.meta, info.name, checkpoint_fingerprint(ck.path))


def probes_view(ctx: Context) -> None:
    """A linear probe on every hidden block of the page's model (and of other checkpoints, on one chart)."""
    subject, infos = ctx.subject, ctx.infos
    st.caption(vv.probes_intro())
    val = val_split_cached()
    root = find_dataset()
    if val is None or root is None:
        return st.info("Layer probes need Tiny ImageNet (train and val): prepare it on the Training page.")
    others = [i.name for i in infos.values() if i.name != subject.name]
    chosen = st.multiselect("Checkpoints on the chart", [subject.name, *others], [subject.name],
                            key=f"pr_models_{subject.name}")
    c1, c2, c3 = st.columns(3)
    d = probes.DEFAULTS
    per_train = c1.number_input("Train images per class", 1, 100, d["train_per_class"], key="pr_train",
                                help="time grows with it: with the defaults each starter took under 45 s on a 2-core CPU")
    per_val = c2.number_input("Val images per class", 1, 50, d["val_per_class"], key="pr_val")
    rel = c3.toggle("Relative depth", False, key="pr_rel", help="x from 0 (first hidden block) to 1 (last), so "
                    "that networks of different depths line up")
    settings = (int(per_train), int(per_val))
    done: dict = st.session_state.setdefault("probes", {})
    if st.button("Run the probes", key="pr_run", disabled=not chosen):
        train = _train_split(str(root))
        bar, start = st.progress(0.0, "starting…"), time.perf_counter()
        for k, name in enumerate(chosen):
            who = _subject_for(name, infos, subject)
            mean, std = session.mean_std(who.meta)

            def progress(f, msg, k=k, name=name):
                bar.progress((k + f) / len(chosen), f"{name}: {msg}")

            done[(name, settings)] = probes.probe(
                who.model, train.images, train.labels, val.images, val.labels, mean=mean, std=std,
                input_size=who.input_size[1], channels=who.input_size[0], name=name, train_per_class=settings[0],
                val_per_class=settings[1], progress=progress, cache_dir=default_cache_dir() if who.cache_key else None,
                model_key=who.cache_key)
        n = len(chosen)
        bar.progress(1.0, f"{n} checkpoint{'s' if n > 1 else ''} in {time.perf_counter() - start:.1f} s (kept on disk)")
    results = [done[(n, settings)] for n in chosen if (n, settings) in done]
    if not results:
        return
    st.plotly_chart(zf_figures.probe_figure(results, rel), key="pr_chart")
    st.caption(vv.probes_note(results))
    table = vv.probes_table(results)
    st.dataframe(table.style.format(PROBE_FORMATS), hide_index=True, height=220, column_config=PROBE_COLUMNS)
    st.download_button("CSV", table.to_csv(index=False), "layer_probes.csv", "text/csv", key="pr_csv")
