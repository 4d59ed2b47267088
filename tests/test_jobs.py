"""Background jobs for real: detached worker processes, the per-device lock, kill -9 and resume, SIGTERM,
delete, two gloo ranks under torchrun, and run folders read back whatever state they are in."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from cnnviz.checkpoint import load_checkpoint
from cnnviz.paths import checkpoints_dir
from cnnviz.training import jobs
from cnnviz.training.runs import RunError, create_run, list_runs, read_run
from tests._synthetic import NUM_CLASSES, TRAIN_PER_CLASS, install_synthetic, tiny_config
from tests._wait import wait_until

SLOW = {"CNNVIZ_FAULT": "sleep=0.15", "OMP_NUM_THREADS": "1"}  # a tiny run slow enough to catch mid-epoch
FAST = {"OMP_NUM_THREADS": "1"}


@pytest.fixture
def synthetic(tmp_path_factory):
    install_synthetic(tmp_path_factory)
    yield
    # Never leave a worker behind: kill every job this test started (each is its own session).
    for run in checkpoints_dir().glob("*/worker.pid"):
        try:
            pid = json.loads(run.read_text())["pid"]
            os.killpg(pid, signal.SIGKILL)
        except (OSError, ValueError, KeyError):
            pass


def wait_for(cond, timeout=120.0, what="condition", run: Path | None = None):
    def detail() -> str:
        if run is None:
            return ""
        out = run / "worker.out"
        return f"\nstatus: {read_run(run).status}\nworker.out: {out.read_text()[-2000:] if out.exists() else ''}"

    return wait_until(cond, timeout, what, detail)


def wait_state(run: Path, states=("done", "failed", "stopped"), timeout=180.0):
    info = wait_for(lambda: (lambda i: i if i.state in states else None)(read_run(run)), timeout,
                    f"{run.name} to reach {states}")
    return info


def in_epoch(run: Path, epoch: int, step: int):
    info = read_run(run)
    st = info.status
    return info if st.get("state") == "running" and st.get("epoch") == epoch and (st.get("step") or 0) >= step else None


def test_two_quick_starts_give_one_job_then_force_allows_a_second(synthetic):
    cfg = tiny_config(epochs=3)
    results: list = []
    barrier = threading.Barrier(2)

    def click():
        barrier.wait()
        try:
            results.append(jobs.start(cfg, env=SLOW))
        except jobs.JobBusy as e:
            results.append(e)

    threads = [threading.Thread(target=click) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    started = [r for r in results if isinstance(r, Path)]
    refused = [r for r in results if isinstance(r, jobs.JobBusy)]
    assert len(started) == 1 and len(refused) == 1, results
    assert "allow a second job" in str(refused[0])
    assert [r.id for r in list_runs()] == [started[0].name], "a refused start left a run folder behind"
    # a second tab a moment later: refused too, and the message names the running run
    with pytest.raises(jobs.JobBusy, match=started[0].name):
        jobs.start(cfg)
    assert jobs.device_busy("cpu")["run"] == started[0].name
    second = jobs.start(cfg, force=True, env=SLOW)  # the user ticked "allow a second job on this device"
    wait_for(lambda: in_epoch(second, 1, 1), what="the forced second job to train")
    assert read_run(started[0]).alive and read_run(second).alive
    for run in (started[0], second):
        assert jobs.stop(run, kill=True, wait=10)
        assert read_run(run).state == "stopped"


def test_a_refusal_before_the_folder_exists_names_the_coming_run(synthetic, monkeypatch):
    """Two quick Start clicks run the page twice at once (CI, 2026-12-07): the second was refused while the first
    held the device lock but had no folder yet, said "another training job (unknown)" and showed "no runs yet".
    The lock names the run from the moment it is taken, so the page can wait for that folder."""
    from cnnviz.views.training import starting_run

    cfg, seen = tiny_config(epochs=3), {}
    real_create_run = jobs.create_run

    def create_run(config, root, run_id):  # the moment between the lock and the folder
        with pytest.raises(jobs.JobBusy) as refused:
            jobs.start(cfg)
        seen.update(message=str(refused.value), starting=starting_run("cpu", list_runs()))
        return real_create_run(config, root, run_id=run_id)

    monkeypatch.setattr(jobs, "create_run", create_run)
    run = jobs.start(cfg, env=SLOW)
    assert f"another training job ({run.name})" in seen["message"]
    assert seen["starting"] == run.name  # the page polls for this folder
    assert starting_run("cpu", list_runs()) is None  # listed now: nothing to wait for
    assert jobs.stop(run, kill=True, wait=10)
    assert starting_run("cpu", list_runs()) is None  # the device is free again


def test_a_momentary_probe_of_the_device_lock_neither_refuses_a_start_nor_shows_a_phantom_job(synthetic):
    """A flock has no read-only test: ``is_locked`` (the Training page, on every render) takes the lock for a
    moment. A start or another tab's probe in that moment must not see a job that is not there."""
    import fcntl

    from cnnviz.training.locks import device_key, device_lock_path

    path = device_lock_path(device_key("cpu"), checkpoints_dir())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()

    def probe_for_5_ms() -> None:  # what is_locked holds while it looks: a shared flock
        fd = os.open(path, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        threading.Timer(0.005, os.close, [fd]).start()

    probe_for_5_ms()
    assert jobs.device_busy("cpu") is None  # a second probe in that moment sees a free device
    probe_for_5_ms()
    run = jobs.start(tiny_config(epochs=3), env=SLOW)  # and a start in that moment is not refused
    assert jobs.device_busy("cpu")["run"] == run.name
    with pytest.raises(jobs.JobBusy, match=run.name):  # a real holder still refuses, after the short retry
        jobs.start(tiny_config(epochs=3))
    assert jobs.stop(run, kill=True, wait=10)


def test_kill_9_mid_epoch_then_resume_loses_and_duplicates_nothing(synthetic):
    run = jobs.start(tiny_config(epochs=2), env=SLOW)
    info = wait_for(lambda: in_epoch(run, 2, 3), what="epoch 2 to be under way")
    assert [m["epoch"] for m in info.metrics] == [1]
    os.kill(info.status["pid"], signal.SIGKILL)
    # The page's next poll shows it failed (the pid is gone), with a way forward.
    dead = wait_for(lambda: (lambda i: i if i.state == "failed" else None)(read_run(run)), 10, "failed state")
    assert dead.reason == "died" and "Resume" in dead.message and not dead.alive
    assert load_checkpoint(run / "last.safetensors").meta["epoch"] == 1  # the previous checkpoint is intact
    # A kill mid-save leaves at most a temp file beside the real ones: harmless.
    (run / ".last.safetensors.x1y2.tmp").write_bytes(b"\x00" * 10)
    # The dead worker's lock file is still on disk, but no live process holds it: resuming is allowed.
    assert (checkpoints_dir() / ".locks" / "device-cpu.lock").exists()
    assert jobs.device_busy("cpu") is None
    jobs.resume(run, env=FAST)
    done = wait_state(run)
    assert done.state == "done", done.message
    assert [m["epoch"] for m in done.metrics] == [1, 2]
    assert [m["step"] for m in done.metrics] == [10, 20]
    assert "resuming at epoch 2 step 0" in (run / "train.log").read_text()
    # the worker exits just after writing "done"; then its locks are gone with it
    wait_for(lambda: not read_run(run).alive and jobs.device_busy("cpu") is None, 30, "the worker to exit")


def test_sigterm_finishes_the_step_saves_and_resume_completes(synthetic):
    run = jobs.start(tiny_config(epochs=2), env=SLOW)
    wait_for(lambda: in_epoch(run, 1, 3), what="epoch 1 to be under way")
    assert jobs.stop(run, wait=60)
    info = read_run(run)
    assert info.state == "stopped" and "Resume" in info.message, info.message
    state = torch.load(run / "optim.pt", weights_only=True)
    assert state["epoch"] == 0 and 3 <= state["step_in_epoch"] < 10
    last = load_checkpoint(run / "last.safetensors")
    assert last.meta["step"] == state["global_step"]
    assert info.metrics == []
    jobs.resume(run, env=FAST)
    done = wait_state(run)
    assert done.state == "done", done.message
    assert [m["epoch"] for m in done.metrics] == [1, 2] and done.metrics[-1]["step"] == 20
    assert f"resuming at epoch 1 step {state['step_in_epoch']}" in (run / "train.log").read_text()
    with pytest.raises(jobs.JobError, match="already finished"):
        jobs.resume(run)


def test_failure_in_the_worker_reaches_status_and_frees_the_device(synthetic):
    run = jobs.start(tiny_config(epochs=2), env={**FAST, "CNNVIZ_FAULT": "oom@1"})
    info = wait_state(run)
    assert info.state == "failed" and info.reason == "oom" and "--batch-size 8" in info.message
    wait_for(lambda: jobs.device_busy("cpu") is None, 30, "the device lock to be released")
    assert "Traceback" not in info.message


@pytest.mark.slow
def test_two_gloo_ranks_under_torchrun(synthetic, tmp_path):
    run = checkpoints_dir() / "ddp-run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "cnnviz.train", "--run-dir", str(run), "--arch", "lenet5", "--variant", "variant=modern",
           "--data", "synthetic", "--epochs", "2", "--batch-size", "8", "--optimizer", "adamw", "--lr", "0.003",
           "--device", "cpu", "--no-channels-last"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env={**os.environ, **FAST})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    info = read_run(run)
    assert info.state == "done" and info.status["world_size"] == 2
    # each rank sees half the data: 160 images / 2 ranks / batch 8 = 10 steps per epoch
    assert info.status["steps_per_epoch"] == NUM_CLASSES * TRAIN_PER_CLASS // 2 // 8
    assert [m["epoch"] for m in info.metrics] == [1, 2]  # rank 0 alone writes: no duplicate lines
    log = (run / "train.log").read_text()
    assert log.count("epoch 1/2: train loss") == 1
    assert load_checkpoint(run / "best.safetensors").meta["train_config"]["batch_size"] == 8


