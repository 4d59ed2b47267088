"""Comparisons across trained models: runs and starter checkpoints side by side.

::

    entries = list_entries()                     # starter checkpoints + runs (cnnviz.catalog's order)
    table = compare_table(entries[:3])           # one row per model; .differing names the hyper-parameters
    curves = curves_frame(entries[:3])           # long format: entry, epoch, elapsed_s, metric, value
    ev = cached_evaluation(entries[0].checkpoint, split)   # confusion on the val set, cached on disk (.npz)
    most_confused(ev)                            # off-diagonal pairs, most frequent first

The Compare page's figures, its sentences, the same-image view and the export bundle (tables, PNGs, configs in
one zip) are in :mod:`cnnviz.views.compare`.

Every number comes from the run's own files (``config.json``, ``metrics.jsonl``, ``status.json``) or a
checkpoint's metadata, never re-derived differently: the table's "best val top-1" is the maximum ``val_top1``
in ``metrics.jsonl`` (for a starter checkpoint, the ``val_top1`` recorded in its metadata).
Evaluations are cached as ``.npz`` (``allow_pickle=False``) keyed by the checkpoint's version
(:func:`cnnviz.checkpoint.checkpoint_version`, the one key of every cache of a checkpoint) and a fingerprint of
the evaluated images, so a checkpoint is evaluated once however many sessions ask.
"""

from __future__ import annotations

import functools
import hashlib
import json
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cnnviz.catalog import DatasetInfo, dataset_of, list_checkpoints
from cnnviz.checkpoint import CheckpointMeta, checkpoint_version, load_checkpoint, read_meta
from cnnviz.fsutil import atomic_write_bytes
from cnnviz.paths import checkpoints_dir, data_dir
from cnnviz.training.evaluate import EvalResult, evaluate_images
from cnnviz.training.folder import RunFolder
from cnnviz.training.runs import metric_value, training_rate, training_seconds

# config keys that identify a run or steer the worker rather than describe how the model was trained
NOT_HYPERPARAMETERS = {"run_id", "id", "name", "created", "output", "out_dir", "run_dir", "path", "device_name",
                       "code_version", "cnnviz_version", "git_commit", "pid", "host", "heartbeat_s",
                       "save_every_min", "keep_snapshots", "allow_concurrent", "arch"}  # arch has its own column
CURVE_METRICS = ("val_top1", "val_top5", "val_loss", "train_loss", "train_acc", "lr", "images_per_s")


# ----------------------------------------------------------------------------------------------- entries
@dataclass
class CompareEntry:
    """One comparable model: a training run or a starter checkpoint."""

    id: str  # run id, "starter/<name>", or "zoo/<family>"
    kind: str  # "run" | "starter" | "imagenet" (torchvision weights) | "zoo" (a zoo member's result file: cnnviz.zoo.results)
    arch: str | None
    model_args: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # hyper-parameters
    metrics: list[dict[str, Any]] = field(default_factory=list)  # one per epoch (a starter: its recorded one)
    # A starter: the per-epoch metrics of the run it came from (its curves); its headline accuracy stays the
    # one measured on the shipped file, in ``metrics``.
    history: list[dict[str, Any]] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    checkpoint: Path | None = None  # best (else last) weights
    meta: CheckpointMeta = field(default_factory=CheckpointMeta)  # that checkpoint's metadata (empty: none)
    state: str = "done"
    problems: list[str] = field(default_factory=list)
    # A zoo result's confusion matrix over the whole val split, measured when it was trained: its per-class
    # view needs no evaluation (and no weights).
    evaluation: EvalResult | None = None
    # Val top-1 of the starter file Visualize and Predict load (compressed: int8, SVD), measured from that file on
    # the whole val split: a zoo member's best val top-1 is its uncompressed weights', so the same network shows
    # 42.03% here and 40.5% there; the table puts both side by side. None: no shipped file here.
    shipped_top1: float | None = None

    @property
    def input_size(self) -> int | None:
        v = self.model_args.get("input_size") or self.config.get("input_size")
        return int(v) if v else None

    @property
    def num_classes(self) -> int | None:
        v = self.model_args.get("num_classes") or self.meta.num_classes or self.status.get("num_classes")
        return int(v) if v else None

    @property
    def dataset(self) -> DatasetInfo:
        """What it was trained on (its checkpoint's metadata; a run's config before its first checkpoint)."""
        return dataset_of(self.meta, self.config, self.status)


