"""Which checkpoints exist: shipped starters and every run's ``best``/``last``, found on disk.

Layout under :func:`cnnviz.paths.checkpoints_dir` (docs/ARCHITECTURE.md)::

    starter/<name>.safetensors + starter/<name>.json     shipped with the repository
    <run-id>/best.safetensors  + <run-id>/best.json      written by training runs
    <run-id>/last.safetensors  + <run-id>/last.json
    <name>.safetensors + <name>.json                     dropped in by a user

and, outside that folder, torchvision's ImageNet weights found in torch.hub's cache (``imagenet/vgg16``, kind
``"imagenet"``; :mod:`cnnviz.imagenet`), listed only when their file is there.

Only the metadata JSON is read here (never the weights), so listing is cheap and safe to repeat on every page
run.

**The one ordering** of checkpoints and runs, used by every page (Predict, Compare, Visualize, Training) and
the CLI: shipped starters first (by name), then ImageNet weights in the cache (in :data:`cnnviz.imagenet.ENTRIES`
order), then training runs **newest first** (by the run's creation time,
:func:`run_created`; ties by run id), ``best`` before ``last`` within a run, then loose files (by name).
Newest first because the run a user just trained is the one they look for; starters first because they are
the fixed reference every comparison starts from. :func:`sort_runs` is that run order for code that lists runs
itself (``cnnviz.training.runs.list_runs``). Broken entries (a torn JSON, weights without metadata, an empty weights file) never raise: they come back
with ``error`` set when ``include_broken=True`` and are left out otherwise.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnviz.checkpoint import CheckpointError, CheckpointMeta, CheckpointVersion, checkpoint_paths, read_meta
from cnnviz.paths import checkpoints_dir
from cnnviz.training.folder import RUN_TAGS, RunFolder


@dataclass
class CheckpointInfo:
    """One checkpoint on disk, described from its metadata alone."""

    name: str  # display name, unique within a listing: "starter/lenet5_tinyimagenet", "<run-id>/best", "<file stem>"
    arch: str | None  # registry name from the metadata (None when the metadata is unreadable)
    path: Path  # the .safetensors file
    meta: CheckpointMeta = field(default_factory=CheckpointMeta)  # empty when the metadata is unreadable
    kind: str = "starter"  # "starter" | "imagenet" | "run" | "file"
    run: str | None = None  # run id for kind == "run"
    tag: str | None = None  # "best" / "last" for runs, the file stem otherwise
    mtime: float = 0.0  # of the weights file: with its resolved path, the version (cache_key)
    size: int = 0  # bytes of the weights file
    error: str | None = None  # why the checkpoint cannot be used (None when it looks usable)

    def __post_init__(self) -> None:
        self.meta = CheckpointMeta.of(self.meta)  # a plain dict (cnnviz.imagenet's entries) becomes the record

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def cache_key(self) -> CheckpointVersion:
        """The checkpoint version this entry was listed at (:func:`cnnviz.checkpoint.checkpoint_version`, the
        one key of every cache of it): ``(path, mtime)``, changed when the file is rewritten (a new ``best``)."""
        return CheckpointVersion(str(self.path.resolve()), self.mtime)

    @property
    def num_classes(self) -> int | None:
        return self.meta.num_classes

    @property
    def input_size(self) -> int | None:
        return self.meta.input_size

    @property
    def dataset(self) -> DatasetInfo:
        return dataset_of(self.meta)

    @property
    def metrics(self) -> dict[str, Any]:
        return self.meta.metrics

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


# ----------------------------------------------------------------------------------------------- datasets
_IMAGENET_WNID = re.compile(r"^n\d{8}$")
_SYNTHETIC_WNID = re.compile(r"^s\d{7}$")  # cnnviz.data.synthetic_classes
SYNTHETIC_NAME = "synthetic demo set"


@dataclass(frozen=True)
class DatasetInfo:
    """What a checkpoint (or run) was trained on, read from its metadata alone."""

    name: str  # "Tiny ImageNet", "ImageNet", "synthetic demo set", "ImageNet subset", "unknown dataset"
    num_classes: int | None
    input_size: int | None
    classes: tuple[str, ...] = ()  # class ids (wnids) in output order; empty when the metadata has none
    data: str = ""  # the training configuration's data spec ("auto", "synthetic", a folder) when recorded

    @property
    def label(self) -> str:
        """``"Tiny ImageNet, 200 classes at 64x64"``."""
        parts = [self.name]
        if self.num_classes:
            parts.append(f"{self.num_classes} classes" + (f" at {self.input_size}x{self.input_size}"
                                                          if self.input_size else ""))
        return ", ".join(parts)

    @property
    def key(self) -> tuple:
        """Equal for models whose outputs mean the same classes (their class lists, else name and count):
        only such models can be compared class by class."""
        return self.classes or (self.name, self.num_classes)


def _int_or_none(v: Any) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else None


def dataset_of(meta: Mapping[str, Any] | None, config: dict[str, Any] | None = None,
               status: dict[str, Any] | None = None) -> DatasetInfo:
    """The dataset a checkpoint was trained on, from its metadata (a run's ``config`` and ``status`` fill in
    before its first checkpoint). An explicit ``meta["dataset"]`` name wins; else the training data spec
    (``"synthetic"``) and the class ids decide: synthetic ids (``s0000001``) are the synthetic demo set,
    ImageNet wnids (``n01443537``) are Tiny ImageNet with 200 classes, ImageNet with 1000, else a subset."""
    meta, config, status = CheckpointMeta.of(meta or {}), config or {}, status or {}
    data = str(meta.trained_on or config.get("data") or "")
    classes = tuple(meta.classes or ())
    n = (_int_or_none(meta.num_classes) or _int_or_none(status.get("num_classes"))
         or (len(classes) or None))
    size = _int_or_none(meta.input_size) or _int_or_none(config.get("input_size"))
    if meta.dataset:
        name = meta.dataset
    elif data == "synthetic" or (classes and all(_SYNTHETIC_WNID.match(c) for c in classes)):
        name = SYNTHETIC_NAME
    elif classes and all(_IMAGENET_WNID.match(c) for c in classes):
        name = {200: "Tiny ImageNet", 1000: "ImageNet"}.get(len(classes), "ImageNet subset")
    elif data == "auto" and n == 200:  # the trainer's "auto" finds Tiny ImageNet
        name = "Tiny ImageNet"
    else:
        name = "unknown dataset"
    return DatasetInfo(name=name, num_classes=n, input_size=size, classes=classes, data=data)


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
        info.arch = str(info.meta.arch)
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


def run_created(run_dir: str | Path) -> float:
    """When a run was created (seconds since the epoch): ``config.json``'s ``created``, else
    ``status.json``'s, else the folder's modification time (0 when even that cannot be read). Never raises."""
    run_dir = Path(run_dir)
    folder = RunFolder(run_dir)
    for path in (folder.config, folder.status):
        try:
            value = json.loads(path.read_text(encoding="utf-8")).get("created")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    try:
        return run_dir.stat().st_mtime
    except OSError:
        return 0.0


def sort_runs(run_dirs: Iterable[str | Path]) -> list[Path]:
    """Run folders in the one run order: newest first (:func:`run_created`), ties by run id."""
    dirs = [Path(p) for p in run_dirs]
    return sorted(sorted(dirs, key=lambda p: p.name), key=run_created, reverse=True)


def list_checkpoints(root: str | Path | None = None, *, include_broken: bool = False) -> list[CheckpointInfo]:
    """Every checkpoint under ``root`` (default :func:`checkpoints_dir`) in the one ordering (module
    docstring): starters first (by name), then ImageNet weights in torch.hub's cache (whatever ``root``), then
    run checkpoints (runs newest first, ``best`` before ``last``), then loose files (by name). Never raises for a
    broken entry; a missing root lists no starters, runs or files. Symlinks leading outside ``root`` are ignored."""
    from cnnviz.imagenet import cached_infos  # torch.hub's cache, not under root

    imagenet = [info for info in cached_infos() if info.ok or include_broken]
    root = Path(root).resolve() if root is not None else checkpoints_dir()
    if not root.is_dir():
        return imagenet
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
    found += imagenet
    try:
        run_dirs = sort_runs(p for p in root.iterdir() if p.is_dir() and p.name != "starter"
                             and not p.name.startswith("."))
    except OSError:
        run_dirs = []
    for run_dir in run_dirs:
        folder = RunFolder(run_dir)
        for tag in RUN_TAGS:
            if folder.has_checkpoint(tag):
                add(describe(folder.checkpoint(tag), name=f"{run_dir.name}/{tag}", kind="run", run=run_dir.name, tag=tag))
    for stem in stems(root):
        add(describe(stem, name=stem.name, kind="file"))
    return found


def find_checkpoint(name: str, root: str | Path | None = None) -> CheckpointInfo | None:
    """The listed checkpoint whose display name is ``name`` (e.g. ``"starter/lenet5_tinyimagenet"``), or None."""
    for info in list_checkpoints(root, include_broken=True):
        if info.name == name:
            return info
    return None


def resolve_checkpoint(spec: str, root: str | Path | None = None) -> tuple[Path, str]:
    """``(weights path, display name)`` for what a user typed on the command line: a ``.safetensors`` path (with
    or without the suffix, or its ``.json``), or a listed name (``starter/lenet5_tinyimagenet``, ``RUN/best``,
    ``imagenet/vgg16``).

    ``FileNotFoundError`` with a message for the user otherwise: an ImageNet entry not yet in torch.hub's cache
    says how to fetch it, and any other name offers the listed names it is short for or close to
    (``starter/resnet18`` -> ``starter/resnet18_tinyimagenet``)."""
    import difflib

    path = Path(spec)
    if path.is_dir():  # a run folder, most likely: say which file in it
        best = path / "best.safetensors"
        raise FileNotFoundError(f"{spec!r} is a folder; give a checkpoint file"
                                + (f" such as {str(best)!r}" if best.exists() else " (.safetensors)"))
    if path.is_file() and path.suffix not in (".safetensors", ".json"):
        raise FileNotFoundError(f"{spec!r} is not a checkpoint: give a .safetensors file (its .json beside it)")
    if path.exists() or path.with_name(path.name + ".safetensors").exists():
        stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
        return path, f"{stem.parent.name}/{stem.name}" if stem.parent.name else stem.name
    infos = list_checkpoints(root, include_broken=True)
    info = next((i for i in infos if i.name == spec), None)
    if info is not None:
        return Path(info.path), info.name
    if spec.startswith("imagenet/"):  # an ImageNet entry not in torch.hub's cache yet
        from cnnviz.imagenet import get_entry, missing_message

        raise FileNotFoundError(missing_message(get_entry(spec)))
    # Names it is short for first; else close ones, compared after the shared "starter/" (every starter's name
    # starts so, which alone would make any two look alike).
    head, _, tail = spec.rpartition("/")
    names = [i.name for i in infos]
    tails = {n.rpartition("/")[2]: n for n in names if n.rpartition("/")[0] == head}
    close = [n for n in names if n.startswith(spec)] or [
        tails[m] for m in difflib.get_close_matches(tail, list(tails), n=3, cutoff=0.6)] or [
        n for n in names if tail and n.rpartition("/")[2].startswith(tail)]  # "zfnet": starter/zfnet_...
    hint = f"; did you mean {' or '.join(repr(n) for n in close[:3])}?" if close else ""
    raise FileNotFoundError(f"no checkpoint {spec!r}{hint} (give a .safetensors path or a listed name: "
                            "starter/<checkpoint> from `python -m cnnviz starter list`, <run>/best or <run>/last "
                            "from `runs list`, imagenet/<name> from `imagenet list`)")


def most_accurate(infos, arch: str | None = None) -> CheckpointInfo | None:
    """The usable checkpoint (of ``arch``, when given) with the highest recorded val top-1, or None when none
    records one. Ties keep the listing order (starters first).

    Accuracies are compared within a dataset only: a Tiny ImageNet checkpoint wins over any other, and the
    synthetic demo set (10 easy classes: 87% there says little) comes last, whatever its number."""
    best, best_key = None, None
    for info in infos:
        top1 = info.metrics.get("val_top1")
        if not info.ok or (arch is not None and info.arch != arch) or not isinstance(top1, (int, float)):
            continue
        name = info.dataset.name
        key = (name == "Tiny ImageNet", name != SYNTHETIC_NAME, top1)
        if best_key is None or key > best_key:
            best, best_key = info, key
    return best


def predict_defaults(infos: list[CheckpointInfo], k: int = 4) -> list[str]:
    """What Predict opens on: the ``k`` most accurate shipped starters in listing order (``k`` columns of bars
    stay readable), else the first two checkpoints listed."""
    starters = [i for i in infos if i.kind == "starter"]
    if len(starters) < 2:
        return [i.name for i in infos[:2]]
    best = {i.name for i in sorted(starters, key=lambda i: -(i.metrics.get("val_top1") or 0.0))[:k]}
    return [i.name for i in starters if i.name in best]


def visualize_default(infos) -> CheckpointInfo | None:
    """What Visualize opens on: the shipped ZFNet starter, the network Zeiler & Fergus drew (its max-pool switches
    make every deconvnet picture depend on the image, and its 7x7 conv1 filters are large enough to read), else the
    most accurate checkpoint. The most accurate starter (the tiny-stem ResNet-18) has no max-pool: its deconvnet
    projections are one fixed picture per unit whatever the image (see :mod:`cnnviz.viz.deconv`), a poor first
    sight of a page about that method; it stays one click away."""
    infos = list(infos)
    zfnet = [i for i in infos if i.kind == "starter" and i.arch == "zfnet" and i.ok]
    return most_accurate(zfnet) or (zfnet[0] if zfnet else None) or most_accurate(infos)
