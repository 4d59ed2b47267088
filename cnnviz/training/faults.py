"""What can end a run: :class:`TrainingFailed` (a message for humans and a stable ``reason`` code), a full or
read-only disk as such a failure, and the faults tests inject to cause them (``$CNNVIZ_FAULT``)."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import torch

DISK_ERRNOS = {errno.ENOSPC: "disk_full", errno.EDQUOT: "disk_full", errno.EACCES: "read_only",
               errno.EROFS: "read_only", errno.EPERM: "read_only"}


class TrainingFailed(Exception):
    """Ends a run with state ``failed``; ``message`` is for humans, ``reason`` a stable code."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


def disk_error(e: OSError, where: Path) -> TrainingFailed | None:
    """A full disk or a read-only folder as a readable failure (None for other OS errors)."""
    reason = DISK_ERRNOS.get(e.errno or 0)
    if reason == "disk_full":
        return TrainingFailed(reason, f"the disk holding {where} is full ({e.strerror or e}); the last good "
                                      "checkpoint is kept. Free some space and Resume (or `runs resume`).")
    if reason == "read_only":
        return TrainingFailed(reason, f"cannot write to {where} ({e.strerror or e}): the folder is read-only or "
                                      "not yours; the last good checkpoint is kept. Fix the permissions or "
                                      "choose another checkpoints folder.")
    return None


class Faults:
    """Fault injection for tests, from ``$CNNVIZ_FAULT`` (comma separated; never set in normal use):
    ``oom@N`` (CUDA out-of-memory at global step N), ``nan@N`` (loss NaN from step N), ``sleep=S`` (seconds per
    step, to make a tiny run slow enough to kill), ``save=ENOSPC|EACCES`` (checkpoint saves fail)."""

    def __init__(self, spec: str | None):
        self.oom = self.nan = None
        self.sleep = 0.0
        self.save_errno: int | None = None
        for part in filter(None, (spec or "").split(",")):
            key, _, val = part.partition("@") if "@" in part else part.partition("=")
            if key == "oom":
                self.oom = int(val)
            elif key == "nan":
                self.nan = int(val)
            elif key == "sleep":
                self.sleep = float(val)
            elif key == "save":
                self.save_errno = getattr(errno, val)

    def step(self, global_step: int, loss: torch.Tensor) -> torch.Tensor:
        if self.sleep:
            time.sleep(self.sleep)
        if self.oom is not None and global_step >= self.oom:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        if self.nan is not None and global_step >= self.nan:
            loss = loss * float("nan")
        return loss

    def before_save(self) -> None:
        if self.save_errno is not None:
            raise OSError(self.save_errno, os.strerror(self.save_errno))