def test_delete_refuses_a_running_job_and_names_outside_the_folder(synthetic):
    run = jobs.start(tiny_config(epochs=5), env=SLOW)
    with pytest.raises(jobs.JobBusy, match="stop it"):
        jobs.delete(run.name)
    for bad in ("../etc", "..", ".locks", "a/../../b"):
        with pytest.raises(RunError):
            jobs.delete(bad)
    jobs.delete(run.name, force=True)
    assert not run.exists() and list_runs() == []
    assert read_run(run).state == "missing"


def test_unusable_checkpoints_folder_is_reported_before_anything_starts(tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(OSError, match="cannot create the run folder"):
        create_run(tiny_config().to_dict(), root=not_a_dir)


def test_read_run_survives_torn_and_missing_files(tmp_path):
    run = create_run(tiny_config().to_dict(), root=tmp_path)
    (run / "status.json").write_text('{"state": "runn')
    (run / "metrics.jsonl").write_text('{"epoch": 1, "val_top1": 0.5}\n{"epoch": 2, "val_')
    info = read_run(run)
    assert info.metrics == [{"epoch": 1, "val_top1": 0.5}] and info.best_top1 == 0.5
    assert any("status.json" in p for p in info.problems)
    (run / "config.json").unlink()
    (run / "status.json").write_text(json.dumps({"state": "running", "pid": 2**22 + 12345}))
    info = read_run(run)
    assert info.state == "failed" and info.reason == "died"  # a pid that is not alive
    assert [r.id for r in list_runs(tmp_path)] == [run.name]


def test_a_run_read_before_its_status_exists_is_queued_not_failed(tmp_path):
    """create_run writes config.json, then status.json: a page that read the run in between saw "failed: the
    worker exited before it started", a final state, and stopped following a worker that went on to train (a
    flaky double-click test in the browser found it). Only a folder that stays like that is a failed start."""
    import time

    run = create_run(tiny_config().to_dict(), root=tmp_path)
    (run / "status.json").unlink()
    assert read_run(run).state == "queued"
    hour_ago = time.time() - 3600
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "created": hour_ago}))
    for p in (run / "config.json", run):
        os.utime(p, (hour_ago, hour_ago))
    info = read_run(run)
    assert info.state == "failed" and "exited before it started" in info.message


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "cnnviz", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **FAST, **(env or {})})


