"""Tiny ImageNet prepared from the Training page, for a user who started the dashboard on a fresh clone:
the official download or a zip (or extracted folder) on this machine, as a background job
(cnnviz.data.job) that this panel starts, follows with a progress bar and can stop. The job outlives the page:
a user may leave it, touch any widget or close the tab, and every visitor sees the same progress."""

from pathlib import Path

import streamlit as st

from app_pages._shared import md_escape, show_error
from cnnviz.data import DatasetError
from cnnviz.data import job as data_job
from cnnviz.views import training as tv

SOURCES = {"download": "the official download (about 250 MB)", "local": "a zip or folder on this machine"}


def prepare_panel(choices: list, arch: str) -> None:
    """Offer to prepare Tiny ImageNet when ``choices`` (the Training page's datasets) do not include it, and
    follow a preparation that runs; when one that this session followed has finished, the page opens on the
    data, with its form defaults. Draw it before the Dataset selectbox: it sets that widget's value."""
    ready = next((c for c in choices if not c.synthetic), None)  # (never offered while a preparation runs)
    if ready is not None:
        if st.session_state.pop("prep_watching", False):  # just finished: open the form on it
            st.session_state.update(tv.form_defaults(arch, synthetic=False), train_data=ready)
        return
    job = data_job.read_job()
    title = ("Tiny ImageNet is being prepared" if job is not None and job.active
             else "Tiny ImageNet is not prepared on this machine: prepare it here")
    with st.expander(title, expanded=job is not None):
        st.caption(tv.PREPARE_HELP)
        if job is not None and job.active:
            st.session_state["prep_watching"] = True
            _follow()
            return
        if job is not None:  # how the last one ended (perhaps in another tab, or before the server restarted)
            if job.state == "done" and job.dataset_root and Path(job.dataset_root).is_dir():  # used in place
                st.warning(f"Prepared in {md_escape(job.dataset_root)}, which is not the data folder the pages "
                           "read: point $CNNVIZ_DATA at it.")
            elif job.state == "stopped":
                st.warning(md_escape(job.message))
            elif job.state == "failed":
                st.error(f"Tiny ImageNet was not prepared: {md_escape(job.message)}")
        source = st.radio("Source", list(SOURCES), format_func=SOURCES.get, horizontal=True, key="prep_source")
        path = st.text_input("Path of tiny-imagenet-200.zip (or of the extracted folder)", key="prep_path",
                             placeholder="/data/tiny-imagenet-200.zip") if source == "local" else ""
        if not st.button("Prepare Tiny ImageNet", key="prep_go"):
            return
        if source == "local" and not path.strip():
            st.warning("Give the path of the zip (or of the extracted folder) first.")
            return
        try:
            data_job.start("download" if source == "download" else path.strip())
        except (DatasetError, OSError) as e:
            show_error(f"Tiny ImageNet was not prepared: {e}", e)
            return
    st.session_state["prep_watching"] = True
    st.rerun()


@st.fragment(run_every=1.0)
def _follow() -> None:
    """The running preparation's progress, read from its status file every second; when it ends, the whole
    page runs again (so the Dataset box lists Tiny ImageNet, or the panel says what went wrong)."""
    job = data_job.preparing()
    if job is None:
        st.rerun()
    frac, text = tv.prepare_progress(job)
    st.progress(frac, text=text)
    if st.button("Stop", key="prep_stop", help="Stops the preparation; preparing again later continues it."):
        data_job.stop()
        st.rerun()
