"""cnnviz dashboard entry point: ``streamlit run app.py``.

Routing and the shared sidebar only; every page lives in ``pages/`` and every computation in ``cnnviz``.
"""

import streamlit as st

st.set_page_config(page_title="cnnviz: the classic CNNs", page_icon=":material/neurology:", layout="wide")

from pages._shared import render_sidebar  # noqa: E402

pages = [
    st.Page("pages/architectures.py", title="Architectures", icon=":material/account_tree:", default=True),
    st.Page("pages/training.py", title="Training", icon=":material/model_training:"),
    st.Page("pages/visualize.py", title="Visualize", icon=":material/visibility:"),
    st.Page("pages/predict.py", title="Predict", icon=":material/target:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
]
navigation = st.navigation(pages)
render_sidebar()
navigation.run()
