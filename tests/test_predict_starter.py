"""The shipped starter checkpoints predict real Tiny ImageNet val images as well as their metadata says.

Reads the val images straight from the shared zip (no cache, no cnnviz.data) and predicts them through the
same path as the Predict page and CLI (``open_image`` -> ``predict_batch``). Skipped, with the reason, while
``checkpoints/starter/`` is empty or the zip is absent.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import pytest

from cnnviz.catalog import list_checkpoints
from cnnviz.checkpoint import load_checkpoint
from cnnviz.images import open_image
from cnnviz.predict import predict_batch

REPO = Path(__file__).resolve().parent.parent
STARTER_ROOT = REPO / "checkpoints"
SAMPLE = 1000  # val images (of 10,000): val_0 ... val_999, a fixed sample
STARTERS = [i for i in list_checkpoints(STARTER_ROOT, include_broken=True) if i.kind == "starter"]


def _fraction(v: float) -> float:
    return v / 100 if v > 1 else v


@pytest.fixture(scope="module")
def val_sample(request):
    from tests.conftest import SHARED_ZIP

    if not SHARED_ZIP.is_file():
        pytest.skip(f"real Tiny ImageNet not found at {SHARED_ZIP} (set CNNVIZ_SHARED_ZIP to run this test)")
    with zipfile.ZipFile(SHARED_ZIP) as z:
        prefix = next(n for n in z.namelist() if n.endswith("val/val_annotations.txt"))[: -len("val_annotations.txt")]
        labels = {}
        for line in z.read(prefix + "val_annotations.txt").decode().splitlines():
            parts = line.split("\t")
            if len(parts) >= 2:
                labels[parts[0]] = parts[1]
        names = [f"val_{i}.JPEG" for i in range(SAMPLE)]
        images = [open_image(z.read(prefix + "images/" + n)) for n in names]
    return names, images, [labels[n] for n in names]


@pytest.mark.skipif(not STARTERS, reason="checkpoints/starter/ is empty: the starter checkpoints are not trained yet")
@pytest.mark.parametrize("info", STARTERS, ids=[i.name for i in STARTERS])
def test_starter_matches_its_recorded_accuracy(info, val_sample):
    assert info.ok, f"{info.name} is unusable: {info.error}"
    recorded = info.metrics
    assert isinstance(recorded.get("val_top1"), (int, float)), f"{info.name} records no val_top1 in its metadata"
    ckpt = load_checkpoint(info.path)
    names, images, truth = val_sample
    results = predict_batch(ckpt.model, images, ckpt.meta, 5, names=names, checkpoint=info.name, batch_size=100)
    n = len(results)
    top1 = sum(r.top1.wnid == t for r, t in zip(results, truth, strict=True)) / n
    top5 = sum(t in {p.wnid for p in r.predictions} for r, t in zip(results, truth, strict=True)) / n
    for measured, key in ((top1, "val_top1"), (top5, "val_top5")):
        if key not in recorded:
            continue
        r = _fraction(float(recorded[key]))
        # a fixed 1,000-image subset of the 10,000 the number was measured on: 3 binomial standard errors
        # (an upper bound for a subset) plus 1 point for float16 weights
        tol = 3 * math.sqrt(max(r * (1 - r), 1e-4) / n) + 0.01
        assert abs(measured - r) <= tol, f"{info.name}: {key} {measured:.3f} on {n} val images, recorded {r:.3f}"
