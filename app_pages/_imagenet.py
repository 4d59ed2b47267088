"""Predict's 'ImageNet networks' panel: what torchvision weights are here, and fetching one (cnnviz.imagenet)."""

import streamlit as st

from app_pages._shared import show_error
from cnnviz import imagenet


def fetch_panel() -> None:
    """An expander: where the weights come from, and a download button for those not in the cache."""
    missing = imagenet.missing_entries()
    have = len(imagenet.ENTRIES) - len(missing)
    with st.expander(f"ImageNet networks (torchvision's weights): {have} of {len(imagenet.ENTRIES)} here"):
        st.caption(imagenet.about())
        if not missing:
            return
        chosen = st.selectbox("Download", [e.name for e in missing], key="imagenet_fetch_choice",
                              format_func=lambda n: f"imagenet/{n} ({imagenet.get_entry(n).mb} MB)")
        if st.button("Download into the cache", key="imagenet_fetch"):
            bar = st.progress(0.0, "connecting…")
            try:
                imagenet.fetch(chosen, progress=lambda done, total: bar.progress(
                    min(1.0, done / total) if total else 0.0, f"{done / 1e6:.0f} of {total / 1e6:.0f} MB"
                    if total else f"{done / 1e6:.0f} MB"))
            except imagenet.FetchError as e:
                bar.empty()
                show_error(str(e), e)
            else:
                st.rerun()  # lists it among the checkpoints
