"""Invariance (ZF Fig. 5) and layer probes (ZF Table 6): the depths read from each model's structure, the
transforms, the distances, the classifier, the cache, and both analyses on every family and on 1-channel
LeNet-5 (small inputs, random weights: what is checked is that they run and measure the right thing)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from cnnviz.models import create_model, list_models
from cnnviz.viz import depth
from cnnviz.viz.invariance import default_values, invariance, transformed
from cnnviz.viz.probes import ProbeResult, ScanCancelled, balanced_subset, fit_linear, probe
from cnnviz.viz.zf_figures import invariance_figure, invariance_png, probe_figure, probe_png

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def _model(arch: str, size: int = 64, classes: int = 3, **kw) -> nn.Module:
    torch.manual_seed(0)
    return create_model(arch, num_classes=classes, input_size=size, **kw).eval()


def _channels(model: nn.Module) -> int:
    return next(m.in_channels for m in model.modules() if isinstance(m, nn.Conv2d))


def test_blocks_follow_each_models_structure():
    alex = _model("alexnet")
    # ZF's seven layers: conv1..conv5, fc6, fc7 (fc8 computes the logits and is not a hidden layer)
    assert [b.name.rsplit(".", 1)[-1] for b in depth.blocks(alex, (3, 64, 64))] == \
        ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"]
    assert depth.invariance_layers(alex, (3, 64, 64)) == ["features.pool1", "classifier.relu7"]
    # ResNet: one point per stage, however deep (ResNet-152 has 50 residual blocks), ending at the pooled vector
    for arch in ("resnet18", "resnet152"):
        assert depth.probe_layers(_model(arch), (3, 64, 64)) == ["maxpool", "layer1", "layer2", "layer3", "avgpool"]
    # GoogLeNet: the stem's convolutions and every Inception module; the auxiliary heads do not run at evaluation
    goog = [b.name for b in depth.blocks(_model("googlenet"), (3, 64, 64))]
    assert goog[:3] == ["conv1", "conv2_reduce", "conv2"] and goog[-1] == "inception5b" and len(goog) == 12
    assert not any(n.startswith("aux") for n in goog)
    # VGG-16: 13 conv layers + 2 hidden fc layers; VGG labels name the output's kind (a numbered ReLU)
    vgg = depth.blocks(_model("vgg16"), (3, 64, 64))
    assert len(vgg) == 15 and vgg[0].label == "features.0 (relu)"


def test_paper_lenet5_is_one_channel_and_has_lecuns_layers():
    m = _model("lenet5", size=32, classes=10)
    assert _channels(m) == 1
    assert [b.name.rsplit(".", 1)[-1] for b in depth.blocks(m, (1, 32, 32))] == ["c1", "s2", "c3", "s4", "c5", "f6"]


def test_translation_is_an_exact_shift_filled_with_the_mean():
    x = torch.randn(3, 16, 16)
    right_down, left, up = transformed(x, "translate", [4, -3, 0], "both"), \
        transformed(x, "translate", [-3], "x")[0], transformed(x, "translate", [-2], "y")[0]
    assert torch.equal(right_down[0, :, 4:, 4:], x[:, :-4, :-4]) and right_down[0, :, :4].abs().sum() == 0
    assert torch.equal(left[:, :, :-3], x[:, :, 3:]) and left[:, :, -3:].abs().sum() == 0
    assert torch.equal(up[:, :-2], x[:, 2:])
    assert torch.equal(right_down[2], x)  # 0 pixels: the image itself
    scaled = transformed(x, "scale", [0.5, 1.0], "both")
    assert scaled[0, :, 0, 0].abs().sum() == 0 and torch.equal(scaled[1], x)  # shrunk: corners are mean grey
    assert transformed(x, "rotate", [90])[0].shape == x.shape
    with pytest.raises(ValueError, match="whole pixels"):
        transformed(x, "translate", [2.5])
    with pytest.raises(ValueError, match="transform must be"):
        transformed(x, "shear", [1])


def test_invariance_measures_distances_from_the_untransformed_image():
    m = _model("resnet18")
    x = torch.randn(2, 3, 64, 64)
    inv = invariance(m, x, "translate", [-4, 0, 4], targets=[1, None])
    assert inv.layers == ["maxpool", "avgpool"] and inv.labels == ["conv1 (maxpool)", "layer4 (avgpool)"]
    for layer in inv.layers:
        assert inv.distance[layer].shape == (2, 3)
        assert np.all(inv.distance[layer][:, 1] == 0) and np.all(inv.distance[layer][:, [0, 2]] > 0)
        np.testing.assert_allclose(inv.relative(layer), inv.distance[layer] / inv.norm[layer][:, None])
    with torch.no_grad():
        p = torch.softmax(m(x), 1)
    assert inv.targets == [1, int(p[1].argmax())]  # no label: the class predicted for the untransformed image
    np.testing.assert_allclose(inv.prob[:, 1], [p[0, 1], p[1].max()], rtol=1e-5)
    z = np.load(__import__("io").BytesIO(inv.npz_bytes()), allow_pickle=False)
    assert list(z["values"]) == [-4, 0, 4] and z["prob"].shape == (2, 3) and str(z["transform"]) == "translate"
    assert z["distance_maxpool"].shape == (2, 3) and z["relative_avgpool"].shape == (2, 3)
    with pytest.raises(ValueError, match="class 9 does not exist"):
        invariance(m, x[:1], "rotate", [0, 30], targets=[9])
    with pytest.raises(KeyError, match="no layer named"):
        invariance(m, x[:1], "rotate", [0, 30], layers=["nope"])


def test_invariance_figures_have_one_panel_per_layer_and_one_line_per_image():
    m = _model("alexnet")
    inv = invariance(m, torch.randn(2, 3, 64, 64), "rotate", default_values("rotate"))
    fig = invariance_figure(inv, ["a", "b"])
    assert len(fig.data) == 2 * 3  # 2 images x (2 layers + probability)
    assert [t.name for t in fig.data if t.showlegend] == ["a", "b"]
    assert fig.layout.xaxis.title.text == "rotation (degrees)" and "‖f(x)‖" in fig.layout.yaxis.title.text
    assert fig.layout.yaxis3.title.text == "p(class)"
    png = invariance_png(inv, ["a", "b"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_fit_linear_separates_separable_features():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 16)) * 3
    y, yv = np.repeat(np.arange(5), 20), np.repeat(np.arange(5), 10)
    val, train = fit_linear(centres[y] + rng.normal(size=(100, 16)), y, centres[yv] + rng.normal(size=(50, 16)), yv)
    assert val > 0.9 and train > 0.9
    noise_val, _ = fit_linear(rng.normal(size=(100, 16)), y, rng.normal(size=(50, 16)), yv)
    assert noise_val < 0.5  # chance is 0.2: no signal, no accuracy


def test_balanced_subset_takes_the_same_number_of_every_class():
    labels = np.repeat(np.arange(4), 10)
    idx = balanced_subset(labels, 3, seed=1)
    assert np.bincount(labels[idx]).tolist() == [3, 3, 3, 3] and np.all(np.diff(idx) > 0)
    assert np.array_equal(idx, balanced_subset(labels, 3, seed=1))


def _coloured(n_per_class: int, classes: int = 3, seed: int = 0):
    """Images whose class is their colour (plus noise): linearly separable from any layer."""
    rng = np.random.default_rng(seed)
    colours = np.array([[220, 40, 40], [40, 200, 40], [40, 40, 220], [200, 200, 40]])[:classes]
    labels = np.repeat(np.arange(classes), n_per_class)
    imgs = colours[labels][:, None, None, :] + rng.normal(0, 30, (len(labels), 64, 64, 3))
    return imgs.clip(0, 255).astype(np.uint8), labels


def test_probe_reports_every_layer_caches_and_cancels(tmp_path):
    m = _model("resnet18")
    (tr, ytr), (va, yva) = _coloured(6), _coloured(4, seed=1)
    seen = []
    kw = {"mean": MEAN, "std": STD, "input_size": 64, "train_per_class": 6, "val_per_class": 4, "max_iter": 30}
    r = probe(m, tr, ytr, va, yva, **kw, progress=lambda f, msg: seen.append((f, msg)), cache_dir=tmp_path,
              model_key="k", name="r18")
    assert r.layers == ["maxpool", "layer1", "layer2", "layer3", "avgpool"] and r.dims == [64, 64, 128, 256, 512]
    assert min(r.val_top1) > 0.9  # colour is separable at any depth, even with random weights
    assert (r.train_images, r.val_images, r.num_classes) == (18, 12, 3)
    assert "logistic regression" in r.classifier and "LBFGS" in r.classifier
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and any("fitting" in m for _, m in seen)
    files = list(tmp_path.glob("probe_*.json"))
    assert len(files) == 1
    again = []
    hit = probe(m, tr, ytr, va, yva, **kw, progress=lambda f, msg: again.append(msg), cache_dir=tmp_path,
                model_key="k", name="r18")
    assert hit.val_top1 == r.val_top1 and again == ["read from the cache"]
    assert ProbeResult.from_json(r.to_json()).rows() == r.rows()
    assert r.rows()[0].keys() >= {"layer", "val_top1"}
    with pytest.raises(ScanCancelled):
        probe(m, tr, ytr, va, yva, **{**kw, "max_iter": 31}, progress=lambda f, msg: f < 0.3, cache_dir=tmp_path,
              model_key="k")
    assert len(list(tmp_path.glob("probe_*.json"))) == 1  # a cancelled probe caches nothing
    fig = probe_figure([r, hit])
    assert len(fig.data) == 2 and fig.layout.yaxis.title.text == "val top-1 of a linear probe (%)"
    from cnnviz.palette import MODEL_COLOURS  # Compare's colour-blind-safe colours, two distinct ones
    assert [t.line.color for t in fig.data] == list(MODEL_COLOURS[:2])
    assert probe_png([r])[:4] == b"\x89PNG"


def test_probe_rejects_bad_input():
    m = _model("lenet5", size=32)
    imgs, y = _coloured(2)
    with pytest.raises(KeyError, match="no layer named"):
        probe(m, imgs, y, imgs, y, mean=MEAN, std=STD, input_size=32, channels=1, layers=["nope"])
    with pytest.raises(ValueError, match="uint8"):
        probe(m, imgs.astype(np.float32), y, imgs, y, mean=MEAN, std=STD, input_size=32, channels=1)


@pytest.mark.parametrize("arch", list_models())
def test_both_analyses_run_on_every_family(arch):
    """Every registered architecture at 64x64 (3 channels), plus LeNet-5 as published (1 channel, 32x32)."""
    torch.set_num_threads(1)
    cases = [(arch, 64, {})] + ([("lenet5", 32, {"in_channels": 1})] if arch == "lenet5" else [])
    for name, size, kw in cases:
        m = _model(name, size, **kw)
        c = _channels(m)
        inv = invariance(m, torch.randn(1, c, size, size), "scale", [0.8, 1.0])
        assert len(inv.layers) == 2 and all(inv.distance[n][0, 1] == 0 for n in inv.layers)
        imgs, y = _coloured(2)
        r = probe(m, imgs, y, imgs, y, mean=MEAN, std=STD, input_size=size, channels=c, train_per_class=2,
                  val_per_class=2, max_iter=3)
        assert r.layers == depth.probe_layers(m, (c, size, size)) and len(r.val_top1) == len(r.layers) >= 3
        assert all(0 <= v <= 1 for v in r.val_top1)


def test_probe_threads_are_set_for_the_run_and_restored(monkeypatch):
    import os

    from cnnviz.viz import probes

    m = _model("lenet5", size=32)
    imgs, y = _coloured(2)
    kw = {"mean": MEAN, "std": STD, "input_size": 32, "channels": 1, "max_iter": 3}
    before = torch.get_num_threads()
    assert probe(m, imgs, y, imgs, y, threads=1, **kw).seconds["threads"] == 1
    assert torch.get_num_threads() == before  # process-wide: restored for everyone else
    torch.set_num_threads(2)
    try:
        # busy machine (load average above the core count): one thread; idle: torch's own setting
        monkeypatch.setattr(os, "getloadavg", lambda: (64.0, 64.0, 64.0))
        with probes.threads_for_load(None) as used:
            assert used == 1
        assert torch.get_num_threads() == 2
        monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
        with probes.threads_for_load(None) as used:
            assert used == 2
    finally:
        torch.set_num_threads(before)
