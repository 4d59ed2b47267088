"""bench/bench_zoo.py, the GPU session's benchmark: what it saves when a part fails, and how its numbers reach
docs/benchmarks.md and docs/zoo.md (stamped with the card they ran on, MFU only against the same card's ceiling).

The measurements themselves need the GPU; these tests replace them with fakes and check the plumbing a GPU
session depends on: the session has one try, and a failure there used to lose every number of the call."""

from __future__ import annotations

import json

import pytest

import bench._report as report_mod
from bench import bench_zoo
from cnnviz.zoo.report import rows


@pytest.fixture
def fake_parts(monkeypatch):
    """The four device parts, instant; the trick ladder fails the way a compiler error would."""
    monkeypatch.setattr(bench_zoo, "ceilings", lambda dev, small=False: {
        "bf16_matmul_flops": 9e14, "matmul_n": 8192, "copy_bytes_per_s": 4e12})
    monkeypatch.setattr(bench_zoo, "members_rates", lambda fams, dev, small, steps: {
        f: {"images_per_s": 1000.0, "warmup_s": 2.0, "epoch_s": 100.0} for f in fams})

    def broken(*a, **k):
        raise RuntimeError("Input type (BFloat16) and bias type (float) should be the same")

    monkeypatch.setattr(bench_zoo, "tricks", broken)
    monkeypatch.setattr(bench_zoo, "concurrency", lambda fams, dev, small, steps: {
        "families": fams, "steps": steps, "sequential_s": 10.0, "concurrent_s": 8.0, "speedup": 1.25})


