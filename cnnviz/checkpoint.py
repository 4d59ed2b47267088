"""Self-describing checkpoints: ``NAME.safetensors`` (weights) + ``NAME.json`` (everything else).

This is the only module that reads weights. It never unpickles: weights are safetensors, metadata is JSON.
A checkpoint is usable with nothing but its two files::

    save_checkpoint("checkpoints/run1/best", model, meta)
    ckpt = load_checkpoint("checkpoints/run1/best.safetensors")
    ckpt.model, ckpt.meta["class_names"]

Metadata keys (see ``build_meta``): ``format``, ``arch``, ``model_args``, ``num_classes``, ``input_size``, ``in_channels``,
``classes`` (wnids, in output order), ``class_names``, ``mean``, ``std``, ``epoch``, ``step``, ``metrics``,
``train_config``, ``dtype``, ``cnnviz_version``, ``created``; a compressed checkpoint (``compression=`` a
:class:`cnnviz.compress.CompressionPlan`) adds ``compression``: the format version, the plan, each tensor's
storage kind (``int8``, ``svd_int8``, ``float16`` ...) and rank, the file's size and sha256. Loading checks
the size and hash, then rebuilds dense float32 weights, so the model is the ordinary architecture.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from cnnviz import __version__
from cnnviz.compress import CompressionError, CompressionPlan, compress_state_dict, decompress_state_dict
from cnnviz.fsutil import atomic_write_bytes, atomic_write_json
from cnnviz.models import create_model

FORMAT = "cnnviz-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says what is wrong and how to fix it."""


