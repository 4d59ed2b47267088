"""The Training page in AppTest: the form builds the config jobs.start gets, errors are clean messages, runs
in every state render (dead worker, torn files, deleted folder), and delete asks first. Polling (the
fragment's run_every) is not ticked by AppTest: tests/e2e/test_training.py covers it in a browser."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cnnviz.paths import checkpoints_dir
from cnnviz.training import jobs
from cnnviz.training.runs import create_run
from cnnviz.views.training import SYNTHETIC_LABEL, zoo_recipe_form
from tests._synthetic import tiny_config

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "training.py")


def _run(at: AppTest) -> AppTest:
    at.run(timeout=120)
    assert not at.exception, [e.value for e in at.exception]
    return at


def _click(at: AppTest, button) -> AppTest:
    button.click()
    return _run(at)


def _start(at: AppTest) -> AppTest:
    return _click(at, next(b for b in at.button if b.label == "Start"))


def _fake_run(name: str, state: str = "running", pid: int | None = 2**22 + 4321, epochs_done: int = 2,
              torn: bool = False) -> Path:
    run = create_run({**tiny_config(epochs=5).to_dict()}, run_id=name)
    status = {"state": state, "pid": pid, "epoch": epochs_done + 1, "step": 3, "steps_per_epoch": 10,
              "total_epochs": 5, "message": "training", "heartbeat": time.time(), "device": "cpu"}
    (run / "status.json").write_text('{"state": "runn' if torn else json.dumps(status))
    lines = [{"epoch": e, "train_loss": 2.0 / e, "train_acc": 0.2 * e, "val_loss": 2.1 / e, "val_top1": 0.15 * e,
              "val_top5": 0.3 * e, "lr": 0.01, "images_per_s": 500.0, "epoch_time_s": 3.0, "elapsed_s": 3.0 * e,
              "peak_mem_bytes": 300 * 2**20} for e in range(1, epochs_done + 1)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines))
    (run / "train.log").write_text("epoch 1/5: train loss 2.0\n")
    return run


def test_form_offers_every_architecture_and_the_labelled_synthetic_set():
    at = _run(AppTest.from_file(PAGE))
    from cnnviz import list_models

    assert at.selectbox(key="train_arch").options == [__import__("cnnviz").get_card(n).display_name
                                                      for n in list_models()]
    assert SYNTHETIC_LABEL in at.selectbox(key="train_data").options
    assert "No runs yet" in at.info[0].value
    # where Tiny ImageNet is looked for, and how to point the page at a copy prepared elsewhere
    from cnnviz.paths import data_dir

    help_text = at.selectbox(key="train_data").help
    assert str(data_dir()) in help_text and "CNNVIZ_DATA" in help_text


def test_start_passes_the_form_to_jobs_start_and_shows_the_run(monkeypatch):
    seen = {}

    def fake_start(cfg, force=False):
        seen["cfg"], seen["force"] = cfg, force
        return create_run(cfg.to_dict(), run_id="started-run")

    monkeypatch.setattr(jobs, "start", fake_start)
    at = _run(AppTest.from_file(PAGE))
    at.selectbox(key="train_arch").set_value("lenet5")
    _run(at)
    at.selectbox(key="train_data").set_value(SYNTHETIC_LABEL)
    _run(at)  # the dataset is chosen first (its defaults follow at once), then the fields
    at.number_input(key="train_epochs").set_value(3)
    at.number_input(key="train_batch").set_value(32)
    at.selectbox(key="train_opt").set_value("adamw")
    at.checkbox(key="train_force").check()
    _start(at)
    cfg = seen["cfg"]
    assert (cfg.arch, cfg.data, cfg.epochs, cfg.batch_size, cfg.optimizer) == ("lenet5", "synthetic", 3, 32, "adamw")
    assert cfg.lr == pytest.approx(2e-3) and seen["force"] is True
    assert at.selectbox(key="train_run").value == "started-run"
    assert any("queued" in i.value for i in at.info)


def test_busy_device_is_a_clean_message(monkeypatch):
    def busy(cfg, force=False):
        raise jobs.JobBusy("another training job (other-run) is running on cpu; wait for it to finish, stop it, "
                           "or allow a second job on this device")

    monkeypatch.setattr(jobs, "start", busy)
    at = _run(AppTest.from_file(PAGE))
    _start(at)
    assert "Training did not start: another training job (other-run)" in at.error[0].value


def test_a_job_holding_the_device_before_its_folder_exists_is_awaited_not_no_runs_yet():
    """The second of two quick Start clicks reruns the page while the first start holds the device lock but has
    not made its folder: the page says which run is starting (and polls for it, a fragment AppTest does not
    tick), never "no runs yet" and nothing more; once the folder exists it shows the run."""
    from cnnviz.fsutil import try_lock
    from cnnviz.training.locks import device_lock_path

    fd = try_lock(device_lock_path("cpu"), {"run": "lenet5-coming"})
    try:
        at = _run(AppTest.from_file(PAGE))
        assert [i.value.replace("\\", "") for i in at.info] == ["Starting lenet5-coming: it appears here in a moment."]
        _fake_run("lenet5-coming", state="queued", pid=None, epochs_done=0)
        _run(at)
        assert at.selectbox(key="train_run").value == "lenet5-coming"
        assert not any(i.value.startswith("Starting") for i in at.info)
    finally:
        os.close(fd)
    assert "No runs yet" not in [i.value for i in _run(AppTest.from_file(PAGE)).info]


def test_dead_worker_shows_failed_with_resume_curves_and_memory():
    _fake_run("dead-run")
    at = _run(AppTest.from_file(PAGE))
    assert "stopped unexpectedly after epoch 2" in at.error[0].value
    assert at.button(key="train_resume") is not None and at.button(key="train_delete") is not None
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = {t["name"] for t in spec["data"]}
    assert {"train loss", "val loss", "val top-1 (%)", "val top-5 (%)", "learning rate", "images/s"} <= names
    assert at.metric[0].value == "30.0%"  # val top-1 of epoch 2
    assert at.metric[3].value == "315MB"  # 300 * 2**20 bytes, in decimal units as on every page
    assert any("table estimate" in c.value for c in at.caption)


def test_a_cpu_runs_memory_says_what_training_added_beyond_the_process():
    """A CPU run's peak is the whole process (PyTorch, Python, the data): 1 GB beside a 13 MB estimate read like
    a bug. Runs that record the process before their first step say what training itself added."""
    run = _fake_run("cpu-run", state="done")
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    lines[-1].update(peak_mem_bytes=1_070_000_000, base_mem_bytes=1_020_000_000)
    (run / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines))
    at = _run(AppTest.from_file(PAGE))
    said = next(c.value for c in at.caption if c.value.startswith("Memory:"))
    assert "peaked at 1.07GB" in said and "1.02GB was in use before the first step" in said, said
    assert "training used up to 50MB more" in said and "the layer table estimates" in said, said
    # a peak reached while setting up: said as such, never "added -" (the first wording, seen in Chromium)
    lines[-1].update(peak_mem_bytes=1_070_000_000, base_mem_bytes=1_070_000_000)
    (run / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines))
    said = next(c.value for c in _run(AppTest.from_file(PAGE)).caption if c.value.startswith("Memory:"))
    assert "the peak came while setting up" in said and " -" not in said, said


def test_torn_status_and_a_deleted_folder_do_not_break_the_page():
    _fake_run("torn-run", torn=True)
    at = _run(AppTest.from_file(PAGE))
    assert any("status" in c.value and "damaged" in c.value for c in at.caption)
    import shutil

    shutil.rmtree(checkpoints_dir() / "torn-run")
    _run(at)
    assert "No runs yet" in at.info[0].value


def test_delete_asks_for_confirmation_first():
    run = _fake_run("oldrun", state="done", pid=None)
    at = _run(AppTest.from_file(PAGE))
    _click(at, at.button(key="train_delete"))
    assert run.exists() and "Delete oldrun" in at.warning[0].value
    _click(at, at.button(key="train_no"))
    assert run.exists()
    _click(at, at.button(key="train_delete"))
    _click(at, at.button(key="train_yes"))
    assert not run.exists()


def test_choosing_the_synthetic_set_updates_the_defaults_at_once():
    """Issue 11: choosing "Synthetic" inside the form left Epochs 30 and Batch 256 until Start was pressed.
    The defaults follow the dataset as soon as it is chosen, LeNet-5's demo variant included."""
    from cnnviz.data import make_synthetic
    from cnnviz.paths import data_dir

    make_synthetic(data_dir() / "tiny-imagenet-200", num_classes=3, train_per_class=2, val_per_class=2)
    at = _run(AppTest.from_file(PAGE))
    at.selectbox(key="train_arch").set_value("lenet5")
    _run(at)
    assert at.selectbox(key="train_data").value.spec == "auto"  # Tiny ImageNet is there: it comes first
    assert (at.number_input(key="train_epochs").value, at.number_input(key="train_batch").value) == (30, 256)
    assert at.selectbox(key="train_lenet5_variant").value == "paper"
    # an option whose default is "the model decides" (None) shows that, not Streamlit's empty "Choose an option"
    assert at.selectbox(key="train_lenet5_output").value == "model default"
    at.selectbox(key="train_data").set_value(SYNTHETIC_LABEL)
    _run(at)  # no Start: the form is not submitted
    assert (at.number_input(key="train_epochs").value, at.number_input(key="train_batch").value) == (5, 32)
    assert at.selectbox(key="train_opt").value == "adamw"
    assert at.selectbox(key="train_lenet5_variant").value == "modern"
    assert any("learns this set slowly" in c.value for c in at.caption)  # the page says why
    at.selectbox(key="train_data").set_value(at.selectbox(key="train_data").options[0])
    _run(at)
    assert (at.number_input(key="train_epochs").value, at.number_input(key="train_batch").value) == (30, 256)


