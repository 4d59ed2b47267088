"""cnnviz.views.training: the Training page's defaults, time estimate and curves (issue 11)."""

from __future__ import annotations

import json
import os
import time

import pytest
import torch

from cnnviz.training.config import TrainConfig
from cnnviz.training.runs import create_run, read_run
from cnnviz.training.worker import run_training
from cnnviz.views import training as tv


def test_the_synthetic_demo_learns_with_its_defaults():
    """Issue 11: the demo's old defaults (SGD lr 0.1, batch 64, 2 epochs; LeNet-5's paper variant) peaked
    near chance and fell. With the demo defaults the page gives for the synthetic set, LeNet-5 learns the full
    synthetic set (10 classes, chance 10%) and ends near its best."""
    defaults = tv.form_defaults("lenet5", synthetic=True)
    assert defaults["train_lenet5_variant"] == "modern"
    cfg = TrainConfig(arch="lenet5", variant={"variant": defaults["train_lenet5_variant"]}, data="synthetic",
                      epochs=defaults["train_epochs"], batch_size=defaults["train_batch"],
                      optimizer=defaults["train_opt"], device="cpu", heartbeat_s=5.0).validate()
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = create_run(cfg.to_dict())
        assert run_training(run, cfg, to_stderr=False) == "done"
    finally:
        torch.set_num_threads(n)
    top1 = [m["val_top1"] for m in read_run(run).metrics]
    assert max(top1) >= 0.6 and top1[-1] >= max(top1) - 0.1, top1


def test_defaults_follow_the_dataset():
    tiny, demo = tv.form_defaults("resnet18", False), tv.form_defaults("resnet18", True)
    assert (tiny["train_epochs"], tiny["train_batch"], tiny["train_opt"]) == (30, 256, "sgd")
    assert (demo["train_epochs"], demo["train_batch"], demo["train_opt"]) == (5, 32, "adamw")
    assert tv.form_defaults("lenet5", False)["train_lenet5_variant"] == "paper"  # the card's default


def test_epoch_axis_title_only_under_the_bottom_row():
    """Issue 11: the "epoch" title under the top row sat on the bottom row's subplot titles."""
    metrics = [{"epoch": e, "train_loss": 1.0 / e, "val_top1": 0.1 * e, "lr": 0.1, "images_per_s": 100.0}
               for e in (1, 2, 3)]
    layout = tv.run_curves_figure(metrics).layout
    titles = {name: layout[name].title.text for name in ("xaxis", "xaxis2", "xaxis3", "xaxis4")}
    assert titles == {"xaxis": None, "xaxis2": None, "xaxis3": "epoch", "xaxis4": "epoch"}


def _run_with_speed(run_id: str, arch: str, data: str, batch: int, rate: float, state: str = "done"):
    run = create_run({"arch": arch, "data": data, "batch_size": batch, "epochs": 2}, run_id=run_id)
    status = {"state": state, "device": "cpu", "device_name": "AMD EPYC (2 cores)", "created": time.time(),
              "heartbeat": time.time()}
    if state == "running":
        status["pid"] = os.getpid()  # a live process: read_run keeps it running
    (run / "status.json").write_text(json.dumps(status))
    (run / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e, "images_per_s": rate}) + "\n"
                                               for e in (1, 2)))
    return read_run(run)


def test_estimate_from_an_earlier_run_of_the_same_architecture_and_dataset():
    synthetic = next(c for c in tv.dataset_choices() if c.synthetic)
    runs = [_run_with_speed("other-arch", "alexnet", "synthetic", 32, 10.0),
            _run_with_speed("same", "lenet5", "synthetic", 32, 500.0)]
    est = tv.epoch_estimate("lenet5", {}, synthetic, 32, "cpu", runs,
                            measure=lambda *a: pytest.fail("an earlier run is there: nothing to measure"))
    assert est.seconds == pytest.approx(1000 / 500.0)  # 1,000 synthetic training images at 500 images/s
    assert "from the earlier run same" in est.text and "500 images/s" in est.text
    assert "on AMD EPYC (2 cores)" in est.text  # the CPU by name, as the run recorded it


def test_estimate_from_a_measured_step_and_never_while_a_job_runs():
    synthetic = next(c for c in tv.dataset_choices() if c.synthetic)
    step = {"s_per_image": 0.01, "batch_size": 16, "device": "cpu", "amp": False, "macs": 5_000_000}
    est = tv.epoch_estimate("lenet5", {}, synthetic, 32, "cpu", [], measure=lambda *a: step)
    assert est.seconds == pytest.approx(1000 * 0.01 + 200 * 0.01 / 3)
    assert "measured now" in est.text and "5M MACs per image" in est.text
    busy = [_run_with_speed("busy", "alexnet", "synthetic", 32, 10.0, state="running")]
    est = tv.epoch_estimate("lenet5", {}, synthetic, 32, "cpu", busy,
                            measure=lambda *a: pytest.fail("must not measure while a job runs"))
    assert est.seconds is None and "a training job is running (busy)" in est.text


def test_measured_step_is_real():
    step = tv.measure_train_step("lenet5", {"variant": "modern"}, batch_size=4, device="cpu", steps=1)
    assert 0 < step["s_per_image"] < 60 and step["macs"] > 0 and step["device"] == "cpu"


def test_measured_step_uses_the_training_loops_optimizer(monkeypatch):
    # The estimate times the step training will run: the loop's fused optimizer, not a slower default one
    # (on the CPU the default path took about 6x longer for AlexNet's optimizer step).
    import cnnviz.training.optim as optim

    made, real = [], optim.make_optimizer

    def spy(cfg, model, device):
        made.append(real(cfg, model, device))
        return made[-1]

    monkeypatch.setattr(optim, "make_optimizer", spy)
    tv.measure_train_step("lenet5", {"variant": "modern"}, batch_size=4, device="cpu", steps=1)
    assert len(made) == 1 and made[0].defaults["fused"] is True


def test_a_sub_second_estimate_reads_under_1s_not_about_0s():
    est = tv.EpochEstimate(0.46, "from a run")
    assert est.text == "Estimated time per epoch: under 1s (from a run)."
    from cnnviz.views.format import duration_text

    assert duration_text(0.46) == "under 1s" and duration_text(0) == "0s" and duration_text(65) == "1m 05s"
