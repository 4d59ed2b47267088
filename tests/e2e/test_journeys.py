"""The full user journeys of issue 6 that the per-page browser tests do not already walk through.

Already walked elsewhere (not repeated, to keep the e2e run short):
1. fresh start, every page clean ............ tests/e2e/test_fresh_start.py
2. every architecture: table, charts, CSV ... tests/e2e/test_architectures.py
4. real Tiny ImageNet val image -> 5 bars .... tests/e2e/test_predict.py (val_0.JPEG read from the shared zip)
5. deconvnet projection + occlusion map ...... tests/e2e/test_visualize.py (+ here, on the real val image)

3. double click on Start, reload mid-run, stop, resume: tests/e2e/test_training.py

Here, the rest of journey 3 the way a class would live it: start a synthetic LeNet-5 run from the Training
page, a second tab tries to start another (refused: exactly one worker), reload the tab mid-run and still see
progress, restart the Streamlit server mid-run (the worker survives, the new server's page re-attaches and
keeps polling), it finishes with no duplicated epochs, and it appears in Compare. Then the trained checkpoint
predicts a real Tiny ImageNet val image (five bars), and the Visualize page projects and occludes that image.
"""

from __future__ import annotations

import re
import zipfile

import pytest
from playwright.sync_api import expect

from cnnviz.data import make_synthetic
from cnnviz.training.runs import list_runs, pid_alive, read_run
from tests.conftest import SHARED_ZIP
from tests.e2e.conftest import assert_no_errors, choose, shot, wait_idle
from tests.predict_helpers import image_bytes

pytestmark = pytest.mark.e2e

EPOCHS = 5


def _fill_form(page) -> None:
    page.get_by_role("heading", name="Training").first.wait_for()
    choose(page, "Architecture", "LeNet-5")
    choose(page, "variant", "modern")
    choose(page, "Optimizer", "adamw")
    page.get_by_label("Epochs", exact=True).fill(str(EPOCHS))
    page.get_by_label("Batch size", exact=True).fill("16")  # 160 images: 10 steps per epoch


def _status_box(page):
    """The fragment's status line (info/success/warning/error box starting with the run's state)."""
    return page.get_by_test_id("stAlert").filter(has_text=re.compile(r"^(queued|running|stopping|done|failed|"
                                                                      r"stopped):"))


def _val_image(tmp_path):
    path = tmp_path / "val.jpg"
    if SHARED_ZIP.is_file():  # a real Tiny ImageNet val image, read from the zip on the fly (never committed)
        with zipfile.ZipFile(SHARED_ZIP) as z:
            path.write_bytes(z.read("tiny-imagenet-200/val/images/val_7.JPEG"))
    else:
        path.write_bytes(image_bytes("JPEG", (64, 64), seed=7))
    return path


