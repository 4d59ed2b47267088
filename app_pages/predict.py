"""Predict: images (upload, camera or validation set) -> top-5 of each chosen checkpoint, side by side.
"Look inside" opens Visualize on one model and image; an upload stays selected on Visualize (``_images.py``)."""

import streamlit as st

from app_pages import _images
from app_pages._imagenet import fetch_panel
from app_pages._shared import load_checkpoint_cached, md_escape, show_error, val_split_cached
from cnnviz.catalog import list_checkpoints, predict_defaults
from cnnviz.checkpoint import CheckpointError
from cnnviz.images import ALLOWED_EXTENSIONS, ImageError, open_image, safe_display_name
from cnnviz.predict import known_classes, predict_across, results_to_csv
from cnnviz.views.predict import topk_figure, validation_images

st.title("Predict")
st.caption("What do trained networks think an image shows? Each checkpoint sees the image exactly as it was "
           "trained: shorter side resized to its input size (ImageNet networks: to 256, or as their weights say), "
           "centre crop (224x224 for ImageNet networks), its own normalisation.")

fetch_panel()  # torchvision's ImageNet weights: which are here, download one (cnnviz.imagenet)
infos = list_checkpoints()
if not infos:
    st.info("No checkpoints yet. Train one on the Training page, or put starter checkpoints in "
            "`checkpoints/starter/` (see the README).")
    st.stop()
by_name = {i.name: i for i in infos}
chosen = st.multiselect("Checkpoints", list(by_name), default=predict_defaults(infos),
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

images, true_labels, origin = [], {}, {}  # origin: what "Look inside" carries, (file name, bytes) or a val index
if source in ("Upload", "Camera"):
    if source == "Upload":
        files = st.file_uploader("Images (JPEG, PNG, WebP, BMP, GIF)", type=list(ALLOWED_EXTENSIONS),
                                 accept_multiple_files=True, key="predict_upload", on_change=_images.remember,
                                 args=("predict_upload",))
        given = [(f.name, f.getvalue()) for f in files or []] or _images.uploads()
        if given and not files:
            st.caption(f"Your last upload (here or on Visualize): {md_escape(', '.join(n for n, _ in given))}. "
                       "Upload other images to replace it.")
    else:
        shot = st.camera_input("Take a photo")
        given = [("camera", shot.getvalue())] if shot is not None else []
    for raw_name, data in given:
        name = safe_display_name(raw_name) if source == "Upload" else raw_name
        try:
            images.append((name, open_image(data)))
            origin[name] = (raw_name, data)
        except ImageError as e:
            st.error(f"{md_escape(name)}: {md_escape(e)}")
else:
    split = val_split_cached("No Tiny ImageNet dataset found: prepare it on the Training page (or `python -m "
                             "cnnviz data prepare`), or upload images instead.")
    if split is not None:
        c1, c2 = st.columns(2)
        count = c1.slider("How many validation images", 1, 16, 4)
        seed = c2.number_input("Random seed", 0, 10**6, 0)
        for name, img, truth, index in validation_images(split, count, int(seed)):
            images.append((name, img))
            true_labels[name], origin[name] = truth, index

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
            # the time goes under the picture: "name · 79.4 ms" wrapped in some columns only, out of line
            view = r.extra.get("view")
            st.markdown(f"**{md_escape(r.checkpoint)}**" + ("" if view is not None else f" · {r.ms:.1f} ms"))
            if view is not None:
                st.image(view, width=128, caption=f"as the network sees it ({view.width}×{view.height}), {r.ms:.1f} ms")
            agrees = None if truth is not None else item.agreement.agrees_with_majority(r.checkpoint)
            st.plotly_chart(topk_figure(r, agrees, truth=truth), key=f"bars-{item.image}-{r.checkpoint}",
                            config={"displayModeBar": False})
            if st.button("Look inside", key=f"look-{item.image}-{r.checkpoint}", icon=":material/visibility:",
                         help="Open Visualize on this model and this image"):
                where = origin[item.image]
                _images.look_inside(by_name[r.checkpoint].label, *((where, None) if isinstance(where, tuple)
                                                                   else (None, where)))
        all_results.append(r)
    for name, message in item.errors.items():
        st.error(f"{md_escape(name)} cannot predict this image: {md_escape(message)}")

if all_results:
    st.download_button("Download results (CSV)", lambda: results_to_csv(all_results), "predictions.csv", "text/csv")
