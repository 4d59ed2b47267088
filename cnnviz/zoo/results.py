"""A zoo member's results as one small JSON file, kept whether its weights ship or not.

``<family>.json`` (format ``cnnviz-zoo-result/1``) holds what Compare and docs/zoo.md show: the recipe and
the member's own settings, the per-epoch history (``metrics.jsonl``), the final and best val top-1/top-5
(and the flip-TTA and live-weights numbers when the recipe has them), the confusion matrix over the whole val
split (rows: true class, columns: predicted, in ``wnids`` order; per-class accuracy is its diagonal over its
row sums), training time, throughput, peak memory and the device. Shipped results live in
``checkpoints/results/`` beside ``checkpoints/starter/`` (:func:`results_dir`); a zoo writes its own in
``checkpoints/zoo/<zoo-id>/results/`` and ``python -m cnnviz zoo import`` copies them over.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz.device import device_name
from cnnviz.fsutil import atomic_write_json, read_json
from cnnviz.paths import checkpoints_dir
from cnnviz.training.folder import RunFolder

FORMAT = "cnnviz-zoo-result/1"
RESULTS_DIR_NAME = "results"
TINY_IMAGENET = "Tiny ImageNet"


def results_dir(root: str | Path | None = None) -> Path:
    return Path(root or checkpoints_dir()) / RESULTS_DIR_NAME


def collect_result(run_dir: str | Path, family: str, out_dir: str | Path, *, zoo_id: str | None = None,
                   batch_size: int = 500, starter: dict[str, Any] | None = None,
                   lr_override: float | None = None) -> Path:
    """Evaluate the run's ``best`` checkpoint on the whole val split (confusion matrix) and write
    ``out_dir/<family>.json``; returns its path. ``lr_override``: the zoo's ``--lr`` for this family (for 256
    images), when it trained at a rate other than its member's own; the report says so on its row."""
    from cnnviz.checkpoint import load_checkpoint
    from cnnviz.data import load_split, resolve_data
    from cnnviz.device import pick_device
    from cnnviz.training.evaluate import evaluate_images
    from cnnviz.training.runs import read_run, training_rate, training_seconds

    run_dir = Path(run_dir)
    info = read_run(run_dir)
    metrics = [m for m in info.metrics if isinstance(m.get("epoch"), int)]
    if not metrics:
        raise ValueError(f"{run_dir.name} has no finished epoch to report")
    device = str(info.status.get("device") or "cpu")
    dev = pick_device("cuda" if device.startswith("cuda") else "cpu")
    ckpt = load_checkpoint(RunFolder(run_dir).checkpoint("best"), dev)
    val = load_split(resolve_data(info.config.get("data") or "auto"), "val")
    ev = evaluate_images(ckpt.model, ckpt.meta, val.images, val.labels, val.wnids, val.class_names, batch_size=batch_size)
    best = max(metrics, key=lambda m: m.get("val_top1", -1))
    config = {k: v for k, v in info.config.items() if k not in ("created",)}
    result = {
        "format": FORMAT, "family": family, "zoo": zoo_id or info.config.get("zoo"), "run": run_dir.name,
        "arch": ckpt.meta.arch, "model_args": ckpt.meta.model_args, "config": config,
        "device": device, "device_name": device_name(device),
        "epochs": len(metrics), "best_epoch": best["epoch"],
        "val_top1": ev.top1, "val_top5": ev.top5, "val_n": ev.n,
        "val_top1_tta": best.get("val_top1_tta"), "val_top5_tta": best.get("val_top5_tta"),
        "val_top1_raw": best.get("val_top1_raw"),
        "train_time_s": training_seconds(metrics) or 0.0,
        "wall_time_s": sum(float(m.get("epoch_time_s") or 0) for m in metrics),
        "images_per_s": training_rate(metrics),  # median over epochs after the first (which includes warm-up)
        "peak_mem_bytes": max(int(m.get("peak_mem_bytes") or 0) for m in metrics),
        "history": metrics,
        "wnids": list(val.wnids), "class_names": list(val.class_names),
        "confusion": ev.confusion.astype(int).tolist(), "top5_correct": int(ev.top5_correct),
        "starter": starter,  # the exported file's own evaluation and size, when one was exported
        "lr_override": lr_override,
        "collected": time.time(),
    }
    out = Path(out_dir) / f"{family}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, result)
    return out


def export_member(run_dir: str | Path, family: str, zoo_dir: str | Path) -> dict[str, Any]:
    """The member's compressed starter, ``<zoo>/starter/<family>_tinyimagenet.*``, measured from the written
    file (:func:`cnnviz.starter.export_starter`). Returns its evaluation plus ``bytes``."""
    from cnnviz.starter import export_starter, starter_dir

    name = f"{family}_tinyimagenet"
    r = export_starter(run_dir, name, root=zoo_dir, compress="auto")
    weights = starter_dir(zoo_dir) / f"{name}.safetensors"
    return {**r, "name": name, "checkpoint": weights.name, "bytes": weights.stat().st_size}


def read_result(path: str | Path) -> dict[str, Any]:
    """A result file, checked: ``ValueError`` with the reason for a file that is not one."""
    path = Path(path)
    try:
        r = read_json(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path.name} cannot be read ({e})") from e
    if not isinstance(r, dict) or r.get("format") != FORMAT:
        raise ValueError(f"{path.name} is not a zoo result file")
    for key in ("family", "arch", "val_top1", "history", "confusion", "wnids"):
        if key not in r:
            raise ValueError(f"{path.name} lacks {key!r}")
    c = np.asarray(r["confusion"])
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] != len(r["wnids"]):
        raise ValueError(f"{path.name}: its confusion matrix does not match its {len(r['wnids'])} classes")
    return r


