"""The training loop in-process on a tiny synthetic set: it learns, saves what it promises, resumes, and every
failure a user will meet ends in status.json with a clear message (never a traceback)."""

from __future__ import annotations

import errno
import json
import math
import os
import subprocess
import sys

import pytest
import torch

from cnnviz.checkpoint import load_checkpoint, read_meta
from cnnviz.training.config import TrainConfig
from cnnviz.training.evaluate import evaluate_checkpoint
from cnnviz.training.optim import compute_loss, lr_at, make_optimizer, param_groups
from cnnviz.training.runs import create_run, read_run
from cnnviz.training.worker import run_training
from tests._synthetic import NUM_CLASSES, install_synthetic, tiny_config


@pytest.fixture
def synthetic(tmp_path_factory):
    return install_synthetic(tmp_path_factory)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small models, one thread


def _train(cfg: TrainConfig):
    run_dir = create_run(cfg.to_dict())
    state = run_training(run_dir, cfg, to_stderr=False)
    return run_dir, state, read_run(run_dir)


def test_short_run_learns_and_writes_every_file(synthetic):
    run_dir, state, info = _train(tiny_config(epochs=4))
    assert state == "done" and info.state == "done", info.message
    assert [m["epoch"] for m in info.metrics] == [1, 2, 3, 4]
    keys = {"epoch", "train_loss", "train_acc", "val_loss", "val_top1", "val_top5", "lr", "images_per_s",
            "epoch_time_s", "elapsed_s", "peak_mem_bytes"}
    assert all(keys <= set(m) for m in info.metrics)
    first, last = info.metrics[0], info.metrics[-1]
    assert last["train_loss"] < first["train_loss"] * 0.8, info.metrics
    assert last["val_top1"] >= 2 / NUM_CLASSES, "no better than chance on a learnable set"
    assert 0 <= last["val_top1"] <= last["val_top5"] <= 1
    assert last["elapsed_s"] >= first["elapsed_s"] > 0 and last["peak_mem_bytes"] > 0
    # the process before its first step (a CPU run): the Training page shows what training added beyond it
    assert 0 < last["base_mem_bytes"] <= last["peak_mem_bytes"]
    st = info.status
    assert st["state"] == "done" and st["total_epochs"] == 4 and st["steps_per_epoch"] == 10
    from cnnviz.device import device_name  # what Compare says the run's seconds were on: this CPU, by name
    assert st["device"] == "cpu" and st["device_name"] == device_name("cpu") and "cores" in st["device_name"]
    for name in ("config.json", "status.json", "metrics.jsonl", "train.log", "optim.pt"):
        assert (run_dir / name).is_file(), name
    # last and best load with nothing but their two files; metadata says what the page needs
    best = load_checkpoint(run_dir / "best.safetensors", expect_arch="lenet5", expect_classes=NUM_CLASSES)
    meta = best.meta
    assert meta["input_size"] == 64 and len(meta["classes"]) == NUM_CLASSES
    assert meta["class_names"][0].startswith("synthetic") and len(meta["mean"]) == 3
    assert meta["metrics"]["val_top1"] == max(m["val_top1"] for m in info.metrics)
    assert meta["train_config"]["arch"] == "lenet5"
    assert read_meta(run_dir / "last.json")["epoch"] == 4
    # the checkpoint evaluates to the same top-1 the run reported for that epoch
    ev = evaluate_checkpoint(run_dir / "best.safetensors", device="cpu")
    assert ev["n"] == NUM_CLASSES * 10
    assert ev["top1"] == pytest.approx(meta["metrics"]["val_top1"], abs=1e-6)


def test_optim_pt_loads_with_weights_only(synthetic):
    run_dir, state, _ = _train(tiny_config(epochs=1, max_steps_per_epoch=3))
    assert state == "done"
    state = torch.load(run_dir / "optim.pt", weights_only=True)  # raises if anything but tensors/containers
    assert state["epoch"] == 1 and state["global_step"] == 3 and state["step_in_epoch"] == 0
    assert state["optimizer"]["state"], "AdamW moments are missing"
    assert isinstance(state["rng"]["torch"], torch.Tensor)
    assert set(state["model"]) == set(load_checkpoint(run_dir / "last.safetensors").model.state_dict())


