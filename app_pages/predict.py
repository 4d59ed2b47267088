"""Predict: images (upload, camera or validation set) -> top-5 of each chosen checkpoint, side by side."""

import numpy as np
import streamlit as st
from PIL import Image

from app_pages._shared import load_checkpoint_cached, md_escape, show_error, val_split_cached
from cnnviz.catalog import list_checkpoints
from cnnviz.checkpoint import CheckpointError
from cnnviz.images import ALLOWED_EXTENSIONS, ImageError, open_image, safe_display_name
from cnnviz.predict import known_classes, predict_across, results_to_csv
from cnnviz.views.compare import topk_figure

st.title("Predict")
st.caption("What do trained networks think an image shows? Each checkpoint sees the image exactly as it was "
           "trained: shorter side resized to its input size, centre crop, its own normalisation.")

infos = list_checkpoints()
if not infos:
    st.info("No checkpoints yet. Train one on the Training page, or put starter checkpoints in "
            "`checkpoints/starter/` (see the README).")
    st.stop()
by_name = {i.name: i for i in infos}
starters = [n for n, i in by_name.items() if i.kind == "starter"]
default = starters[:4] if len(starters) > 1 else list(by_name)[:2]  # the shipped starters, else the first two
chosen = st.multiselect("Checkpoints", list(by_name), default=default,
                        format_func=lambda n: by_name[n].label,
                        help="Several checkpoints are shown side by side. Listed as on every page: starters "
                             "first, then runs newest first.")
groups = known_classes([(n, by_name[n].meta) for n in chosen])
for group in groups:  # a bordered note, always shown: what a top-5 can and cannot mean
    st.container(border=True).markdown(f":material/category: **What these models know.** "
                                       f"{md_escape(group.sentence())}")
if groups:
    with st.expander("Search the classes these models know"):
        query = st.text_input("Class name or id", key="predict_class_query", placeholder="e.g. cat, bus, person")
        for group in groups:
            hits = group.search(query)
            st.caption(f"{len(hits)} of {len(group.wnids)} classes ({md_escape(group.dataset.name)})"
                       + (f" match '{md_escape(query)}'" if query.strip() else ""))
            if hits:
                st.dataframe(hits, hide_index=True, height=min(400, 38 + 35 * len(hits)))
            else:
                st.warning(f"No class matches '{md_escape(query)}': these models cannot name it. An image of it "
                           "gets the closest class they know, often with a confident-looking probability.")
source = st.radio("Images from", ["Upload", "Camera", "Validation set"], horizontal=True)

images, true_labels = [], {}
if source == "Upload":
    files = st.file_uploader("Images (JPEG, PNG, WebP, BMP, GIF)", type=list(ALLOWED_EXTENSIONS),
                             accept_multiple_files=True)
    for f in files or []:
        name = safe_display_name(f.name)
        try:
            images.append((name, open_image(f.getvalue())))
        except ImageError as e:
            st.error(f"{md_escape(name)}: {md_escape(e)}")
elif source == "Camera":
    shot = st.camera_input("Take a photo")
    if shot is not None:
        try:
            images.append(("camera", open_image(shot.getvalue())))
        except ImageError as e:
            st.error(f"camera: {md_escape(e)}")
else:
    split = val_split_cached("No Tiny ImageNet dataset found: prepare it on the Training page (or `python -m "
                             "cnnviz data prepare`), or upload images instead.")
    if split is not None:
        c1, c2 = st.columns(2)
        count = c1.slider("How many validation images", 1, 16, 4)
        seed = c2.number_input("Random seed", 0, 10**6, 0)
        for i in np.random.default_rng(int(seed)).choice(len(split.labels), count, replace=False):
            name = f"val #{int(i)}"
            images.append((name, Image.fromarray(np.asarray(split.images[i]))))
            true_labels[name] = (split.wnids[int(split.labels[i])], split.class_names[int(split.labels[i])])

if not chosen:
    st.info("Choose at least one checkpoint.")
    st.stop()
models = []
for name in chosen:
    info = by_name[name]
    try:
        ckpt = load_checkpoint_cached(info.path)
        models.append((info.name, ckpt.model, ckpt.meta))
    except (CheckpointError, OSError) as e:
        show_error(f"{info.name} cannot be used: {e}", e)
if not images or not models:
    if not images:
        st.info("Add one or more images to see predictions.")
    st.stop()

MAX_SHOWN = 12  # charts for the first images; the CSV holds every result
items = predict_across(models, images, k=5)
if len(items) > MAX_SHOWN:
    st.info(f"Showing the first {MAX_SHOWN} of {len(items)} images; the CSV below has the results for all.")
all_results = [r for item in items[MAX_SHOWN:] for r in item.results]
for item in items[:MAX_SHOWN]:
    st.subheader(md_escape(item.image), anchor=False)
    truth = true_labels.get(item.image, (None, None))[0]
    if truth is not None:
        st.caption(f"true class: **{md_escape(true_labels[item.image][1])}**. Bars are coloured by correctness "
                   "against it (legend under each chart).")
    for warning in item.warnings:
        st.warning(md_escape(warning), icon=":material/photo_size_select_small:")
    if len(item.results) > 1:
        (st.success if item.agreement.unanimous else st.warning)(md_escape(item.agreement.summary))
    cols = st.columns(max(1, len(item.results)))
    for col, r in zip(cols, item.results, strict=False):
        with col:
            st.markdown(f"**{md_escape(r.checkpoint)}** · {r.ms:.1f} ms")
            view = r.extra.get("view")
            if view is not None:
                st.image(view, width=128, caption=f"as the network sees it ({view.width}×{view.height})")
            agrees = None if truth is not None else item.agreement.agrees_with_majority(r.checkpoint)
            st.plotly_chart(topk_figure(r, agrees, truth=truth), key=f"bars-{item.image}-{r.checkpoint}",
                            config={"displayModeBar": False})
        all_results.append(r)
    for name, message in item.errors.items():
        st.error(f"{md_escape(name)} cannot predict this image: {md_escape(message)}")

if all_results:
    st.download_button("Download results (CSV)", lambda: results_to_csv(all_results), "predictions.csv", "text/csv")
