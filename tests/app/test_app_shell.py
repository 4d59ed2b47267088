"""The app shell in AppTest: app.py routes with st.navigation, the sidebar says which device computes and
where checkpoints live, and every page opens from the navigation without an exception."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cnnviz.device import describe_device
from cnnviz.paths import checkpoints_dir

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "app.py")
PAGES = ["app_pages/architectures.py", "app_pages/training.py", "app_pages/visualize.py", "app_pages/predict.py",
         "app_pages/compare.py"]


def _run(at: AppTest) -> AppTest:
    at.run(timeout=180)
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_app_opens_on_architectures_with_the_sidebar():
    at = _run(AppTest.from_file(APP, default_timeout=180))
    assert at.title[0].value == "Architectures"
    sidebar = " ".join(c.value for c in at.sidebar.caption)
    assert "Device:" in sidebar and describe_device() in sidebar
    # tests/conftest.py points CNNVIZ_CHECKPOINTS at a temporary folder: the sidebar must show that one.
    assert "Checkpoints:" in sidebar and str(checkpoints_dir()) in sidebar


def test_every_page_file_is_routed():
    source = Path(APP).read_text()
    for page in PAGES:
        assert (REPO / page).is_file(), page
        assert f'"{page}"' in source, f"{page} is not in app.py's navigation"


@pytest.mark.parametrize("page", PAGES)
def test_every_page_opens_without_an_exception(page):
    at = _run(AppTest.from_file(APP, default_timeout=180))
    at.switch_page(page)
    _run(at)
    assert at.title, f"{page} shows no title"
    assert not [e.value for e in at.error if "Traceback" in e.value]
