"""Compare journey: two runs selected -> the table and the overlaid curves; switch to wall-clock time."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.conftest import assert_no_errors, shot, wait_idle
from tests.predict_helpers import default_arch, write_run
from tests.test_compare import _metrics


def test_two_runs_table_and_curves(app_server, page, tmp_path):
    base = tmp_path / "app"
    cfg = {"arch": default_arch(), "num_classes": 10, "input_size": 64, "batch_size": 64}
    write_run(base / "checkpoints" / "run-a", config={**cfg, "lr": 0.1}, metrics=_metrics(3, [0.1, 0.3, 0.25]))
    write_run(base / "checkpoints" / "run-b", config={**cfg, "lr": 0.01}, metrics=_metrics(2, [0.2, 0.22]), seed=2)
    server = app_server(base=base)
    page.goto(server.url + "/compare")
    wait_idle(page)
    table = page.get_by_test_id("stDataFrame").first
    expect(table).to_be_visible()
    expect(page.get_by_text("hyper-parameters that differ between the selected models (lr)")).to_be_visible()
    curves = page.get_by_test_id("stPlotlyChart").first
    expect(curves.locator(".scatterlayer .trace")).to_have_count(2)  # one line per run
    assert sorted(curves.locator(".legendtext").all_text_contents()) == ["run-a", "run-b"]
    expect(curves.locator(".xtitle")).to_have_text("epoch")
    page.get_by_text("by wall-clock time").click()
    wait_idle(page)
    expect(page.get_by_test_id("stPlotlyChart").first.locator(".xtitle")).to_have_text("wall clock (min)")
    assert_no_errors(page)
    assert not page.js_errors, page.js_errors
    shot(page, tmp_path, "compare")
