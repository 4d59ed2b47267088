"""Background training jobs: start a detached worker process, stop, resume and delete runs.

A job is ``python -m cnnviz.train --run DIR`` started with ``subprocess.Popen(..., start_new_session=True)``:
its own session, so it survives a page reload, the Streamlit server's restart and a closed terminal. It is
never a thread in the server.

One job per device: ``checkpoints/.locks/device-<device>.lock`` is held with ``fcntl.flock`` by the worker for
its whole life, and the run folder's ``.lock`` likewise (never two workers on one run). :func:`start` takes
both locks *before* spawning and hands the open descriptors to the child (``pass_fds``), then closes its own
copies, so there is no moment in which a second click (another thread, another tab, another server) can slip
in, and the kernel releases the locks however the worker ends (exit, crash, OOM, kill -9). A lock file left
behind by a dead worker is therefore no obstacle: only a live holder blocks.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from cnnviz.fsutil import atomic_write_json, read_json, spawn_detached
from cnnviz.paths import checkpoints_dir
from cnnviz.training.config import TrainConfig, code_version
from cnnviz.training.folder import RunFolder
from cnnviz.training.locks import (
    JobBusy,
    JobError,
    busy_message,
    device_key,
    device_lock_path,
    is_locked,
    lock_holder,
    try_lock,
    write_lock_info,
)
from cnnviz.training.runs import (
    FINAL_STATES,
    RunError,
    RunInfo,
    create_run,
    new_run_id,
    pid_alive,
    process_start_time,
    read_json_object,
    read_run,
    resolve_run,
    unusable_folder,
    write_status,
)

__all__ = ["JobBusy", "JobError", "delete", "device_busy", "resume", "start", "stop"]


def device_busy(device: str = "auto", root: str | Path | None = None) -> dict[str, Any] | None:
    """The holder (``{"run": ...}``) when a job runs on ``device``; None when it is free."""
    path = device_lock_path(device_key(device), root)
    return (lock_holder(path) or {"run": "unknown"}) if is_locked(path) else None


def _spawn(run_dir: Path, fds: list[int], env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start the detached worker, handing it the lock descriptors; its output goes to ``worker.out``."""
    cmd = [sys.executable, "-m", "cnnviz.train", "--run", str(run_dir), "--detached"]
    for fd in fds:
        cmd += ["--lock-fd", str(fd)]
    full_env = {**os.environ, **(env or {})}
    # Pages never run under torchrun, but a server started from one would pass its rank variables on.
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        full_env.pop(k, None)
    folder = RunFolder(run_dir)
    proc = spawn_detached(cmd, folder.worker_out, fds, full_env)
    atomic_write_json(folder.worker_pid, {"pid": proc.pid, "pid_start": process_start_time(proc.pid),
                                               "started": time.time()})
    return proc


def _launch(run_dir: Path, cfg, force: bool, env: dict[str, str] | None, dev_fd: int | None = None) -> None:
    """Take the run and device locks (or use ``dev_fd``, already held), spawn, and let the child keep them."""
    fds: list[int] = [] if dev_fd is None else [dev_fd]
    try:
        run_fd = try_lock(RunFolder(run_dir).lock, {"run": run_dir.name})
        if run_fd is None:
            raise JobBusy(f"a worker is already training {run_dir.name}")
        fds.insert(0, run_fd)
        if dev_fd is None and not (force or cfg.allow_concurrent):
            key = device_key(cfg.device)
            path = device_lock_path(key, run_dir.parent)
            dev_fd = try_lock(path)
            if dev_fd is None:
                raise JobBusy(busy_message(key, lock_holder(path)))
            fds.append(dev_fd)
        proc = _spawn(run_dir, fds, env)
        for fd in fds[1:]:
            write_lock_info(fd, {"run": run_dir.name, "pid": proc.pid})
    finally:
        for fd in fds:
            os.close(fd)  # the child holds its own copies of the descriptions


def start(config, root: str | Path | None = None, force: bool = False, env: dict[str, str] | None = None,
          run_id: str | None = None, extra: dict[str, Any] | None = None) -> Path:
    """Create the run folder for ``config`` and start its detached worker; returns the run folder. ``run_id``
    names the folder (default: a new unique id); ``extra`` adds keys to ``config.json`` that the worker ignores
    (the zoo records its id there).

    A :class:`~cnnviz.training.config.TrainConfig` is trusted: it was checked where it was made (the page's
    form, the CLI's flags, the zoo's recipe). A dict is checked here. Raises ``ValueError`` for a bad dict
    (before anything is written), :class:`JobBusy` when another job holds the device (unless ``force`` or
    ``config.allow_concurrent``), ``OSError`` when the checkpoints folder is not writable.
    """
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(dict(config)).validate()
    root = Path(root) if root is not None else checkpoints_dir()
    key = device_key(cfg.device)
    run_id = run_id or new_run_id(cfg.arch, cfg.name)
    # Take the device lock before the folder exists: a refused start (a second click) leaves nothing behind.
    # The lock names the run at once, so a refusal in that moment says which run is coming (the Training
    # page waits for that folder to appear instead of saying "no runs yet").
    held = None
    if not (force or cfg.allow_concurrent):
        try:
            held = try_lock(device_lock_path(key, root), {"run": run_id, "pid": os.getpid()})
        except OSError as e:  # the lock lives in the checkpoints folder: it is read-only, full or not ours
            raise unusable_folder(e, root) from e
        if held is None:
            raise JobBusy(busy_message(key, lock_holder(device_lock_path(key, root))))
    try:
        run_dir = create_run({**cfg.to_dict(), **code_version(), **(extra or {})}, root, run_id=run_id)
    except BaseException:
        if held is not None:
            os.close(held)
        raise
    try:
        _launch(run_dir, cfg, force, env, dev_fd=held)  # closes ``held`` in the parent
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return run_dir