def test_an_epoch_time_estimate_appears_before_start():
    """Issue 11: no time estimate before Start. From an earlier run of the same architecture (saying which),
    else from a short training step measured on this machine."""
    at = _run(AppTest.from_file(PAGE))
    at.selectbox(key="train_arch").set_value("lenet5")
    _run(at)
    estimate = next(c.value for c in at.caption if c.value.startswith("Estimated time per epoch"))
    assert "measured now" in estimate and "MACs per image" in estimate, estimate
    _fake_run("lenet-before", state="done", pid=None)  # tiny_config: lenet5 on the synthetic set, 500 img/s
    _run(at)
    estimate = next(c.value for c in at.caption if c.value.startswith("Estimated time per epoch"))
    assert "from the earlier run lenet\\-before" in estimate or "from the earlier run lenet-before" in estimate
    assert "500 images/s" in estimate


@pytest.mark.parametrize("arch", ["alexnet", "googlenet", "resnet18"])
def test_the_zoo_recipe_button_fills_the_form_with_what_the_zoo_trains(monkeypatch, arch):
    """A user who wants to reproduce (or extend) a shipped starter from the form: one click fills in the zoo
    member's variant, optimizer, learning rate, epochs, warm-up, weight average and flip TTA, and Start trains
    the configuration the zoo itself builds for that family (cnnviz.zoo.recipe.config_for)."""
    from cnnviz import get_card
    from cnnviz.zoo.recipe import MEMBERS, Recipe, config_for

    seen = {}

    def fake_start(cfg, force=False):
        seen["cfg"] = cfg
        return create_run(cfg.to_dict(), run_id="zoo-like")

    monkeypatch.setattr(jobs, "start", fake_start)
    at = _run(AppTest.from_file(PAGE))
    at.selectbox(key="train_arch").set_value(arch)
    _run(at)
    assert at.number_input(key="train_ema").value == 0.0 and not at.checkbox(key="train_tta").value
    _click(at, at.button(key="train_zoo"))
    said = zoo_recipe_form(arch)[1]  # what the page says it filled in (Markdown-escaped on the page)
    assert any(c.value.replace("\\", "") == said for c in at.caption), said
    assert at.number_input(key="train_epochs").value == 10 and at.checkbox(key="train_tta").value
    _start(at)
    member = next(m for m in MEMBERS if m.arch == arch)
    zoo = config_for(member, Recipe(), "zoo-x")
    got = seen["cfg"]
    for name in ("arch", "epochs", "batch_size", "optimizer", "weight_decay", "schedule", "augment", "amp",
                 "channels_last", "ema_every", "tta_flip", "input_size", "seed"):
        assert getattr(got, name) == getattr(zoo, name), name
    for name in ("lr", "warmup_epochs", "label_smoothing", "ema_decay"):  # through float widgets
        assert getattr(got, name) == pytest.approx(getattr(zoo, name)), name
    defaults = get_card(arch).default_variant  # the form sends every option; the zoo only the member's own
    assert {**defaults, **got.variant} == {**defaults, **zoo.variant}


