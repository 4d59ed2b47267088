"""Self-describing checkpoints: ``NAME.safetensors`` (weights) + ``NAME.json`` (everything else).

This is the only module that reads weights, and the one place checkpoint metadata is read and written: the
:class:`CheckpointMeta` record. It never unpickles: weights are safetensors, metadata is JSON. A checkpoint is
usable with nothing but its two files::

    save_checkpoint("checkpoints/run1/best", model, build_meta(model, classes=..., mean=..., std=...))
    ckpt = load_checkpoint("checkpoints/run1/best.safetensors")
    ckpt.model, ckpt.meta.class_names, ckpt.version.digest

Metadata keys (the fields of :class:`CheckpointMeta`): ``format``, ``arch``, ``model_args``, ``num_classes``,
``input_size``, ``in_channels``, ``classes`` (wnids, in output order), ``class_names``, ``mean``, ``std``,
``epoch``, ``step``, ``metrics``, ``train_config``, ``dtype``, ``cnnviz_version``, ``created``, and when known
``dataset`` (a name that wins over guessing from the classes, e.g. ``"ImageNet"``); other keys (``run``,
``data``, ``starter``, ``history``, ``init`` ...) are kept as they are. A compressed checkpoint
(``compression=`` a :class:`cnnviz.compress.CompressionPlan`) adds ``compression``: the format version, the
plan, each tensor's storage kind (``int8``, ``svd_int8``, ``float16`` ...) and rank, the file's size and
sha256. Loading checks the size and hash, then rebuilds dense float32 weights, so the model is the ordinary
architecture.

**The mean/std rule.** ``mean`` and ``std`` are the per-channel statistics the model's inputs were normalised
with. Metadata without them (written by hand, or by an older tool) is read with Tiny ImageNet's published
training statistics (:data:`cnnviz.data.layout.TINY_IMAGENET_MEAN`), the statistics every cnnviz pipeline
normalises with unless told otherwise; :func:`build_meta` without ``mean``/``std`` records the same. Every
reader (preprocessing, Predict's "what the network saw", Compare's and the CLI's evaluation) goes through
:class:`CheckpointMeta`, so they cannot disagree.

**One cache key per checkpoint version.** :func:`checkpoint_version` (the weights file's resolved path and
modification time; ``Checkpoint.version``, the catalog's ``CheckpointInfo.cache_key``) keys every cache of
something computed from a checkpoint: the pages' loaded models, and through its ``digest`` the top-9 and probe
scans and Compare's evaluations on disk. A run that rewrites ``best`` changes it; reading never does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from cnnviz import __version__
from cnnviz.compress import CompressionError, CompressionPlan, compress_state_dict, decompress_state_dict
from cnnviz.data.layout import TINY_IMAGENET_MEAN, TINY_IMAGENET_STD
from cnnviz.fsutil import atomic_write_bytes, atomic_write_json
from cnnviz.models import create_model

FORMAT = "cnnviz-checkpoint/1"
REQUIRED = ("arch", "model_args", "num_classes", "input_size")  # what rebuilding the model needs


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says what is wrong and how to fix it."""


