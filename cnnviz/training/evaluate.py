"""The one evaluation: :func:`evaluate` counts a model's loss, top-1 and top-5 (and flip test-time augmentation,
and a confusion matrix) over batches, summed over ranks under DDP. Everything that measures accuracy calls it:

* the trainer, every epoch, on the val pipeline (:mod:`cnnviz.training.loop`);
* :func:`evaluate_checkpoint`, ``python -m cnnviz evaluate`` and starter export: a checkpoint on its val split;
* :func:`evaluate_images`: a checkpoint on a labelled image set, as a confusion matrix (Compare, the zoo's
  results), its images preprocessed exactly as for prediction.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnviz.checkpoint import CheckpointMeta, load_checkpoint
from cnnviz.data import BatchPipeline, DatasetError, load_split, resolve_data
from cnnviz.device import pick_device
from cnnviz.preprocess import batch_for
from cnnviz.training.config import MAX_BATCH, check_int
from cnnviz.training.dist import Dist


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], device: torch.device,
             amp: bool = True, dist: Dist | None = None, tta_flip: bool = False, *,
             columns: torch.Tensor | None = None, confusion: torch.Tensor | None = None) -> dict[str, float]:
    """Loss, top-1 and top-5 (fractions) over ``batches`` of ``(x, y)``; summed over ranks under DDP. The model
    is evaluated in eval mode and left in the mode it came in; ``amp``: bf16 autocast on CUDA.

    ``tta_flip`` adds ``top1_tta``/``top5_tta``: the mean of the logits of each image and its mirror image
    (the flip test-time augmentation of fast CIFAR recipes such as airbench). The plain numbers are unchanged.
    ``columns``: the model's output for each of the labels' classes, when the two orders differ
    (:func:`class_mapping`). ``confusion``: a ``C x C`` int64 tensor on ``device`` that each image is counted
    into (row: its label, column: the prediction, the top-1 class).
    """
    was_training = model.training
    model.eval()
    sums = torch.zeros(6, dtype=torch.float64, device=device)  # loss, top1, top5, n, top1 tta, top5 tta

    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
            out = model(x)
        out = (out[0] if isinstance(out, (tuple, list)) else out).float()
        return out if columns is None else out[:, columns]

    def hits(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hit = top == y[:, None]
        return hit[:, 0].sum(), hit.any(dim=1).sum(), top[:, 0]

    try:
        for x, y in batches:
            logits = forward(x)
            sums[0] += F.cross_entropy(logits, y, reduction="sum").double()
            c1, c5, predicted = hits(logits, y)
            if confusion is not None:
                confusion.view(-1).index_add_(0, y * confusion.shape[1] + predicted, torch.ones_like(y))
            sums[1] += c1
            sums[2] += c5
            sums[3] += y.numel()
            if tta_flip:
                c1, c5, _ = hits(logits + forward(x.flip(3)), y)
                sums[4] += c1
                sums[5] += c5
    finally:
        model.train(was_training)
    if dist is not None:
        dist.all_sum(sums)
    loss, c1, c5, n, t1, t5 = sums.tolist()
    n = max(n, 1.0)
    result = {"loss": loss / n, "top1": c1 / n, "top5": c5 / n, "n": int(sums[3].item())}
    if tta_flip:
        result.update(top1_tta=t1 / n, top5_tta=t5 / n)
    return result


def evaluate_checkpoint(path: str | Path, data: str | None = None, device: str = "auto",
                        batch_size: int = 256) -> dict[str, Any]:
    """Val top-1/top-5 of a checkpoint: ``{"checkpoint", "top1", "top5", "n", "loss"}`` (fractions).

    ``data`` defaults to the dataset the checkpoint was trained on (its ``train_config``), else ``auto``.
    Refuses a dataset whose classes differ from the checkpoint's (the accuracy would be meaningless).
    """
    check_int("batch size", batch_size, 1, MAX_BATCH, "at least 1")
    dev = pick_device(device)
    ckpt = load_checkpoint(path, dev)
    meta = ckpt.meta
    spec = data or meta.trained_on or "auto"
    val = load_split(resolve_data(spec), "val")
    classes = meta.classes
    if classes and list(classes) != list(val.wnids):
        raise DatasetError(f"the checkpoint was trained on {len(classes)} classes that differ from the "
                           f"dataset's {len(val.wnids)} classes; evaluate it on the data it was trained on")
    if meta.num_classes != len(val.wnids):
        raise DatasetError(f"the checkpoint has {meta.num_classes} outputs but the dataset has "
                           f"{len(val.wnids)} classes")
    pipe = BatchPipeline(val.images, val.labels, batch_size, dev, train=False, augment="none", mean=meta.mean,
                         std=meta.std, drop_last=False, size=meta.input_size)
    r = evaluate(ckpt.model, pipe, dev, amp=True)
    return {"checkpoint": str(ckpt.path), "top1": r["top1"], "top5": r["top5"], "n": r["n"], "loss": r["loss"]}


# ------------------------------------------------------------------------------------- a labelled image set
@dataclass
class EvalResult:
    """A checkpoint evaluated on a labelled image set (rows of ``confusion``: true class, columns: predicted)."""

    confusion: np.ndarray  # C x C int64, in the order of ``wnids``
    top5_correct: int
    wnids: list[str]
    names: list[str]

    @property
    def n(self) -> int:
        return int(self.confusion.sum())

    @property
    def top1(self) -> float:
        return float(np.trace(self.confusion) / max(1, self.n))

    @property
    def top5(self) -> float:
        return float(self.top5_correct / max(1, self.n))

    @property
    def per_class_accuracy(self) -> np.ndarray:
        support = self.confusion.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(support > 0, np.diag(self.confusion) / np.maximum(support, 1), np.nan)

    def to_npz_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez_compressed(buf, confusion=self.confusion, top5_correct=np.int64(self.top5_correct),
                            wnids=np.array(self.wnids, dtype=str), names=np.array(self.names, dtype=str))
        return buf.getvalue()

    @classmethod
    def from_npz(cls, path: Path) -> EvalResult:
        with np.load(path, allow_pickle=False) as z:
            return cls(confusion=z["confusion"].astype(np.int64), top5_correct=int(z["top5_correct"]),
                       wnids=[str(s) for s in z["wnids"]], names=[str(s) for s in z["names"]])


def class_mapping(meta: Mapping[str, Any], wnids: Sequence[str]) -> np.ndarray:
    """For each dataset class (in ``wnids`` order), the checkpoint's output index. Raises ValueError when the
    checkpoint was trained on other classes."""
    meta = CheckpointMeta.of(meta)
    classes, n = meta.classes, int(meta.num_classes)
    if not classes:
        if n != len(wnids):
            raise ValueError(f"the checkpoint has {n} unnamed classes but the dataset has {len(wnids)}")
        return np.arange(n)
    index = {w: i for i, w in enumerate(classes)}
    missing = [w for w in wnids if w not in index]
    if missing:
        raise ValueError(f"the checkpoint was trained on other classes ({len(missing)} of the dataset's "
                         f"{len(wnids)} classes, e.g. {missing[0]}, are not among its outputs)")
    return np.array([index[w] for w in wnids])


def evaluate_images(model: nn.Module, meta: Mapping[str, Any], images: np.ndarray, labels: np.ndarray,
                    wnids: Sequence[str], names: Sequence[str], *, batch_size: int = 200,
                    progress: Callable[[float], None] | None = None) -> EvalResult:
    """Confusion matrix and top-5 of a model (eval mode; not mutated) on ``N x H x W x 3`` uint8 images,
    preprocessed exactly as for prediction (:func:`cnnviz.preprocess.batch_for`), through :func:`evaluate`.
    The checkpoint's outputs are matched to the dataset's classes by wnid (:func:`class_mapping`)."""
    if model.training:
        raise RuntimeError("the model is in training mode; evaluate a model loaded by load_checkpoint")
    meta = CheckpointMeta.of(meta)
    device = next(model.parameters()).device
    columns = torch.from_numpy(class_mapping(meta, wnids)).to(device)
    confusion = torch.zeros(len(wnids), len(wnids), dtype=torch.int64, device=device)

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(images), batch_size):
            x = batch_for(images[start:start + batch_size], meta)
            y = torch.from_numpy(np.array(labels[start:start + batch_size], dtype=np.int64))
            yield x.to(device), y.to(device)
            if progress:  # resumed once the batch is counted
                progress(min(1.0, (start + len(y)) / len(images)))

    r = evaluate(model, batches(), device, amp=False, columns=columns, confusion=confusion)
    return EvalResult(confusion=confusion.cpu().numpy(), top5_correct=round(r["top5"] * r["n"]),
                      wnids=list(wnids), names=list(names))