def _run_entry(run: Any) -> CompareEntry:
    checkpoint = RunFolder(run.path).best_checkpoint()
    meta = CheckpointMeta()
    problems = list(getattr(run, "problems", []) or [])
    if checkpoint is not None:
        try:
            meta = read_meta(checkpoint)
        except (ValueError, OSError) as e:
            problems.append(str(e))
            checkpoint = None
    config = dict(run.config or {})
    model_args = dict(meta.model_args)
    if not model_args and config.get("arch"):
        model_args = {k: config[k] for k in ("num_classes", "input_size") if k in config}
    return CompareEntry(id=run.id, kind="run", arch=meta.arch or config.get("arch"), model_args=model_args,
                        config=config, metrics=list(run.metrics or []), status=dict(run.status or {}),
                        checkpoint=checkpoint, meta=meta, state=getattr(run, "state", "unknown"),
                        problems=problems)


def _read_runs(root: Path) -> list[Any]:
    """Runs through ``cnnviz.training.runs`` (the training engineer's reader, tolerant of torn files)."""
    from cnnviz.training.runs import list_runs

    return list_runs(root)


def list_entries(root: str | Path | None = None) -> list[CompareEntry]:
    """The starter checkpoints (by name), then every run (newest first): the one ordering of
    :mod:`cnnviz.catalog`. Never raises for a damaged run or checkpoint: what could not be read is listed in
    ``problems``."""
    root = Path(root) if root is not None else checkpoints_dir()
    entries = []
    for info in list_checkpoints(root):
        if info.kind not in ("starter", "imagenet"):  # imagenet: torchvision's weights, cnnviz.imagenet
            continue
        metrics = {k: v for k, v in info.metrics.items() if isinstance(v, (int, float))}
        if info.meta.epoch is not None:
            metrics.setdefault("epoch", info.meta.epoch)
        entries.append(CompareEntry(
            id=info.name, kind=info.kind, arch=info.arch, model_args=dict(info.meta.model_args),
            config=dict(info.meta.train_config), metrics=[metrics] if metrics else [],
            history=[h for h in info.meta.extra.get("history") or [] if isinstance(h, dict)],
            checkpoint=info.path, meta=info.meta,
            shipped_top1=metrics.get("val_top1") if info.kind == "starter" else None,
            problems=[f"best val top-1/top-5 are {info.meta.extra['metrics_note']}"] if info.kind == "imagenet"
            else []))
    zoo = _zoo_entries(root)
    for e in entries:  # a starter exported from a zoo member trained where the member did
        e.status = next((dict(z.status) for z in zoo if e.checkpoint and z.checkpoint == e.checkpoint), e.status)
    return entries + zoo + [_run_entry(r) for r in _read_runs(root)]


def _zoo_entries(root: Path) -> list[CompareEntry]:
    """One entry per zoo result file in ``checkpoints/results/`` (by family, in the zoo's order), with the
    starter exported from it as its checkpoint when that file is here."""
    from cnnviz.starter import starter_dir
    from cnnviz.zoo.recipe import member_order
    from cnnviz.zoo.results import list_results, results_dir

    out = []
    for r in sorted(list_results(results_dir(root)), key=lambda r: member_order(r["family"])):
        starter = r.get("starter") or {}
        weights = starter_dir(root) / str(starter.get("checkpoint") or "-")
        args = dict(r.get("model_args") or {})
        meta = CheckpointMeta.from_dict({
            "arch": r["arch"], "model_args": args, "num_classes": len(r["wnids"]), "input_size": args.get("input_size"),
            "classes": r["wnids"], "class_names": r.get("class_names"), "train_config": r.get("config") or {},
            "epoch": r.get("epochs")})
        ev = EvalResult(confusion=np.asarray(r["confusion"], dtype=np.int64), top5_correct=int(r["top5_correct"]),
                        wnids=list(r["wnids"]), names=list(r.get("class_names") or r["wnids"]))
        history = [{**m, "val_top1": m.get("val_top1")} for m in r["history"]]
        out.append(CompareEntry(id=f"zoo/{r['family']}", kind="zoo", arch=r["arch"], model_args=args,
                                config=dict(r.get("config") or {}), metrics=history, history=history,
                                status={"device": r.get("device"), "device_name": r.get("device_name")},
                                checkpoint=weights if weights.is_file() else None, meta=meta, evaluation=ev,
                                shipped_top1=starter.get("top1") if weights.is_file() else None))
    return out


