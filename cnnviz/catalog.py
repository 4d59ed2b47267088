"""Which checkpoints exist: shipped starters and every run's ``best``/``last``, found on disk.

Layout under :func:`cnnviz.paths.checkpoints_dir` (see DESIGN.md)::

    starter/<name>.safetensors + starter/<name>.json     shipped with the repository
    <run-id>/best.safetensors  + <run-id>/best.json      written by training runs
    <run-id>/last.safetensors  + <run-id>/last.json
    <name>.safetensors + <name>.json                     dropped in by a user

Only the metadata JSON is read here (never the weights), so listing is cheap and safe to repeat on every page
run. Broken entries (a torn JSON, weights without metadata, an empty weights file) never raise: they come back
with ``error`` set when ``include_broken=True`` and are left out otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnviz.checkpoint import CheckpointError, checkpoint_paths, read_meta
from cnnviz.paths import checkpoints_dir

RUN_TAGS = ("best", "last")


@dataclass
class CheckpointInfo:
    """One checkpoint on disk, described from its metadata alone."""

    name: str  # display name, unique within a listing: "starter/lenet5", "<run-id>/best", "<file stem>"
    arch: str | None  # registry name from the metadata (None when the metadata is unreadable)
    path: Path  # the .safetensors file
    meta: dict[str, Any] = field(default_factory=dict)
    kind: str = "starter"  # "starter" | "run" | "file"
    run: str | None = None  # run id for kind == "run"
    tag: str | None = None  # "best" / "last" for runs, the file stem otherwise
    mtime: float = 0.0  # of the weights file; with the path it keys caches
    size: int = 0  # bytes of the weights file
    error: str | None = None  # why the checkpoint cannot be used (None when it looks usable)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def cache_key(self) -> tuple[str, float]:
        """``(path, mtime)``: changes when the file is rewritten (a run saving a new ``best``)."""
        return str(self.path), self.mtime

    @property
    def num_classes(self) -> int | None:
        return self.meta.get("num_classes")

    @property
    def input_size(self) -> int | None:
        return self.meta.get("input_size")

    @property
    def metrics(self) -> dict[str, Any]:
        m = self.meta.get("metrics")
        return m if isinstance(m, dict) else {}

    @property
    def label(self) -> str:
        """A one-line description for pickers: name, architecture, recorded val top-1 when known."""
        parts = [self.name]
        if self.arch:
            parts.append(f"({self.arch}")
            top1 = self.metrics.get("val_top1")
            if isinstance(top1, (int, float)):
                parts[-1] += f", val top-1 {_pct(top1)}"
            parts[-1] += ")"
        if self.error:
            parts.append("[unusable]")
        return " ".join(parts)


def _pct(v: float) -> str:
    # metrics are stored as fractions (0..1); tolerate percentages too
    return f"{v * 100:.1f}%" if v <= 1.0 else f"{v:.1f}%"


def describe(path: str | Path, *, name: str | None = None, kind: str = "file", run: str | None = None,
             tag: str | None = None) -> CheckpointInfo:
    """A :class:`CheckpointInfo` for one checkpoint path (``X``, ``X.safetensors`` or ``X.json``); never raises."""
    weights, meta_path = checkpoint_paths(path)
    info = CheckpointInfo(name=name or weights.stem, arch=None, path=weights, kind=kind, run=run,
                          tag=tag or weights.stem)
    try:
        st = weights.stat()
        info.mtime, info.size = st.st_mtime, st.st_size
    except OSError:
        info.error = f"{weights.name} is missing"
    try:
        info.meta = read_meta(weights)
        info.arch = str(info.meta.get("arch"))
    except CheckpointError as e:
        info.error = info.error or str(e)
    except OSError as e:
        info.error = info.error or f"{meta_path.name} cannot be read ({e.strerror or e})"
    if info.error is None and info.size == 0:
        info.error = f"{weights.name} is empty (an interrupted save?)"
    return info


def _inside(p: Path, root: Path) -> bool:
    try:
        return p.resolve().is_relative_to(root)
    except OSError:
        return False


def list_checkpoints(root: str | Path | None = None, *, include_broken: bool = False) -> list[CheckpointInfo]:
    """Every checkpoint under ``root`` (default :func:`checkpoints_dir`): starters first (by name), then
    run checkpoints (by run id, ``best`` before ``last``), then loose files. Never raises for a broken entry;
    a missing root gives an empty list. Symlinks leading outside ``root`` are ignored."""
    root = Path(root).resolve() if root is not None else checkpoints_dir()
    if not root.is_dir():
        return []
    found: list[CheckpointInfo] = []
    seen: set[Path] = set()

    def add(info: CheckpointInfo) -> None:
        if info.path in seen or not (_inside(info.path.parent, root) and _inside(info.path, root)):
            return
        seen.add(info.path)
        if info.ok or include_broken:
            found.append(info)

    def stems(folder: Path) -> list[Path]:
        # a checkpoint is weights and/or metadata with the same stem; either alone is listed as broken
        try:
            files = [p for p in folder.iterdir() if p.suffix in (".safetensors", ".json") and p.is_file()]
        except OSError:
            return []
        return sorted({p.with_suffix("") for p in files if p.suffix == ".safetensors"
                       or p.with_suffix(".safetensors").exists()})

    starter = root / "starter"
    if starter.is_dir():
        for stem in stems(starter):
            add(describe(stem, name=f"starter/{stem.name}", kind="starter"))
    try:
        run_dirs = sorted(p for p in root.iterdir() if p.is_dir() and p.name != "starter"
                          and not p.name.startswith("."))
    except OSError:
        run_dirs = []
    for run_dir in run_dirs:
        for tag in RUN_TAGS:
            if (run_dir / f"{tag}.safetensors").exists() or (run_dir / f"{tag}.json").exists():
                add(describe(run_dir / tag, name=f"{run_dir.name}/{tag}", kind="run", run=run_dir.name, tag=tag))
    for stem in stems(root):
        add(describe(stem, name=stem.name, kind="file"))
    return found


def find_checkpoint(name: str, root: str | Path | None = None) -> CheckpointInfo | None:
    """The listed checkpoint whose display name is ``name`` (e.g. ``"starter/lenet5"``), or None."""
    for info in list_checkpoints(root, include_broken=True):
        if info.name == name:
            return info
    return None


def most_accurate(infos, arch: str | None = None) -> CheckpointInfo | None:
    """The usable checkpoint (of ``arch``, when given) with the highest recorded val top-1, or None when none
    records one. Ties keep the listing order (starters first)."""
    best, best_top1 = None, None
    for info in infos:
        top1 = info.metrics.get("val_top1")
        if not info.ok or (arch is not None and info.arch != arch) or not isinstance(top1, (int, float)):
            continue
        if best_top1 is None or top1 > best_top1:
            best, best_top1 = info, top1
    return best
