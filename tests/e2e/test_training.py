"""Training journey in Chromium: start a synthetic LeNet-5 run from the page and watch the polling fragment
report progress and finish on its own (no clicks), with curves; a reload re-attaches to the run."""

from __future__ import annotations

import os
import re

from playwright.sync_api import expect

from tests._synthetic import install_synthetic
from tests.e2e.conftest import assert_no_errors, choose, shot, wait_idle


def test_start_a_synthetic_run_and_watch_it_finish(app_server, page, tmp_path, tmp_path_factory):
    base = tmp_path / "app"
    install_synthetic(tmp_path_factory, base / "data")
    server = app_server(base=base, env={"OMP_NUM_THREADS": "1"})
    page.goto(server.url + "/training")
    wait_idle(page)
    expect(page.get_by_text("No runs yet")).to_be_visible()
    choose(page, "Architecture", "LeNet-5")
    choose(page, "variant", "modern")
    choose(page, "Optimizer", "adamw")
    expect(page.get_by_role("combobox", name="Dataset")).to_have_value(re.compile("Synthetic demo set"))
    field = page.get_by_role("spinbutton", name="Epochs", exact=True)
    expect(field).to_have_value("5")  # the synthetic demo's default (issue 11); 2 are enough here
    field.fill("2")
    field.press("Enter")  # a typed value confirmed with Enter: no run yet, only Start starts one
    wait_idle(page)
    page.wait_for_timeout(1000)
    expect(page.get_by_text("No runs yet")).to_be_visible()
    assert not [p for p in (base / "checkpoints").glob("lenet5-*")]
    field.press("Tab")
    page.get_by_role("button", name="Start").click()
    wait_idle(page)
    # The run appears at once (queued or already running) ...
    expect(page.get_by_role("combobox", name="Run", exact=True)).to_have_value(re.compile(r"^lenet5-"))
    # ... and the fragment, polling on its own, shows it finish with its curves.
    expect(page.get_by_text(re.compile(r"done: 2 epochs"))).to_be_visible(timeout=120_000)
    expect(page.get_by_text(re.compile(r"finished 2 epochs; best val top-1"))).to_be_visible()
    chart = page.get_by_test_id("stPlotlyChart").first
    expect(chart.locator(".scatterlayer .trace").first).to_be_visible()
    _no_axis_title_overlaps_a_subplot_title(chart)
    shot(page, tmp_path, "training-done")
    # A reload (or a restarted server) re-attaches: the run is read back from its folder.
    page.reload()
    wait_idle(page)
    expect(page.get_by_text(re.compile(r"finished 2 epochs"))).to_be_visible()
    assert_no_errors(page)
    assert not page.js_errors, page.js_errors
    runs = [p for p in (base / "checkpoints").iterdir() if p.name.startswith("lenet5-")]
    assert len(runs) == 1 and (runs[0] / "best.safetensors").is_file()