def stored_evaluations(entries: Sequence[CompareEntry]) -> dict[str, EvalResult]:
    """The evaluations that came with the entries (zoo results), by entry id."""
    return {e.id: e.evaluation for e in entries if e.evaluation is not None}


def default_selection(entries: Sequence[CompareEntry], starters: int = 8, runs: int = 2) -> list[str]:
    """What Compare opens on: the shipped starters (up to ``starters``: one per family, seven families, is the
    comparison the project is for) and the newest ``runs`` runs, in the one ordering; the starters stay selected
    however many runs exist."""
    zoo = [e.id for e in entries if e.kind == "zoo"]
    if zoo:  # the comparison the project exists for: every family under one recipe (docs/zoo.md)
        return zoo
    return ([e.id for e in entries if e.kind == "starter"][:starters]
            + [e.id for e in entries if e.kind == "run"][:runs])


# ----------------------------------------------------------------------------------------------- the table
PARAMS_NOTE = ("params: at each model's own input and classes, at inference; heads used only in training "
               "(GoogLeNet's auxiliary classifiers) are counted apart, in 'training-only params', when a model has them.")


@functools.lru_cache(maxsize=64)
def _model_stats(arch: str, args_json: str) -> tuple[int | None, int | None, int]:
    """(parameters at inference, MACs per image, training-only parameters) of an architecture built with these
    arguments: :func:`cnnviz.summary.param_count` of its layer table (built without allocating weights), the
    same count the Architectures page shows; parameters by counting when the summary cannot be made."""
    from cnnviz.models import create_model
    from cnnviz.summary import layer_table, param_count

    args = json.loads(args_json)
    size = int(args.pop("input_size", None) or 224)
    classes = args.pop("num_classes", None)
    channels = int(args.get("in_channels") or 3)
    try:
        table = layer_table(arch, input_size=(channels, size, size), num_classes=classes, **args)
        count = param_count(table)
        return count.inference, int(table.totals["macs"]), count.training_only
    except Exception:  # noqa: BLE001 - fall back to a real model below
        pass
    try:
        model = create_model(arch, num_classes=classes, input_size=size, **args)
    except (KeyError, TypeError, ValueError):
        return None, None, 0
    params = sum(p.numel() for p in model.parameters())
    try:
        table = layer_table(model, input_size=(int(getattr(model, "in_channels", channels)), size, size))
        count = param_count(table)
        return count.inference, int(table.totals["macs"]), count.training_only
    except Exception:  # noqa: BLE001 - MACs are optional (summary absent or failing): leave them blank
        return params, None, 0


def model_stats(entry: CompareEntry) -> tuple[int | None, int | None]:
    """(parameters at inference, MACs) for an entry's architecture, or (None, None) when it cannot be rebuilt."""
    return _entry_stats(entry)[:2]


def _entry_stats(entry: CompareEntry) -> tuple[int | None, int | None, int]:
    if not entry.arch:
        return None, None, 0
    return _model_stats(entry.arch, json.dumps(entry.model_args, sort_keys=True, default=str))