def test_a_failed_part_costs_only_itself_and_the_file_keeps_the_rest(fake_parts, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CNNVIZ_DATA", str(tmp_path / "data"))  # main() sets a default for CPU runs: not ours
    out = tmp_path / "bench_device.json"
    assert bench_zoo.main(["device", "--device", "cpu", "--small", "--families", "lenet5", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    # the parts before and after the failing one were measured and saved
    assert data["bf16_matmul_flops"] == 9e14 and data["members"]["lenet5"]["images_per_s"] == 1000.0
    assert data["concurrency"]["speedup"] == 1.25
    assert "tricks" not in data and "BFloat16" in data["errors"]["tricks"]
    # where and when it ran, for the stamp written later on another machine
    assert data["machine"] and data["measured_at"].endswith("UTC")
    assert "failed parts: tricks" in capsys.readouterr().out


def test_the_section_is_stamped_with_the_card_it_ran_on_not_this_machine(tmp_path, monkeypatch):
    doc = tmp_path / "benchmarks.md"
    monkeypatch.setattr(report_mod, "DOC", doc)
    bench_file = tmp_path / "bench_device.json"
    bench_file.write_text(json.dumps({
        "device_name": "NVIDIA H200", "torch": "2.9.0", "batch_size": 256, "bf16_matmul_flops": 7.5e14,
        "matmul_n": 8192, "copy_bytes_per_s": 4e12,
        "machine": "Intel Xeon Platinum 8480+, 16 cores, torch 2.9.0, 16 threads, GPU NVIDIA H200",
        "measured_at": "2026-11-28 01:50 UTC",
        "members": {"lenet5": {"images_per_s": 50000.0, "warmup_s": 3.0, "epoch_s": 2.0},
                    "alexnet": {"error": "RuntimeError: out of memory"}},
        "tricks": [{"family": "alexnet", "setting": "fp32, NCHW", "images_per_s": 900.0, "warmup_s": 1.0,
                    "gain": None},
                   {"family": "alexnet", "setting": "+ torch.compile", "error": "BackendCompilerFailed: boom"}],
        "errors": {"concurrency": "RuntimeError: a concurrent member failed"}}))
    input_file = tmp_path / "bench_dataloader.json"
    input_file.write_text(json.dumps({
        "device_name": "NVIDIA H100 80GB HBM3", "torch": "2.9.0", "machine": "earlier card",
        "measured_at": "2026-11-27 10:00 UTC",
        "dataloader": {"model": "resnet18 (3x3 stem)", "batch_size": 256, "workers": 16,
                       "dataloader_images_per_s": 14000.0, "pipeline_images_per_s": 16800.0, "ratio": 1.2}}))
    bench_zoo.write([str(input_file)])
    bench_zoo.write([str(bench_file)])  # a later session measured only the device parts
    text = doc.read_text()
    # the input pipeline's section (measured earlier, elsewhere) keeps its numbers and its own stamp
    assert "DataLoader (16 workers) 14,000 img/s" in text and "_Measured 2026-11-27 10:00 UTC on: earlier card._" in text
    assert "_Measured 2026-11-28 01:50 UTC on: Intel Xeon Platinum 8480+, 16 cores, torch 2.9.0" in text
    assert report_mod.machine() not in text  # not the machine that wrote the file
    assert "750 TFLOP/s" in text
    assert "| alexnet | failed: RuntimeError: out of memory |" in text  # a failed member has its row
    assert "| alexnet | + torch.compile | failed: BackendCompilerFailed: boom |" in text
    assert "concurrency: RuntimeError: a concurrent member failed" in text
    # a member that was measured has an MFU: 6 x MACs x img/s over the ceiling
    lenet_row = next(line for line in text.splitlines() if line.startswith("| lenet5 "))
    assert lenet_row.rstrip(" |").endswith("%")


def _result(card: str) -> dict:
    return {"family": "lenet5", "arch": "lenet5", "model_args": {"variant": "modern", "num_classes": 200,
                                                                 "input_size": 64},
            "val_top1": 0.2, "images_per_s": 50_000.0, "device_name": card}


def test_mfu_only_against_a_ceiling_measured_on_the_same_card():
    same = rows([_result("NVIDIA H200")], 7.5e14, "NVIDIA H200")[0]
    assert same["mfu"] is not None and 0 < same["mfu"] < 1
    other = rows([_result("NVIDIA H200")], 9.9e14, "NVIDIA H100 80GB HBM3")[0]
    assert other["mfu"] is None and other["mfu_missing"] == "ceiling measured on NVIDIA H100 80GB HBM3"
    none = rows([_result("NVIDIA H200")])[0]
    assert none["mfu"] is None and none["mfu_missing"] == "no ceiling measured"
    # the achieved training FLOP/s needs no ceiling: every row has it, and MFU is it over the ceiling
    macs = same["macs"]
    assert none["flops_per_s"] == other["flops_per_s"] == same["flops_per_s"] == 6 * macs * 50_000.0
    assert same["mfu"] == pytest.approx(same["flops_per_s"] / 7.5e14)


def test_a_result_trained_before_its_member_changed_says_so_in_the_recipe_table():
    """docs/zoo.md's 'why' column comes from the member as it is now; a result trained with other settings (the
    first zoo's GoogLeNet had the paper's stem) must not be described as if it had the new ones."""
    from cnnviz.zoo.recipe import member
    from cnnviz.zoo.report import recipe_lines

    def row(variant):
        return {"family": "googlenet", "arch": "googlenet",
                "config": {"variant": variant, "optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.05}}

    old, = [line for line in recipe_lines([row({"aux_logits": True})]) if line.startswith("| googlenet")]
    assert "This result predates that:** it trained with aux_logits=True; the zoo now trains aux_logits=True, " \
           "stem=small." in old
    now, = [line for line in recipe_lines([row(member("googlenet").variant)]) if line.startswith("| googlenet")]
    assert "predates" not in now and "small stem" in now


def test_a_result_trained_with_another_optimizer_than_its_member_has_now_says_so():
    """The first zoo's LeNet-5 trained with AdamW at 0.002; when the member's optimizer or learning rate changes,
    its 'why' (which explains the new choice) must not read as if the old result had it. The learning rate is
    the member's per-256 rate scaled to the run's batch, so a run at batch 128 with half the rate agrees."""
    from cnnviz.zoo.recipe import Member, settings_since

    m = Member("lenet5", "lenet5", {"variant": "modern"}, "sgd", 0.05)
    old = {"variant": {"variant": "modern"}, "optimizer": "adamw", "lr": 0.002, "weight_decay": 0.05,
           "batch_size": 256}
    assert settings_since(m, old) == ("adamw lr 0.002, weight decay 0.05", "sgd lr 0.05, weight decay 0.0005")
    same = {"variant": {"variant": "modern"}, "optimizer": "sgd", "lr": 0.025, "weight_decay": 5e-4, "batch_size": 128}
    assert settings_since(m, same) is None
    both = {**old, "variant": {"variant": "paper"}}
    assert settings_since(m, both) == ("variant=paper; adamw lr 0.002, weight decay 0.05",
                                       "variant=modern; sgd lr 0.05, weight decay 0.0005")


def test_the_time_plot_labels_its_log_axis_in_plain_seconds():
    """docs/zoo_acc_vs_time.png spans 19 s to 128 s, where matplotlib labels the minor ticks "2 x 10^1"."""
    from cnnviz.zoo.report import _minor_label

    assert [_minor_label(v, True) for v in (20, 30, 40, 50, 60, 200)] == ["20", "30", "", "50", "", "200"]
    assert _minor_label(20, False) == ""  # many decades: the majors (10M, 100M, 1G) are enough


def test_the_report_says_what_the_weight_average_and_the_flip_paid_from_each_runs_own_evaluations():
    from cnnviz.zoo.report import averaging_lines

    history = [{"epoch": 1, "val_top1": 0.30, "val_top1_raw": 0.25, "val_top1_tta": 0.31},
               {"epoch": 2, "val_top1": 0.50, "val_top1_raw": 0.40, "val_top1_tta": 0.505},
               {"epoch": 3, "val_top1": 0.5799, "val_top1_raw": 0.58, "val_top1_tta": 0.587}]
    lines = averaging_lines([{"family": "resnet18", "history": history},
                             {"family": "lenet5", "history": [{"epoch": 1, "val_top1": 0.2}]}])  # nothing to say
    assert "| resnet18 | 0.0 | +10.0 (epoch 2) | +0.7 |" in lines
    assert not any(line.startswith("| lenet5") for line in lines)
    assert averaging_lines([{"family": "lenet5", "history": []}]) == []  # no section without the numbers