def test_no_zoo_recipe_button_for_an_architecture_the_zoo_does_not_train():
    at = _run(AppTest.from_file(PAGE))
    at.selectbox(key="train_arch").set_value("vgg19")
    _run(at)
    assert not [b for b in at.button if b.key == "train_zoo"]


def _prepared(timeout: float = 120.0):
    """Wait for the background preparation (cnnviz.data.job) to end; its final status."""
    from cnnviz.data import job as data_job

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = data_job.read_job()
        if job is not None and not job.active:
            return job
        time.sleep(0.1)
    raise AssertionError(f"the preparation did not end in {timeout} s: {data_job.read_job()}")


def test_tiny_imagenet_is_prepared_from_the_page_and_the_form_opens_on_it(tmp_path):
    """A fresh clone has no data: Top-9, the probes and Predict say "prepare it on the Training page", so the
    page offers it. From a zip on this machine (the download takes the same path after fetching; see
    tests/test_data_job.py), as a background job; once it is done, the Dataset box holds Tiny ImageNet and the
    form its defaults. A missing file or an empty path is a message at once, and the page keeps working."""
    from cnnviz.data import find_dataset
    from tests.data_helpers import mini_tree, zip_tree

    zip_path = zip_tree(mini_tree(tmp_path / "tree"), tmp_path / "tiny-imagenet-200.zip")
    at = _run(AppTest.from_file(PAGE))
    assert at.expander[0].label.startswith("Tiny ImageNet is not prepared on this machine")
    assert at.selectbox(key="train_data").options == [SYNTHETIC_LABEL]
    at.radio(key="prep_source").set_value("local")
    _run(at)
    _click(at, at.button(key="prep_go"))  # no path yet
    assert any("Give the path" in w.value for w in at.warning)
    at.text_input(key="prep_path").set_value(str(tmp_path / "nowhere.zip"))
    _click(at, at.button(key="prep_go"))
    assert "Tiny ImageNet was not prepared" in at.error[0].value and "nowhere.zip does not exist" in at.error[0].value
    assert find_dataset(None) is None
    at.text_input(key="prep_path").set_value(str(zip_path))
    _click(at, at.button(key="prep_go"))
    assert _prepared().state == "done"
    _run(at)  # what the progress fragment does when the job has ended (AppTest does not tick run_every)
    assert find_dataset(None) is not None
    assert not at.expander or not at.expander[0].label.startswith("Tiny ImageNet is not prepared")
    data = at.selectbox(key="train_data").value
    assert data.spec == "auto" and not data.synthetic
    assert (at.number_input(key="train_epochs").value, at.number_input(key="train_batch").value) == (30, 256)


