"""Compare: runs and starter checkpoints side by side (table, curves, cost, per class, same image, export)."""

import streamlit as st

from app_pages import _images
from app_pages._compare_table import CONFUSED_COLUMNS, per_class_columns, render_table
from app_pages._shared import load_checkpoint_cached, md_escape, show_error, val_split_cached
from cnnviz import compare as cmp
from cnnviz.checkpoint import CheckpointError
from cnnviz.images import ALLOWED_EXTENSIONS, ImageError, open_image, safe_display_name
from cnnviz.views import compare as cf
from cnnviz.views import same_image as si
from cnnviz.views.predict import topk_figure
from cnnviz.zoo.report import recipe_markdown

st.title("Compare")
entries = cmp.list_entries()
if not entries:
    st.info("Nothing to compare yet: train a model on the Training page, or add starter checkpoints to "
            "`checkpoints/starter/`.")
    st.stop()
ids = [e.id for e in entries]
if any(e.kind == "zoo" for e in entries):
    st.caption("Opens on **the zoo**: one model per family trained under one recipe (`zoo/...`; docs/zoo.md).")
    with st.expander("The zoo's recipe, and published numbers for scale"):
        st.markdown(recipe_markdown())
default = cmp.default_selection(entries)
chosen = st.multiselect("Models", ids, default=default,
                        help="Starter checkpoints first, then runs newest first (the same order on every page).")
sel = [e for e in entries if e.id in chosen]
if not sel:
    st.info("Choose one or more models.")
    st.stop()
for e in sel:
    for problem in e.problems:
        st.warning(f"{md_escape(e.id)}: {md_escape(problem)}")
mixed = cf.mixed_classes(sel)
MIXED_NOTE = (f"These models were trained on different classes: {md_escape(mixed or '')}. Their accuracies do not "
              "measure the same task (chance is 1 / classes): read each model against its own dataset.")

table = cmp.compare_table(sel)
render_table(table)
devices_note = cf.devices_note(table.frame)  # None when all the selected models trained on one machine

curves_tab, cost_tab, class_tab, image_tab, export_tab = st.tabs(
    ["Curves", "Accuracy vs cost", "Per class & confusion", "Same image", "Export"])
curves = cmp.curves_frame(sel)
with curves_tab:
    if curves.empty:
        st.info("No per-epoch metrics among the selected models (a starter exported without its run keeps only final numbers).")
    else:
        c1, c2 = st.columns(2)
        metric = c1.selectbox("Metric", [m for m in cmp.CURVE_METRICS if m in set(curves["metric"])],
                              format_func=lambda m: cf.METRIC_LABELS.get(m, m))
        x = c2.radio("x axis", ["epoch", "elapsed_s"], horizontal=True,
                     format_func=lambda v: "by epoch" if v == "epoch" else "by wall-clock time")
        if mixed:
            st.warning(MIXED_NOTE)
        if x == "elapsed_s" and devices_note:
            st.caption(devices_note)
        st.plotly_chart(cf.metric_curves_figure(curves, metric, x), key="curves")
with cost_tab:
    if mixed:
        st.warning(MIXED_NOTE)
    c1, c2 = st.columns(2)
    c1.plotly_chart(cf.bubble_figure(table.frame, "macs"), key="bubble-macs")
    c2.plotly_chart(cf.bubble_figure(table.frame, "params"), key="bubble-params")
    st.caption("Bubble area: training time, the steps alone (or parameters where a model has no recorded time)."
               + (f" {devices_note}" if devices_note else ""))

