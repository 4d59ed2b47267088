"""A tiny synthetic dataset shared by the training tests: generated (and cached) once per test session, then
copied into each test's own ``$CNNVIZ_DATA/synthetic`` (where ``--data synthetic`` looks) in well under a
second, instead of regenerating it in every test."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

_SOURCE: dict[str, Path] = {}
# 4 classes x 40 train / 10 val images: 160 train images, 10 steps of 16 per epoch.
NUM_CLASSES, TRAIN_PER_CLASS, VAL_PER_CLASS = 4, 40, 10


def install_synthetic(tmp_path_factory, data_root: Path | None = None) -> Path:
    """Put the small synthetic set at ``$CNNVIZ_DATA/synthetic`` (the folder ``--data synthetic`` uses), or
    under ``data_root`` (an app server's data folder)."""
    from cnnviz.data import load_split, make_synthetic

    if "src" not in _SOURCE:
        src = tmp_path_factory.getbasetemp() / "synthetic-source" / "synthetic"
        if not (src / "synthetic.json").exists():
            make_synthetic(src, num_classes=NUM_CLASSES, train_per_class=TRAIN_PER_CLASS,
                           val_per_class=VAL_PER_CLASS, seed=0)
            load_split(src, "train")  # build the uint8 caches once, copied along with the images
            load_split(src, "val")
        _SOURCE["src"] = src
    dest = Path(data_root or os.environ["CNNVIZ_DATA"]) / "synthetic"
    if not dest.exists():
        shutil.copytree(_SOURCE["src"], dest)
    return dest


def tiny_config(**kw):
    """A LeNet-5 (modern variant) config that learns the synthetic set in a few CPU seconds."""
    from cnnviz.training.config import TrainConfig

    base = dict(arch="lenet5", variant={"variant": "modern"}, data="synthetic", epochs=2, batch_size=16,
                optimizer="adamw", lr=3e-3, warmup_epochs=0.5, heartbeat_s=0.2, device="cpu", channels_last=False)
    base.update(kw)
    return TrainConfig(**base)
