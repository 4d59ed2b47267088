"""Faults a class of students will cause, and what must survive them (issue 6).

Already proven elsewhere, not repeated here: kill -9 mid-epoch + resume, SIGTERM, double start, OOM with the
lock released, torn status/metrics (tests/test_jobs.py); NaN, disk full / read-only saves keeping the last good
checkpoint, bad configs, missing dataset (tests/test_train.py); corrupt and stale data caches, zips without
``val_annotations.txt``, partial downloads (tests/test_data.py, tests/test_data_download.py).

Here: broken and mismatched checkpoints (refused before any weight is read, naming the mismatch), a kill -9 in
the middle of a save (a real detached worker frozen half-way through writing a file), and the CLI's one-line
messages for bad data and parameters.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import struct
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch

from cnnviz.__main__ import main as cli
from cnnviz.checkpoint import CheckpointError, load_checkpoint
from cnnviz.paths import REPO_ROOT, checkpoints_dir
from cnnviz.training import jobs
from cnnviz.training.runs import read_run
from tests._synthetic import install_synthetic, tiny_config
from tests._wait import wait_until
from tests.predict_helpers import image_bytes, make_checkpoint


# ------------------------------------------------------------------------------------------- checkpoints
@pytest.fixture
def ckpt(tmp_path) -> Path:
    return make_checkpoint(tmp_path / "m", arch="lenet5", num_classes=10)


def test_empty_and_truncated_weights_are_clear_errors(ckpt):
    data = ckpt.read_bytes()
    ckpt.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(ckpt)
    for cut in (3, 8, 100, len(data) // 2, len(data) - 1):
        ckpt.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="truncated or corrupt") as e:
            load_checkpoint(ckpt)
        assert ckpt.name in str(e.value)
    ckpt.write_bytes(data)
    assert load_checkpoint(ckpt).meta["arch"] == "lenet5"  # the same file, whole again, loads


def test_a_header_declaring_a_huge_size_is_refused_without_allocating(ckpt):
    # safetensors starts with an 8-byte little-endian header length: claim an exabyte
    ckpt.write_bytes(struct.pack("<Q", 2**60) + b"{}")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(ckpt)


def test_torn_or_foreign_metadata_is_named(ckpt):
    meta = ckpt.with_suffix(".json")
    meta.write_text('{"arch": "lenet5", "model_ar')
    with pytest.raises(CheckpointError, match=r"m\.json is not valid JSON"):
        load_checkpoint(ckpt)
    meta.write_text(json.dumps({"hello": 1}))
    with pytest.raises(CheckpointError, match="not a cnnviz checkpoint"):
        load_checkpoint(ckpt)
    meta.unlink()
    with pytest.raises(CheckpointError, match=r"m\.json is missing"):
        load_checkpoint(ckpt)


def test_another_architecture_or_class_count_is_refused_before_loading(ckpt):
    # The weights are garbage: a refusal that names the mismatch proves no weight was read first.
    ckpt.write_bytes(b"\x00garbage that is not safetensors")
    with pytest.raises(CheckpointError, match="checkpoint is a lenet5, not a resnet18"):
        load_checkpoint(ckpt, expect_arch="resnet18")
    with pytest.raises(CheckpointError, match="checkpoint has 10 classes, expected 200"):
        load_checkpoint(ckpt, expect_arch="lenet5", expect_classes=200)


def test_weights_of_another_model_under_this_metadata_are_refused(tmp_path):
    lenet = make_checkpoint(tmp_path / "lenet", arch="lenet5", num_classes=10)
    other = make_checkpoint(tmp_path / "other", arch="lenet5", num_classes=7)
    alex = make_checkpoint(tmp_path / "alex", arch="alexnet", num_classes=10)
    lenet.write_bytes(alex.read_bytes())  # the .json still says lenet5
    with pytest.raises(CheckpointError, match="weights do not match lenet5"):
        load_checkpoint(lenet)
    lenet.write_bytes(other.read_bytes())  # same architecture, 7 classes instead of 10
    with pytest.raises(CheckpointError, match=r"has shape \(7,.*needs \(10,"):
        load_checkpoint(lenet)


def test_cli_predict_with_a_broken_checkpoint_is_one_line(ckpt, tmp_path, capsys):
    img = tmp_path / "x.png"
    img.write_bytes(image_bytes("PNG", (64, 64)))
    ckpt.write_bytes(ckpt.read_bytes()[:50])
    assert cli(["predict", "--checkpoint", str(ckpt), str(img)]) == 2
    err = capsys.readouterr().err
    assert "truncated or corrupt" in err and "Traceback" not in err


# ------------------------------------------------------------------------------------ kill -9 mid-save
# A sitecustomize for the worker process only: it freezes the N-th atomic write of one file half-way (half the
# bytes in the temp file, nothing renamed yet), says so, and waits to be killed - a kill -9 mid-save, on cue.
HANG = textwrap.dedent("""
    import os, pathlib, time
    spec = os.environ.get("CNNVIZ_TEST_HANG_SAVE")
    if spec:
        import cnnviz.fsutil as fs
        name, n = spec.split("@")
        real, seen = fs.atomic_write_bytes, [0]
        def hanging(path, data):
            p = pathlib.Path(path)
            if p.name == name:
                seen[0] += 1
                if seen[0] == int(n):
                    p.with_name(f".{p.name}.killed.tmp").write_bytes(data[: len(data) // 2])
                    (p.parent / "HANGING").write_text(str(os.getpid()))
                    time.sleep(600)
            return real(path, data)
        fs.atomic_write_bytes = hanging
""")


@pytest.fixture
def synthetic(tmp_path_factory):
    install_synthetic(tmp_path_factory)
    yield
    for pidfile in checkpoints_dir().glob("*/worker.pid"):  # never leave a worker behind
        with contextlib.suppress(OSError, ValueError, KeyError):
            os.killpg(json.loads(pidfile.read_text())["pid"], signal.SIGKILL)


@pytest.mark.parametrize("file", ["optim.pt", "last.safetensors"])
def test_kill_9_mid_save_keeps_the_previous_checkpoint_and_resume_duplicates_nothing(synthetic, tmp_path, file):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HANG)
    env = {"OMP_NUM_THREADS": "1", "CNNVIZ_TEST_HANG_SAVE": f"{file}@2",  # the save at the end of epoch 2
           "PYTHONPATH": os.pathsep.join([str(hook), str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    run = jobs.start(tiny_config(epochs=3), env=env)
    wait_until(lambda: (run / "HANGING").exists() or read_run(run).state in ("done", "failed"), 180,
          "the worker to freeze in the middle of a save")
    assert (run / "HANGING").exists(), (run / "worker.out").read_text()[-2000:]
    pid = int((run / "HANGING").read_text())
    os.kill(pid, signal.SIGKILL)
    # the page's next poll (read_run) sees a dead worker as failed, with the way forward
    info = wait_until(lambda: (lambda i: i if i.state == "failed" else None)(read_run(run)), 10, "failed")
    assert info.reason == "died" and "Resume" in info.message
    assert (run / f".{file}.killed.tmp").exists()  # the half-written file never replaced the real one
    # the previous checkpoint (epoch 1) is whole and loads; the frozen save was epoch 2's
    assert load_checkpoint(run / "last.safetensors").meta["epoch"] == 1
    resume_state = torch.load(run / "optim.pt", weights_only=True)
    saved_epoch = resume_state["epoch"]
    assert saved_epoch == (1 if file == "optim.pt" else 2)
    assert jobs.device_busy("cpu") is None  # the dead worker's lock went with it

    jobs.resume(run, env={"OMP_NUM_THREADS": "1"})
    done = wait_until(lambda: (lambda i: i if i.state in ("done", "failed") else None)(read_run(run)), 180, "done")
    assert done.state == "done", done.message
    assert [m["epoch"] for m in done.metrics] == [1, 2, 3]  # nothing lost, nothing twice
    steps = [m["step"] for m in done.metrics]
    assert steps == sorted(set(steps)) and steps[-1] == 30
    assert f"resuming at epoch {saved_epoch + 1} step 0" in (run / "train.log").read_text()
    assert load_checkpoint(run / "last.safetensors").meta["epoch"] == 3


# ------------------------------------------------------------------------------- data and parameters (CLI)
def _one_line_error(capsys, argv, *words, rc=2):
    assert cli(argv) == rc
    out = capsys.readouterr()
    text = out.err + out.out
    assert "Traceback" not in text, text
    for w in words:
        assert w in text, text
    return out.out


def test_cli_bad_data_is_a_message(tmp_path, capsys):
    _one_line_error(capsys, ["data", "prepare", "--source", str(tmp_path / "nowhere.zip"), "--quiet"],
                    "does not exist", "data prepare --source download")
    bad = tmp_path / "tiny-imagenet-200.zip"
    with zipfile.ZipFile(bad, "w") as z:  # the official layout without val/val_annotations.txt
        z.writestr("tiny-imagenet-200/wnids.txt", "n01443537\n")
        z.writestr("tiny-imagenet-200/words.txt", "n01443537\tgoldfish\n")
        z.writestr("tiny-imagenet-200/train/n01443537/images/n01443537_0.JPEG", image_bytes("JPEG", (64, 64)))
        z.writestr("tiny-imagenet-200/val/images/val_0.JPEG", image_bytes("JPEG", (64, 64)))
    _one_line_error(capsys, ["data", "prepare", "--source", str(bad), "--root", str(tmp_path / "out"), "--quiet"],
                    "val_annotations.txt")
    partial = tmp_path / "partial.zip"
    partial.write_bytes(bad.read_bytes()[:200])  # a download cut short
    _one_line_error(capsys, ["data", "prepare", "--source", str(partial), "--root", str(tmp_path / "o2"),
                             "--quiet"], "error:")


@pytest.mark.parametrize("argv, words", [
    (["train", "--arch", "lenet5", "--batch-size", "0"], "batch size must be at least 1"),
    (["train", "--arch", "lenet5", "--lr", "nan"], "learning rate must be a finite number"),
    (["train", "--arch", "alexnet", "--input-size", "16"], "AlexNet needs an input of at least"),
    (["train", "--arch", "lenet5", "--batch-size", str(10**7)], "too large"),
])
def test_cli_bad_parameters_are_refused_before_a_run_exists(capsys, argv, words):
    _one_line_error(capsys, argv, words)
    assert not checkpoints_dir().exists() or not any(checkpoints_dir().iterdir())  # nothing half-made


def test_cli_missing_dataset_is_refused_before_a_run_exists(tmp_path, capsys):
    _one_line_error(capsys, ["train", "--arch", "lenet5", "--data", str(tmp_path / "nowhere"), "--epochs", "1",
                             "--device", "cpu"], "does not exist")
    assert not checkpoints_dir().exists() or not any(checkpoints_dir().iterdir())  # no run that can only fail


def test_a_dataset_gone_after_the_start_fails_the_run_clearly(tmp_path):
    """The worker checks again: a dataset removed between the command and the worker fails the run, recorded."""
    from cnnviz.training.config import TrainConfig
    from cnnviz.training.runs import create_run
    from cnnviz.training.worker import run_training

    cfg = TrainConfig(arch="lenet5", data=str(tmp_path / "nowhere"), epochs=1, device="cpu")
    run = create_run(cfg.to_dict())
    assert run_training(run, cfg, to_stderr=False) == "failed"
    info = read_run(run)
    assert info.state == "failed" and info.reason == "dataset" and "does not exist" in info.message