def test_snapshots_kept_per_epoch_when_asked(synthetic):
    run_dir, state, _ = _train(tiny_config(epochs=2, keep_snapshots=True, max_steps_per_epoch=2))
    assert state == "done"
    snaps = sorted(p.name for p in (run_dir / "epochs").glob("*.safetensors"))
    assert snaps == ["epoch_001.safetensors", "epoch_002.safetensors"]
    assert read_meta(run_dir / "epochs" / "epoch_001.json")["epoch"] == 1


def test_resume_in_process_continues_and_drops_metric_lines_past_the_resume_point(synthetic):
    cfg = tiny_config(epochs=2, max_steps_per_epoch=4)
    run_dir, state, info = _train(cfg)
    assert state == "done"
    # Pretend the worker died after appending epoch 3's line but before saving its resume point (the only
    # window where metrics.jsonl is ahead of optim.pt), then extend the run to 3 epochs.
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps({**info.metrics[-1], "epoch": 3, "val_top1": 0.123456}) + "\n")
        f.write('{"epoch": 4, "torn')
    cfg.epochs = 3
    assert run_training(run_dir, cfg, to_stderr=False) == "done"
    metrics = read_run(run_dir).metrics
    assert [m["epoch"] for m in metrics] == [1, 2, 3]
    assert metrics[-1]["val_top1"] != 0.123456 and metrics[-1]["step"] == 12
    assert "resuming at epoch 3 step 0" in (run_dir / "train.log").read_text()


def test_nan_loss_stops_with_advice_and_saves_no_nan_weights(synthetic, monkeypatch):
    monkeypatch.setenv("CNNVIZ_FAULT", "nan@14")  # NaN from the 4th step of epoch 2
    run_dir, state, info = _train(tiny_config(epochs=3))
    assert state == "failed" and info.reason == "nan"
    assert "NaN" in info.message and "learning rate" in info.message and "0.0003" in info.message
    assert [m["epoch"] for m in info.metrics] == [1]
    last = load_checkpoint(run_dir / "last.safetensors")
    assert last.meta["epoch"] == 1
    assert all(torch.isfinite(p).all() for p in last.model.parameters())


def test_huge_learning_rate_is_caught_as_nan(synthetic):
    _, state, info = _train(tiny_config(epochs=1, lr=1e6, label_smoothing=0.0, warmup_epochs=0))
    assert state == "failed" and info.reason == "nan", info.message


def test_simulated_cuda_oom_suggests_half_the_batch(synthetic, monkeypatch):
    monkeypatch.setenv("CNNVIZ_FAULT", "oom@2")
    run_dir, state, info = _train(tiny_config(batch_size=16))
    assert state == "failed" and info.reason == "oom"
    assert "out of memory" in info.message and "--batch-size 8" in info.message
    # the device lock was released with the worker's end: the next start on the device is allowed
    from cnnviz.training import jobs

    assert jobs.device_busy("cpu", run_dir.parent) is None


@pytest.mark.parametrize("err, reason", [(errno.ENOSPC, "disk_full"), (errno.EACCES, "read_only")])
def test_disk_full_or_read_only_keeps_the_last_good_checkpoint(synthetic, monkeypatch, err, reason):
    import cnnviz.checkpoint as ck

    real = ck.save_checkpoint
    calls = []

    def failing(path, *a, **k):
        calls.append(path)
        if len(calls) > 2:  # epoch 1 saves last + best; epoch 2's first save fails
            raise OSError(err, "simulated")
        return real(path, *a, **k)

    monkeypatch.setattr(ck, "save_checkpoint", failing)
    run_dir, state, info = _train(tiny_config(epochs=3, max_steps_per_epoch=3))
    assert state == "failed" and info.reason == reason
    assert "last good checkpoint is kept" in info.message and str(run_dir) in info.message
    assert load_checkpoint(run_dir / "last.safetensors").meta["epoch"] == 1


