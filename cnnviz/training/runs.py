"""Run folders: how to read them back safely, list them, and make a new one (its paths: :mod:`.folder`).

The worker is the only writer (every file atomically, except the append-only ``metrics.jsonl``); pages and the
CLI only read. Readers here never raise on a torn, missing or foreign file: they report what they could not
read in :attr:`RunInfo.problems` and carry on, because a run folder can be deleted or killed mid-write at
any moment while a page shows it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnviz.catalog import sort_runs
from cnnviz.fsutil import atomic_write_json
from cnnviz.paths import checkpoints_dir
from cnnviz.training.folder import RunFolder

ACTIVE_STATES = ("queued", "running", "stopping")
FINAL_STATES = ("done", "failed", "stopped")
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
STALE_AFTER_S = 120.0  # no heartbeat for this long while the pid lives: reported as stale, not failed


class RunError(ValueError):
    """A run name or folder that cannot be used (unknown, outside the checkpoints folder, not a run)."""


@dataclass
class RunInfo:
    """Everything a page or the CLI shows about one run, read from its folder."""

    id: str
    path: Path
    config: dict[str, Any] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)  # as written by the worker (may be stale)
    metrics: list[dict[str, Any]] = field(default_factory=list)  # one per finished epoch, in order
    state: str = "unknown"  # effective state: a dead worker's "running" becomes "failed"
    message: str = ""  # for humans
    reason: str | None = None  # machine-readable code (dataset, oom, nan, disk, input_size, config, died ...)
    alive: bool = False  # the worker process is running
    stale: bool = False  # alive but silent for longer than STALE_AFTER_S
    problems: list[str] = field(default_factory=list)  # files that could not be read, and why
    mtime: float = 0.0

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.path)

    @property
    def arch(self) -> str | None:
        return self.config.get("arch")

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def epoch(self) -> int:
        return int(self.status.get("epoch") or 0)

    @property
    def total_epochs(self) -> int:
        return int(self.status.get("total_epochs") or self.config.get("epochs") or 0)

    @property
    def progress(self) -> float:
        """Fraction of all training steps done, 0..1 (from the heartbeat)."""
        spe = int(self.status.get("steps_per_epoch") or 0)
        total = self.total_epochs
        if self.state == "done":
            return 1.0
        if not spe or not total:
            return 0.0
        done_epochs = max(0, self.epoch - 1)
        step = int(self.status.get("step") or 0)
        return max(0.0, min(1.0, (done_epochs * spe + step) / (total * spe)))

    @property
    def best_top1(self) -> float | None:
        vals = [m.get("val_top1") for m in self.metrics if isinstance(m.get("val_top1"), (int, float))]
        return max(vals) if vals else None

    def checkpoint(self, tag: str = "best") -> Path | None:
        """``best``/``last`` weights file if present."""
        p = self.folder.checkpoint(tag)
        return p if p.is_file() else None

    def log_tail(self, lines: int = 30) -> str:
        return tail(self.folder.log, lines)

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly digest (the CLI's ``runs show --format json``)."""
        return {
            "id": self.id, "path": str(self.path), "arch": self.arch, "state": self.state,
            "message": self.message, "reason": self.reason, "alive": self.alive, "stale": self.stale,
            "epoch": self.epoch, "total_epochs": self.total_epochs, "step": self.status.get("step"),
            "steps_per_epoch": self.status.get("steps_per_epoch"), "eta_s": self.status.get("eta_s"),
            "best_top1": self.best_top1, "last_metrics": self.metrics[-1] if self.metrics else None,
            "config": self.config, "problems": self.problems,
        }


# ----------------------------------------------------------------------------------------------- processes
def process_start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot; Linux), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(")") + 2:].split()
    try:
        return int(fields[19])  # field 22 overall
    except (IndexError, ValueError):
        return None


def pid_alive(pid: int | None, start_time: int | None = None) -> bool:
    """Whether ``pid`` is a live process (a zombie counts as dead; a reused pid with another start time too)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    stat_path = Path(f"/proc/{pid}/stat")
    if stat_path.exists():
        try:
            stat = stat_path.read_text()
            if stat[stat.rfind(")") + 2:].split()[0] in ("Z", "X"):
                _reap(pid)
                return False
        except (OSError, IndexError):
            return False
        if start_time is not None and process_start_time(pid) not in (None, start_time):
            return False
    return True


def _reap(pid: int) -> None:
    """Collect a zombie child of this process (a worker the page started and that has exited)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


