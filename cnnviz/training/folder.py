"""The run folder: every path of a training run, named in one place.

A run lives in ``checkpoints/<run-id>/`` (docs/ARCHITECTURE.md, flow 2 and its rules)::

    config.json        the TrainConfig that reproduces the run
    status.json        state (queued|running|stopping|done|failed|stopped), pid, heartbeat, epoch, step, ...
    metrics.jsonl      one JSON object per finished epoch
    train.log          the human-readable log; worker.out holds the worker's raw stdout/stderr
    worker.pid         the process the job starter spawned (until the worker writes its own status)
    last.*, best.*     safetensors checkpoints + JSON metadata (cnnviz.checkpoint)
    optim.pt           the resume state (tensors and plain containers only: weights_only=True loads it)
    epochs/            optional per-epoch snapshots ``epoch_NNN.safetensors`` (config ``keep_snapshots``)
    .lock              held (flock) by the worker that trains the run
    .space-reserve     a little disk space the worker holds back for its last status (cnnviz.training.worker)

A shipped starter (``checkpoints/starter/<name>.safetensors``) may carry some of its run's snapshots in
``<name>.epochs/``, named as above (:func:`starter_snapshots_dir`), so that a fresh clone has one model to
watch across training.

Everything that reads or writes a run (the worker, the job starter, run listings, the checkpoint catalog,
Compare, starter export, Visualize's snapshots) asks a :class:`RunFolder` for the path. It only names paths:
it reads nothing, so it is cheap to make and safe on a folder that is being deleted.
"""

from __future__ import annotations

import re
from pathlib import Path

RUN_TAGS = ("best", "last")  # the checkpoints a run writes, in the order a reader prefers them
_SNAPSHOT = re.compile(r"^epoch_(\d+)\.safetensors$")


class RunFolder:
    """The paths of the run in ``path`` (which need not exist)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.id = self.path.name
        self.config = self.path / "config.json"
        self.status = self.path / "status.json"
        self.metrics = self.path / "metrics.jsonl"
        self.log = self.path / "train.log"
        self.worker_out = self.path / "worker.out"
        self.worker_pid = self.path / "worker.pid"
        self.resume_state = self.path / "optim.pt"
        self.lock = self.path / ".lock"
        self.space_reserve = self.path / ".space-reserve"
        self.snapshots_dir = self.path / "epochs"

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def checkpoint(self, tag: str) -> Path:
        """The weights file of ``best`` or ``last`` (its metadata is the ``.json`` beside it)."""
        return self.path / f"{tag}.safetensors"

    def snapshot(self, epoch: int) -> Path:
        """The weights file of the snapshot kept after ``epoch``."""
        return self.snapshots_dir / f"epoch_{epoch:03d}.safetensors"

    def has_checkpoint(self, tag: str) -> bool:
        """Whether ``tag`` left its weights or its metadata (either alone is a broken checkpoint to list)."""
        weights = self.checkpoint(tag)
        return weights.exists() or weights.with_suffix(".json").exists()

    def best_checkpoint(self) -> Path | None:
        """``best``, else ``last``: the weights a reader of the run's result wants; None before the first."""
        return next((p for p in map(self.checkpoint, RUN_TAGS) if p.is_file()), None)

    def snapshots(self) -> list[tuple[int, Path]]:
        """``(epoch, weights)`` of every kept snapshot that has its metadata, oldest first."""
        return snapshot_files(self.snapshots_dir)


def snapshot_files(directory: Path) -> list[tuple[int, Path]]:
    """``(epoch, weights)`` of every ``epoch_NNN.safetensors`` in ``directory`` that has its ``.json``, oldest
    first; empty when the folder is missing or unreadable."""
    try:
        entries = list(Path(directory).iterdir())
    except OSError:
        return []
    found = [(int(m.group(1)), p) for p in entries
             if (m := _SNAPSHOT.match(p.name)) and p.with_suffix(".json").is_file()]
    return sorted(found)


def starter_snapshots_dir(weights: str | Path) -> Path:
    """The folder of snapshots shipped with the starter whose weights are ``weights``: ``<name>.epochs/``."""
    weights = Path(weights)
    return weights.with_name(weights.stem + ".epochs")
