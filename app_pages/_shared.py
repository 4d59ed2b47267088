"""Helpers shared by several pages: the sidebar and cached loaders (``st.cache_resource``).

Cached objects are shared by every browser session: callers must never mutate them (visualisation works
on copies or under a lock; see cnnviz.viz).
"""

from __future__ import annotations

import contextlib
import logging

import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

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


@st.cache_resource(show_spinner="Loading checkpoint…", max_entries=24)
def _checkpoint(path: str, mtime: float, device: str):
    from cnnviz.checkpoint import load_checkpoint

    return load_checkpoint(path, device)


def load_checkpoint_cached(path):
    """A checkpoint loaded once for every session, keyed by its version (``cnnviz.checkpoint.checkpoint_version``:
    path + mtime, so a rewritten ``best`` reloads). Shared: never call ``.train()``, move it, or leave hooks on
    it. Raises CheckpointError / FileNotFoundError."""
    from cnnviz.checkpoint import checkpoint_version

    version = checkpoint_version(path)
    return _checkpoint(version.path, version.mtime, str(pick_device("auto")))


@st.cache_resource(show_spinner="Reading the validation set…", max_entries=2)
def _val_split(root: str):
    from cnnviz.data import load_split

    return load_split(root, "val")


def val_split_cached(missing: str | None = None, root=None):
    """The validation Split (memory-mapped, shared read-only) of Tiny ImageNet (or of the dataset folder
    ``root``), or None when there is none to use (also while a background preparation runs: reading the split
    then would hold the page until the preparation ends, and decode the split here).

    A dataset that cannot be read is reported on the page (details to the log); ``missing`` is shown as an
    info message when no dataset is found at all."""
    from cnnviz.data import find_dataset
    from cnnviz.data.job import preparing
    from cnnviz.views.training import prepare_progress

    if (job := preparing()) is not None:
        st.info(f"Tiny ImageNet is being prepared ({prepare_progress(job)[1]}); its images can be used when that "
                "has ended. The Training page shows the progress.")
        return None
    root = find_dataset(root)
    try:
        split = None if root is None else _val_split(str(root))
    except (ValueError, OSError) as e:
        show_error(f"The validation set cannot be read: {e}", e)
        return None
    if split is None and missing:
        st.info(missing)
    return split


def md_escape(text: str) -> str:
    """Text shown through Markdown (file names, class names) with Markdown's special characters escaped."""
    return "".join("\\" + c if c in "\\`*_{}[]()#+-.!<>|~$" else c for c in str(text))



MODEL_DEFAULT = "model default"  # a variant option's None (the model picks), as its selectbox shows it


def variant_widgets(card, key_prefix: str, columns: int = 4) -> dict:
    """One widget per variant option a model card's form offers (its structured ``form_options``); all values."""
    values, cols = {}, st.columns(columns)
    for i, spec in enumerate(card.form_options):
        col, key = cols[i % columns], f"{key_prefix}_{card.name}_{spec.name}"
        # the default goes through session state, not value=: a page may set these keys (the Training page's
        # zoo recipe), and Streamlit warns about a widget that has both
        st.session_state.setdefault(key, spec.default)
        if spec.kind == "bool":
            values[spec.name] = col.checkbox(spec.name, help=spec.help, key=key)
        elif spec.kind in ("int", "float"):
            values[spec.name] = col.number_input(spec.name, step=1 if spec.kind == "int" else None,
                                                 help=spec.help, key=key)
        else:
            # None as an option shows Streamlit's empty "Choose an option" (a widget value of None means nothing
            # chosen), so "the model's default" is a named option here and None again in the returned values.
            options = [MODEL_DEFAULT if v is None else v for v in spec.choices]
            if st.session_state.get(key) is None and MODEL_DEFAULT in options:
                st.session_state[key] = MODEL_DEFAULT
            chosen = col.selectbox(spec.name, options, help=spec.help, key=key, format_func=str)
            values[spec.name] = None if chosen == MODEL_DEFAULT else chosen
    return values


def link_to(page: str, label: str, icon: str | None = None) -> None:
    """``st.page_link`` to another page; nothing where this page runs on its own (an AppTest of one page file
    has no ``st.navigation``, so there is no other page to go to)."""
    with contextlib.suppress(StreamlitPageNotFoundError):
        st.page_link(page, label=label, icon=icon)