# ----------------------------------------------------------------------------------------------- reading
def tail(path: Path, lines: int = 30, max_bytes: int = 64_000) -> str:
    """The last ``lines`` lines of a text file ('' when missing)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", errors="replace").splitlines()[-lines:])


def read_json_object(path: Path, problems: list[str]) -> dict[str, Any]:
    """A JSON object file as a dict; ``{}`` (and a line in ``problems`` unless it is simply absent) otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as e:
        problems.append(f"{path.name}: cannot be read ({e.strerror or e})")
        return {}
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        problems.append(f"{path.name}: damaged (not valid JSON)")
        return {}
    if not isinstance(obj, dict):
        problems.append(f"{path.name}: not a JSON object")
        return {}
    return obj


def read_metrics(path: Path, problems: list[str] | None = None) -> list[dict[str, Any]]:
    """Metric lines in order; a torn last line (a kill mid-append) is skipped, not fatal."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            if problems is not None:
                problems.append(f"metrics.jsonl line {n}: damaged, skipped")
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def metric_value(m: dict[str, Any], key: str) -> float | None:
    """A metrics line's finite number under ``key`` (bools, strings, NaN and infinities are not numbers here)."""
    v = m.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def training_seconds(metrics: list[dict[str, Any]]) -> float | None:
    """Seconds spent training, summed over the epochs: each epoch's ``train_time_s`` (the steps alone; its
    evaluations and checkpoint writes left out), else its ``epoch_time_s`` (runs from before that field), else
    the last ``elapsed_s`` (histories that kept only the clock). docs/zoo.md's "train s" and Compare's
    "training time" are both this number, so they agree; the wall clock with the evaluations in is each line's
    ``elapsed_s``."""
    times = [t for m in metrics if (t := metric_value(m, "train_time_s") or metric_value(m, "epoch_time_s")) is not None]
    if times:
        return sum(times)
    clock = [t for m in metrics if (t := metric_value(m, "elapsed_s")) is not None]
    return clock[-1] if clock else None


def training_rate(metrics: list[dict[str, Any]]) -> float | None:
    """The run's training images/s: the median over its epochs after the first, whose rate includes the
    warm-up (cuDNN autotuning, compilation); over all of them when there is only one."""
    rates = [r for m in metrics[1:] or metrics if (r := metric_value(m, "images_per_s")) is not None]
    return float(statistics.median(rates)) if rates else None


def read_run(path: str | Path) -> RunInfo:
    """Read a run folder. Never raises for damaged or missing files (see ``problems``); a folder that
    vanished comes back with state ``missing``."""
    path = Path(path)
    info = RunInfo(id=path.name, path=path)
    folder = info.folder
    if not path.is_dir():
        info.state, info.message, info.reason = "missing", "this run folder no longer exists", "missing"
        return info
    info.config = read_json_object(folder.config, info.problems)
    info.status = read_json_object(folder.status, info.problems)
    info.metrics = read_metrics(folder.metrics, info.problems)
    try:
        info.mtime = max((p.stat().st_mtime for p in path.iterdir()), default=path.stat().st_mtime)
    except OSError:
        info.mtime = 0.0
    st = info.status
    state = str(st.get("state") or ("queued" if info.config else "unknown"))
    info.message = str(st.get("message") or "")
    info.reason = st.get("reason")
    pid = st.get("pid")
    info.alive = pid_alive(pid if isinstance(pid, int) else None, st.get("pid_start"))
    if state in ACTIVE_STATES:
        if state == "queued" and not pid:
            # Written by jobs.start before the spawn; until the worker writes its own status, jobs.start's
            # worker.pid says which process to watch.
            spawned = read_json_object(folder.worker_pid, [])
            wpid = spawned.get("pid")
            info.alive = pid_alive(wpid if isinstance(wpid, int) else None, spawned.get("pid_start"))
            # Between create_run's config.json and its status.json there is no status yet: read the config's
            # creation time (else the folder's), or a run seen in that instant was "failed" for good (a page
            # that read it then stopped following a worker that went on to train).
            created = float(st.get("heartbeat") or info.config.get("created") or info.mtime or 0)
            if (spawned and not info.alive) or (not spawned and time.time() - created > STALE_AFTER_S):
                state, info.reason = "failed", "died"
                info.message = "the training worker exited before it started; see worker.out in the run folder"
                out = tail(folder.worker_out, 5)
                if out:
                    info.message += f": {out.splitlines()[-1]}"
        elif not info.alive:
            state, info.reason = "failed", "died"
            last = f" after epoch {len(info.metrics)}" if info.metrics else ""
            info.message = (f"the training worker stopped unexpectedly{last} (killed, or the machine restarted); "
                            "Resume (or `runs resume`) continues from the last checkpoint")
        else:
            hb = st.get("heartbeat")
            info.stale = isinstance(hb, (int, float)) and time.time() - hb > STALE_AFTER_S
    info.state = state
    if not info.message and info.problems and not info.status:
        info.message = "; ".join(info.problems)
    return info