evals = {}
with class_tab:
    plan = cf.evaluation_plan(sel)
    if plan.refusal:
        st.warning(md_escape(plan.refusal))
    else:
        evals.update(cmp.stored_evaluations(sel))  # zoo results: measured on the whole val split already
        if evals:
            st.caption(f"{', '.join(evals)}: measured on all validation images when they were trained.")
    todo = [e for e in plan.entries if e.id not in evals]
    if plan.missing and todo:
        st.info(plan.missing)
    split = val_split_cached(root=plan.root) if plan.root is not None and todo else None
    if split is not None:
        per_class = st.select_slider("Validation images per class", [5, 10, 25, 50], value=10)
        if st.toggle("Evaluate the selected models (computed once per checkpoint, then cached)"):
            idx = cmp.subset_indices(split.labels, per_class)
            images, labels = split.images[idx], split.labels[idx]
            for e in todo:
                bar = st.progress(0.0, text=f"evaluating {e.id}")
                try:
                    evals[e.id] = cmp.cached_evaluation(e.checkpoint, images, labels, split.wnids, split.class_names,
                                                        model_loader=load_checkpoint_cached, progress=bar.progress)
                except (CheckpointError, ValueError, OSError) as err:
                    show_error(f"{e.id} cannot be evaluated: {err}", err)
                bar.empty()
    if evals:
        pc = cmp.per_class_frame(evals)
        st.plotly_chart(cf.per_class_figure(pc, list(evals)), key="per-class")
        st.dataframe(pc, hide_index=True, column_config=per_class_columns(evals))
        for name, ev in evals.items():
            with st.expander(f"{name}: top-1 {ev.top1:.1%}, top-5 {ev.top5:.1%} on {ev.n:,} images"):
                st.dataframe(cmp.most_confused(ev, 10), hide_index=True, column_config=CONFUSED_COLUMNS)
                st.plotly_chart(cf.confusion_figure(ev), key=f"confusion-{name}")

with image_tab:
    up = st.file_uploader("An image to show every selected model", type=list(ALLOWED_EXTENSIONS), key="cmp_upload",
                          on_change=_images.remember, args=("cmp_upload",), help="Empty: your last upload on "
                          "Predict or Visualize, else a validation image.")
    given = (up.name, up.getvalue()) if up is not None else (_images.uploads() or [None])[-1]
    split = val_split_cached() if given is None else None
    img, caption, truth = None, None, None
    if given is not None:
        try:
            img, caption = open_image(given[1]), safe_display_name(given[0]) + (" (your last upload)" if up is None else "")
        except ImageError as err:
            st.error(f"{md_escape(safe_display_name(given[0]))}: {md_escape(err)}")
    elif split is not None:
        img, caption, truth = si.validation_image(split, st.number_input("Validation image", 0, len(split) - 1,
                                                                          key="cmp_val"))
    else:
        st.info("Upload an image, or prepare Tiny ImageNet on the Training page to pick a validation image.")
    if img is not None:
        st.image(img, width=128, caption=caption)
        depth = st.slider("Feature-map depth (0 = first block, 1 = last)", 0.0, 1.0, 0.5, 0.25,
                          help="Through each model's hidden blocks with maps (AlexNet's conv1 to conv5, ResNet's stem "
                               "and four stages): the same fraction of the way through every network.")
        with_occ = st.checkbox("Occlusion maps (slower)", value=False)
        models = []
        for e in (e for e in sel if e.checkpoint is not None):
            try:
                ck = load_checkpoint_cached(e.checkpoint)
                models.append((e.id, ck.model, ck.meta))
            except (CheckpointError, OSError) as err:
                show_error(f"{e.id} cannot be used: {err}", err)
        views = si.same_image(models, img, depth=depth, occlusion_size=8 if with_occ else None,
                              truth=truth) if models else []
        # rows of at most 4: seven models side by side cut the class names and the percentages off
        cols = [c for i in range(0, len(views), 4) for c in st.columns(min(4, len(views)))][:len(views)]
        for col, v in zip(cols, views, strict=True):
            col.markdown(f"**{md_escape(v.model)}**")
            if v.prediction is not None:
                col.plotly_chart(topk_figure(v.prediction, truth=v.truth), key=f"same-{v.model}")
            if v.maps is not None:
                col.image(v.maps, caption=si.maps_caption(v))
            if v.occlusion is not None:
                col.image(v.occlusion, width=192, caption="occlusion: bright = hiding it lowers the top class")
            if v.error:
                col.error(v.error)

with export_tab:
    st.write("One zip: tables (CSV and Markdown), figures (PNG) and each model's training configuration (JSON).")
    if st.button("Build the export bundle"):
        st.download_button("Download comparison.zip", lambda: cf.export_bundle(sel, evals), "comparison.zip",
                           "application/zip", on_click="ignore")
