"""The locks that keep one worker per run and one job per device: ``fcntl.flock`` on files, held by the
worker for its whole life, so the kernel releases them however it ends (exit, crash, OOM, kill -9).

``checkpoints/.locks/device-<device>.lock`` guards a device, ``<run>/.lock`` a run folder. Both the job starter
(:mod:`cnnviz.training.jobs`, which takes them before it spawns the worker and hands them over) and the worker
(:mod:`cnnviz.training.worker`, which takes them itself when started by hand) import them from here.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

from cnnviz.device import pick_device
from cnnviz.paths import checkpoints_dir


class JobError(RuntimeError):
    """A job request that cannot be done (the message says why and what to do)."""


class JobBusy(JobError):
    """Refused: another job holds the device (or the run)."""


# ----------------------------------------------------------------------------------------------------- locks
def device_key(device: str = "auto") -> str:
    """The lock key of the device a config asks for: ``cpu``, ``cuda-0``, ``mps``."""
    dev = pick_device(device)
    return f"{dev.type}-{dev.index or 0}" if dev.type == "cuda" else dev.type


def device_lock_path(key: str, root: str | Path | None = None) -> Path:
    root = Path(root) if root is not None else checkpoints_dir()
    return root / ".locks" / f"device-{key}.lock"


def try_lock(path: Path, info: dict[str, Any] | None = None) -> int | None:
    """Take an exclusive ``flock`` on ``path`` without waiting: the open descriptor, or None when held.

    ``info`` (who holds it) is written into the file for messages; the lock itself is the flock, not the file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    if info is not None:
        write_lock_info(fd, info)
    return fd


def write_lock_info(fd: int, info: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({**info, "since": time.time()}).encode(), 0)


def lock_holder(path: Path) -> dict[str, Any]:
    """What the holder wrote into a lock file (may be stale or empty)."""
    try:
        obj = json.loads(Path(path).read_text() or "{}")
        return obj if isinstance(obj, dict) else {}
    except (OSError, ValueError):
        return {}


def is_locked(path: Path) -> bool:
    """Whether a live process holds the flock on ``path``."""
    if not Path(path).exists():
        return False
    fd = try_lock(Path(path))
    if fd is None:
        return True
    os.close(fd)
    return False


def busy_message(key: str, holder: dict[str, Any]) -> str:
    return (f"another training job ({holder.get('run', 'unknown')}) is running on {key}; wait for it to finish, "
            "stop it, or allow a second job on this device")