def is_run_dir(path: Path) -> bool:
    folder = RunFolder(path)
    return path.is_dir() and (folder.config.exists() or folder.status.exists())


def list_runs(root: str | Path | None = None) -> list[RunInfo]:
    """Every run under the checkpoints folder, newest first (the one run order: ``cnnviz.catalog.sort_runs``)."""
    root = Path(root) if root is not None else checkpoints_dir()
    try:
        entries = list(root.iterdir())
    except OSError:
        return []
    runs = [read_run(p) for p in entries if not p.name.startswith(".") and p.name != "starter" and is_run_dir(p)]
    order = {path: i for i, path in enumerate(sort_runs(r.path for r in runs))}
    return sorted(runs, key=lambda r: order[Path(r.path)])


def resolve_run(run: str | Path | RunInfo, root: str | Path | None = None) -> Path:
    """The folder of a run given its id, its folder or a RunInfo; refuses names that would escape ``root``."""
    if isinstance(run, RunInfo):
        return run.path
    root = Path(root) if root is not None else checkpoints_dir()
    text = str(run)
    p = Path(text)
    if p.is_absolute() or os.sep in text or (os.altsep and os.altsep in text):
        path = p.resolve()
    else:
        if not RUN_ID_RE.match(text):
            raise RunError(f"{text!r} is not a valid run name (letters, digits, '.', '_' and '-' only)")
        path = (root / text).resolve()
        if not path.is_relative_to(root.resolve()):
            raise RunError(f"run {text!r} is outside {root}")
    if not is_run_dir(path):
        raise RunError(f"no run called {text!r} (no such run folder in {root})")
    return path


# ----------------------------------------------------------------------------------------------- writing
def new_run_id(arch: str, name: str | None = None) -> str:
    """``<name or arch>-YYYYmmdd-HHMMSS-xxxx``: sortable, unique, safe as a folder name."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", (name or arch)).strip("-._")[:60] or "run"
    return f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(2).hex()}"


def create_run(config: dict[str, Any], root: str | Path | None = None, run_id: str | None = None) -> Path:
    """Make a new run folder with ``config.json`` and a ``queued`` status; returns the folder.

    Raises ``OSError`` with a readable message when the checkpoints folder is not writable.
    """
    root = Path(root) if root is not None else checkpoints_dir()
    run_id = run_id or new_run_id(config.get("arch", "run"), config.get("name"))
    if not RUN_ID_RE.match(run_id):
        raise RunError(f"{run_id!r} is not a valid run name")
    path = root / run_id
    try:
        path.mkdir(parents=True, exist_ok=False)
        atomic_write_json(RunFolder(path).config, {**config, "created": time.time()})
        write_status(path, state="queued", message="waiting for the worker to start", created=time.time())
    except FileExistsError as e:
        raise RunError(f"a run called {run_id!r} already exists") from e
    except OSError as e:
        if path.is_dir():  # made, then a write failed (a full disk): leave no half-made run behind
            shutil.rmtree(path, ignore_errors=True)
        raise unusable_folder(e, root) from e
    return path


def unusable_folder(e: OSError, root: str | Path) -> OSError:
    """The ``OSError`` to show when the checkpoints folder cannot take a new run: which folder, why (a full
    disk, a read-only file system, no permission) and what to do about it."""
    hint = {errno.ENOSPC: "free some space on that disk, or", errno.EDQUOT: "free some of your quota, or",
            errno.EROFS: "it is on a read-only file system;", errno.EACCES: "you may not write there;",
            errno.EPERM: "you may not write there;"}.get(e.errno, "")
    return OSError(e.errno, f"cannot create the run folder in {root}: {e.strerror or e}. "
                            f"{hint + ' ' if hint else ''}set CNNVIZ_CHECKPOINTS to a writable folder with room "
                            "for checkpoints")


def write_status(path: str | Path, **fields: Any) -> dict[str, Any]:
    """Rewrite ``status.json`` atomically, keeping fields not given (``heartbeat`` is always refreshed)."""
    status_file = RunFolder(path).status
    old = read_json_object(status_file, [])
    status = {**old, **fields, "heartbeat": time.time()}
    atomic_write_json(status_file, status)
    return status
