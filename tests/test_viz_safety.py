"""Visualisation never changes the model it is given and never leaves a hook behind, even after an error,
and two threads can visualise the same (shared, cached) model at once."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from cnnviz.models import create_model
from cnnviz.viz import (
    attribute,
    deconvnet,
    feature_maps,
    filter_grid,
    filter_stats,
    hook_counts,
    occlusion,
    project,
    project_switches,
    sanity_check,
    scan,
)
from cnnviz.viz.invariance import invariance
from cnnviz.viz.probes import probe
from cnnviz.viz.top9 import patches

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return create_model("resnet18", num_classes=5, input_size=64)


@pytest.fixture(scope="module")
def zfnet():
    torch.manual_seed(0)
    return create_model("zfnet", num_classes=5, input_size=64)


def _snapshot(model):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            {n: m.training for n, m in model.named_modules()},
            {n: p.requires_grad for n, p in model.named_parameters()},
            {n: p.grad for n, p in model.named_parameters()})


def _assert_unchanged(model, snap):
    state, modes, req, grads = snap
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), f"{k} changed"
        # nor converted: a scan runs a bf16, channels-last copy, never the shared weights themselves
        assert (v.dtype, v.stride()) == (state[k].dtype, state[k].stride()), f"{k} converted"
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert {n: p.requires_grad for n, p in model.named_parameters()} == req
    assert all(p.grad is None for p in model.parameters())
    assert hook_counts(model) == 0


X = torch.randn(1, 3, 64, 64)
IMAGES = np.random.default_rng(0).integers(0, 255, size=(6, 64, 64, 3), dtype=np.uint8)

CALLS = {
    "project": lambda m: project(m, X, "layer2", 1),
    "deconvnet_auto": lambda m: deconvnet(m, X, "layer1.0.relu2", 0),
    "feature_maps": lambda m: feature_maps(m, X, "layer3"),
    "occlusion": lambda m: occlusion(m, X, size=16, stride=16, layer="layer1", channel=0),
    "scan": lambda m: scan(m, IMAGES, "layer2", mean=MEAN, std=STD, batch_size=4),
    "attribute": lambda m: attribute(m, X, 1, ig_steps=4),
    "sanity": lambda m: sanity_check(m, X, 1, methods=("saliency", "guided_backprop"), mode="cascading", steps=2),
    "filters": lambda m: (filter_grid(m), filter_stats(m)),
    "invariance": lambda m: invariance(m, X.expand(2, -1, -1, -1), "rotate", [0, 45], targets=[1, None]),
    "probe": lambda m: probe(m, IMAGES, np.arange(6) % 3, IMAGES, np.arange(6) % 3, mean=MEAN, std=STD,
                             input_size=64, train_per_class=2, val_per_class=2, max_iter=3, batch_size=4),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_model_untouched_and_no_hooks_left(resnet, name):
    resnet.train()  # a training-mode model: a visualisation in train mode would update BN statistics
    resnet.fc.weight.requires_grad_(False)
    snap = _snapshot(resnet)
    try:
        CALLS[name](resnet)
        _assert_unchanged(resnet, snap)
    finally:
        resnet.fc.weight.requires_grad_(True)
        resnet.eval()


ERRORS = {
    "project_bad_channel": lambda m: project(m, X, "features.pool2", 10_000),
    "switches_bad_channel": lambda m: project_switches(m, X, "features.pool2", 10_000),
    "maps_bad_layer": lambda m: feature_maps(m, X, "classifier.fc8"),
    "occlusion_bad_channel": lambda m: occlusion(m, X, layer="features.pool2", channel=10_000),
    "scan_bad_layer": lambda m: scan(m, IMAGES, "classifier.fc6", mean=MEAN, std=STD),
    "attribute_bad_class": lambda m: attribute(m, X, 99),
    "invariance_bad_layer": lambda m: invariance(m, X, "translate", [0, 2], layers=["features.nope"]),
    "invariance_bad_class": lambda m: invariance(m, X, "scale", [1.0, 1.2], targets=[99]),
    "probe_bad_layer": lambda m: probe(m, IMAGES, np.arange(6) % 3, IMAGES, np.arange(6) % 3, mean=MEAN, std=STD,
                                       input_size=64, layers=["features.nope"]),
    "patches_bad_channel": lambda m: patches(m, IMAGES, scan(m, IMAGES, "features.pool1", mean=MEAN, std=STD),
                                             10_000, mean=MEAN, std=STD),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_errors_leave_no_hooks_and_no_changes(zfnet, name):
    snap = _snapshot(zfnet)
    with pytest.raises((ValueError, KeyError)):
        ERRORS[name](zfnet)
    _assert_unchanged(zfnet, snap)


def test_hooks_removed_when_the_forward_pass_raises(zfnet):
    def boom(*_):
        raise RuntimeError("boom")

    from cnnviz.viz.hooks import get_module

    # an exception inside the forward pass (here: from a model's own hook) must not leave our hooks behind
    h = get_module(zfnet, "features.conv2").register_forward_hook(boom)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            project(zfnet, X, "features.pool5", 0)
        with pytest.raises(RuntimeError, match="boom"):
            attribute(zfnet, X, 0, methods=("deconvnet",))
    finally:
        h.remove()
    assert hook_counts(zfnet) == 0


def test_two_threads_on_one_shared_model(zfnet):
    errors: list[BaseException] = []
    results: dict[str, object] = {}

    def run(name, fn):
        try:
            for _ in range(3):
                results[name] = fn()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def predict():
        with torch.no_grad():  # what the Predict page does on the same cached model
            return zfnet(X)

    threads = [threading.Thread(target=run, args=("deconv", lambda: project(zfnet, X, "features.pool5", 3))),
               threading.Thread(target=run, args=("attr", lambda: attribute(zfnet, X, 1, ig_steps=4))),
               threading.Thread(target=run, args=("predict", predict))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    ref = project(zfnet, X, "features.pool5", 3)
    np.testing.assert_allclose(results["deconv"].image, ref.image, atol=1e-6)
    assert hook_counts(zfnet) == 0