def _numbers(metrics: list[dict], key: str) -> list[float]:
    return [v for m in metrics if (v := metric_value(m, key)) is not None]


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def differing_hyperparameters(entries: Sequence[CompareEntry]) -> list[str]:
    """Config keys whose values differ between the entries (a key missing from one counts as different)."""
    flats = [_flatten(e.config) for e in entries]
    keys = sorted({k for f in flats for k in f} - NOT_HYPERPARAMETERS)
    if len(entries) < 2:
        return []
    sentinel = object()
    return [k for k in keys
            if len({json.dumps(f.get(k, sentinel), sort_keys=True, default=lambda _: "<missing>") for f in flats}) > 1]


def entry_row(entry: CompareEntry) -> dict[str, Any]:
    """The comparison numbers of one entry, straight from its files."""
    params, macs, training_only = _entry_stats(entry)
    m = entry.metrics
    top1, top5 = _numbers(m, "val_top1"), _numbers(m, "val_top5")
    trained = m if entry.kind in ("run", "zoo") else (entry.history or m)  # a starter's: its run's history
    peak = _numbers(trained, "peak_mem_bytes")
    if entry.kind in ("run", "zoo"):
        epochs = len(m)
    else:
        epochs = entry.meta.epoch
    return {
        "model": entry.id, "kind": entry.kind, "arch": entry.arch, "dataset": entry.dataset.name,
        "input": entry.input_size, "classes": entry.num_classes, "params": params,
        "training-only params": training_only, "macs": macs, "epochs": epochs,
        "best_val_top1": max(top1) if top1 else None, "best_val_top5": max(top5) if top5 else None,
        **({"best_val_top1": entry.evaluation.top1, "best_val_top5": entry.evaluation.top5}  # docs/zoo.md's
           if entry.evaluation is not None else {}),
        "shipped_top1": entry.shipped_top1,
        "device": entry.status.get("device_name") or entry.status.get("device"),  # what the time was on
        "train_time_s": training_seconds(trained),  # the same numbers as docs/zoo.md's (steps only)
        "images_per_s": training_rate(trained),
        "peak_mem_bytes": int(max(peak)) if peak else None,
        "state": entry.state,
    }


@dataclass
class CompareTable:
    frame: pd.DataFrame  # one row per entry; hyper-parameter columns are named "hp: <key>"
    differing: list[str]  # the config keys that differ (their columns are "hp: <key>")


def compare_table(entries: Sequence[CompareEntry]) -> CompareTable:
    """The comparison table: numbers per entry plus every hyper-parameter that differs between them."""
    differing = differing_hyperparameters(entries)
    rows = []
    for e in entries:
        row = entry_row(e)
        flat = _flatten(e.config)
        for k in differing:
            v = flat.get(k)
            row[f"hp: {k}"] = json.dumps(v) if isinstance(v, (list, dict)) else v
        rows.append(row)
    frame = pd.DataFrame(rows)
    if "training-only params" in frame and not frame["training-only params"].fillna(0).any():
        frame = frame.drop(columns="training-only params")  # only GoogLeNet-style models with their heads
    if "shipped_top1" in frame and frame["shipped_top1"].isna().all():
        frame = frame.drop(columns="shipped_top1")  # only starters and the zoo members that shipped one
    return CompareTable(frame=frame, differing=differing)


def curves_frame(entries: Sequence[CompareEntry], metrics: Sequence[str] = CURVE_METRICS) -> pd.DataFrame:
    """Per-epoch curves in long format: ``model, epoch, elapsed_s, metric, value``. ``elapsed_s`` is the
    run's own wall clock (``elapsed_s``; summed ``epoch_time_s`` when absent). A starter contributes the
    history of the run it was exported from, when its metadata keeps one."""
    rows = []
    for e in entries:
        clock = 0.0
        for i, m in enumerate(e.metrics if e.kind in ("run", "zoo") else e.history):
            epoch = m.get("epoch", i + 1)
            if isinstance(m.get("elapsed_s"), (int, float)):
                clock = float(m["elapsed_s"])
            elif isinstance(m.get("epoch_time_s"), (int, float)):
                clock += float(m["epoch_time_s"])
            else:
                clock = float("nan")
            for k in metrics:
                v = m.get(k)
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    rows.append({"model": e.id, "epoch": epoch, "elapsed_s": clock, "metric": k, "value": float(v)})
    return pd.DataFrame(rows, columns=["model", "epoch", "elapsed_s", "metric", "value"])