def test_missing_dataset_is_a_clear_failure(tmp_path):
    _, state, info = _train(tiny_config(data=str(tmp_path / "nowhere")))
    assert state == "failed" and info.reason == "dataset"
    assert "does not exist" in info.message


@pytest.mark.parametrize("change, words", [
    ({"batch_size": 0}, "batch size must be at least 1"),
    ({"batch_size": 10**7}, "too large"),
    ({"lr": float("nan")}, "learning rate must be a finite number"),
    ({"lr": -0.1}, "learning rate must be greater than 0"),
    ({"epochs": 0}, "at least 1 epoch"),
    ({"optimizer": "rmsprop"}, "optimizer must be one of"),
    ({"arch": "resnet9000"}, "unknown architecture"),
    ({"variant": {"bogus": 1}}, "has no option bogus"),
    ({"variant": {"variant": "retro"}}, "option variant takes 'paper' or 'modern', not 'retro'"),
    ({"label_smoothing": 1.0}, "label smoothing must be less than 1"),
    ({"epochs": 1, "warmup_epochs": 1.0}, "would never come down"),
])
def test_bad_configs_are_refused_with_a_message(change, words):
    with pytest.raises(ValueError, match=words):
        tiny_config(**change).validate()


def test_default_warm_up_leaves_the_run_time_to_anneal():
    # The default was one epoch whatever the run's length: a one-epoch run (the AlexNet starter's) warmed up for
    # its whole length and never annealed. Now it is 10% of the run, at most one epoch, recorded in config.json.
    one, thirty = TrainConfig(arch="lenet5", epochs=1), TrainConfig(arch="lenet5", epochs=30)
    assert one.warmup_epochs == pytest.approx(0.1) and thirty.warmup_epochs == 1.0
    assert TrainConfig.from_dict(one.to_dict()).warmup_epochs == pytest.approx(0.1)
    steps = 100
    warm = round(one.warmup_epochs * steps)
    peak = lr_at(warm, steps, warm, 1.0, "cosine")
    assert peak == pytest.approx(1.0, abs=0.01) and lr_at(steps - 1, steps, warm, 1.0, "cosine") < 0.01 * peak
    assert TrainConfig(arch="lenet5", epochs=1, warmup_epochs=0.0).validate().warmup_epochs == 0.0


def test_input_size_an_architecture_cannot_take():
    from cnnviz.models import InputSizeError

    with pytest.raises(InputSizeError, match="at least 32x32"):
        tiny_config(input_size=16).validate()


def test_huge_batch_for_the_dataset_is_reported(synthetic):
    _, state, info = _train(tiny_config(batch_size=5000))
    assert state == "failed" and info.reason == "config" and "larger than the training set" in info.message


def test_schedules_warm_up_linearly_then_decay():
    total, warm = 100, 10
    cos = [lr_at(s, total, warm, 1.0, "cosine") for s in range(total)]
    assert cos[0] == pytest.approx(0.1) and cos[9] == pytest.approx(1.0)
    assert all(b > a for a, b in zip(cos[:9], cos[1:10], strict=False))  # linear rise
    assert all(b <= a for a, b in zip(cos[10:], cos[11:], strict=False)) and cos[-1] < 0.01
    one = [lr_at(s, total, 0, 1.0, "onecycle") for s in range(total + 1)]
    assert one[0] == pytest.approx(1 / 25) and max(one) == pytest.approx(1.0) and one[30] == pytest.approx(1.0)
    assert one[-1] == pytest.approx(1e-4)