def test_training_journey_second_tab_reload_server_restart_compare_predict_visualize(app_server, page, tmp_path):
    base = tmp_path / "app"
    # the synthetic set in the Tiny ImageNet layout, with 10 classes so that a top-5 has five bars
    make_synthetic(base / "data" / "synthetic", num_classes=10, train_per_class=16, val_per_class=4, seed=0)
    # every worker this server starts sleeps 0.5 s per step: slow enough to reload, restart and stop mid-run
    env = {"OMP_NUM_THREADS": "1", "CNNVIZ_FAULT": "sleep=0.5"}
    server = app_server(base=base, env=env)
    ckpts = base / "checkpoints"
    page.goto(server.url + "/training")
    wait_idle(page)
    _fill_form(page)

    # --- Start, then a click from a second tab: exactly one worker
    page.get_by_role("button", name="Start").click()
    wait_idle(page)
    expect(page.get_by_role("combobox", name="Run", exact=True)).to_have_value(re.compile(r"^lenet5-"),
                                                                               timeout=30_000)
    tab2 = page.context.new_page()
    tab2.goto(server.url + "/training")
    wait_idle(tab2)
    _fill_form(tab2)
    tab2.get_by_role("button", name="Start").click()
    wait_idle(tab2)
    refusal = tab2.get_by_test_id("stAlertContentError").filter(has_text="Training did not start")
    expect(refusal).to_have_count(1, timeout=30_000)
    runs = list_runs(ckpts)
    assert len(runs) == 1, [r.id for r in runs]
    run = runs[0].path
    assert runs[0].id in refusal.inner_text() and "allow a second job" in refusal.inner_text()
    shot(tab2, tmp_path, "journey_second_tab_refused")
    tab2.close()

    # --- mid-run: the polling fragment shows progress; a reload still shows it
    expect(page.get_by_text(re.compile(rf"epoch [12]/{EPOCHS}, step \d+/10"))).to_be_visible(timeout=90_000)
    page.reload()
    wait_idle(page)
    expect(page.get_by_text(re.compile(rf"epoch \d/{EPOCHS}, step \d+/10"))).to_be_visible(timeout=30_000)
    expect(_status_box(page).filter(has_text="running")).to_be_visible(timeout=30_000)
    shot(page, tmp_path, "journey_reloaded_mid_run")

    # --- restart the Streamlit server mid-run: the worker survives, the new server's page re-attaches
    worker = read_run(run).status
    server.stop()
    assert pid_alive(worker["pid"], worker.get("pid_start")), "the worker died with the server"
    server = app_server(base=base, env=env)
    page.goto(server.url + "/training")
    wait_idle(page)
    expect(page.get_by_role("combobox", name="Run", exact=True)).to_have_value(re.compile(re.escape(run.name)),
                                                                               timeout=30_000)
    # the restarted server's first visitor deep-links /training: still the whole app (sidebar, navigation),
    # not Streamlit's legacy app_pages/ mode (which listed "app" and "shared" as pages and skipped app.py)
    nav = page.get_by_test_id("stSidebarNav").get_by_test_id("stSidebarNavLink")
    expect(nav).to_have_count(5)
    assert [t.split()[-1] for t in nav.all_inner_texts()] == ["Architectures", "Training", "Visualize",
                                                              "Predict", "Compare"]
    assert "Device:" in page.get_by_test_id("stSidebar").inner_text()
    progress = page.get_by_text(re.compile(rf"epoch \d/{EPOCHS}, step \d+/10|done: {EPOCHS} epochs"))
    expect(progress).to_be_visible(timeout=30_000)
    first_seen = progress.inner_text()
    shot(page, tmp_path, "journey_reattached_after_restart")
    # the re-attached page keeps polling on its own: the text moves on (to a later step, or to done)
    if not first_seen.startswith("done"):
        expect(progress).not_to_have_text(first_seen, timeout=60_000)
    expect(page.get_by_text(f"done: {EPOCHS} epochs")).to_be_visible(timeout=180_000)
    expect(page.get_by_text(re.compile(rf"finished {EPOCHS} epochs; best val top-1"))).to_be_visible()
    done = read_run(run)
    assert [m["epoch"] for m in done.metrics] == list(range(1, EPOCHS + 1))  # nothing lost, nothing twice
    assert_no_errors(page)
    shot(page, tmp_path, "journey_done")

    # --- it appears in Compare, with its curve
    page.get_by_test_id("stSidebarNav").get_by_test_id("stSidebarNavLink").filter(has_text="Compare").click()
    page.get_by_role("heading", name="Compare").first.wait_for()
    wait_idle(page)
    expect(page.get_by_test_id("stMultiSelect").filter(has_text=run.name)).to_have_count(1, timeout=30_000)
    curves = page.get_by_test_id("stPlotlyChart").first
    expect(curves.locator(".legendtext").filter(has_text=run.name)).to_have_count(1, timeout=30_000)
    assert_no_errors(page)
    shot(page, tmp_path, "journey_compare")

    # --- the trained checkpoint predicts a real val image: five bars
    image = _val_image(tmp_path)
    page.goto(server.url + "/predict")
    wait_idle(page)
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(image))
    charts = page.get_by_test_id("stPlotlyChart")
    expect(charts.first.locator(".barlayer .point")).to_have_count(5, timeout=60_000)
    wait_idle(page)
    assert [c.locator(".barlayer .point").count() for c in charts.all()] == [5] * charts.count()  # per checkpoint
    expect(page.get_by_text(run.name).first).to_be_visible()
    assert_no_errors(page)
    shot(page, tmp_path, "journey_predict")

    # --- ... and the Visualize page projects and occludes that same image on it
    page.goto(server.url + "/visualize")
    wait_idle(page)
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(image))
    wait_idle(page)
    expect(page.get_by_text("What the network saw").first).to_be_visible()
    page.get_by_role("tab", name="Deconvnet").click()
    wait_idle(page)
    expect(page.locator("[data-testid=stImage]").filter(has_text="receptive field").locator("img")).to_be_visible(
        timeout=60_000)  # the tab click reruns the page (only the open view is computed): it may not have begun
    page.get_by_role("tab", name="Occlusion").click()
    wait_idle(page)
    page.get_by_role("button", name="Run occlusion").click()
    wait_idle(page, timeout=120_000)
    expect(page.locator("[data-testid=stImage]").filter(has_text="grey square").locator("img")).to_be_visible()
    expect(page.get_by_test_id("stAlertContentError")).to_have_count(0)
    assert_no_errors(page)
    assert not page.js_errors, page.js_errors
    shot(page, tmp_path, "journey_visualize")
