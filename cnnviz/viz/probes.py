"""How discriminative each layer is (Zeiler & Fergus, Section 5 and Table 6): a linear probe per layer.

:func:`probe` takes globally pooled features from each chosen layer of a checkpoint (default: every hidden
block's output, :func:`cnnviz.viz.depth.probe_layers`), fits a linear classifier on a class-balanced train
subset and reports top-1 on a class-balanced val subset, per layer. ZF trained an SVM on each layer of their
ImageNet network and saw the accuracy rise with depth; the probe shows the same for any checkpoint.

The classifier: **multinomial logistic regression** (softmax regression) on standardised features (each
feature shifted and scaled by its train mean and standard deviation), with an L2 penalty ``l2/2 * ||W||^2``
added to the mean cross-entropy (bias not penalised), minimised by ``torch.optim.LBFGS`` (strong-Wolfe line
search) for at most ``max_iter`` iterations, full batch. Pooling is a global *average* over the map
(``C x H x W -> C``); fully connected layers are used as they are.

Defaults (:data:`DEFAULTS`): 20 train images per class (4,000 for Tiny ImageNet's 200 classes), 10 val images
per class (2,000), ``l2 = 1e-3``, 50 LBFGS iterations. On the ResNet-18 starter's five blocks, 30, 50 and 100
iterations gave the same val top-1 to within 0.3 points; a larger penalty (1e-2, 1e-1) lowered the first
blocks' accuracy and raised the last ones' by up to 2 points, so the small one keeps the comparison fair to
low layers. With 20 examples per class the probe is far from what a full training set would give; the
ranking of the layers is what it shows. The timings on the project's 2-core CPU are in
``docs/benchmarks.md`` (``bench/bench_zf.py``).

Features are computed on the same private, channels-last (and, where the device computes it natively, bf16)
copy of the model as the top-9 scan (:func:`cnnviz.viz.top9.scan_copy`); the model given is never modified.
Finished probes are cached on disk as JSON, keyed like the top-9 scan: the checkpoint file's fingerprint, the
datasets' fingerprints, the layers and every setting.

Threads: on the project's 2-core CPU, shared with other jobs (1-minute load average 4-7), two intra-op threads
ran the feature pass 2-40x *slower* than one (400 images: GoogLeNet 14 s against 1.4 s, ResNet-18 11 s against
1.2 s, NiN 7.7 s against 3.7 s, LeNet-5 4 s against 0.1 s; the threads wait on each other while the other jobs
hold the cores), and the fits no faster. So ``threads=None`` (the default)
uses one thread while the load average exceeds the number of cores, and torch's setting otherwise;
``torch.set_num_threads`` is process-wide, so it is restored afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnviz.errors import UnknownName
from cnnviz.viz.hooks import capture, forward_quietly
from cnnviz.viz.layers import output_shapes
from cnnviz.viz.top9 import ScanCancelled, _cancelled, dataset_fingerprint, preprocess_batch, scan_copy

CACHE_VERSION = 1
DEFAULTS = {"train_per_class": 20, "val_per_class": 10, "l2": 1e-3, "max_iter": 50}
CLASSIFIER = ("multinomial logistic regression on standardised, globally average-pooled features; "
              "L2 penalty {l2:g}; torch.optim.LBFGS, at most {max_iter} iterations")

Progress = Callable[[float, str], object]  # (fraction done in [0, 1], what is happening); False cancels


@dataclass
class ProbeResult:
    """Val (and train) top-1 of a linear probe on each layer, in the order of depth."""

    name: str  # the model (checkpoint name)
    layers: list[str]
    labels: list[str]  # chart labels (the blocks' names)
    dims: list[int]  # feature dimension per layer (channels after pooling)
    val_top1: list[float]
    train_top1: list[float]
    train_images: int
    val_images: int
    num_classes: int
    settings: dict = field(default_factory=dict)  # train_per_class, val_per_class, l2, max_iter, precision, seed
    seconds: dict = field(default_factory=dict)  # "features", "fit" (seconds) and the "threads" they ran on

    @property
    def chance(self) -> float:
        return 1.0 / max(1, self.num_classes)

    @property
    def classifier(self) -> str:
        return CLASSIFIER.format(**self.settings)

    def rows(self) -> list[dict]:
        """``[{"layer": NAME, "val_top1": x}, ...]`` plus the label, dimension and train top-1 of each layer."""
        return [{"layer": n, "val_top1": v, "train_top1": t, "dim": d, "label": lab}
                for n, v, t, d, lab in zip(self.layers, self.val_top1, self.train_top1, self.dims, self.labels,
                                           strict=True)]

    def to_json(self) -> str:
        return json.dumps({"version": CACHE_VERSION, **asdict(self)})

    @classmethod
    def from_json(cls, text: str) -> ProbeResult:
        data = json.loads(text)
        if data.pop("version", None) != CACHE_VERSION:
            raise ValueError("cache written by another version")
        return cls(**data)


@contextmanager
def threads_for_load(threads: int | None = None) -> Iterator[int]:
    """Inside the block torch runs on ``threads`` intra-op threads; ``None``: one while the 1-minute load average
    exceeds the number of cores, else torch's own setting. Restored afterwards (it is process-wide)."""
    from cnnviz.data.pipeline import _torch_threads

    if threads is None:
        busy = hasattr(os, "getloadavg") and os.getloadavg()[0] > (os.cpu_count() or 1)
        threads = 1 if busy else torch.get_num_threads()
    with _torch_threads(max(1, int(threads))):
        yield torch.get_num_threads()