def _ints(v: Any) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _stats(v: Any, default: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(float(x) for x in v) if isinstance(v, (list, tuple)) and len(v) else default


def _names(v: Any) -> list[str] | None:
    return [str(x) for x in v] if isinstance(v, (list, tuple)) else None


def _mapping(v: Any) -> dict[str, Any]:
    return dict(v) if isinstance(v, Mapping) else {}


@dataclass(frozen=True, eq=False)
class CheckpointMeta(Mapping):
    """A checkpoint's metadata, read (:meth:`from_dict`) and written (:meth:`to_dict`) here and nowhere else.

    Code reads the fields (``meta.mean``, ``meta.classes``). The record is also a read-only mapping of its JSON
    form (``meta["num_classes"]``, ``{**meta, "classes": None}``), so a plain dict of metadata (a test's, a
    zoo result's) can be given wherever a record is taken: :meth:`of` turns either into a record.
    """

    arch: str | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    num_classes: int | None = None
    input_size: int | None = None
    in_channels: int = 3
    classes: list[str] | None = None  # wnids in output order
    class_names: list[str] | None = None
    mean: tuple[float, ...] = TINY_IMAGENET_MEAN  # the mean/std rule: see the module docstring
    std: tuple[float, ...] = TINY_IMAGENET_STD
    epoch: int | None = None  # epochs completed
    step: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    train_config: dict[str, Any] = field(default_factory=dict)
    dtype: str = "float32"  # how the weights are stored ("float16", a compression plan's name ...)
    compression: dict[str, Any] | None = None  # cnnviz.compress's record of a compressed file
    dataset: str | None = None  # what it was trained on, when the writer said (cnnviz.catalog.dataset_of)
    format: str = FORMAT
    cnnviz_version: str | None = None
    created: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # every other key, kept as it was

    @classmethod
    def of(cls, meta: Mapping[str, Any]) -> CheckpointMeta:
        """``meta`` as a record (a record comes back as it is)."""
        return meta if isinstance(meta, CheckpointMeta) else cls.from_dict(meta)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CheckpointMeta:
        """Read metadata (possibly partial, e.g. a test's) with the module's rules; never raises for a missing
        key (:func:`read_meta` checks what a checkpoint file must have)."""
        args = _mapping(d.get("model_args"))
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        dataset = d.get("dataset")
        return cls(
            arch=str(d["arch"]) if d.get("arch") is not None else None, model_args=args,
            num_classes=_ints(d.get("num_classes")), input_size=_ints(d.get("input_size")),
            in_channels=_ints(d.get("in_channels")) or _ints(args.get("in_channels")) or 3,
            classes=_names(d.get("classes")), class_names=_names(d.get("class_names")),
            mean=_stats(d.get("mean"), TINY_IMAGENET_MEAN), std=_stats(d.get("std"), TINY_IMAGENET_STD),
            epoch=_ints(d.get("epoch")), step=_ints(d.get("step")), metrics=_mapping(d.get("metrics")),
            train_config=_mapping(d.get("train_config")), dtype=str(d.get("dtype") or "float32"),
            compression=d.get("compression"),
            dataset=dataset.strip() if isinstance(dataset, str) and dataset.strip() else None,
            format=str(d.get("format") or FORMAT), cnnviz_version=d.get("cnnviz_version"),
            created=d.get("created"), extra={k: v for k, v in d.items() if k not in known})

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written beside the weights."""
        out = {"format": self.format, "arch": self.arch, "model_args": dict(self.model_args),
               "num_classes": self.num_classes, "input_size": self.input_size, "in_channels": self.in_channels,
               "classes": self.classes, "class_names": self.class_names, "mean": list(self.mean),
               "std": list(self.std), "epoch": self.epoch, "step": self.step, "metrics": dict(self.metrics),
               "train_config": dict(self.train_config), "cnnviz_version": self.cnnviz_version,
               "created": self.created}
        if self.dataset is not None:
            out["dataset"] = self.dataset
        out.update(self.extra)
        out["dtype"] = self.dtype
        if self.compression is not None:
            out["compression"] = self.compression
        return out

    @property
    def trained_on(self) -> str | None:
        """The training config's data spec ("auto", "synthetic", a folder), when recorded."""
        return self.train_config.get("data")

    # ------------------------------------------------------------------------- the read-only mapping view
    @cached_property
    def _json(self) -> dict[str, Any]:
        return self.to_dict()

    def __getitem__(self, key: str) -> Any:
        return self._json[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._json)

    def __len__(self) -> int:
        return len(self._json)


class CheckpointVersion(NamedTuple):
    """The one cache key of a checkpoint version: its weights file (resolved) and modification time."""

    path: str
    mtime: float

    @property
    def digest(self) -> str:
        """A short hex name of this version, for cache files on disk."""
        return hashlib.sha256(f"{self.path}|{self.mtime!r}".encode()).hexdigest()[:16]


@dataclass
class Checkpoint:
    model: nn.Module  # in eval mode, on the requested device
    meta: CheckpointMeta
    path: Path  # the .safetensors file
    version: CheckpointVersion | None = None  # of the file that was read


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """``(weights, metadata)`` paths for ``X``, ``X.safetensors`` or ``X.json``."""
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def checkpoint_version(path: str | Path) -> CheckpointVersion:
    """The version of the checkpoint at ``path`` now (``OSError`` when its weights file is missing). A weights
    file of another format (torchvision's ``.pth`` in its cache, :mod:`cnnviz.imagenet`) is its own version."""
    given = Path(path)
    weights = (given if given.suffix not in ("", ".json") and given.is_file() else checkpoint_paths(path)[0]).resolve()
    return CheckpointVersion(str(weights), weights.stat().st_mtime)


def build_meta(model: nn.Module, *, classes: list[str] | None = None, class_names: list[str] | None = None,
               mean: tuple[float, ...] = TINY_IMAGENET_MEAN, std: tuple[float, ...] = TINY_IMAGENET_STD,
               epoch: int | None = None, step: int | None = None, metrics: dict | None = None,
               train_config: dict | None = None, **extra: Any) -> dict[str, Any]:
    """Metadata for a model built by ``create_model`` (it carries ``arch`` and ``model_args``), as the JSON
    object :func:`save_checkpoint` writes (a :class:`CheckpointMeta`'s ``to_dict()``); ``extra`` keys are
    recorded as they are."""
    if not hasattr(model, "arch"):
        raise ValueError("build_meta needs a model made by cnnviz.create_model (it has .arch and .model_args)")
    args = dict(model.model_args)
    first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return CheckpointMeta.from_dict({
        "arch": model.arch, "model_args": args, "num_classes": args["num_classes"],
        "input_size": args["input_size"], "in_channels": first_conv.in_channels if first_conv is not None else 3,
        "classes": classes, "class_names": class_names, "mean": list(mean), "std": list(std), "epoch": epoch,
        "step": step, "metrics": metrics or {}, "train_config": train_config or {}, "cnnviz_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra}).to_dict()


def save_checkpoint(path: str | Path, model: nn.Module, meta: Mapping[str, Any],
                    dtype: torch.dtype | None = None, compression: CompressionPlan | None = None) -> tuple[Path, Path]:
    """Write weights then metadata, each atomically. ``dtype=torch.float16`` halves the file (starter
    checkpoints); floating tensors are cast back to float32 on load. ``compression`` stores the weights as the
    plan says (int8, SVD factors; ``dtype`` is then ignored) and records how in ``meta["compression"]``."""
    weights_path, meta_path = checkpoint_paths(path)
    meta = CheckpointMeta.of(meta)
    header = {"format": FORMAT, "arch": str(meta.arch)}
    if compression is not None:
        state, spec = compress_state_dict(model.state_dict(), compression)
        data = st_save(state, metadata={**header, "compression": spec["format"]})
        meta = dataclasses.replace(meta, dtype=compression.name, compression={
            **spec, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    else:
        state = {}
        for k, v in model.state_dict().items():
            v = v.detach().to("cpu")
            if dtype is not None and v.is_floating_point():
                v = v.to(dtype)
            state[k] = v.contiguous().clone()  # clone: safetensors refuses tensors that share storage
        data = st_save(state, metadata=header)
        # a source's compression entry describes another file
        meta = dataclasses.replace(meta, dtype=str(dtype or "float32").replace("torch.", ""), compression=None)
    atomic_write_bytes(weights_path, data)
    return weights_path, write_meta(meta_path, meta)


def write_meta(path: str | Path, meta: Mapping[str, Any]) -> Path:
    """Rewrite a checkpoint's metadata (atomically) beside its unchanged weights; returns the ``.json`` path."""
    _, meta_path = checkpoint_paths(path)
    atomic_write_json(meta_path, CheckpointMeta.of(meta).to_dict())
    return meta_path


def _check_compressed_bytes(data: bytes, entry: Any, name: str) -> None:
    """Refuse a compressed file that is not, byte for byte, the one its metadata describes."""
    if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str) or not isinstance(entry.get("bytes"), int):
        raise CheckpointError(f"the compression entry of {name} lacks the file's size or sha256; the .json is damaged")
    if len(data) < entry["bytes"]:
        raise CheckpointError(f"{name} is truncated ({len(data):,} of {entry['bytes']:,} bytes): an interrupted "
                              "copy or download, or a .json from another checkpoint beside it; fetch or export it "
                              "again")
    if len(data) != entry["bytes"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise CheckpointError(f"{name} was modified or damaged after it was written (its sha256 does not match "
                              "the one in its .json); restore it or export it again")


def read_meta(path: str | Path) -> CheckpointMeta:
    """The metadata of a checkpoint, checked for the keys needed to rebuild its model."""
    _, meta_path = checkpoint_paths(path)
    if not meta_path.exists():
        raise CheckpointError(f"{meta_path.name} is missing: a checkpoint needs its .json metadata file beside "
                              "the .safetensors weights")
    try:
        raw = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{meta_path.name} is not valid JSON ({e}); the file is damaged") from e
    if not isinstance(raw, dict):
        raise CheckpointError(f"{meta_path.name} does not hold a JSON object")
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise CheckpointError(f"{meta_path.name} lacks {', '.join(missing)}: not a cnnviz checkpoint")
    return CheckpointMeta.from_dict(raw)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu", *, expect_arch: str | None = None,
                    expect_classes: int | None = None) -> Checkpoint:
    """Rebuild the model from the metadata and load the weights (safetensors only, never pickle).

    ``expect_arch``/``expect_classes`` refuse a checkpoint of another architecture or class count before any
    weights are read. Every failure raises :class:`CheckpointError` with a readable message.
    """
    if Path(path).suffix == ".pth":  # torchvision's ImageNet weights in torch.hub's cache (cnnviz.imagenet)
        from cnnviz.imagenet import is_imagenet_file, load_imagenet_file

        if is_imagenet_file(path) and expect_arch is None and expect_classes is None:
            return load_imagenet_file(path, device)
    weights_path, _ = checkpoint_paths(path)
    meta = read_meta(path)
    if expect_arch is not None and meta.arch != expect_arch:
        raise CheckpointError(f"checkpoint is a {meta.arch}, not a {expect_arch}")
    if expect_classes is not None and meta.num_classes != int(expect_classes):
        raise CheckpointError(f"checkpoint has {meta.num_classes} classes, expected {expect_classes}")
    if not weights_path.exists():
        raise CheckpointError(f"{weights_path.name} is missing")
    version = checkpoint_version(weights_path)  # before the read: a rewrite after it only makes the key newer
    data = weights_path.read_bytes()
    if not data:
        raise CheckpointError(f"{weights_path.name} is empty (an interrupted save?)")
    compressed = meta.compression is not None
    if compressed:
        _check_compressed_bytes(data, meta.compression, weights_path.name)
    try:
        state = st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{weights_path.name} is not a readable safetensors file (truncated or corrupt): {e}") from e
    try:
        model = create_model(meta.arch, **meta.model_args)
    except KeyError as e:
        raise CheckpointError(f"unknown architecture {meta.arch!r} in {weights_path.name}") from e
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"cannot rebuild {meta.arch} from the checkpoint's arguments: {e}") from e
    expected = model.state_dict()
    if compressed:  # shapes are checked against the architecture before anything is rebuilt
        try:
            state = decompress_state_dict(state, meta.compression,
                                          expected_shapes={k: tuple(v.shape) for k, v in expected.items()})
        except CompressionError as e:
            raise CheckpointError(f"{weights_path.name} cannot be rebuilt as a {meta.arch}: {e}") from e
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"weights do not match {meta.arch}: {len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    for k, v in state.items():
        if tuple(v.shape) != tuple(expected[k].shape):
            raise CheckpointError(f"weight {k} has shape {tuple(v.shape)}, the architecture needs "
                                  f"{tuple(expected[k].shape)}")
        if v.is_floating_point():
            state[k] = v.to(expected[k].dtype)
    model.load_state_dict(state, strict=True)
    model.eval().to(device)
    return Checkpoint(model=model, meta=meta, path=weights_path, version=version)
