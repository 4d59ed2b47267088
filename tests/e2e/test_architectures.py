"""Journey 2 in headless Chromium: open Architectures, pick VGG-16, read its table, download the CSV, then pick
every architecture in turn: the table and the charts render and no exception appears."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

import cnnviz
from cnnviz.summary import layer_table, param_count
from cnnviz.views import architectures as fa
from tests.e2e.conftest import assert_no_errors, choose, shot, wait_idle

pytestmark = pytest.mark.e2e


def _open(page, url: str) -> None:
    page.goto(url)
    wait_idle(page)
    page.get_by_role("heading", name="Architectures").first.wait_for()


def _pick(page, arch: str) -> None:
    """Choose an architecture in the selectbox and wait until the page shows that architecture's totals."""
    card = cnnviz.get_card(arch)
    params = param_count(layer_table(arch, fa.input_shape(arch))).inference  # the headline's one count
    choose(page, "Architecture", card.display_name, type_text=card.display_name)
    # The exact totals sentence is unique per architecture: it appears once the rerun has rendered.
    page.get_by_text(f"Exactly {params:,} parameters", exact=False).first.wait_for()
    wait_idle(page)


def _no_error_alerts(page) -> None:
    errors = page.get_by_test_id("stAlertContentError")
    assert errors.count() == 0, errors.first.inner_text()


def test_vgg16_table_and_csv_download(app_server, page, tmp_path):
    server = app_server()
    _open(page, server.url)
    _pick(page, "vgg16")
    assert_no_errors(page)
    _no_error_alerts(page)
    body = page.locator("body").inner_text()
    assert "Exactly 138,357,544 parameters" in body
    assert "MACs are multiply-accumulates" in body
    grid = page.get_by_test_id("stDataFrame").first
    grid.wait_for()
    assert grid.bounding_box()["height"] > 200  # the table is really drawn, not an empty frame
    shot(page, tmp_path, "architectures_vgg16")

    with page.expect_download() as info:
        page.get_by_test_id("stDownloadButton").filter(has_text="Download CSV").locator("button").click()
    download = info.value
    assert download.suggested_filename.startswith("vgg16_3x224x224_1000_float32")
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    first = next(r for r in rows if r["name"] == "features.0")
    assert int(first["activations"]) == 224 * 224 * 64  # CS231n's 3.2M for CONV3-64
    assert int(first["params"]) == 3 * 3 * 3 * 64 + 64
    assert sum(int(r["params"]) for r in rows) == 138_357_544


def test_every_architecture_renders_its_table_and_charts(app_server, page, tmp_path):
    server = app_server()
    _open(page, server.url)
    for arch in cnnviz.list_models():
        _pick(page, arch)
        assert_no_errors(page)
        _no_error_alerts(page)
        assert page.get_by_test_id("stDataFrame").first.is_visible(), arch
        chart = page.get_by_test_id("stPlotlyChart").first
        chart.locator(".main-svg").first.wait_for()  # plotly drew it
        page.get_by_role("tab", name="Block diagram").click()
        page.get_by_test_id("stGraphVizChart").first.locator("svg").first.wait_for()
        page.get_by_role("tab", name="Parameters").click()
    shot(page, tmp_path, "architectures_last")
    assert not page.js_errors, page.js_errors


def test_compare_architectures_links_to_the_zoo_on_compare(app_server, page, tmp_path):
    """The papers' ImageNet chart ends with a link to the same families trained on Tiny ImageNet (Compare)."""
    server = app_server()
    _open(page, server.url)
    page.get_by_role("tab", name="Compare architectures").click()
    page.get_by_test_id("stPlotlyChart").first.locator(".main-svg").first.wait_for()
    page.get_by_test_id("stPageLink").filter(has_text="Compare opens on the zoo").click()
    page.wait_for_url(lambda url: url.rstrip("/").endswith("/compare"))
    page.get_by_role("heading", name="Compare").first.wait_for()
    wait_idle(page)
    assert_no_errors(page)
    assert not page.js_errors, page.js_errors
