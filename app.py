"""cnnviz dashboard entry point: ``streamlit run app.py``.

Routing and the shared sidebar only; every page lives in ``app_pages/`` and every computation in ``cnnviz``.

Why ``app_pages/`` and not ``pages/``: Streamlit treats a folder named ``pages`` beside the entry script as its
legacy multipage app until ``st.navigation`` has run once in the server process, so on a fresh server the
first visitor (or a tab reconnecting after a restart, deep-linked to ``/training``) got that page alone,
without this file's sidebar, and a menu listing ``app`` and ``_shared``. Any other folder name avoids it.
"""

from pathlib import Path

import streamlit as st

# A local icon: an emoji or ":material/..." favicon makes every browser fetch it from a CDN.
st.set_page_config(page_title="cnnviz: the classic CNNs", page_icon=str(Path(__file__).parent / "assets" / "icon.png"),
                   layout="wide")

from app_pages._shared import render_sidebar  # noqa: E402

# The default page is served at "/" (Streamlit gives a default page the empty path whatever url_path says);
# every other page at its file's name. Hidden pages send /architectures (its own name: a guessed or an old link,
# like /training for Training) and /home (the usual guess for a first page) to "/", where Streamlit would
# otherwise pop up "Page not found".
home = st.Page("app_pages/architectures.py", title="Architectures", icon=":material/account_tree:", default=True,
               url_path="start",
               help="Every network's per-layer table, its charts and block diagram; the families side by side.")
pages = [
    home,
    st.Page("app_pages/training.py", title="Training", icon=":material/model_training:",
            help="Train a network on Tiny ImageNet as a background job and follow its curves; runs resume "
                 "after a stop."),
    st.Page("app_pages/visualize.py", title="Visualize", icon=":material/visibility:",
            help="Look inside a trained network the Zeiler & Fergus way: filters, maps, deconvnet, top-9, occlusion."),
    st.Page("app_pages/predict.py", title="Predict", icon=":material/target:",
            help="Upload images and see each trained network's top-5 guesses side by side."),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/compare_arrows:",
            help="Trained models side by side: the zoo's table, curves, accuracy against cost, confusions."),
    *(st.Page(lambda: st.switch_page(home), title="Architectures", url_path=path, visibility="hidden")
      for path in ("architectures", "home")),
]
navigation = st.navigation(pages)
render_sidebar()
navigation.run()
