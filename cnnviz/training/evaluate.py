"""The one evaluation: loss, top-1 and top-5 (and flip test-time augmentation) of a model over batches,
summed over ranks under DDP; and a checkpoint's val accuracy (``python -m cnnviz evaluate``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnviz.checkpoint import load_checkpoint
from cnnviz.data import BatchPipeline, DatasetError, load_split, resolve_data
from cnnviz.device import pick_device
from cnnviz.training.config import MAX_BATCH, check_int
from cnnviz.training.dist import Dist


@torch.no_grad()
def evaluate(model: nn.Module, batches, device: torch.device, amp: bool = True,
             dist: Dist | None = None, tta_flip: bool = False) -> dict[str, float]:
    """Loss, top-1 and top-5 (fractions) over ``batches`` of ``(x, y)``; summed over ranks under DDP.

    ``tta_flip`` adds ``top1_tta``/``top5_tta``: the mean of the logits of each image and its mirror image
    (the flip test-time augmentation of fast CIFAR recipes such as airbench). The plain numbers are unchanged.
    """
    was_training = model.training
    model.eval()
    sums = torch.zeros(6, dtype=torch.float64, device=device)  # loss, top1, top5, n, top1 tta, top5 tta

    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
            out = model(x)
        return (out[0] if isinstance(out, (tuple, list)) else out).float()

    def hits(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hit = top == y[:, None]
        return hit[:, 0].sum(), hit.any(dim=1).sum()

    try:
        for x, y in batches:
            logits = forward(x)
            sums[0] += F.cross_entropy(logits, y, reduction="sum").double()
            c1, c5 = hits(logits, y)
            sums[1] += c1
            sums[2] += c5
            sums[3] += y.numel()
            if tta_flip:
                c1, c5 = hits(logits + forward(x.flip(3)), y)
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
