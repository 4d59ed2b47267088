"""The locks that keep one worker per run and one job per device: ``fcntl.flock`` on files, held by the
worker for its whole life, so the kernel releases them however it ends (exit, crash, OOM, kill -9).

``checkpoints/.locks/device-<device>.lock`` guards a device, ``<run>/.lock`` a run folder. Both the job starter
(:mod:`cnnviz.training.jobs`, which takes them before it spawns the worker and hands them over) and the worker
(:mod:`cnnviz.training.worker`, which takes them itself when started by hand) import them from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnviz.device import pick_device
from cnnviz.fsutil import is_locked, lock_holder, try_lock, write_lock_info
from cnnviz.paths import checkpoints_dir

# the flock helpers live in cnnviz.fsutil (Tiny ImageNet's background preparation uses them too)
__all__ = ["JobBusy", "JobError", "busy_message", "device_key", "device_lock_path", "is_locked", "lock_holder",
           "try_lock", "write_lock_info"]


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


def busy_message(key: str, holder: dict[str, Any]) -> str:
    return (f"another training job ({holder.get('run', 'unknown')}) is running on {key}; wait for it to finish, "
            "stop it, or allow a second job on this device (the page's checkbox, or --force)")
