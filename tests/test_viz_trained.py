"""How trained are these weights: the caption note and the "moved from the random start" measures (issue 11)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cnnviz.models import create_model
from cnnviz.viz.trained import filter_movement, initial_model, smoothness, weights_note, with_note

REPO = Path(__file__).resolve().parents[1]


def test_weights_note():
    assert "random initialisation, seed 3" in weights_note({"init": {"random": True, "seed": 3}})
    assert weights_note({"num_classes": 200, "metrics": {}}).startswith("no recorded accuracy")
    assert weights_note({"num_classes": 200, "epoch": 1, "metrics": {"val_top1": 0.048}}) == \
        "barely trained: val top-1 4.8% after 1 epoch (chance 0.5%)"
    assert weights_note({"num_classes": 200, "metrics": {"val_top1": 0.388}}) is None
    assert weights_note({"num_classes": 10, "metrics": {"val_top1": 0.15}}).startswith("barely trained")
    assert with_note("conv1", {"num_classes": 10, "metrics": {"val_top1": 0.9}}) == "conv1"
    assert with_note("conv1", {"init": {"random": True, "seed": 0}}).startswith("conv1 [random initialisation")


def test_smoothness_tells_smooth_filters_from_noise():
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(64, 3, 7, 7))
    yy, xx = np.mgrid[-3:4, -3:4]
    blobs = np.stack([np.stack([np.exp(-((yy - a) ** 2 + (xx - b) ** 2) / 4) for a, b in rng.integers(-2, 3, (3, 2))])
                      for _ in range(64)])
    assert abs(smoothness(noise)) < 0.05
    assert smoothness(blobs) > 0.5
    assert smoothness(np.ones((4, 3, 1, 1))) is None  # 1x1 kernels have no neighbours


def test_movement_from_the_recorded_seed():
    torch.manual_seed(7)
    model = create_model("lenet5", num_classes=3, input_size=64)
    meta = {"arch": "lenet5", "model_args": dict(model.model_args), "train_config": {"seed": 7},
            "num_classes": 3, "metrics": {"val_top1": 0.9}}
    assert torch.equal(initial_model(meta).features.c1.weight, model.features.c1.weight)  # the exact start
    mv = filter_movement(model, meta)
    assert mv.distance == 0.0 and mv.near_start
    assert "still close to their random start" in mv.sentence()
    with torch.no_grad():
        model.features.c1.weight.mul_(3.0)
    mv = filter_movement(model, meta)
    assert mv.distance == pytest.approx(2.0, rel=1e-5) and not mv.near_start
    # no recorded seed: no distance, but still the random baseline for the smoothness
    del meta["train_config"]
    mv = filter_movement(model, meta)
    assert mv.distance is None and mv.random_smoothness is not None


def test_resnet18_starter_has_moved_from_its_random_start():
    """The issue's example was a CPU ResNet-18 whose conv1 looked like its random initialisation (moved 0.37,
    "near start"). The zoo's (10 epochs on an H200, 3x3 stem) has moved away, and the page's numbers say so."""
    from cnnviz.checkpoint import load_checkpoint

    path = REPO / "checkpoints" / "starter" / "resnet18_tinyimagenet.safetensors"
    if not path.exists():
        pytest.skip("the ResNet-18 starter is not in this checkout")
    ck = load_checkpoint(path)
    mv = filter_movement(ck.model, ck.meta, "conv1")
    assert mv.smoothness == pytest.approx(0.11, abs=0.01) and mv.random_smoothness == pytest.approx(-0.14, abs=0.01)
    assert mv.distance == pytest.approx(0.58, abs=0.02) and not mv.near_start


def test_a_first_layer_that_moved_but_stayed_noisy_is_called_so():
    """The Visualize page opens on ZFNet's conv1: moved 0.60 from its start, yet barely smoother (+0.16), so the
    picture is mostly noise while its caption spoke only of smooth edges and colour blobs. Such a first layer is
    now called mostly noise-like; a smooth one (AlexNet's) and a deeper layer are not."""
    from cnnviz.checkpoint import load_checkpoint

    paths = {n: REPO / "checkpoints" / "starter" / f"{n}_tinyimagenet.safetensors" for n in ("zfnet", "alexnet")}
    if not all(p.exists() for p in paths.values()):
        pytest.skip("the ZFNet and AlexNet starters are not in this checkout")
    zf, alex = (load_checkpoint(paths[n]) for n in ("zfnet", "alexnet"))
    mv = filter_movement(zf.model, zf.meta)
    assert mv.mostly_noise and not mv.near_start and "still mostly noise-like" in mv.sentence()
    assert not filter_movement(alex.model, alex.meta).mostly_noise
    deeper = filter_movement(zf.model, zf.meta, "features.conv2")
    assert not deeper.first_layer and not deeper.mostly_noise
