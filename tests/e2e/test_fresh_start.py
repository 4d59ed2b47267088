"""Journey 1 in headless Chromium: a fresh app (empty checkpoints and data folders), every page visited through
the navigation; no exception, traceback or error element anywhere. A screenshot per page."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import assert_no_errors, shot, wait_idle

pytestmark = pytest.mark.e2e

PAGES = ["Architectures", "Training", "Visualize", "Predict", "Compare"]


def test_fresh_start_every_page_is_clean(app_server, page, tmp_path):
    server = app_server()
    page.goto(server.url)
    wait_idle(page)
    nav = page.get_by_test_id("stSidebarNav")
    nav.wait_for()
    links = nav.get_by_test_id("stSidebarNavLink").all_inner_texts()
    assert [t.split()[-1] for t in links] == PAGES  # (each link starts with its icon's name)
    # The sidebar says which device computes and where checkpoints go (the server's own temporary folder).
    sidebar = page.get_by_test_id("stSidebar").inner_text()
    assert "Device:" in sidebar and str(server.checkpoints) in sidebar
    for name in PAGES:
        nav.get_by_test_id("stSidebarNavLink").filter(has_text=name).click()
        page.wait_for_url(lambda url, name=name: name == "Architectures" or url.rstrip("/").endswith(name.lower()))
        page.get_by_role("heading", name=name).first.wait_for()
        wait_idle(page)
        assert_no_errors(page)
        errors = page.get_by_test_id("stAlertContentError")
        assert errors.count() == 0, f"{name}: {errors.first.inner_text()}"
        assert "Error" not in page.get_by_test_id("stMain").inner_text().split(), name
        shot(page, tmp_path, f"fresh_{name.lower()}")
    # Typed or bookmarked like the others (/training, /compare), the first page's own name lands on it too, and
    # so does /home, the usual guess for a first page.
    for path in ("/architectures", "/home"):
        page.goto(server.url + path)
        page.get_by_role("heading", name="Architectures").first.wait_for()
        wait_idle(page)
        assert page.get_by_text("Page not found").count() == 0, path
        assert_no_errors(page)
    assert not page.js_errors, page.js_errors