def test_no_weight_decay_on_biases_and_norm_parameters():
    from cnnviz.models import create_model

    model = create_model("resnet18", num_classes=10, input_size=64)
    decay, no_decay = param_groups(model, 5e-4)
    assert no_decay["weight_decay"] == 0 and decay["weight_decay"] == 5e-4
    bn_ids = {id(p) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters()}
    assert bn_ids and bn_ids <= {id(p) for p in no_decay["params"]}
    assert all(p.ndim > 1 for p in decay["params"])


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_cpu_optimizer_is_fused_and_makes_the_default_update(optimizer):
    # Fused on the CPU for speed (docs/benchmarks.md); the update must be the one torch's default path makes,
    # and a state saved by the default path (runs from before) must resume into it.
    from cnnviz.models import create_model

    cfg = TrainConfig(arch="lenet5", optimizer=optimizer, lr=0.01, weight_decay=5e-4)
    torch.manual_seed(0)
    model = create_model("lenet5", num_classes=10)
    twin = create_model("lenet5", num_classes=10)
    twin.load_state_dict(model.state_dict())
    fused = make_optimizer(cfg, model, torch.device("cpu"))
    assert fused.defaults["fused"] is True
    groups = param_groups(twin, 5e-4)
    default = (torch.optim.AdamW(groups, lr=0.01, betas=(cfg.momentum, 0.999)) if optimizer == "adamw" else
               torch.optim.SGD(groups, lr=0.01, momentum=cfg.momentum, nesterov=True))
    for step in range(3):
        for a, b in zip(model.parameters(), twin.parameters(), strict=True):
            a.grad = torch.full_like(a, 0.1 * (step + 1)) * torch.randn_like(a)
            b.grad = a.grad.clone()
        fused.step()
        default.step()
    moved = [(a - b).abs().max().item() for a, b in zip(model.parameters(), twin.parameters(), strict=True)]
    assert max(moved) < 1e-6
    resumed = make_optimizer(cfg, twin, torch.device("cpu"))
    resumed.load_state_dict(default.state_dict())
    before = [p.detach().clone() for p in twin.parameters()]
    resumed.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, twin.parameters(), strict=True))


def test_aux_heads_add_weighted_losses():
    crit = torch.nn.CrossEntropyLoss()
    y = torch.tensor([0, 1])
    main, aux1, aux2 = torch.randn(2, 3), torch.randn(2, 3), torch.randn(2, 3)
    loss, logits = compute_loss((main, aux1, aux2), y, crit, 0.3)
    assert logits is main
    assert loss.item() == pytest.approx((crit(main, y) + 0.3 * (crit(aux1, y) + crit(aux2, y))).item())


def test_googlenet_trains_a_step_with_its_aux_heads(synthetic):
    _, state, info = _train(tiny_config(arch="googlenet", variant={}, epochs=1, batch_size=8,
                                        max_steps_per_epoch=1, lr=0.01))
    assert state == "done", info.message
    assert math.isfinite(info.metrics[0]["train_loss"])