@pytest.mark.slow
def test_cli_detach_refuse_list_stop_delete(synthetic):
    # 200 epochs: the job must still be running when `runs list` answers on a busy machine (it is stopped below)
    flags = ["train", "--arch", "lenet5", "--variant", "variant=modern", "--data", "synthetic", "--epochs", "200",
             "--batch-size", "16", "--optimizer", "adamw", "--lr", "0.003", "--device", "cpu", "--detach"]
    r = _cli(*flags, env=SLOW)
    assert r.returncode == 0, r.stderr
    run = Path(r.stdout.strip().splitlines()[0])
    assert run.parent == checkpoints_dir() and (run / "config.json").is_file()
    r = _cli(*flags)
    assert r.returncode == 2 and f"another training job ({run.name})" in r.stderr and "Traceback" not in r.stderr
    wait_for(lambda: read_run(run).status.get("state") == "running", what="the detached job to train", run=run)
    r = _cli("runs", "list", "--format", "json")
    listed = json.loads(r.stdout)
    assert [x["id"] for x in listed] == [run.name] and listed[0]["state"] == "running"
    r = _cli("runs", "stop", run.name, "--wait", "60")
    assert r.returncode == 0 and "asked to stop" in r.stdout
    shown = json.loads(_cli("runs", "show", run.name, "--format", "json").stdout)
    assert shown["state"] == "stopped" and shown["arch"] == "lenet5"
    r = _cli("runs", "delete", run.name, "--yes")
    assert r.returncode == 0 and not run.exists()