def balanced_subset(labels: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """Indices of ``per_class`` images of every class (fewer where a class has fewer), chosen with a seeded
    shuffle, sorted (reads from a memory-mapped split stay sequential)."""
    if per_class < 1:
        raise ValueError(f"images per class must be at least 1, not {per_class}")
    labels = np.asarray(labels)
    order = np.random.default_rng(seed).permutation(len(labels))
    picked = []
    for c in np.unique(labels):
        picked.append(order[labels[order] == c][:per_class])
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, np.int64)


def pooled_features(model: nn.Module, images: np.ndarray, layers: Sequence[str], *, mean, std, input_size: int,
                    channels: int = 3, batch_size: int | None = None, precision: str = "auto",
                    progress: Callable[[int, int], object] | None = None, cancel=None) -> dict[str, np.ndarray]:
    """``{layer: N x C float32}``: each layer's output for ``images`` (uint8 ``N x H x W x 3``), globally
    average-pooled; the forward pass stops after the deepest layer. ``progress(done, total)`` after each
    batch (returning False cancels, as does ``cancel``: :class:`~cnnviz.viz.top9.ScanCancelled`)."""
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', not {precision!r}")
    p = next(iter(model.parameters()), None)
    device = p.device if p is not None else torch.device("cpu")
    if precision == "auto":
        from cnnviz.device import bf16_autocast_ok

        precision = "bf16" if bf16_autocast_ok(device) else "fp32"
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    order = list(output_shapes(model, (channels, input_size, input_size)))
    missing = [n for n in layers if n not in order]
    if missing:
        raise UnknownName(f"no layer named {missing[0]!r} in this model (or it does not run at evaluation); "
                       f"see `python -m cnnviz table` for the names")
    deepest = max(layers, key=order.index)
    batch_size = batch_size or (256 if device.type == "cuda" else 16)
    n = len(images)
    feats: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    view = scan_copy(model, dtype)
    with torch.inference_mode(), capture(view, layers, stop_after=deepest) as store:
        for start in range(0, n, batch_size):
            if _cancelled(cancel):
                raise ScanCancelled(f"features cancelled after {start} of {n} images")
            x = preprocess_batch(images[start:start + batch_size], mean, std, input_size, device, channels)
            forward_quietly(view, x.to(dtype).contiguous(memory_format=torch.channels_last))
            for name in layers:
                out = store.pop(name).float()
                pooled = out.mean(dim=(2, 3)) if out.dim() == 4 else out.flatten(1)
                feats[name].append(pooled.cpu().numpy())
            done = min(n, start + batch_size)
            if progress is not None and progress(done, n) is False:
                raise ScanCancelled(f"features cancelled after {done} of {n} images")
    return {name: np.concatenate(chunks) for name, chunks in feats.items()}


def fit_linear(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray, *,
               l2: float = DEFAULTS["l2"], max_iter: int = DEFAULTS["max_iter"]) -> tuple[float, float]:
    """``(val top-1, train top-1)`` of multinomial logistic regression fitted on ``train_x`` (N x D) with
    LBFGS: features standardised with the train statistics, mean cross-entropy + ``l2/2 * ||W||^2``."""
    classes, y = np.unique(np.asarray(train_y), return_inverse=True)
    xt = torch.from_numpy(np.ascontiguousarray(train_x, np.float32))
    xv = torch.from_numpy(np.ascontiguousarray(val_x, np.float32))
    mu, sd = xt.mean(0), xt.std(0).clamp_min(1e-6)  # constant (dead) features become 0, not NaN
    xt, xv = (xt - mu) / sd, (xv - mu) / sd
    yt = torch.from_numpy(y.astype(np.int64))
    w = torch.zeros(xt.shape[1], len(classes), requires_grad=True)
    b = torch.zeros(len(classes), requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, history_size=10, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-6, tolerance_change=1e-9)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(xt @ w + b, yt) + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        train_acc = float(((xt @ w + b).argmax(1) == yt).float().mean())
        pred = classes[(xv @ w + b).argmax(1).numpy()]
    return float(np.mean(pred == np.asarray(val_y))), train_acc


def _cache_path(cache_dir, model_key: str, train_images, val_images, layers, settings) -> Path:
    data = f"{dataset_fingerprint(train_images)}_{dataset_fingerprint(val_images)}"
    tag = hashlib.sha256(json.dumps([CACHE_VERSION, list(layers), settings], sort_keys=True).encode()).hexdigest()
    return Path(cache_dir) / f"probe_{model_key}_{data}_{tag[:16]}.json"


