"""Visualize: a checkpoint (or a random init) + an image -> Zeiler & Fergus figures. Logic lives in cnnviz.viz;
the views are in app_pages/visualize_views.py (one function each, listed in ``VIEWS``); only the open one runs."""

import streamlit as st

from app_pages._shared import load_checkpoint_cached, show_error, val_split_cached
from app_pages.visualize_views import VIEWS, Context
from cnnviz import viz
from cnnviz.catalog import list_checkpoints, most_accurate
from cnnviz.images import ALLOWED_EXTENSIONS, ImageError, open_image
from cnnviz.models import list_models
from cnnviz.viz import render, session

st.title("Visualize")
st.caption("Zeiler & Fergus, *Visualizing and Understanding Convolutional Networks* (ECCV 2014), on your model.")


@st.cache_resource(show_spinner="Building a random model…", max_entries=4)
def _random(arch: str) -> session.Subject:
    return session.random_subject(arch)


infos = {i.label: i for i in list_checkpoints()}
options = list(infos) + [f"random init: {a}" for a in list_models()]
best = most_accurate(infos.values())
left, right = st.columns(2)
choice = left.selectbox("Model", options, index=options.index(best.label) if best else 0,
                        help="A checkpoint (default: the most accurate by its recorded val top-1), or an untrained "
                             "network for comparison.")
try:
    if choice in infos:
        ckpt = load_checkpoint_cached(infos[choice].path)
        subject = session.Subject(ckpt.model, ckpt.meta, infos[choice].name, viz.top9.checkpoint_fingerprint(ckpt.path))
    else:
        subject = _random(choice.removeprefix("random init: "))
except (ValueError, OSError) as e:
    show_error(f"This model cannot be loaded: {e}", e)
    st.stop()
if subject.note:
    st.warning(f"Not a trained model: {subject.note}. Read every figure below as what a (nearly) untrained "
               "network does, not as a finding; each caption says so.")

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
layer = left.selectbox("Layer", layers, index=layers.index(session.default_layer(subject)),
                       help="Default: the deepest layer whose maps are at least 8x8.")
right.image(render.upscale(seen, max(128, seen.shape[0])), caption=f"What the network saw ({seen.shape[0]}x{seen.shape[1]}, "
            "after its own preprocessing)")

ctx = Context(subject, x, seen, layer, layers, label, split, infos.get(choice), infos, load_checkpoint_cached, _random,
              val_index=int(idx) if upload is None and split is not None else None)
# Lazy tabs: only the open view runs (each one computes its own figures); a tab switch reruns the page.
for tab, view in zip(st.tabs([v.name for v in VIEWS], key="viz_view", on_change="rerun"), VIEWS, strict=True):
    if tab.open:
        with tab:
            try:
                view.run(ctx)
            except (ValueError, KeyError, RuntimeError, OSError) as e:
                show_error(f"{e.args[0] if isinstance(e, KeyError) and e.args else e}", e)
