"""One image across pages: an upload on Predict, Visualize or Compare stays selected on the others, and Predict's
"Look inside" opens Visualize on that model and image.

Streamlit drops a widget's value when its page is left (a file uploader comes back empty), so what was uploaded
is also kept in ``st.session_state`` under keys no widget owns: :data:`UPLOADS` (the latest upload: Predict's
files, or Visualize's one) and :data:`SHOWN` (the image Visualize shows: the last upload, or the image whose
"Look inside" was pressed; None: a validation or demo image). Removing the files from an uploader forgets them.
"""

from __future__ import annotations

import streamlit as st

UPLOADS = "uploaded_images"  # [(file name, bytes)]
SHOWN = "visualize_image"  # (file name, bytes) or None
VIZ_MODEL, VIZ_VAL_INDEX = "viz_model", "viz_val_index"  # Visualize's model picker and validation image index


def remember(key: str) -> None:
    """``on_change`` of a file uploader keyed ``key``: keep its files (or forget them when it was emptied)."""
    files = st.session_state.get(key)
    files = files if isinstance(files, list) else [] if files is None else [files]
    st.session_state[UPLOADS] = [(f.name, f.getvalue()) for f in files]
    st.session_state[SHOWN] = st.session_state[UPLOADS][-1] if files else None


def uploads() -> list[tuple[str, bytes]]:
    """The latest upload of either page (file name, bytes), oldest first."""
    return st.session_state.get(UPLOADS) or []


def shown() -> tuple[str, bytes] | None:
    """The image Visualize shows when its own uploader is empty."""
    return st.session_state.get(SHOWN)


def show_validation_images() -> None:
    st.session_state[SHOWN] = None


def look_inside(model_label: str, image: tuple[str, bytes] | None = None, val_index: int | None = None) -> None:
    """Open Visualize on ``model_label`` (a picker label of :func:`cnnviz.catalog.list_checkpoints`) and an image:
    ``image`` (file name, bytes), or the validation image ``val_index``."""
    st.session_state[VIZ_MODEL] = model_label
    st.session_state[SHOWN] = image
    if val_index is not None:
        st.session_state[VIZ_VAL_INDEX] = int(val_index)
    st.switch_page("app_pages/visualize.py")