@dataclass
class Checkpoint:
    model: nn.Module  # in eval mode, on the requested device
    meta: dict[str, Any]
    path: Path  # the .safetensors file


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """``(weights, metadata)`` paths for ``X``, ``X.safetensors`` or ``X.json``."""
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def build_meta(model: nn.Module, *, classes: list[str] | None = None, class_names: list[str] | None = None,
               mean: tuple[float, ...] = (0.5, 0.5, 0.5), std: tuple[float, ...] = (0.5, 0.5, 0.5),
               epoch: int | None = None, step: int | None = None, metrics: dict | None = None,
               train_config: dict | None = None, **extra: Any) -> dict[str, Any]:
    """Metadata for a model built by ``create_model`` (it carries ``arch`` and ``model_args``)."""
    if not hasattr(model, "arch"):
        raise ValueError("build_meta needs a model made by cnnviz.create_model (it has .arch and .model_args)")
    args = dict(model.model_args)
    first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return {
        "format": FORMAT,
        "arch": model.arch,
        "model_args": args,
        "num_classes": args["num_classes"],
        "input_size": args["input_size"],
        "in_channels": first_conv.in_channels if first_conv is not None else 3,
        "classes": list(classes) if classes is not None else None,
        "class_names": list(class_names) if class_names is not None else None,
        "mean": list(mean),
        "std": list(std),
        "epoch": epoch,
        "step": step,
        "metrics": metrics or {},
        "train_config": train_config or {},
        "cnnviz_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **extra,
    }


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict[str, Any],
                    dtype: torch.dtype | None = None, compression: CompressionPlan | None = None) -> tuple[Path, Path]:
    """Write weights then metadata, each atomically. ``dtype=torch.float16`` halves the file (starter
    checkpoints); floating tensors are cast back to float32 on load. ``compression`` stores the weights as the
    plan says (int8, SVD factors; ``dtype`` is then ignored) and records how in ``meta["compression"]``."""
    weights_path, meta_path = checkpoint_paths(path)
    header = {"format": FORMAT, "arch": str(meta.get("arch"))}
    meta = {k: v for k, v in meta.items() if k != "compression"}  # a source's entry describes another file
    if compression is not None:
        state, spec = compress_state_dict(model.state_dict(), compression)
        data = st_save(state, metadata={**header, "compression": spec["format"]})
        meta["dtype"] = compression.name
        meta["compression"] = {**spec, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    else:
        state = {}
        for k, v in model.state_dict().items():
            v = v.detach().to("cpu")
            if dtype is not None and v.is_floating_point():
                v = v.to(dtype)
            state[k] = v.contiguous().clone()  # clone: safetensors refuses tensors that share storage
        meta["dtype"] = str(dtype or "float32").replace("torch.", "")
        data = st_save(state, metadata=header)
    atomic_write_bytes(weights_path, data)
    atomic_write_json(meta_path, meta)
    return weights_path, meta_path


def _check_compressed_bytes(data: bytes, entry: Any, name: str) -> None:
    """Refuse a compressed file that is not, byte for byte, the one its metadata describes."""
    if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str) or not isinstance(entry.get("bytes"), int):
        raise CheckpointError(f"the compression entry of {name} lacks the file's size or sha256; the .json is damaged")
    if len(data) < entry["bytes"]:
        raise CheckpointError(f"{name} is truncated ({len(data):,} of {entry['bytes']:,} bytes): an interrupted "
                              "copy or download; fetch or export it again")
    if len(data) != entry["bytes"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise CheckpointError(f"{name} was modified or damaged after it was written (its sha256 does not match "
                              "the one in its .json); restore it or export it again")


def read_meta(path: str | Path) -> dict[str, Any]:
    """The metadata of a checkpoint, checked for the keys needed to rebuild its model."""
    _, meta_path = checkpoint_paths(path)
    if not meta_path.exists():
        raise CheckpointError(f"{meta_path.name} is missing: a checkpoint needs its .json metadata file beside "
                              "the .safetensors weights")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{meta_path.name} is not valid JSON ({e}); the file is damaged") from e
    if not isinstance(meta, dict):
        raise CheckpointError(f"{meta_path.name} does not hold a JSON object")
    missing = [k for k in ("arch", "model_args", "num_classes", "input_size") if k not in meta]
    if missing:
        raise CheckpointError(f"{meta_path.name} lacks {', '.join(missing)}: not a cnnviz checkpoint")
    return meta


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
    if expect_arch is not None and meta["arch"] != expect_arch:
        raise CheckpointError(f"checkpoint is a {meta['arch']}, not a {expect_arch}")
    if expect_classes is not None and int(meta["num_classes"]) != int(expect_classes):
        raise CheckpointError(f"checkpoint has {meta['num_classes']} classes, expected {expect_classes}")
    if not weights_path.exists():
        raise CheckpointError(f"{weights_path.name} is missing")
    data = weights_path.read_bytes()
    if not data:
        raise CheckpointError(f"{weights_path.name} is empty (an interrupted save?)")
    compressed = "compression" in meta
    if compressed:
        _check_compressed_bytes(data, meta["compression"], weights_path.name)
    try:
        state = st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{weights_path.name} is not a readable safetensors file (truncated or corrupt): {e}") from e
    args = dict(meta["model_args"])
    try:
        model = create_model(meta["arch"], **args)
    except KeyError as e:
        raise CheckpointError(f"unknown architecture {meta['arch']!r} in {weights_path.name}") from e
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"cannot rebuild {meta['arch']} from the checkpoint's arguments: {e}") from e
    expected = model.state_dict()
    if compressed:  # shapes are checked against the architecture before anything is rebuilt
        try:
            state = decompress_state_dict(state, meta["compression"],
                                          expected_shapes={k: tuple(v.shape) for k, v in expected.items()})
        except CompressionError as e:
            raise CheckpointError(f"{weights_path.name} cannot be rebuilt as a {meta['arch']}: {e}") from e
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"weights do not match {meta['arch']}: {len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    for k, v in state.items():
        if tuple(v.shape) != tuple(expected[k].shape):
            raise CheckpointError(f"weight {k} has shape {tuple(v.shape)}, the architecture needs "
                                  f"{tuple(expected[k].shape)}")
        if v.is_floating_point():
            state[k] = v.to(expected[k].dtype)
    model.load_state_dict(state, strict=True)
    model.eval().to(device)
    return Checkpoint(model=model, meta=meta, path=weights_path)