def resume(run: str | Path | RunInfo, force: bool = False, epochs: int | None = None,
           env: dict[str, str] | None = None) -> Path:
    """Start a worker on an existing run; it continues from ``optim.pt`` (the last saved step).

    ``epochs`` extends (or shortens) the run. Refused while a worker is on it or another job holds the device.
    """
    run_dir = resolve_run(run)
    folder = RunFolder(run_dir)
    info = read_run(run_dir)
    try:
        raw = read_json(folder.config)
        cfg = TrainConfig.from_dict(raw)
    except (OSError, ValueError) as e:
        raise JobError(f"cannot resume {run_dir.name}: its config.json is missing or damaged ({e})") from e
    if info.state == "done" and (epochs is None or len(info.metrics) >= epochs):
        raise JobError(f"{run_dir.name} already finished all {cfg.epochs} epochs; give more epochs to continue (the page's Epochs, or --epochs N)")
    if info.status.get("state") in FINAL_STATES:
        # The worker writes its final state just before it exits: give it a moment to release its locks.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (read_run(run_dir).alive or is_locked(folder.lock)):
            time.sleep(0.1)
        info = read_run(run_dir)
    if info.alive or is_locked(folder.lock):
        raise JobBusy(f"{run_dir.name} is still running")
    if epochs is not None:
        cfg.epochs = int(epochs)
    cfg.validate()  # config.json is a file anyone may have edited; the worker trusts what is checked here
    if epochs is not None:
        atomic_write_json(folder.config, {**raw, "epochs": cfg.epochs})
    write_status(run_dir, state="queued", message="resuming", reason=None, pid=None)
    folder.worker_pid.unlink(missing_ok=True)
    _launch(run_dir, cfg, force, env)
    return run_dir


def stop(run: str | Path | RunInfo, kill: bool = False, wait: float = 0.0) -> bool:
    """Ask the worker to stop (SIGTERM: it finishes the step, saves and exits with state ``stopped``).

    ``kill=True`` sends SIGKILL to its whole session (a hung worker; the last saved step survives). ``wait``
    seconds: block until it has exited. Returns False when no worker was running.
    """
    run_dir = resolve_run(run)
    info = read_run(run_dir)
    pid, start_t = info.status.get("pid"), info.status.get("pid_start")
    if not info.alive or not isinstance(pid, int):
        wp = read_json_object(RunFolder(run_dir).worker_pid, [])
        pid, start_t = wp.get("pid"), wp.get("pid_start")
        if not pid_alive(pid, start_t):
            return False
    not_started = not isinstance(info.status.get("pid"), int)  # still importing: no SIGTERM handler yet
    try:
        if kill:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    if kill or not_started:
        wait = max(wait, 5.0)
    deadline = time.monotonic() + wait
    while wait and time.monotonic() < deadline and pid_alive(pid, start_t):
        time.sleep(0.1)
    if (kill or not_started) and not pid_alive(pid, start_t):
        msg = "killed" if kill else "stopped before training began"
        write_status(run_dir, state="stopped", message=f"{msg}; Resume (or `runs resume`) continues from the last save",
                     reason="stopped", pid=None)
    return True


def delete(run: str | Path | RunInfo, root: str | Path | None = None, force: bool = False) -> None:
    """Delete a run folder (only inside the checkpoints folder). A running job is refused unless ``force``
    (then it is killed first)."""
    root = Path(root) if root is not None else checkpoints_dir()
    run_dir = resolve_run(run, root)
    if not run_dir.resolve().is_relative_to(root.resolve()) or run_dir.resolve() == root.resolve():
        raise RunError(f"{run_dir} is not a run inside {root}; refusing to delete it")
    if run_dir.name == "starter":
        raise RunError("the starter checkpoints are not a run")
    info = read_run(run_dir)
    if info.alive or is_locked(RunFolder(run_dir).lock):
        if not force:
            raise JobBusy(f"{run_dir.name} is running; stop it before deleting it")
        stop(run_dir, kill=True, wait=5)
    # Rename first (atomic), so a page polling the run sees it gone at once, then remove the files.
    trash = run_dir.with_name(f".deleting-{run_dir.name}-{os.getpid()}")
    os.replace(run_dir, trash)
    shutil.rmtree(trash, ignore_errors=True)
