"""The training worker, ``python -m cnnviz.train``: one process (or one per GPU under ``torchrun``) trains one run
folder (see :mod:`cnnviz.training.runs`) and reports how it ended in ``status.json``::

    python -m cnnviz.train --run checkpoints/my-run                       # config.json already there
    torchrun --standalone --nproc_per_node 8 -m cnnviz.train --run-dir checkpoints/r18 --arch resnet18 --data auto

* it holds the run's lock and the device's (:mod:`cnnviz.training.locks`; :mod:`cnnviz.training.jobs` takes
  them before it spawns the worker and hands them over);
* SIGTERM (and Ctrl-C in the foreground) asks the loop to stop after the current step, saving first;
* errors a user will meet end the run with state ``failed``, a message for humans and a ``reason`` code:
  ``dataset``, ``oom``, ``nan``, ``disk_full``, ``read_only``, ``input_size``, ``config``, ``busy``, ``error``;
* a little disk space is held back (:func:`_reserve_space`) so that even a full disk gets its status written.

This module imports no streamlit, captum or plotly: the worker runs on machines that lack them.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

import torch

from cnnviz.data import DatasetError
from cnnviz.fsutil import atomic_write_json, read_json
from cnnviz.models import InputSizeError
from cnnviz.training.config import TrainConfig, add_config_args, code_version, config_from_args
from cnnviz.training.dist import Dist, close_distributed
from cnnviz.training.faults import TrainingFailed, disk_error
from cnnviz.training.folder import RunFolder
from cnnviz.training.locks import JobBusy, device_key, device_lock_path, lock_holder, try_lock
from cnnviz.training.loop import Trainer
from cnnviz.training.runs import process_start_time, read_json_object, write_status

log = logging.getLogger("cnnviz.train")  # the loop's logger: sent here to train.log (and stderr)


def _setup_logging(run_dir: Path, main: bool, to_stderr: bool) -> None:
    log.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()
    if main:
        fh = logging.FileHandler(RunFolder(run_dir).log, encoding="utf-8")
        fh.setFormatter(fmt)
        log.addHandler(fh)
    if to_stderr or not main:
        sh = logging.StreamHandler(sys.stderr)
        sh.setFormatter(fmt)
        log.addHandler(sh)
    log.propagate = False


def run_training(run_dir: str | Path, cfg: TrainConfig | None = None, *, to_stderr: bool = True,
                 take_locks: bool = True, check: bool | None = None) -> str:
    """Train the run folder in this process to the end; returns the final state (done|stopped|failed).

    ``cfg`` is trusted: it was checked where it was made (the page's form, the CLI's flags, ``jobs.start``).
    Without it the run's ``config.json`` is read and checked here (``check``, the default then), inside the
    failure handling, so a config that cannot train ends the run as ``failed`` with reason ``config``.

    Installs SIGTERM/SIGINT handlers (graceful stop). Failures are written to ``status.json`` and returned as
    ``"failed"``, never raised (except a busy run lock: another worker owns this folder, nothing is written).
    """
    run_dir = Path(run_dir).resolve()
    folder = RunFolder(run_dir)
    dist = Dist.from_env()
    check = cfg is None if check is None else check
    cfg = cfg or TrainConfig.from_dict(read_json(folder.config))
    held: list[int] = []
    trainer = Trainer(run_dir, cfg, dist)
    _setup_logging(run_dir, dist.main, to_stderr)
    if dist.main and take_locks:
        fd = try_lock(folder.lock, {"run": run_dir.name})
        if fd is None:
            raise JobBusy(f"another worker is already training {run_dir.name}")
        held.append(fd)
    previous = {}

    def on_signal(signum, frame):  # noqa: ARG001
        if trainer.stop_requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        trainer.stop_requested = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(ValueError):  # not the main thread (tests): no handler
            previous[sig] = signal.signal(sig, on_signal)
    trainer.status = {"state": "running", "pid": os.getpid(), "pid_start": _pid_start(), "host": socket.gethostname(),
                      "created": _created(run_dir), "started": time.time(), "message": "starting", "reason": None,
                      "world_size": dist.world_size, "eta_s": None}
    try:
        if dist.main and take_locks and not cfg.allow_concurrent:
            key = device_key(cfg.device)
            fd = try_lock(device_lock_path(key, run_dir.parent), {"run": run_dir.name, "pid": os.getpid()})
            if fd is None:
                holder = lock_holder(device_lock_path(key, run_dir.parent))
                raise TrainingFailed("busy", f"another training job ({holder.get('run', 'unknown')}) is running "
                                             f"on {key}; wait for it, stop it, or allow a second job (the page's checkbox, or --force)")
            held.append(fd)
        if check:
            cfg.validate()
        trainer._write_status(state="running", message="starting")
        if dist.main:
            _reserve_space(run_dir)
        return trainer.run()
    except BaseException as e:  # noqa: BLE001 - every failure ends in status.json, with a message
        failure = _as_failure(e, cfg, run_dir)
        if failure is None:
            raise
        if failure.reason == "error":
            log.exception("training failed")
        else:
            log.error("%s", failure.message)
        if failure.reason == "disk_full":
            _release_space(run_dir)  # room for the status.json that tells the user
        try:
            trainer._write_status(state="failed", message=failure.message, reason=failure.reason, eta_s=None)
        except OSError as e2:
            print(f"cnnviz.train: could not write status.json ({e2}); the run failed: {failure.message}",
                  file=sys.stderr)
        return "failed"
    finally:
        if dist.main:  # rank 0 owns the reserve
            _release_space(run_dir)
        for sig, h in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, h)
        for fd in held:
            with contextlib.suppress(OSError):
                os.close(fd)
        close_distributed(dist)
        for h in list(log.handlers):
            log.removeHandler(h)
            h.close()


RESERVE_BYTES = 256 * 1024


def _reserve_space(run_dir: Path) -> None:
    """Hold a little disk space for the last word of a worker that meets a full disk.

    On a really full disk (tests/test_faults_disk.py fills a tmpfs) the failed save cannot be reported either:
    status.json is written atomically, through a new file. Without room the page could only say that the worker
    "stopped unexpectedly". Deleting this reserve just before writing the "disk full" status makes that
    write succeed. It is written with real zeros, not as a sparse file, so the space is truly held.
    """
    with open(RunFolder(run_dir).space_reserve, "wb") as f:
        f.write(b"\0" * RESERVE_BYTES)


def _release_space(run_dir: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(RunFolder(run_dir).space_reserve)


def _as_failure(e: BaseException, cfg: TrainConfig, run_dir: Path) -> TrainingFailed | None:
    """The user-facing failure for an exception (None: let it propagate, e.g. KeyboardInterrupt)."""
    if isinstance(e, TrainingFailed):
        return e
    if isinstance(e, torch.cuda.OutOfMemoryError):
        half = max(1, cfg.batch_size // 2)
        return TrainingFailed("oom", f"the GPU ran out of memory at batch size {cfg.batch_size} ({cfg.arch}); "
                                     f"try --batch-size {half} (or a smaller model)")
    if isinstance(e, DatasetError):
        return TrainingFailed("dataset", str(e))
    if isinstance(e, InputSizeError):
        return TrainingFailed("input_size", str(e))
    if isinstance(e, OSError):
        return disk_error(e, run_dir) or TrainingFailed("error", f"{type(e).__name__}: {e}")
    if isinstance(e, ValueError):
        return TrainingFailed("config", str(e))
    if isinstance(e, Exception):
        return TrainingFailed("error", f"training crashed: {type(e).__name__}: {e} (details in train.log)")
    return None


def _pid_start() -> int | None:
    return process_start_time(os.getpid())


def _created(run_dir: Path) -> float:
    created = read_json_object(RunFolder(run_dir).status, []).get("created")
    return float(created) if isinstance(created, (int, float)) and not isinstance(created, bool) else time.time()


def main(argv: list[str] | None = None) -> int:
    """The worker: ``python -m cnnviz.train --run DIR`` (config from DIR/config.json, or from the flags when
    DIR has none yet, e.g. under torchrun); exit status 0 done/stopped, 1 failed, 3 run busy."""
    p = argparse.ArgumentParser(prog="python -m cnnviz.train", description=main.__doc__)
    # --run-dir: the same, for torchrun, whose own parser takes "--run" for an abbreviation of its --run-path.
    p.add_argument("--run", "--run-dir", dest="run", required=True, help="run folder")
    p.add_argument("--lock-fd", type=int, action="append", default=[], help=argparse.SUPPRESS)
    p.add_argument("--detached", action="store_true", help=argparse.SUPPRESS)
    add_config_args(p)
    args = p.parse_args(argv)
    run_dir = Path(args.run).resolve()
    dist = Dist.from_env()
    cfg_path = RunFolder(run_dir).config
    # Started by jobs.start / resume: they checked config.json before they took the locks and handed them over.
    handed_over = bool(args.lock_fd)
    from_file = cfg_path.exists()
    try:
        if from_file:
            cfg = TrainConfig.from_dict(read_json(cfg_path))
        else:
            cfg = config_from_args(args).validate()
            if dist.main:
                run_dir.mkdir(parents=True, exist_ok=True)
                atomic_write_json(cfg_path, {**cfg.to_dict(), **code_version(), "created": time.time()})
                write_status(run_dir, state="queued", message="starting", created=time.time())
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    # Locks handed over by jobs.start (pass_fds) stay open for the life of this process: the kernel
    # releases them when it exits, however it exits.
    try:
        state = run_training(run_dir, cfg, to_stderr=not args.detached, take_locks=not handed_over,
                             check=from_file and not handed_over)
    except JobBusy as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    return 0 if state in ("done", "stopped") else 1


if __name__ == "__main__":
    sys.exit(main())