# ----------------------------------------------------------------------------------------------- evaluation
def subset_indices(labels: np.ndarray, per_class: int | None) -> np.ndarray:
    """The first ``per_class`` images of every class (all images when None): deterministic, balanced."""
    labels = np.asarray(labels)
    if per_class is None:
        return np.arange(len(labels))
    keep = []
    for c in np.unique(labels):
        keep.append(np.flatnonzero(labels == c)[:per_class])
    return np.sort(np.concatenate(keep)) if keep else np.arange(0)


def images_fingerprint(images: np.ndarray, labels: np.ndarray, wnids: Sequence[str]) -> str:
    """A short hash of an evaluation set: labels, class list, shape and a strided sample of pixels."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    h.update("\n".join(wnids).encode())
    h.update(repr(tuple(images.shape)).encode())
    step = max(1, len(images) // 64)
    h.update(np.ascontiguousarray(images[::step]).tobytes())
    return h.hexdigest()[:16]


def eval_cache_dir() -> Path:
    return data_dir() / "eval-cache"


def cached_evaluation(checkpoint: str | Path, images: np.ndarray, labels: np.ndarray, wnids: Sequence[str],
                      names: Sequence[str], *, cache_dir: str | Path | None = None, model_loader=None,
                      progress: Callable[[float], None] | None = None) -> EvalResult:
    """:func:`cnnviz.training.evaluate.evaluate_images` once per (checkpoint version, image set); later calls read the ``.npz``. ``model_loader``
    (path -> Checkpoint) lets a page pass its cached loader; a damaged cache file is recomputed."""
    cache = Path(cache_dir) if cache_dir is not None else eval_cache_dir()
    key = f"{checkpoint_version(checkpoint).digest}-{images_fingerprint(images, labels, wnids)}"
    path = cache / f"{key}.npz"
    if path.is_file():
        try:
            return EvalResult.from_npz(path)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass  # torn or foreign cache file: recompute and overwrite
    ckpt = (model_loader or load_checkpoint)(checkpoint)
    result = evaluate_images(ckpt.model, ckpt.meta, images, labels, wnids, names, progress=progress)
    atomic_write_bytes(path, result.to_npz_bytes())
    return result


def per_class_frame(evals: dict[str, EvalResult]) -> pd.DataFrame:
    """Per-class accuracy side by side (one column per model), largest spread between models first."""
    if not evals:
        return pd.DataFrame(columns=["wnid", "name", "spread"])
    first = next(iter(evals.values()))
    df = pd.DataFrame({"wnid": first.wnids, "name": first.names})
    for name, ev in evals.items():
        if ev.wnids != first.wnids:
            raise ValueError(f"{name} was evaluated on other classes than {next(iter(evals))}")
        df[name] = ev.per_class_accuracy
    accs = df[list(evals)]
    df["spread"] = accs.max(axis=1) - accs.min(axis=1)
    return df.sort_values(["spread", "wnid"], ascending=[False, True], kind="stable").reset_index(drop=True)


def most_confused(ev: EvalResult, n: int = 10) -> pd.DataFrame:
    """The ``n`` most frequent (true, predicted) pairs with true != predicted; ``share`` is the fraction of the
    true class's images that went to the predicted class."""
    cm = ev.confusion.copy()
    np.fill_diagonal(cm, 0)
    flat = np.argsort(-cm, axis=None, kind="stable")[:n]
    support = ev.confusion.sum(1)
    rows = []
    for f in flat:
        t, p = divmod(int(f), cm.shape[1])
        if cm[t, p] == 0:
            break
        rows.append({"true_wnid": ev.wnids[t], "true": ev.names[t], "predicted_wnid": ev.wnids[p],
                     "predicted": ev.names[p], "count": int(cm[t, p]), "share": float(cm[t, p] / max(1, support[t]))})
    return pd.DataFrame(rows, columns=["true_wnid", "true", "predicted_wnid", "predicted", "count", "share"])