def test_a_running_preparation_shows_its_progress_to_every_visitor_and_its_failure_after():
    """A preparation started elsewhere (another tab, the CLI, before a server restart) is followed here: its
    stage, count and time on a progress bar, and a Stop button. A failed one says why, above the form to try
    again."""
    import os

    from cnnviz import paths
    from cnnviz.data import job as data_job
    from cnnviz.fsutil import atomic_write_json, try_lock

    status = paths.data_dir() / data_job.STATUS_FILE
    fd = try_lock(paths.data_dir() / data_job.LOCK_FILE)  # a live worker holds this
    try:
        atomic_write_json(status, {"state": "running", "source": "download", "stage": "decode train",
                                   "done": 52_000, "total": 100_000, "started": time.time() - 30})
        at = _run(AppTest.from_file(PAGE))
        bars = [p.proto.text for p in at.get("progress")]
        assert bars and bars[0].startswith("decode train: 52,000 / 100,000 images (")
        assert at.button(key="prep_stop").label == "Stop"
        assert not [b for b in at.button if b.key == "prep_go"]  # no second Prepare while one runs
    finally:
        os.close(fd)
    atomic_write_json(status, {"state": "failed", "source": "download", "message": "the server said 503"})
    at = _run(AppTest.from_file(PAGE))
    assert at.error[0].value == "Tiny ImageNet was not prepared: the server said 503"
    assert at.button(key="prep_go")


def test_the_download_choice_starts_the_official_download(monkeypatch):
    """The page's download option hands "download" to the background job (whose fetch, md5 check, stop and
    resume tests/test_data_job.py and tests/test_data_download.py cover against local servers)."""
    from cnnviz.data import job as data_job

    asked = []
    monkeypatch.setattr(data_job, "start", lambda source: asked.append(source))
    at = _run(AppTest.from_file(PAGE))
    _click(at, at.button(key="prep_go"))  # the download is the default source
    assert asked == ["download"]
