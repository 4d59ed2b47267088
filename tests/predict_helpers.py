"""Small checkpoints and images for the predict/compare tests (made by the tests themselves, never shipped).

``make_checkpoint`` saves a randomly initialised LeNet-5 (when the model zoo has it) through the real
``save_checkpoint`` / ``build_meta``; before the zoo lands it falls back to a tiny test-only architecture
registered here, so the library code under test is the same either way.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from cnnviz.checkpoint import build_meta, save_checkpoint
from cnnviz.models import create_model, list_models
from cnnviz.models.registry import ModelCard, PaperFigures, register_model

TEST_ARCH = "tiny_test_cnn"


class _Tiny(nn.Module):
    def __init__(self, num_classes: int = 10, input_size: int = 64):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 5, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(4))
        self.classifier = nn.Linear(64, num_classes)

    def forward_features(self, x):
        return self.features(x)

    def forward_head(self, f):
        return self.classifier(torch.flatten(f, 1))

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def _ensure_test_arch() -> None:
    if TEST_ARCH in list_models():
        return
    card = ModelCard(name=TEST_ARCH, display_name="tiny test CNN", family="test", title="-", authors="-",
                     venue="-", year=1900, url="-", key_ideas=(), paper_input=(3, 64, 64), paper_classes=10,
                     figures=PaperFigures(), min_input=8)
    register_model(card)(lambda num_classes, input_size: _Tiny(num_classes, input_size))


def default_arch() -> str:
    if "lenet5" in list_models():
        return "lenet5"
    _ensure_test_arch()
    return TEST_ARCH


def make_checkpoint(stem: Path, *, arch: str | None = None, num_classes: int = 10, input_size: int = 64,
                    seed: int = 0, metrics: dict | None = None, wnids: list[str] | None = None,
                    dtype=None, extra_meta: dict | None = None) -> Path:
    """Save a random-weight checkpoint at ``stem`` (``stem.safetensors`` + ``stem.json``); returns the weights."""
    torch.manual_seed(seed)
    model = create_model(arch or default_arch(), num_classes=num_classes, input_size=input_size).eval()
    wnids = wnids or [f"n{i:08d}" for i in range(num_classes)]
    meta = build_meta(model, classes=wnids, class_names=[f"thing {i}, a kind of thing" for i in range(num_classes)],
                      mean=(0.48, 0.45, 0.40), std=(0.28, 0.27, 0.28), epoch=1, metrics=metrics or {},
                      **(extra_meta or {}))
    weights, _ = save_checkpoint(stem, model, meta, dtype=dtype)
    return weights


def write_run(folder: Path, *, config: dict, metrics: list[dict], status: dict | None = None,
              checkpoint: bool = True, seed: int = 0, num_classes: int = 10) -> Path:
    """A run folder in the training worker's format (cnnviz/training/folder.py)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "status.json").write_text(json.dumps(status or {"state": "done", "epoch": len(metrics)}))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    if checkpoint:
        best = max(metrics, key=lambda m: m.get("val_top1", 0)) if metrics else {}
        make_checkpoint(folder / "best", arch=config.get("arch"), num_classes=num_classes, seed=seed,
                        metrics={k: best[k] for k in ("val_top1", "val_top5") if k in best})
    return folder


def image_bytes(fmt: str = "PNG", size=(80, 60), mode: str = "RGB", seed: int = 0, **save) -> bytes:
    """An encoded image with structure (a gradient plus noise), so orientation and crops matter."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.stack([xx * 255 // max(1, w - 1), yy * 255 // max(1, h - 1), (xx + yy) % 256], -1).astype(np.uint8)
    arr = np.clip(arr.astype(int) + rng.integers(-20, 20, arr.shape), 0, 255).astype(np.uint8)
    img = Image.fromarray(arr, "RGB")
    if mode != "RGB":
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save)
    return buf.getvalue()
