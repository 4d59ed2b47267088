"""Visualize: a checkpoint (or a random init) + an image -> Zeiler & Fergus figures. Figures and captions live in
cnnviz.views.visualize; the views are in app_pages/visualize_views.py (one function each, listed in ``VIEWS``);
only the open one runs. An image uploaded here or on Predict stays selected on both pages (``_images.py``)."""

import streamlit as st

from app_pages import _images
from app_pages._shared import load_checkpoint_cached, md_escape, show_error, val_split_cached
from app_pages.visualize_views import VIEWS
from cnnviz import viz
from cnnviz.catalog import list_checkpoints, visualize_default
from cnnviz.images import ALLOWED_EXTENSIONS, ImageError, open_image, safe_display_name
from cnnviz.models import list_models
from cnnviz.views.visualize import Context
from cnnviz.viz import render, session

st.title("Visualize")
st.caption("Zeiler & Fergus, *Visualizing and Understanding Convolutional Networks* (ECCV 2014), on your model.")


@st.cache_resource(show_spinner="Building a random model…", max_entries=4)
def _random(arch: str) -> session.Subject:
    return session.random_subject(arch)


infos = {i.label: i for i in list_checkpoints()}
options = list(infos) + [f"random init: {a}" for a in list_models()]
best = visualize_default(infos.values())
if st.session_state.get(_images.VIZ_MODEL) not in options:  # first visit, or a model that is gone
    st.session_state[_images.VIZ_MODEL] = best.label if best else options[0]
left, right = st.columns(2)
choice = left.selectbox("Model", options, key=_images.VIZ_MODEL,
                        help="A checkpoint (default: the ZFNet starter, the network the paper drew, else the most "
                             "accurate by its recorded val top-1), or an untrained "
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

upload = right.file_uploader("Image", type=list(ALLOWED_EXTENSIONS), help="Empty: a validation or demo image.",
                             key="viz_upload", on_change=_images.remember, args=("viz_upload",))
carried = _images.shown() if upload is None else None
if carried is not None:
    right.caption(f"Image: **{md_escape(safe_display_name(carried[0]))}** (your last upload, here or on Predict)")
    right.button("Use a validation or demo image instead", on_click=_images.show_validation_images)
split = val_split_cached()
idx, prepared = None, None
if upload is not None or carried is not None:
    try:
        prepared, label = session.prepare(open_image(upload.getvalue() if upload is not None else carried[1]),
                                          subject.meta), None
    except (ImageError, ValueError) as e:
        # The page stays usable on its validation (or demo) image below; the file is named, nothing else is lost.
        show_error(f"This image cannot be used: {e}. The figures below use a "
                   f"{'validation' if split is not None else 'demo'} image until you remove it or upload another.", e)
if prepared is None:
    if split is not None:
        idx = int(right.number_input("Validation image", 0, len(split.images) - 1, key=_images.VIZ_VAL_INDEX))
        truth = int(split.labels[idx])
        image, label = split.images[idx], session.class_index(subject.meta, split.wnids[truth], truth)
    else:
        image, label = session.demo_image(), None
    try:
        prepared = session.prepare(image, subject.meta)
    except (ImageError, ValueError) as e:
        show_error(f"This image cannot be used: {e}", e)
        st.stop()
x, seen = prepared
layers = session.layer_choices(subject)
layer = left.selectbox("Layer", layers, index=layers.index(session.default_layer(subject)),
                       help="Default: the deepest layer whose maps are at least 8x8.")
shown = f": validation image {idx}, true class {split.class_names[truth]}" if idx is not None else ""
# A fixed width: Streamlit widens an image to a caption longer than it (the true class made it fill the column).
right.image(render.upscale(seen, max(128, seen.shape[0])), width=max(320, seen.shape[1]),
            caption=f"What the network saw ({seen.shape[0]}x{seen.shape[1]}, after its own preprocessing){md_escape(shown)}")

ctx = Context(subject, x, seen, layer, layers, label, split, infos.get(choice), infos, load_checkpoint_cached, _random,
              val_index=idx)
# Lazy tabs: only the open view runs (each one computes its own figures); a tab switch reruns the page.
for tab, view in zip(st.tabs([v.name for v in VIEWS], key="viz_view", on_change="rerun"), VIEWS, strict=True):
    if tab.open:
        with tab:
            try:
                view.run(ctx)
            except (ValueError, KeyError, RuntimeError, OSError) as e:
                show_error(str(e), e)  # UnknownName reads as its message
