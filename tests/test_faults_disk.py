"""Real disk faults, not injected ones: the checkpoints folder sits on a small tmpfs that fills up while a
real detached worker trains.

Mounting a tmpfs needs root with CAP_SYS_ADMIN (the dev machine has it). Where that is missing the test skips
and says so; tests/test_train.py's injected ENOSPC/EACCES saves cover the same code paths everywhere.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess

import pytest

from cnnviz import jobs
from cnnviz.checkpoint import load_checkpoint
from cnnviz.runs import read_run
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
            try:
                os.killpg(json.loads(pid_file.read_text())["pid"], signal.SIGKILL)
            except (OSError, ValueError, KeyError):
                pass
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