def list_results(root: str | Path | None = None) -> list[dict[str, Any]]:
    """Every readable result in ``checkpoints/results/`` (or ``root``), by family; unreadable files are
    skipped (``python -m cnnviz zoo report`` names them)."""
    out = []
    for p in sorted(Path(root or results_dir()).glob("*.json")):
        try:
            out.append({**read_result(p), "path": str(p)})
        except ValueError:
            continue
    return out


def dataset_of(wnids: list[str] | None, data: str | None = None) -> str:
    """:data:`TINY_IMAGENET` when ``wnids`` are its 200 classes, else what the data was, for a reader:
    ``"synthetic data, 4 classes"`` (``data``, the run's ``--data``, is "synthetic", or the classes are the
    synthetic set's ``s0000001`` ...) or ``"not Tiny ImageNet, 10 classes"``. The classes decide, not the data
    spec: the real dataset may be given as "auto" or as any folder. Stricter than :func:`cnnviz.catalog.dataset_of`
    (which calls any 200 ImageNet wnids Tiny ImageNet) for Tiny ImageNet; the synthetic set is its call."""
    from cnnviz.catalog import SYNTHETIC_NAME
    from cnnviz.catalog import dataset_of as catalog_dataset
    from cnnviz.imagenet.tiny_classes import TINY_TO_IMAGENET

    wnids = list(wnids or [])
    if len(wnids) == len(TINY_TO_IMAGENET) and set(wnids) == set(TINY_TO_IMAGENET):
        return TINY_IMAGENET
    synthetic = catalog_dataset({"classes": [str(w) for w in wnids]}, {"data": data or ""}).name == SYNTHETIC_NAME
    kind = "synthetic data" if synthetic else "not Tiny ImageNet"
    return f"{kind}, {len(wnids)} classes" if wnids else f"{kind}, no classes recorded"


def per_class_accuracy(result: dict[str, Any]) -> np.ndarray:
    c = np.asarray(result["confusion"], dtype=np.int64)
    support = c.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(c) / np.maximum(support, 1), np.nan)


def import_zoo(source: str | Path, *, results_root: str | Path | None = None,
               starter_root: str | Path | None = None, allow_synthetic: bool = False) -> dict[str, list[str]]:
    """Copy a zoo's result files and starters (a zoo folder, or the flat folder a GPU call brought back) into
    ``checkpoints/results/`` and ``checkpoints/starter/``. Every file is checked first (results parse, starters
    load with their checksum); nothing is copied when one is bad.

    Those folders hold the Tiny ImageNet zoo (docs/zoo.md, Compare, the shipped starters), and a member's files
    are named by its family alone: a smoke zoo on the synthetic set would replace the real ``lenet5.json`` and
    ``lenet5_tinyimagenet``. So a result or starter whose classes are not Tiny ImageNet's is refused unless
    ``allow_synthetic`` (``--allow-synthetic``); docs/zoo.md then marks its rows."""
    from cnnviz.checkpoint import checkpoint_paths, load_checkpoint
    from cnnviz.starter import drop_stale_snapshots, starter_dir

    src = Path(source)
    if not src.is_dir():
        raise ValueError(f"{src} is not a folder")
    result_files = sorted((src / "results").glob("*.json")) if (src / "results").is_dir() else sorted(
        p for p in src.glob("*.json") if _is_result(p))
    starter_src = src / "starter" if (src / "starter").is_dir() else src
    starters = sorted(starter_src.glob("*.safetensors"))
    if not result_files and not starters:
        raise ValueError(f"{src} holds no zoo results or starters")
    other = []
    for p in result_files:
        r = read_result(p)
        if (dataset := dataset_of(r["wnids"], (r.get("config") or {}).get("data"))) != TINY_IMAGENET:
            other.append(f"{p.name} ({dataset})")
    for w in starters:
        meta = load_checkpoint(w).meta  # raises CheckpointError for a damaged or tampered file
        if (dataset := dataset_of(meta.classes, meta.trained_on)) != TINY_IMAGENET:
            other.append(f"{w.name} ({dataset})")
    if other and not allow_synthetic:
        raise ValueError(f"not trained on Tiny ImageNet: {', '.join(other)}; nothing was imported: "
                         "checkpoints/results and checkpoints/starter hold the Tiny ImageNet zoo, whose files of the "
                         "same family these would replace (--allow-synthetic imports them anyway, marked as such "
                         "in docs/zoo.md)")
    dest_r, dest_s = Path(results_root or results_dir()), Path(starter_root or starter_dir())
    dest_r.mkdir(parents=True, exist_ok=True)
    dest_s.mkdir(parents=True, exist_ok=True)
    for p in result_files:
        shutil.copyfile(p, dest_r / p.name)
    for w in starters:
        for f in checkpoint_paths(w):
            shutil.copyfile(f, dest_s / f.name)
        drop_stale_snapshots(dest_s / w.name)  # the replaced starter's shipped snapshots are another run's
    return {"results": [p.stem for p in result_files], "starters": [w.stem for w in starters]}


def _is_result(p: Path) -> bool:
    try:
        return read_json(p).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False
