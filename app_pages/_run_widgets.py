"""Widgets the Training page shares with nothing else, kept here so the page reads top to bottom."""

import streamlit as st

from app_pages._shared import md_escape, show_error
from cnnviz.training.runs import RunInfo, list_runs
from cnnviz.views import training as tv


def act(action, *args, **kw) -> None:
    """Run a button's job action (stop, resume, delete): its refusal as a message, else a fresh page."""
    try:
        action(*args, **kw)
    except (ValueError, RuntimeError, OSError) as e:
        show_error(str(e), e)
        return
    st.rerun()


def await_starting_run(device: str, runs: list[RunInfo]) -> bool:
    """While a job holds ``device`` before its run folder is listed, say so and poll until it is (then the
    whole page reruns and shows it). Two quick clicks on Start run the page twice at once: the second is
    refused by the first's lock and, without this, said "no runs yet" and never looked again. True while
    waiting."""
    coming = tv.starting_run(device, runs)
    if coming is None:
        return False

    @st.fragment(run_every=1.0)
    def poll() -> None:
        st.info(f"Starting {md_escape(coming)}: it appears here in a moment.")
        if tv.starting_run(device, list_runs()) != coming:
            st.rerun()

    poll()
    return True
