"""Starter checkpoints: the small, compressed copies of trained runs shipped in ``checkpoints/starter/``.

They let Predict and Compare work on a fresh clone. Each is made from a run's ``best`` checkpoint by
:func:`export_starter`, which writes the compressed file (``cnnviz.compress``: int8 weights per output channel,
truncated SVD of AlexNet's, ZFNet's and VGG's fc6/fc7; ``compress="none"`` keeps float16), then measures the
*shipped* file's val top-1/top-5 with the same code as ``python -m cnnviz evaluate`` and records them in its
metadata (``metrics.val_top1``, ``metrics.val_top5``, ``metrics.val_n``, ``metrics.evaluated_with``). It also
measures what compression cost, on the same val images, against the run's float32 model
(``compression.measured``: top-1/top-5 before and after, the logits' relative error, see
:func:`measure_compression`). Heads used only in training are left out of the shipped file (GoogLeNet's two
auxiliary classifiers: 4.7M of its 10.9M parameters at 200 classes), which leaves eval-mode outputs
unchanged. A starter may also ship some of its run's per-epoch snapshots (:func:`ship_snapshots`). All
starters together, snapshots included, stay within ``SIZE_BUDGET_BYTES`` (48 MiB, issue 10). The README table is
generated from that metadata by :func:`starter_table`, so the numbers shown are the numbers measured.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from cnnviz.checkpoint import (
    CheckpointMeta,
    checkpoint_paths,
    load_checkpoint,
    read_meta,
    save_checkpoint,
    write_meta,
)
from cnnviz.compress import compressed_bytes, make_plan, plan_for
from cnnviz.data import BatchPipeline, DatasetError, load_split, read_wnids, resolve_data
from cnnviz.device import pick_device
from cnnviz.models import create_model
from cnnviz.paths import checkpoints_dir
from cnnviz.summary import percent
from cnnviz.training.evaluate import evaluate_checkpoint  # the same code path as `python -m cnnviz evaluate`
from cnnviz.training.folder import RUN_TAGS, RunFolder, snapshot_files, starter_snapshots_dir
from cnnviz.training.runs import read_metrics

STARTER_DIR_NAME = "starter"
SIZE_BUDGET_BYTES = 48 * 1024 * 1024  # all starters together (issue 10: seven families, GPU call limits)
COMPRESS_MODES = ("auto", "none", "int8", "svd-int8")
# A snapshot takes no ranks of its own (ship_snapshots has no svd_ranks); "auto" applies the family's SVD.
SNAPSHOT_COMPRESS_MODES = ("auto", "none", "int8")


def starter_dir(root: str | Path | None = None) -> Path:
    return Path(root or checkpoints_dir()) / STARTER_DIR_NAME


def starter_paths(name: str, root: str | Path | None = None) -> tuple[Path, Path]:
    """``(weights, metadata)`` of the starter ``name``; ``ValueError`` for a name that is no plain file name."""
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise ValueError(f"starter name must be a plain file name, got {name!r}")
    return checkpoint_paths(starter_dir(root) / name)


def _run_folder(source: str | Path) -> Path | None:
    """The folder ``source`` names: a folder path, else a run id in the checkpoints folder (as ``runs``,
    ``evaluate`` and the other commands take it); None when it is neither."""
    p = Path(source)
    if p.is_dir():
        return p
    text = str(source)
    if text and os.sep not in text and "/" not in text and not text.startswith("."):
        run = checkpoints_dir() / text
        if run.is_dir():
            return run
    return None


def _source_checkpoint(source: str | Path) -> Path:
    """A run folder or run id (its ``best``, else ``last``), or a checkpoint path."""
    folder = _run_folder(source)
    if folder is not None:
        for tag in RUN_TAGS:
            w, j = checkpoint_paths(RunFolder(folder).checkpoint(tag))
            if w.exists() and j.exists():
                return w
        raise FileNotFoundError(f"{folder} holds no best or last checkpoint")
    w, _ = checkpoint_paths(source)
    if not w.exists():
        raise FileNotFoundError(f"no run or checkpoint {str(source)!r}: give a run folder, the id of a run in "
                                f"{checkpoints_dir()}, or a checkpoint file")
    return w


def _check_data(meta: CheckpointMeta, data: str | None) -> None:
    """Refuse, before anything is written, a dataset the export's evaluation would refuse after: one that is not
    there, or whose classes are not the checkpoint's."""
    spec = data or meta.trained_on or "auto"
    wnids = read_wnids(resolve_data(spec))
    if meta.classes and list(meta.classes) != wnids:
        raise DatasetError(f"the checkpoint was trained on {len(meta.classes)} classes that differ from the "
                           f"{len(wnids)} of the dataset {spec!r}; export it with --data set to the dataset it "
                           "was trained on")


