"""Real disk faults, not injected ones: the checkpoints folder sits on a small tmpfs that fills up while a
real detached worker trains.

Mounting a tmpfs needs root with CAP_SYS_ADMIN (the dev machine has it). Where that is missing the test skips
and says so; tests/test_train.py's injected ENOSPC/EACCES saves cover the same code paths everywhere.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess

import pytest

from cnnviz.checkpoint import load_checkpoint
from cnnviz.training import jobs
from cnnviz.training.runs import read_run
from tests._synthetic import install_synthetic, tiny_config
from tests.test_jobs import FAST, SLOW, in_epoch, wait_for, wait_state


@pytest.fixture
def small_disk(tmp_path, tmp_path_factory, monkeypatch):
    install_synthetic(tmp_path_factory)
    mnt = tmp_path / "disk"
    mnt.mkdir()
    ok = shutil.which("mount") and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)],
                                                  capture_output=True).returncode == 0
    if not ok:
        pytest.skip("mounting a tmpfs needs root with CAP_SYS_ADMIN; tests/test_train.py injects the same errors")
    monkeypatch.setenv("CNNVIZ_CHECKPOINTS", str(mnt))
    try:
        yield mnt
    finally:
        for pid_file in mnt.glob("*/worker.pid"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                os.killpg(json.loads(pid_file.read_text())["pid"], signal.SIGKILL)
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(folder) -> int:
    """Write zeros into ``folder`` until the file system says it is full; return the bytes written."""
    fd = os.open(folder / "filler.bin", os.O_WRONLY | os.O_CREAT, 0o644)
    written, block = 0, b"\0" * (1 << 16)
    try:
        while True:
            try:
                written += os.write(fd, block)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
                if len(block) == 1:
                    return written
                block = block[: len(block) // 2]  # fill the last few KiB too
    finally:
        os.close(fd)


def test_a_disk_that_fills_up_mid_run_fails_clearly_keeps_the_last_checkpoint_and_resumes(small_disk):
    run = jobs.start(tiny_config(epochs=3), env=SLOW)
    wait_for(lambda: in_epoch(run, 2, 2), what="epoch 2 to be under way", run=run)
    assert load_checkpoint(run / "last.safetensors").meta["epoch"] == 1

    assert _fill(small_disk) > 0
    failed = wait_state(run, timeout=120)
    assert failed.state == "failed", (failed.status, failed.message)
    assert failed.reason == "disk_full", failed.status
    assert "full" in failed.message and "last good" in failed.message
    assert load_checkpoint(run / "last.safetensors").meta["epoch"] == 1  # the last good checkpoint is intact
    assert not list(run.glob(".*.tmp")), "a failed save left a temp file behind"

    (small_disk / "filler.bin").unlink()  # the user frees space, then presses Resume
    jobs.resume(run, env=FAST)
    done = wait_state(run)
    assert done.state == "done", done.message
    assert [m["epoch"] for m in read_run(run).metrics] == [1, 2, 3]


@pytest.mark.parametrize("fault", ["full", "read_only"])
def test_a_full_or_read_only_checkpoints_folder_is_refused_at_start_and_leaves_nothing(small_disk, fault):
    """Start on a folder that cannot take a run: a message that names the folder, the cause and the fix,
    no half-made run folder, and no worker."""
    from cnnviz.training.runs import list_runs

    if fault == "full":
        _fill(small_disk)
        (small_disk / "filler.bin").rename(small_disk / "someone-elses-file.bin")
    else:
        assert subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], capture_output=True).returncode == 0
    with pytest.raises(OSError) as info:
        jobs.start(tiny_config(epochs=1), env=FAST)
    message = str(info.value)
    assert f"cannot create the run folder in {small_disk}" in message and "CNNVIZ_CHECKPOINTS" in message
    assert ("No space left" in message) if fault == "full" else ("Read-only" in message)
    assert list_runs() == []
    assert [p.name for p in small_disk.iterdir() if not p.name.startswith(".")] == (
        ["someone-elses-file.bin"] if fault == "full" else [])
