"""cnnviz dashboard entry point: ``streamlit run app.py``.

Routing and the shared sidebar only; every page lives in ``pages/`` and every computation in ``cnnviz``.
"""

import streamlit as st

st.set_page_config(page_title="cnnviz: the classic CNNs", page_icon="🧠", layout="wide")

from pages._shared import render_sidebar  # noqa: E402

pages = [
    st.Page("pages/architectures.py", title="Architectures", icon="🏛️", default=True),
    st.Page("pages/training.py", title="Training", icon="🏋️"),
    st.Page("pages/visualize.py", title="Visualize", icon="🔬"),
    st.Page("pages/predict.py", title="Predict", icon="🎯"),
    st.Page("pages/compare.py", title="Compare", icon="⚖️"),
]
navigation = st.navigation(pages)
render_sidebar()
navigation.run()