def inference_only(model: torch.nn.Module) -> tuple[torch.nn.Module, list[str]]:
    """``(model, dropped)``: the same network without heads that only training uses, and what was dropped.

    GoogLeNet's auxiliary classifiers (``aux1``, ``aux2``) only add training losses (paper, Section 5); in eval
    mode the model returns the main logits alone, so dropping them changes no prediction. Other models come
    back unchanged.
    """
    if not getattr(model, "aux_logits", False):
        return model, []
    lean = create_model(model.arch, **{**model.model_args, "aux_logits": False})
    keep = set(lean.state_dict())
    state = model.state_dict()
    dropped = sorted({k.split(".")[0] for k in state if k not in keep})
    lean.load_state_dict({k: v for k, v in state.items() if k in keep}, strict=True)
    return lean.eval(), dropped


def export_starter(source: str | Path, name: str, *, compress: str = "auto", svd_ranks: dict[str, int] | None = None,
                   data: str | None = None, root: str | Path | None = None, device: str = "auto") -> dict[str, Any]:
    """Write ``starter/<name>`` from a run or checkpoint, compressed as ``compress`` says, evaluate the written
    file, and measure what compression cost.

    ``compress``: ``auto`` (the family's :func:`cnnviz.compress.default_plan`; ``svd_ranks`` override its
    ranks), ``none`` (float16), ``int8``, ``svd-int8`` (int8 + SVD with ``svd_ranks``, else the default ranks).
    Returns the evaluation (``{"checkpoint", "top1", "top5", "n", "loss", "compression"}``), ``compression``
    being what is recorded as ``compression.measured``.

    An existing starter of that name is replaced (the zoo's export and a re-export of a shipped file rely on it;
    ``starter export`` asks for ``--force`` first). The file is written and measured in a hidden folder beside it
    and moved into place only once measured: a failed export (a device or dataset refused by the evaluation, an
    interrupt) leaves no half-made starter, and the one it would have replaced stays as it was.
    """
    weights, _ = starter_paths(name, root)
    src = _source_checkpoint(source)
    ckpt = load_checkpoint(src, "cpu")
    model, dropped = inference_only(ckpt.model)
    plan = plan_for(compress, model.arch, model, svd_ranks)  # refuses a bad mode or rank before writing
    source = ckpt.meta
    # refused before the work, not by the evaluation: an unknown or absent device, a missing or other dataset
    pick_device(device)
    _check_data(source, data)
    # The run's per-epoch metrics up to the exported epoch: Compare draws a starter's training curves from it.
    # A shipped starter re-exported (e.g. compressed to make room for another family) keeps the history and
    # source it recorded: its folder has no metrics.jsonl.
    history = [m for m in read_metrics(RunFolder(src.parent).metrics)
               if source.epoch is None or (isinstance(m.get("epoch"), int) and m["epoch"] <= source.epoch)]
    earlier = source.extra.get("starter") if isinstance(source.extra.get("starter"), dict) else {}
    meta = dataclasses.replace(source, model_args=dict(model.model_args), extra={
        **source.extra, "history": history or list(source.extra.get("history") or []),
        "starter": {"name": name, "source": earlier.get("source") or str(src.parent.name + "/" + src.name),
                    "train_config": source.train_config,
                    "dropped_training_only_heads": dropped or earlier.get("dropped_training_only_heads") or []}})
    weights.parent.mkdir(parents=True, exist_ok=True)
    # Not a folder that `starter list` or the catalog reads (they list the files in starter/ only).
    staging = Path(tempfile.mkdtemp(prefix=f".export-{name}-", dir=weights.parent))
    try:
        out = staging / name
        save_checkpoint(out, model, meta, compression=plan)
        result = evaluate_checkpoint(out, data=data, device=device)
        written = read_meta(out)
        measured = measure_compression(model, load_checkpoint(out, "cpu").model, written, data=data,
                                       device=device)
        measured["float16_bytes"] = compressed_bytes(model, make_plan(int8=False))
        write_meta(out, dataclasses.replace(
            written, compression={**written.compression, "measured": measured},
            metrics={**written.metrics, "val_top1": result["top1"], "val_top5": result["top5"],
                     "val_n": result["n"],
                     "evaluated_with": f"python -m cnnviz evaluate (the shipped {plan.name} file)"}))
        for staged, final in zip(checkpoint_paths(out), checkpoint_paths(weights), strict=True):
            os.replace(staged, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    drop_stale_snapshots(weights)
    return {**result, "checkpoint": str(weights), "compression": measured}


def ship_snapshots(source: str | Path, name: str, epochs: list[int], *, compress: str = "auto",
                   root: str | Path | None = None) -> list[Path]:
    """Copy the snapshots of ``epochs`` that the run ``source`` kept (``--keep-snapshots``) beside the starter
    ``name``, in ``starter/<name>.epochs/``, stored like a starter (``compress``, training-only heads dropped),
    so that Visualize's "across training" view has a model on a fresh clone. The starter itself is the last
    epoch shown, so ``epochs`` should stop before it. Their metrics are the run's own evaluation of each epoch,
    not re-measured. Replaces what the folder held; returns the written weights files.

    ``source`` is a run folder or a run id; it must be the run the starter was exported from (its metadata
    records it), else the snapshots would show another network's training."""
    if compress not in SNAPSHOT_COMPRESS_MODES:
        raise ValueError(f"snapshots are stored as auto, none or int8, not {compress!r} (auto applies the "
                         "family's SVD; ranks of your own are for `starter export`)")
    path = _run_folder(source)
    if path is None:
        raise FileNotFoundError(f"no run {str(source)!r}: give the folder (or the id, in {checkpoints_dir()}) of "
                                "the run the starter was exported from")
    folder = RunFolder(path.resolve())  # its name is the run id the starter records ("." has none)
    weights, _ = starter_paths(name, root)
    if not weights.is_file():
        raise FileNotFoundError(f"no starter {name!r} in {starter_dir(root)}: export it first")
    exported_from = _run_of(str((read_meta(weights).extra.get("starter") or {}).get("source") or ""))
    if exported_from and exported_from != folder.id:
        raise ValueError(f"starter {name!r} was exported from run {exported_from}, not {folder.id}: ship "
                         f"{exported_from}'s snapshots, or export {folder.id} as the starter first")
    kept = dict(folder.snapshots())
    missing = [e for e in epochs if e not in kept]
    if missing:
        have = ", ".join(map(str, sorted(kept))) or "none (train with --keep-snapshots)"
        raise ValueError(f"{folder.path} kept no snapshot of epoch{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(map(str, missing))}; it has {have}")
    out_dir = starter_snapshots_dir(weights)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    written = []
    for epoch in sorted(set(epochs)):
        ckpt = load_checkpoint(kept[epoch], "cpu")
        model, _ = inference_only(ckpt.model)
        meta = dataclasses.replace(ckpt.meta, model_args=dict(model.model_args), extra={
            **ckpt.meta.extra, "starter_snapshot": {"of": name, "source": f"{folder.id}/epochs/{kept[epoch].name}",
                                                    "metrics": "the run's own evaluation of this epoch"}})
        w, _ = save_checkpoint(out_dir / kept[epoch].name, model, meta,
                               compression=plan_for(compress, model.arch, model, None))
        written.append(w)
    return written


def drop_stale_snapshots(weights: str | Path) -> bool:
    """Remove the snapshots shipped beside the starter ``weights`` when any of them comes from another run than
    the starter (one replaced by a new run's export or a zoo import): they would show another network's
    training. True when the folder was removed."""
    folder = starter_snapshots_dir(weights)
    if not folder.exists():
        return False
    run = _run_of(str((read_meta(weights).extra.get("starter") or {}).get("source") or ""))
    for _, path in snapshot_files(folder):
        try:
            source = str((read_meta(path).extra.get("starter_snapshot") or {}).get("source") or "")
        except ValueError:
            source = ""
        if not run or _run_of(source) != run:
            shutil.rmtree(folder)
            return True
    return False


def _run_of(source: str) -> str:
    """The run id of a recorded source, ``"<run-id>/best.safetensors"`` or ``"<run-id>/epochs/..."``."""
    return source.split("/", 1)[0] if "/" in source else ""


def measure_compression(reference: torch.nn.Module, compressed: torch.nn.Module, meta: dict[str, Any], *,
                        data: str | None = None, device: str = "auto", batch_size: int = 256,
                        max_images: int | None = None) -> dict[str, Any]:
    """What compression cost, on every val image (or ``max_images`` spread evenly over them, for benchmarks):
    both models in float32 (no autocast, no TF32), on the same batches.

    Returns ``{"n", "reference_top1", "reference_top5", "top1", "top5", "top1_change_pp", "top5_change_pp",
    "logit_rel_error_mean", "logit_rel_error_max", "same_top1_fraction", "device"}``; the logit error is
    ``||z_c - z|| / ||z||`` per image (L2 over the classes), then the mean and the max over images.
    """
    dev = pick_device(device)
    meta = CheckpointMeta.of(meta)
    val = load_split(resolve_data(data or meta.trained_on or "auto"), "val")
    images, labels = val.images, val.labels
    if max_images is not None and max_images < len(labels):
        pick = torch.linspace(0, len(labels) - 1, max_images).long().numpy()
        images, labels = images[pick], labels[pick]
    pipe = BatchPipeline(images, labels, batch_size, dev, train=False, augment="none",
                         mean=meta.mean, std=meta.std, drop_last=False, size=int(meta.input_size))
    models = [m.to(dev).eval() for m in (reference, compressed)]
    hits = torch.zeros(2, 2, dtype=torch.float64)  # model x (top-1, top-5)
    errors, same, n = [], 0, 0
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False  # float32 means float32
    try:
        with torch.no_grad():
            for x, y in pipe:
                z = [m(x).float() for m in models]
                for i, logits in enumerate(z):
                    top = logits.topk(min(5, logits.shape[1]), dim=1).indices
                    hits[i, 0] += (top[:, 0] == y).sum().item()
                    hits[i, 1] += (top == y[:, None]).any(dim=1).sum().item()
                errors.append(((z[1] - z[0]).norm(dim=1) / z[0].norm(dim=1).clamp_min(1e-12)).cpu())
                same += (z[0].argmax(1) == z[1].argmax(1)).sum().item()
                n += y.numel()
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    rel = torch.cat(errors).double()
    acc = (hits / max(n, 1)).tolist()
    return {"n": n, "reference": "the source checkpoint in float32", "reference_top1": acc[0][0],
            "reference_top5": acc[0][1], "top1": acc[1][0], "top5": acc[1][1],
            "top1_change_pp": 100 * (acc[1][0] - acc[0][0]), "top5_change_pp": 100 * (acc[1][1] - acc[0][1]),
            "logit_rel_error_mean": rel.mean().item(), "logit_rel_error_max": rel.max().item(),
            "same_top1_fraction": same / max(n, 1), "device": str(dev)}


def list_starters(root: str | Path | None = None) -> list[dict[str, Any]]:
    """Metadata of every starter checkpoint (name, arch, epochs, measured accuracy, file size, storage, and the
    dataset its classes are: ``"Tiny ImageNet"``, else what :func:`cnnviz.zoo.results.dataset_of` says)."""
    from cnnviz.zoo.results import dataset_of

    rows = []
    for w in sorted(starter_dir(root).glob("*.safetensors")):
        try:
            meta = read_meta(w)
        except ValueError:
            continue
        m = meta.metrics
        snapshots = snapshot_files(starter_snapshots_dir(w))
        rows.append({"name": w.stem, "arch": meta.arch, "variant": {k: v for k, v in meta.model_args.items()
                                                                   if k not in ("num_classes", "input_size")},
                     "epochs": meta.epoch, "val_top1": m.get("val_top1"), "val_top5": m.get("val_top5"),
                     "val_n": m.get("val_n"), "bytes": w.stat().st_size, "stored_as": compression_summary(meta),
                     "cost_measured": _cost_measured(meta), "dtype": meta.dtype, "model_args": dict(meta.model_args),
                     "train_config": meta.get("train_config") or {},
                     "dataset": dataset_of(meta.classes, meta.trained_on),
                     "snapshot_epochs": [e for e, _ in snapshots],
                     "snapshot_bytes": sum(p.stat().st_size for _, p in snapshots)})
    return rows


def _cost_measured(meta: CheckpointMeta) -> bool:
    """Whether the export measured what compression cost (``compression.measured`` with a top-1 change)."""
    entry = meta.compression
    measured = entry.get("measured") if isinstance(entry, dict) else None
    return isinstance(measured, dict) and measured.get("top1_change_pp") is not None


def compression_summary(meta: dict[str, Any]) -> str:
    """``"svd-int8 (int8 weights ... + truncated SVD of classifier.fc6 (rank 256)): -0.31 pp top-1, logits 2.1%
    off (max 8.0%)"``, from the measured entry; ``"float16"`` for a checkpoint stored without compression."""
    meta = CheckpointMeta.of(meta)
    entry = meta.compression
    if not isinstance(entry, dict):
        return meta.dtype
    plan = entry.get("plan") or {}
    text = f"{plan.get('name', '?')} ({plan.get('description', '')})"
    measured = entry.get("measured")
    if _cost_measured(meta):
        text += (f": {measured['top1_change_pp']:+.2f} pp top-1, {measured['top5_change_pp']:+.2f} pp top-5, "
                 f"logits {100 * measured['logit_rel_error_mean']:.1f}% off "
                 f"(max {100 * measured['logit_rel_error_max']:.1f}%)")
    return text


def starter_notes(arch: str, root: str | Path | None = None) -> list[str]:
    """For the model card: one sentence per shipped starter of ``arch``, with its measured accuracy, its epochs
    and how it is stored, with what that cost (measured at export against the checkpoint it was made from)."""
    from cnnviz.zoo.results import TINY_IMAGENET

    notes = []
    for r in list_starters(root):
        if r["arch"] != arch:
            continue
        n = r["val_n"]
        stored = r["stored_as"]
        if r["cost_measured"]:
            stored += ", measured at export against the checkpoint it was made from"
        data = "Tiny ImageNet val images" if r["dataset"] == TINY_IMAGENET else f"val images ({r['dataset']})"
        notes.append(f"`{r['name']}`: {percent(r['val_top1'])} top-1, {percent(r['val_top5'])} top-5 on "
                     f"{f'{n:,}' if n else 'the'} {data} after {r['epochs']} epoch"
                     f"{'s' if r['epochs'] != 1 else ''} of training; {r['bytes'] / 2**20:.1f} MiB, stored as "
                     f"{stored}.")
    return notes


def _size(row: dict[str, Any]) -> str:
    text = f"{row['bytes'] / 2**20:.1f} MiB"
    if epochs := row["snapshot_epochs"]:
        text += (f" (+ {row['snapshot_bytes'] / 2**20:.2f} MiB: epoch{'s' if len(epochs) > 1 else ''} "
                 f"{', '.join(map(str, epochs))}"
                 " for Visualize's *Across training*)")
    return text


def starter_table(root: str | Path | None = None) -> str:
    """The README's Markdown table of starter checkpoints, from their metadata."""
    lines = ["| checkpoint | architecture | epochs | val top-1 | val top-5 | size | stored as (measured cost) |",
             "|---|---|---|---|---|---|---|"]
    for r in list_starters(root):
        variant = ", ".join(f"{k}={v}" for k, v in r["variant"].items())
        lines.append(f"| `{r['name']}` | {r['arch']} ({variant}) | {r['epochs']} | {percent(r['val_top1'])} | "
                     f"{percent(r['val_top5'])} | {_size(r)} | {r['stored_as']} |")
    return "\n".join(lines)
