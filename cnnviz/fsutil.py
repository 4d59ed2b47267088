"""Atomic file writes (a reader sees the old file or the new one, never half of one), the ``flock`` locks
that background processes hold for their whole life, and the one way such a process is started (training jobs,
Tiny ImageNet's preparation).

Every file that a training worker writes and a page reads goes through here (temp file in the same folder,
fsync, ``os.replace``), so a kill -9 mid-write leaves the previous version intact.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; a checkpoint or status file is meant to be readable
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):  # numpy / torch scalars
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_json(path: str | Path) -> Any:
    """Read a JSON file; raises ``FileNotFoundError`` or ``ValueError`` (torn or not JSON) with the path."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e.msg} at line {e.lineno})") from e


# ------------------------------------------------------------------------------------------------ flock locks
# A flock has no read-only test, so :func:`is_locked` takes a *shared* lock for a few microseconds to see
# whether it can: probes never collide with each other (the Training page probes on every render), and a real
# holder's exclusive lock refuses a probe at once. A start that came in a probe's moment would still see a holder
# that is not there ("another job (unknown) is running"), so an exclusive take retries for this long before it
# says "held". A real holder holds for the whole life of its process: the retry costs a refused start 20 ms.
PROBE_PATIENCE_S = 0.02
_RETRY_EVERY_S = 0.002


def try_lock(path: Path, info: dict[str, Any] | None = None, patience_s: float = PROBE_PATIENCE_S) -> int | None:
    """Take an exclusive ``flock`` on ``path`` without waiting for a holder: the open descriptor, or None when
    held. It retries for ``patience_s`` (a momentary :func:`is_locked` probe is not a holder).

    ``info`` (who holds it) is written into the file for messages; the lock itself is the flock, not the file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + patience_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(_RETRY_EVERY_S)
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
    """Whether a live process holds the flock on ``path`` (a shared probe: see :data:`PROBE_PATIENCE_S`)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing the descriptor drops the probe's shared lock


# ------------------------------------------------------------------------------------------ detached processes
def spawn_detached(cmd: list[str], log_path: Path, fds: list[int], env: dict[str, str] | None = None
                   ) -> subprocess.Popen:
    """Start ``cmd`` from the repository root in a session of its own, so that it outlives a page reload, the
    Streamlit server's restart and a closed terminal; its output is appended to ``log_path``, and it inherits
    the open lock descriptors ``fds`` (taken before the spawn, held for its life). ``env``: its whole
    environment (default: this one); output is unbuffered, so the log is current."""
    from cnnviz.paths import REPO_ROOT

    with open(log_path, "ab") as log:
        return subprocess.Popen(cmd, cwd=REPO_ROOT, env={**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"},
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, pass_fds=fds,
                                start_new_session=True, close_fds=True)
