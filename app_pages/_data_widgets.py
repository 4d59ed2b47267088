"""Tiny ImageNet prepared from the Training page, for a user who started the dashboard on a fresh clone:
the official download or a zip (or extracted folder) on this machine, through cnnviz.data.prepare with a
progress bar. It runs in the page's own script: leaving the page stops it, and pressing the button again
resumes (the download continues where it stopped; finished caches are kept)."""

import streamlit as st

from app_pages._shared import show_error
from cnnviz.data import DatasetError, prepare
from cnnviz.views import training as tv

SOURCES = {"download": "the official download (about 250 MB)", "local": "a zip or folder on this machine"}


def prepare_panel(choices: list, arch: str) -> None:
    """Offer to prepare Tiny ImageNet when ``choices`` (the Training page's datasets) do not include it; on
    success the page opens on it, with its form defaults. Draw it before the Dataset selectbox: it sets that
    widget's value."""
    if any(not c.synthetic for c in choices):
        return
    with st.expander("Tiny ImageNet is not prepared on this machine: prepare it here"):
        st.caption(tv.PREPARE_HELP)
        source = st.radio("Source", list(SOURCES), format_func=SOURCES.get, horizontal=True, key="prep_source")
        path = st.text_input("Path of tiny-imagenet-200.zip (or of the extracted folder)", key="prep_path",
                             placeholder="/data/tiny-imagenet-200.zip") if source == "local" else ""
        if not st.button("Prepare Tiny ImageNet", key="prep_go"):
            return
        if source == "local" and not path.strip():
            st.warning("Give the path of the zip (or of the extracted folder) first.")
            return
        bar, shown = st.progress(0.0, text="starting"), tv.PrepareProgress()

        def report(stage: str, done: int, total: int) -> None:
            if (update := shown(stage, done, total)) is not None:
                bar.progress(*update)

        try:
            prepare("download" if source == "download" else path.strip(), progress=report)
        except (DatasetError, OSError, ValueError) as e:
            show_error(f"Tiny ImageNet was not prepared: {e}", e)
            return
    ready = next((c for c in tv.dataset_choices() if not c.synthetic), None)
    if ready is None:  # prepared somewhere the pages do not look (a folder used in place elsewhere)
        st.warning("Prepared, but not in the data folder the pages read: point $CNNVIZ_DATA at it.")
        return
    st.session_state.update(tv.form_defaults(arch, synthetic=False), train_data=ready)
    st.rerun()
