"""Helpers shared by several pages: the sidebar and cached loaders (``st.cache_resource``).

Cached objects are shared by every browser session: callers must never mutate them (visualisation works
on copies or under a lock; see cnnviz.viz).
"""

from __future__ import annotations

import logging

import streamlit as st

from cnnviz.device import describe_device, pick_device
from cnnviz.paths import checkpoints_dir

log = logging.getLogger("cnnviz.app")


@st.cache_resource(show_spinner=False)
def device_description() -> str:
    return describe_device(pick_device("auto"))


def render_sidebar() -> None:
    with st.sidebar:
        st.caption(f"**Device:** {device_description()}")
        st.caption(f"**Checkpoints:** `{checkpoints_dir()}`")


def show_error(message: str, exc: BaseException | None = None) -> None:
    """A clear message on the page; the details (traceback) go to the server log, never to the page."""
    if exc is not None:
        log.error("%s", message, exc_info=exc)
    st.error(message)