def probe(model: nn.Module, train_images: np.ndarray, train_labels: np.ndarray, val_images: np.ndarray,
          val_labels: np.ndarray, *, mean, std, input_size: int, channels: int = 3, layers: Sequence[str] | None = None,
          name: str = "model", train_per_class: int = DEFAULTS["train_per_class"],
          val_per_class: int = DEFAULTS["val_per_class"], l2: float = DEFAULTS["l2"],
          max_iter: int = DEFAULTS["max_iter"], seed: int = 0, precision: str = "auto", batch_size: int | None = None,
          threads: int | None = None, progress: Progress | None = None,
          cancel: threading.Event | Callable[[], bool] | None = None, cache_dir: str | Path | None = None,
          model_key: str | None = None) -> ProbeResult:
    """A linear probe on each of ``layers`` (default: every hidden block's output, shallow to deep).

    ``train_images``/``val_images`` are uint8 ``N x H x W x 3`` (a :class:`cnnviz.data.Split`'s ``images``)
    with their labels; ``mean``/``std``/``input_size``/``channels`` the checkpoint's preprocessing.
    ``progress(fraction, message)`` is called as features are computed and after each layer's fit; returning
    False cancels (as does ``cancel``): :class:`~cnnviz.viz.top9.ScanCancelled`, nothing cached. With
    ``cache_dir`` and ``model_key`` (:func:`cnnviz.viz.top9.checkpoint_fingerprint`) a finished probe is
    saved and reused. ``threads``: intra-op threads (default: see the module docstring). See the module
    docstring for the classifier.
    """
    from cnnviz.viz import depth

    size = (channels, input_size, input_size)
    layers = list(layers) if layers else depth.probe_layers(model, size)
    if not layers:
        raise ValueError("no layers to probe")
    if l2 < 0 or max_iter < 1:
        raise ValueError("l2 must be >= 0 and max_iter >= 1")
    for what, imgs in (("train", train_images), ("val", val_images)):
        if imgs.ndim != 4 or imgs.shape[3] != 3 or imgs.dtype != np.uint8:
            raise ValueError(f"{what} images must be uint8 N x H x W x 3, got {imgs.dtype} {imgs.shape}")
    settings = {"train_per_class": int(train_per_class), "val_per_class": int(val_per_class), "l2": float(l2),
                "max_iter": int(max_iter), "precision": precision, "seed": int(seed), "input_size": int(input_size),
                "channels": int(channels), "mean": [float(v) for v in mean], "std": [float(v) for v in std]}
    path = None
    if cache_dir is not None and model_key is not None:
        path = _cache_path(cache_dir, model_key, train_images, val_images, layers, settings)
        if path.exists():
            try:
                hit = ProbeResult.from_json(path.read_text())
                hit.name = name
                if progress is not None:
                    progress(1.0, "read from the cache")
                return hit
            except (OSError, ValueError, KeyError, TypeError):
                pass  # unreadable or stale: probe again and overwrite it
    tr = balanced_subset(train_labels, train_per_class, seed)
    va = balanced_subset(val_labels, val_per_class, seed)
    total = len(tr) + len(va)
    # Feature extraction takes most of the time; the fits share the last 25% of the bar, one step per layer.
    share = 0.75

    def report(fraction: float, message: str) -> None:
        if progress is not None and progress(fraction, message) is False:
            raise ScanCancelled("probe cancelled")

    with threads_for_load(threads) as used:
        start = time.perf_counter()
        common = {"mean": mean, "std": std, "input_size": input_size, "channels": channels,
                  "batch_size": batch_size, "precision": precision, "cancel": cancel}
        train_feats = pooled_features(model, train_images[tr], layers, **common, progress=lambda d, n: report(
            share * d / total, f"features: {d:,}/{total:,} images"))
        val_feats = pooled_features(model, val_images[va], layers, **common, progress=lambda d, n: report(
            share * (len(tr) + d) / total, f"features: {len(tr) + d:,}/{total:,} images"))
        t_features = time.perf_counter() - start
        ytr, yva = np.asarray(train_labels)[tr], np.asarray(val_labels)[va]
        val_top1, train_top1 = [], []
        for i, layer in enumerate(layers):
            if _cancelled(cancel):
                raise ScanCancelled("probe cancelled")
            report(share + (1 - share) * i / len(layers), f"fitting {layer} ({i + 1}/{len(layers)})")
            v, t = fit_linear(train_feats[layer], ytr, val_feats[layer], yva, l2=l2, max_iter=max_iter)
            val_top1.append(v)
            train_top1.append(t)
        seconds = {"features": round(t_features, 2), "fit": round(time.perf_counter() - start - t_features, 2),
                   "threads": used}
    result = ProbeResult(name, layers, depth.labels(model, size, layers), [int(train_feats[n].shape[1]) for n in layers],
                         val_top1, train_top1, len(tr), len(va), int(len(np.unique(ytr))), settings, seconds)
    report(1.0, "done")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(result.to_json())
        tmp.replace(path)
    return result
