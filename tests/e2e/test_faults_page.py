"""What the Training page's polling shows when a run breaks under it, in headless Chromium (issue 6): the worker
killed -9 (failed within one poll, with the way forward), a torn status.json, the run folder deleted while the
page shows it. AppTest cannot tick the fragment's ``run_every``; the browser does. The worker here is a plain
``sleep`` process standing in for it (the real kill -9 + resume is tests/test_jobs.py and tests/test_faults.py).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import pytest
from playwright.sync_api import expect

from cnnviz.training.runs import create_run, process_start_time
from tests._synthetic import tiny_config
from tests.e2e.conftest import assert_no_errors, choose, shot, wait_idle

pytestmark = pytest.mark.e2e

POLL_S = 2.0  # the Training page's fragment polls every 2 s while a run is active


def _running_run(root, name: str, pid: int):
    run = create_run(tiny_config(epochs=5).to_dict(), root=root, run_id=name)
    status = {"state": "running", "pid": pid, "pid_start": process_start_time(pid), "epoch": 2, "step": 4,
              "steps_per_epoch": 10, "total_epochs": 5, "message": "training", "heartbeat": time.time(),
              "device": "cpu"}
    (run / "status.json").write_text(json.dumps(status))
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "train_loss": 1.2, "train_acc": 0.4, "val_loss": 1.3,
                                                   "val_top1": 0.35, "val_top5": 0.9, "lr": 0.003,
                                                   "images_per_s": 900.0, "epoch_time_s": 1.0, "elapsed_s": 1.0,
                                                   "peak_mem_bytes": 10**8, "step": 10}) + "\n")
    return run


def test_a_run_killed_torn_and_deleted_under_the_polling_page(app_server, page, tmp_path):
    base = tmp_path / "app"
    worker = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        run = _running_run(base / "checkpoints", "victim-run", worker.pid)
        server = app_server(base=base)
        page.goto(server.url + "/training")
        wait_idle(page)
        status = page.get_by_test_id("stAlert").filter(has_text=re.compile(r"^(running|failed|queued):"))
        expect(status.filter(has_text="running")).to_be_visible(timeout=30_000)

        # kill -9 the worker: the next poll shows the run failed, with the way forward (Resume)
        worker.kill()
        worker.wait()
        t0 = time.monotonic()
        expect(status.filter(has_text=re.compile(r"^failed:.*stopped unexpectedly after epoch 1"))).to_be_visible(
            timeout=30_000)
        print(f"failed shown {time.monotonic() - t0:.1f} s after the kill (poll every {POLL_S:.0f} s)")
        expect(page.get_by_role("button", name="Resume")).to_be_visible()
        shot(page, tmp_path, "killed_worker_failed")

        # a torn status.json (a writer killed mid-write) while a live worker is polled: no crash, a warning
        worker = subprocess.Popen(["sleep", "600"], start_new_session=True)
        _running_run(base / "checkpoints", "torn-run", worker.pid)
        page.reload()
        wait_idle(page)
        choose(page, "Run", re.compile(r"^torn-run"))
        expect(status.filter(has_text="running")).to_be_visible(timeout=30_000)
        (base / "checkpoints" / "torn-run" / "status.json").write_text('{"state": "runn')
        expect(page.get_by_text("warning: status.json: damaged (not valid JSON)")).to_be_visible(timeout=30_000)
        assert_no_errors(page)

        # the run folder deleted while the page shows it: the next poll says so, nothing breaks
        (base / "checkpoints" / "torn-run" / "status.json").write_text(json.dumps(
            {"state": "running", "pid": worker.pid, "pid_start": process_start_time(worker.pid), "epoch": 1,
             "step": 1, "steps_per_epoch": 10, "total_epochs": 5, "heartbeat": time.time()}))
        page.reload()
        wait_idle(page)
        expect(page.get_by_role("combobox", name="Run", exact=True)).to_have_value(re.compile("^torn-run"))
        shutil.rmtree(base / "checkpoints" / "torn-run")
        expect(page.get_by_text("This run folder no longer exists")).to_be_visible(timeout=30_000)
        assert_no_errors(page)
        expect(page.get_by_test_id("stAlertContentError")).to_have_count(0)
        assert not page.js_errors, page.js_errors
        shot(page, tmp_path, "deleted_run_folder")
        assert run.is_dir()  # the other run's files are untouched
    finally:
        worker.kill()
        worker.wait()