def test_double_start_reload_stop_resume(app_server, page, tmp_path, tmp_path_factory):
    """Issue 6 journey 3: two quick clicks on Start give one worker; a reload mid-run still shows progress;
    Stop saves and stops; Resume continues to the end."""
    base = tmp_path / "app"
    install_synthetic(tmp_path_factory, base / "data")
    # the worker inherits the server's environment: 0.4 s per step makes the tiny run slow enough to act on
    server = app_server(base=base, env={"OMP_NUM_THREADS": "1", "CNNVIZ_FAULT": "sleep=0.4"})
    page.goto(server.url + "/training")
    wait_idle(page)
    choose(page, "Architecture", "LeNet-5")
    choose(page, "variant", "modern")
    choose(page, "Optimizer", "adamw")
    for name, value in (("Epochs", "3"), ("Batch size", "16")):
        field = page.get_by_role("spinbutton", name=name, exact=True)
        field.fill(value)
        field.press("Tab")
    page.get_by_role("button", name="Start").dblclick()
    wait_idle(page)
    expect(page.get_by_text(re.compile(r"epoch 1/3, step \d+/10"))).to_be_visible(timeout=90_000)
    # Issue 11: the selector said "(queued)" while the run was going; it shows the real state
    expect(page.get_by_role("combobox", name="Run", exact=True)).to_have_value(re.compile(r"\(running\)$"))
    runs = [p for p in (base / "checkpoints").iterdir() if p.name.startswith("lenet5-")]
    assert len(runs) == 1, runs  # two clicks, one worker
    page.reload()
    wait_idle(page)
    expect(page.get_by_text(re.compile(r"epoch \d/3, step \d+/10 .*ETA"))).to_be_visible(timeout=30_000)
    page.get_by_role("button", name="Stop").click()
    alert = page.get_by_test_id("stAlert").filter(has_text=re.compile(r"stopped at epoch \d, step \d+"))
    expect(alert).to_be_visible(timeout=60_000)
    shot(page, tmp_path, "training-stopped")
    page.get_by_role("button", name="Resume").click()
    expect(page.get_by_text(re.compile(r"done: 3 epochs"))).to_be_visible(timeout=120_000)
    metrics = [line for line in (runs[0] / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert len(metrics) == 3  # nothing lost or repeated across the stop
    assert_no_errors(page)
    assert not page.js_errors, page.js_errors


def test_a_run_still_being_created_is_awaited_and_shown_when_its_folder_appears(app_server, page, tmp_path,
                                                                               tmp_path_factory):
    """CI, 2026-12-07: the second of two quick Start clicks ran while the first held the device lock but had no
    folder yet; the page said "no runs yet" and never looked again, though the run trained. Now it names the
    coming run and polls (a fragment, 1 s) until its folder is there. Here the test holds the lock itself."""
    from cnnviz.fsutil import try_lock
    from cnnviz.training.locks import device_lock_path
    from cnnviz.training.runs import create_run
    from tests._synthetic import tiny_config

    base = tmp_path / "app"
    install_synthetic(tmp_path_factory, base / "data")
    server = app_server(base=base)
    fd = try_lock(device_lock_path("cpu", server.checkpoints), {"run": "lenet5-coming"})
    try:
        page.goto(server.url + "/training")
        wait_idle(page)
        expect(page.get_by_text("Starting lenet5-coming: it appears here in a moment.")).to_be_visible()
        expect(page.get_by_text("No runs yet")).to_have_count(0)
        create_run(tiny_config(epochs=2).to_dict(), server.checkpoints, run_id="lenet5-coming")
        run_box = page.get_by_role("combobox", name="Run", exact=True)
        expect(run_box).to_have_value(re.compile(r"^lenet5-coming"), timeout=15_000)  # no click: the poll found it
        expect(page.get_by_text("Starting lenet5-coming")).to_have_count(0)
        assert_no_errors(page)
    finally:
        os.close(fd)


def _no_axis_title_overlaps_a_subplot_title(chart) -> None:
    """Issue 11: the "epoch" axis titles under the top row sat on the bottom row's subplot titles."""
    def box(el):
        b = el.bounding_box()
        return b["x"], b["y"], b["x"] + b["width"], b["y"] + b["height"]

    titles = [box(t) for t in chart.locator(".annotation-text").all()]  # "loss", "accuracy", ...
    axes = [box(t) for t in chart.locator("text[class^='x'][class$='title']").all() if t.text_content().strip()]
    assert len(titles) == 4 and axes, (titles, axes)
    for a in axes:
        for t in titles:
            apart = a[2] <= t[0] or t[2] <= a[0] or a[3] <= t[1] or t[3] <= a[1]
            assert apart, f"axis title {a} overlaps subplot title {t}"


def test_the_zoo_recipe_fills_the_form_in_the_browser(app_server, page, tmp_path, tmp_path_factory):
    """One click puts the zoo member's settings in the form's widgets, as the browser shows them (the
    AppTest in tests/app checks that Start then trains the zoo's configuration)."""
    base = tmp_path / "app"
    install_synthetic(tmp_path_factory, base / "data")
    server = app_server(base=base)
    page.goto(server.url + "/training")
    wait_idle(page)
    choose(page, "Architecture", "ZFNet")
    page.get_by_role("button", name="Fill in the zoo's recipe for ZFNet").click()
    wait_idle(page)
    expect(page.get_by_text(re.compile(r"The zoo's recipe for ZFNet \(init=kaiming\): adamw at lr 0\.0005"))).to_be_visible()
    expect(page.get_by_role("spinbutton", name="Epochs", exact=True)).to_have_value("10")
    expect(page.get_by_role("spinbutton", name="Batch size", exact=True)).to_have_value("256")
    expect(page.get_by_role("spinbutton", name=re.compile("^Learning rate"))).to_have_value("0.00050")
    expect(page.get_by_role("spinbutton", name=re.compile("^Weight average decay"))).to_have_value("0.9980")
    expect(page.get_by_role("combobox", name="init")).to_have_value("kaiming")
    expect(page.get_by_role("checkbox", name="Flip test-time augmentation")).to_be_checked()
    shot(page, tmp_path, "training-zoo-recipe")
    assert_no_errors(page)
    assert not page.js_errors, page.js_errors


def test_prepare_tiny_imagenet_from_the_page(app_server, page, tmp_path):
    """A fresh clone: the pages say "prepare it on the Training page", and here it is. A zip on this machine
    (a small one in the real layout) is prepared by a background job that the page follows; when it ends, the
    Dataset box holds Tiny ImageNet without a click."""
    from tests.data_helpers import mini_tree, zip_tree

    zip_path = zip_tree(mini_tree(tmp_path / "tree"), tmp_path / "tiny-imagenet-200.zip")
    base = tmp_path / "app"
    server = app_server(base=base)
    page.goto(server.url + "/training")
    wait_idle(page)
    expect(page.get_by_role("combobox", name="Dataset")).to_have_value(re.compile("Synthetic demo set"))
    page.get_by_text("Tiny ImageNet is not prepared on this machine").click()
    page.get_by_text("a zip or folder on this machine").click()
    wait_idle(page)
    path = page.get_by_label("Path of tiny-imagenet-200.zip (or of the extracted folder)")
    path.fill(str(zip_path))
    path.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="Prepare Tiny ImageNet").click()
    # a background job: the panel's fragment polls it every second and reruns the page when it has ended
    expect(page.get_by_role("combobox", name="Dataset")).to_have_value(re.compile(r"^Tiny ImageNet \("),
                                                                       timeout=120_000)
    expect(page.get_by_text("Tiny ImageNet is not prepared on this machine")).to_have_count(0)
    assert (base / "data" / "tiny-imagenet-200" / "cache").is_dir()
    shot(page, tmp_path, "training-prepared")
    assert_no_errors(page)
    assert not page.js_errors, page.js_errors