def test_cli_evaluate_json_and_train_errors(synthetic):
    run_dir, state, _ = _train(tiny_config(epochs=1, max_steps_per_epoch=3))
    r = subprocess.run([sys.executable, "-m", "cnnviz", "evaluate", "--checkpoint", str(run_dir / "last.safetensors"),
                        "--device", "cpu", "--format", "json"], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"checkpoint", "top1", "top5", "n"} and out["n"] == NUM_CLASSES * 10
    assert 0 <= out["top1"] <= out["top5"] <= 1
    r = subprocess.run([sys.executable, "-m", "cnnviz", "train", "--arch", "lenet5", "--batch-size", "0"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "batch size must be at least 1" in r.stderr and "Traceback" not in r.stderr


def test_worker_imports_no_ui_libraries():
    code = ("import sys, cnnviz.train, cnnviz.training.jobs, cnnviz.training.runs, cnnviz.cli.training\n"
            "bad = [m for m in ('streamlit', 'plotly', 'captum') if m in sys.modules]\n"
            "assert not bad, bad\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def test_periodic_mid_epoch_resume_points(synthetic):
    run_dir, state, _ = _train(tiny_config(epochs=1, save_every_min=1e-5))
    assert state == "done"
    assert "mid-epoch resume point saved at step" in (run_dir / "train.log").read_text()
    assert torch.load(run_dir / "optim.pt", weights_only=True)["step_in_epoch"] == 0  # the epoch-end save is last


@pytest.mark.parametrize(("cpuinfo", "native"), [
    ("flags\t\t: fpu sse avx2 avx512f avx512bw avx512vl avx512dq\n", False),  # Skylake: bf16 only emulated
    ("flags\t\t: fpu avx2 avx512f avx512bw avx512_bf16 avx512_vnni\n", True),  # Zen 4 / Cooper Lake
    ("flags\t\t: fpu avx512f amx_bf16 amx_tile amx_int8\n", True),  # Sapphire Rapids
    ("Features\t: fp asimd sve bf16 i8mm\n", True),  # Arm (Graviton 3)
    ("Features\t: fp asimd\n", False),
])
def test_cpu_bf16_autocast_only_where_the_cpu_computes_bf16_natively(cpuinfo, native):
    """Training on the CPU uses bf16 autocast only where it is a speed-up (1.4-2.3x measured on AVX512-BF16);
    on an AVX512 CPU without it (Skylake) oneDNN would emulate bf16, slower than fp32."""
    from cnnviz.device import cpu_has_native_bf16

    assert cpu_has_native_bf16(cpuinfo) is native


def test_weight_average_is_evaluated_saved_and_resumed(synthetic):
    """EMA on: the saved checkpoint is the average (it evaluates to the recorded top-1), the live weights'
    accuracy is recorded beside it, and a resumed run continues the same average."""
    cfg = tiny_config(epochs=2, max_steps_per_epoch=4, ema_decay=0.9, ema_every=2, tta_flip=True)
    run_dir, state, info = _train(cfg)
    assert state == "done", info.message
    m = info.metrics[-1]
    assert {"val_top1_raw", "val_top1_tta", "val_top5_tta"} <= set(m)
    assert 0 <= m["val_top1_tta"] <= m["val_top5_tta"] <= 1
    resume = torch.load(run_dir / "optim.pt", weights_only=True)
    assert resume["ema"]["updates"] == 4  # 8 steps, every 2nd
    saved = load_checkpoint(run_dir / "last.safetensors").model.state_dict()
    live, avg = resume["model"], resume["ema"]["model"]
    key = next(k for k, v in live.items() if v.is_floating_point() and v.ndim > 1)
    assert torch.equal(saved[key], avg[key]) and not torch.equal(saved[key], live[key])
    ev = evaluate_checkpoint(run_dir / "last.safetensors", device="cpu")
    assert ev["top1"] == pytest.approx(m["val_top1"], abs=1e-6)
    cfg.epochs = 3
    assert run_training(run_dir, cfg, to_stderr=False) == "done"
    assert torch.load(run_dir / "optim.pt", weights_only=True)["ema"]["updates"] == 6


def test_flip_tta_averages_the_mirror_images_logits():
    from cnnviz.training.evaluate import evaluate

    class Asymmetric(torch.nn.Module):  # class 0 when the left half is brighter, with a bias towards 1
        def forward(self, x):
            left, right = x[..., : x.shape[-1] // 2].mean((1, 2, 3)), x[..., x.shape[-1] // 2:].mean((1, 2, 3))
            return torch.stack([left - right, right - left + 0.5], 1)

    x = torch.zeros(4, 3, 8, 8)
    x[:, :, :, :4] = 1.0  # plain: logits (1, -0.5) -> 0; mirror: (-1, 1.5) -> 1; their sum (0, 1) -> 1
    y = torch.zeros(4, dtype=torch.long)
    r = evaluate(Asymmetric(), [(x, y)], torch.device("cpu"), tta_flip=True)
    assert r["top1"] == 1.0 and r["top1_tta"] == 0.0 and r["top5_tta"] == 1.0


def test_ema_settings_are_checked():
    with pytest.raises(ValueError, match="EMA decay"):
        tiny_config(ema_decay=1.0).validate()
    with pytest.raises(ValueError, match="EMA interval"):
        tiny_config(ema_every=0).validate()


def test_device_name_says_which_kind_of_device_a_run_trained_on():
    """Compare's device column: a CPU by its model and cores; MPS as the Apple GPU (the CPU's name would say the
    run was on the CPU); CUDA by the card's name (not testable without one)."""
    import os

    from cnnviz.device import device_name

    assert device_name("cpu").endswith(f"({os.cpu_count()} cores)")
    assert device_name("mps") == "Apple GPU (MPS)"
