"""Tiny ImageNet prepared by a detached background process, so that a page can start it and walk away.

Preparing takes from about 20 s (a zip already on this machine) to minutes (the 250 MB download). Run inside a
Streamlit script it stopped whenever the user left the page or touched any widget, because Streamlit stops a
running script for the next rerun. As a job it survives that, a closed tab and the server's restart, and
every page (and the CLI) sees the same progress.

The job is ``python -m cnnviz.data.job --source S --root R``, started with ``start_new_session=True``, the
same way a training job starts (:mod:`cnnviz.training.jobs`). Its files are in the data folder ``R``:

* ``.prepare.lock``: an ``flock`` that :func:`start` takes *before* it spawns the worker and hands over to it
  (``pass_fds``). The kernel releases it however the worker ends, so "the lock is held" means "a preparation is
  running", and a second Prepare (another tab, another server) is refused while it runs.
* ``prepare.json``: the status, written atomically: ``state`` (``running``, ``done``, ``failed``, ``stopped``),
  the current ``stage`` with ``done`` / ``total`` (as :func:`cnnviz.data.prepare` reports them), the
  ``message`` of a failure, and the ``dataset_root`` when done.
* ``prepare.log``: the worker's output (a traceback, if one ever happens).

:func:`read_job` reads the status tolerantly: a status that says ``running`` while nobody holds the lock is
a worker that died without a word (kill -9, a reboot), reported as ``failed`` with what to do. Stopping and
starting again loses nothing: the download resumes where it stopped and finished caches are kept.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnviz import paths
from cnnviz.data.download import OFFICIAL_MD5, OFFICIAL_URL
from cnnviz.data.errors import PREPARE_HINT, DatasetError
from cnnviz.data.layout import DIRNAME, find_dataset
from cnnviz.data.prepare import prepare
from cnnviz.data.zipsource import check_zip
from cnnviz.fsutil import atomic_write_json, is_locked, lock_holder, read_json, spawn_detached, try_lock

STATUS_FILE, LOCK_FILE, LOG_FILE = "prepare.json", ".prepare.lock", "prepare.log"
ACTIVE, FINAL = ("running",), ("done", "failed", "stopped")
# The worker writes its progress at most this often (and at every change of stage): a page polls once a second.
WRITE_EVERY_S = 0.5
DIED = ("the preparing process ended without saying why (killed, or the machine restarted); prepare again: "
        "the download resumes where it stopped and finished caches are kept")


@dataclass(frozen=True)
class PrepareJob:
    """What ``prepare.json`` says, checked against the lock (see the module docstring)."""

    state: str
    source: str = ""
    stage: str = ""
    done: int = 0
    total: int = 0
    message: str = ""
    dataset_root: str | None = None
    pid: int | None = None
    started: float | None = None
    updated: float | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


def _root(root: str | Path | None) -> Path:
    return Path(root).expanduser().resolve() if root is not None else paths.data_dir()


def read_job(root: str | Path | None = None) -> PrepareJob | None:
    """The last (or running) preparation in the data folder ``root``; None when there never was one (or its
    status file is unreadable, which only an outside hand can do: the worker writes it atomically)."""
    folder = _root(root)
    try:
        obj = read_json(folder / STATUS_FILE)
    except (OSError, ValueError):
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("state"), str):
        return None

    def number(key: str) -> int:
        value = obj.get(key)
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0

    state, message = obj["state"], str(obj.get("message") or "")
    if state in ACTIVE and not is_locked(folder / LOCK_FILE):
        state, message = "failed", DIED
    elif state not in ACTIVE + FINAL:
        state, message = "failed", f"unknown state {obj['state']!r} in {folder / STATUS_FILE}"
    return PrepareJob(state=state, source=str(obj.get("source") or ""), stage=str(obj.get("stage") or ""),
                      done=number("done"), total=number("total"), message=message,
                      dataset_root=obj.get("dataset_root") if isinstance(obj.get("dataset_root"), str) else None,
                      pid=obj.get("pid") if isinstance(obj.get("pid"), int) else None,
                      started=obj.get("started"), updated=obj.get("updated"), raw=obj)


def preparing(root: str | Path | None = None) -> PrepareJob | None:
    """The preparation running now in the data folder ``root``, or None. While one runs, the labels of the
    dataset are on disk from its first seconds but its images only at its end: pages neither offer nor read it
    (reading would wait for the job's cache lock, in the server)."""
    job = read_job(root)
    return job if job is not None and job.active else None


def check_source(source: str | Path) -> str:
    """``"download"`` or the absolute path of a zip or folder that looks like Tiny ImageNet; otherwise a
    :class:`DatasetError` that says what is wrong, at once (a page shows it before any process starts).
    Reading a zip's table of contents takes well under a second even for the 217 MiB original."""
    text = str(source).strip()
    if text == "download":
        return text
    if not text:
        raise DatasetError("give the path of tiny-imagenet-200.zip (or of the extracted folder)")
    path = Path(text).expanduser().resolve()
    if path.is_file():
        check_zip(path)  # raises DatasetError for a zip that is not Tiny ImageNet (or not a zip)
    elif path.is_dir():
        if find_dataset(path) is None:
            raise DatasetError(f"{path} is not an extracted Tiny ImageNet folder (no wnids.txt, words.txt, train/ "
                               f"and val/val_annotations.txt in it or in {path / DIRNAME}); {PREPARE_HINT}")
    else:
        raise DatasetError(f"{path} does not exist; {PREPARE_HINT}")
    return str(path)


def start(source: str | Path, root: str | Path | None = None, *, url: str = OFFICIAL_URL,
          md5: str | None = OFFICIAL_MD5) -> PrepareJob:
    """Start preparing Tiny ImageNet from ``source`` (``"download"``, a zip or a folder) into the data folder
    ``root`` in a detached process; returns at once with its first status. ``url`` and ``md5`` (None: not
    checked) are the download's, for a mirror.

    Raises :class:`DatasetError` for a source that cannot work (see :func:`check_source`) or while another
    preparation of the same folder runs (its source is named)."""
    source = check_source(source)
    folder = _root(root)
    folder.mkdir(parents=True, exist_ok=True)
    fd = try_lock(folder / LOCK_FILE, {"pid": os.getpid(), "source": source})
    if fd is None:
        running = read_job(folder)
        what = f" (from {running.source})" if running and running.source else ""
        raise DatasetError(f"Tiny ImageNet is already being prepared{what}; wait for it to finish or stop it")
    try:
        _begin(folder, source)
        cmd = [sys.executable, "-m", "cnnviz.data.job", "--source", source, "--root", str(folder),
               "--url", url, "--md5", md5 or "", "--lock-fd", str(fd)]
        proc = spawn_detached(cmd, folder / LOG_FILE, [fd])
        _update(folder, pid=proc.pid)
    finally:
        os.close(fd)  # the worker holds its own copy now (or, if the spawn failed, nobody does)
    return read_job(folder) or PrepareJob(state="running", source=source, pid=proc.pid)


def stop(root: str | Path | None = None, wait: float = 5.0) -> bool:
    """Stop a running preparation (SIGTERM to its process group: the worker and its decoding processes);
    False when none runs. Waits up to ``wait`` seconds for it to write ``stopped``."""
    folder = _root(root)
    if not is_locked(folder / LOCK_FILE):
        return False
    job = read_job(folder)
    pid = job.pid if job and job.pid else lock_holder(folder / LOCK_FILE).get("pid")
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return False
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and is_locked(folder / LOCK_FILE):
        time.sleep(0.05)
    return True


def _begin(folder: Path, source: str) -> None:
    """The first status of a preparation, written while its lock is held."""
    now = time.time()
    atomic_write_json(folder / STATUS_FILE, {"state": "running", "source": source, "stage": "starting", "done": 0,
                                             "total": 0, "message": "", "started": now, "updated": now})


def _update(folder: Path, **changes: Any) -> None:
    try:
        obj = read_json(folder / STATUS_FILE)
    except (OSError, ValueError):
        obj = {}
    atomic_write_json(folder / STATUS_FILE, {**(obj if isinstance(obj, dict) else {}), **changes,
                                             "updated": time.time()})


class _StatusWriter:
    """``prepare``'s progress callback: the stage and counts into ``prepare.json``, at most every
    ``WRITE_EVERY_S`` seconds within a stage, and always at its start and end."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.stage, self.last = folder, None, 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if stage == self.stage and now - self.last < WRITE_EVERY_S and not (total and done >= total):
            return
        self.stage, self.last = stage, now
        _update(self.folder, stage=stage, done=int(done), total=int(total))


_STOP_ASKED: list[bool] = []


def _stopped(signum, frame):  # noqa: ARG001
    # SIGTERM reaches the decoding processes too (one process group), so the pool may report them broken
    # before this handler runs: the flag makes that a "stopped" as well, not a "failed".
    _STOP_ASKED.append(True)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cnnviz.data.job",
                                description="Prepare Tiny ImageNet in the background (see cnnviz/data/job.py); "
                                            "pages start this with cnnviz.data.job.start")
    p.add_argument("--source", required=True, help='"download", or a zip or extracted folder')
    p.add_argument("--root", required=True, help="the data folder (status, lock and log go there too)")
    p.add_argument("--url", default=OFFICIAL_URL, help="where the download comes from (a mirror)")
    p.add_argument("--md5", default=OFFICIAL_MD5, help="the download's md5 (empty: not checked)")
    p.add_argument("--lock-fd", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    folder = _root(args.root)
    fd = args.lock_fd
    if fd is None:  # started by hand: take the lock ourselves
        fd = try_lock(folder / LOCK_FILE, {"pid": os.getpid(), "source": args.source})
        if fd is None:
            print("Tiny ImageNet is already being prepared in this data folder", file=sys.stderr)
            return 2
        _begin(folder, args.source)
    signal.signal(signal.SIGTERM, _stopped)
    _update(folder, pid=os.getpid())
    try:
        root = prepare(args.source, folder, progress=_StatusWriter(folder), url=args.url, md5=args.md5 or None)
    except KeyboardInterrupt:
        pass
    except Exception as e:
        if not _STOP_ASKED:
            _failed(folder, e)
            return 1
    else:
        _update(folder, state="done", dataset_root=str(root), message="")
        print(f"ready: {root}")
        return 0
    _update(folder, state="stopped", message="stopped; prepare again to continue (the download resumes where it "
                                             "stopped and finished caches are kept)")
    return 1


def _failed(folder: Path, e: Exception) -> None:
    if isinstance(e, (DatasetError, OSError, ValueError)):  # the expected kinds: their message says it all
        message = str(e)
    else:  # anything else: the message on the page, the traceback in prepare.log
        traceback.print_exc()
        message = f"{type(e).__name__}: {e} (the traceback is in {folder / LOG_FILE})"
    _update(folder, state="failed", message=message)


if __name__ == "__main__":
    sys.exit(main())
