"""captum attributions side by side, the randomisation sanity check (Adebayo et al. 2018)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from cnnviz.viz.attribution import (
    METHODS,
    attribute,
    parametrised_layers,
    randomized_copy,
    sanity_check,
    spearman,
)


class VGGLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(16 * 8 * 8, 4))

    def forward(self, x):
        return self.classifier(self.features(x))


def _vgg_like():
    torch.manual_seed(0)
    return VGGLike().eval()


def _image():
    x = torch.zeros(1, 3, 32, 32)
    x[:, 0, 8:20, 6:14] = 2.0  # a red bar and a blue blob: structure for the maps to follow
    x[:, 2, 20:28, 18:28] = 1.5
    return x + 0.05 * torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def test_all_methods_side_by_side():
    net = _vgg_like()
    a = attribute(net, _image(), target=2, ig_steps=8)
    assert a.target == 2 and list(a.maps) == list(METHODS)
    for m, arr in a.maps.items():
        assert arr.shape == (32, 32), m
        assert np.isfinite(arr).all() and arr.min() >= 0, m
        assert m in ("grad_cam", "guided_grad_cam") or arr.max() > 0, m
    # Grad-CAM (ReLU of the weighted maps) may be empty for a class of a random net, not for all of them
    assert a.cam_layer == "features.4"  # the last ReLU, not the max pool after it (nor "features", which ends in it)
    assert any(attribute(net, _image(), t, methods=("grad_cam",)).maps["grad_cam"].max() > 0 for t in range(4))
    assert a.raw["integrated_gradients"].shape == (3, 32, 32)
    with pytest.raises(ValueError, match="unknown attribution"):
        attribute(net, _image(), 0, methods=("lime",))


def test_a_deconvnet_map_that_ignores_the_image_is_said_to():
    """With max-pools (VGG-like) the deconvnet map comes from the image; without any (ResNet-18, tiny stem) it
    is one map per class whatever the image, and the caption says so."""
    from cnnviz.models import create_model
    from cnnviz.views import visualize as vv
    from cnnviz.viz import session

    assert attribute(_vgg_like(), _image(), 1, methods=("deconvnet", "saliency")).same_for_every_image == ()
    torch.manual_seed(0)
    r18 = create_model("resnet18", num_classes=4, input_size=32, stem="tiny").eval()
    a = attribute(r18, _image(), 1, methods=("deconvnet", "guided_backprop"))
    assert a.same_for_every_image == ("deconvnet",)
    subject = session.Subject(r18, session.random_subject("resnet18", num_classes=4).meta, "r18", None)
    assert "deconvnet map is the same for every image of this class" in vv.attribution_caption(subject, a)
    assert attribute(r18, _image(), 1, methods=("saliency",)).same_for_every_image == ()  # not measured


def test_integrated_gradients_completeness():
    # IG's attributions sum to f(x) - f(baseline) (up to the Riemann error); a check of the baseline choice
    net = _vgg_like()
    x = _image()
    a = attribute(net, x, target=1, methods=("integrated_gradients",), ig_steps=64)
    with torch.no_grad():
        diff = float(net(x)[0, 1] - net(torch.zeros_like(x))[0, 1])
    assert a.raw["integrated_gradients"].sum() == pytest.approx(diff, rel=0.05, abs=1e-3)


def test_randomized_copy_leaves_the_model_alone():
    net = _vgg_like()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    full = randomized_copy(net, "full", seed=1)
    top = randomized_copy(net, "cascading", layers=1, seed=1)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])
    names = parametrised_layers(net)
    assert names == ["features.0", "features.3", "classifier.1"]
    assert not torch.equal(full.features[0].weight, net.features[0].weight)
    assert torch.equal(top.features[0].weight, net.features[0].weight)  # only the top layer re-initialised
    assert not torch.equal(top.classifier[1].weight, net.classifier[1].weight)


def test_spearman():
    a = np.arange(10.0)
    assert spearman(a, a * 3 + 1) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert np.isnan(spearman(a, np.ones(10)))


def test_the_border_fade_alone_does_not_make_two_maps_similar():
    """Two unrelated maps that both fade towards the image border (as every CNN's do at 64x64: fewer units see
    an edge pixel) correlate strongly by plain Spearman; with the border taken out they do not. Maps that share
    their own pattern still correlate with it taken out."""
    from cnnviz.viz.attribution import border_distance, spearman_without_border

    rng = np.random.default_rng(0)
    fade = (np.minimum(border_distance(64, 64), 16) + 1) ** 2  # a rim 16 pixels wide
    a, b = fade * rng.random((64, 64)), fade * rng.random((64, 64))
    assert spearman(a, b) > 0.5 and abs(spearman_without_border(a, b)) < 0.1
    pattern = rng.random((64, 64))
    a, b = fade * (pattern + 0.3 * rng.random((64, 64))), fade * (pattern + 0.3 * rng.random((64, 64)))
    assert spearman_without_border(a, b) > 0.8
    assert np.isnan(spearman_without_border(a, np.ones_like(a)))
    assert border_distance(4, 5).tolist() == [[0, 0, 0, 0, 0], [0, 1, 1, 1, 0], [0, 1, 1, 1, 0], [0, 0, 0, 0, 0]]


def test_sanity_check_guided_backprop_barely_changes_gradient_does():
    # Adebayo et al.: after re-initialising every weight, guided backprop still looks like the image (high rank
    # correlation with the original map), the plain gradient does not. Shown on VGG-11 (the effect needs depth).
    from cnnviz.viz.session import demo_image, prepare, random_subject

    subject = random_subject("vgg11", num_classes=10)
    x, _ = prepare(demo_image(64), subject.meta)
    sc = sanity_check(subject.model, x, 0, methods=("saliency", "guided_backprop"), mode="full", seed=5)
    s = dict(zip(sc.scores.method, sc.scores.spearman_abs, strict=True))
    assert s["guided_backprop"] > 0.6 and s["guided_backprop"] > s["saliency"] + 0.2, s
    casc = sanity_check(_vgg_like(), _image(), 0, methods=("saliency",), mode="cascading", steps=3)
    assert casc.scores.randomized.tolist() == [1, 2, 3]


# --- Grad-CAM looks at real maps (issue 11) ---------------------------------------------------------------------

def _one_arch_per_family() -> list[str]:
    from cnnviz.models import get_card, list_models

    first: dict[str, str] = {}
    for arch in list_models():
        first.setdefault(get_card(arch).family, arch)
    return list(first.values())


@pytest.mark.parametrize("arch", _one_arch_per_family())
def test_grad_cam_default_layer_has_real_maps_for_every_family(arch):
    """The default Grad-CAM layer is the last one with maps larger than 1x1 that is not a pooling layer's output
    (ResNet and GoogLeNet used to get their 1x1 average pool: a constant CAM; AlexNet, ZFNet and VGG their last
    max pool, half the map Grad-CAM's authors used), and the CAM there is a picture, not a constant."""
    from cnnviz.viz.attribution import default_cam_layer, ends_in_pooling
    from cnnviz.viz.layers import output_shapes
    from cnnviz.viz.session import demo_image, prepare, random_subject

    subject = random_subject(arch, num_classes=10)
    x, _ = prepare(demo_image(64), subject.meta)
    layer = default_cam_layer(subject.model, subject.input_size)
    shapes = output_shapes(subject.model, subject.input_size)
    _, h, w = shapes[layer]
    assert h * w > 1, (layer, shapes[layer])
    modules = dict(subject.model.named_modules())
    assert not ends_in_pooling(modules[layer]), layer
    later = list(shapes)[list(shapes).index(layer) + 1:]
    assert all(len(shapes[n]) != 3 or min(shapes[n][1:]) < min(4, h, w) or ends_in_pooling(modules[n])
               for n in later), "not the last one"
    assert max((shapes[n][1] * shapes[n][2] for n in later if len(shapes[n]) == 3), default=0) <= h * w
    # ReLU'd CAMs of a random net may be empty for one class; over the first few classes one is a real map
    cams = [attribute(subject.model, x, t, methods=("grad_cam",)) for t in range(4)]
    assert all(a.cam_layer == layer and a.cam_size == (h, w) for a in cams)
    assert any(a.blank("grad_cam") is None for a in cams), [a.blank("grad_cam") for a in cams]


@pytest.mark.parametrize("arch, layer", [("alexnet", "features.relu5"), ("zfnet", "features.relu5"),
                                         ("vgg16_bn", "features.42"), ("vgg16", "features.29")])
def test_grad_cam_default_is_the_last_relu_before_the_final_max_pool_as_its_authors_chose(arch, layer):
    """Grad-CAM's own code defaults to relu5_3 (VGG-16) and relu5 (AlexNet), not the max pool after them:
    at 64x64 that is ZFNet's 13x13 map, not the pool's 6x6."""
    import torch.nn as nn

    from cnnviz.viz.attribution import default_cam_layer
    from cnnviz.viz.session import random_subject

    subject = random_subject(arch, num_classes=10)
    assert default_cam_layer(subject.model, subject.input_size) == layer
    assert isinstance(dict(subject.model.named_modules())[layer], nn.ReLU)


@pytest.mark.parametrize("size, stem, layer", [(64, "paper", "inception4e"), (224, "paper", "inception5b"),
                                               (64, "small", "inception5b")])
def test_grad_cam_default_for_googlenet_is_never_a_2x2_map(size, stem, layer):
    """With the paper's stem at 64x64, GoogLeNet's inception5b is 2x2 and its upsampled CAM was one smooth blob
    whatever the image: the default goes back to inception4e (4x4). At 224x224 (7x7) and with the small stem
    (8x8 at 64x64) the last inception block keeps the default, as in Grad-CAM's own choice of the last conv."""
    from cnnviz.models import create_model
    from cnnviz.viz.attribution import default_cam_layer
    from cnnviz.viz.layers import output_shapes

    model = create_model("googlenet", num_classes=10, input_size=size, **({"stem": "small"} if stem == "small" else {}))
    shapes = output_shapes(model, (3, size, size))
    assert default_cam_layer(model, (3, size, size), shapes) == layer
    assert min(shapes[layer][1:]) >= 4, shapes[layer]


def test_a_1x1_layer_or_constant_map_is_na_not_a_stretched_constant():
    from cnnviz.views.visualize import attribution_figure
    from cnnviz.viz import render
    from cnnviz.viz.attribution import blank_reason
    from cnnviz.viz.session import demo_image, prepare, random_subject

    subject = random_subject("resnet18", num_classes=10)
    x, seen = prepare(demo_image(64), subject.meta)
    a = attribute(subject.model, x, 0, methods=("grad_cam",), cam_layer="avgpool")
    assert a.cam_size == (1, 1) and a.blank("grad_cam") == "n/a: this layer's map is 1x1"
    assert blank_reason(np.full((8, 8), 6.001) + np.float32(1e-7) * np.arange(64).reshape(8, 8)).startswith(
        "n/a: constant map")
    assert blank_reason(np.zeros((4, 4))) == "n/a: constant map (0 everywhere)"
    # the figure draws a grey square with the reason, no colours of the inferno map
    panel = attribution_figure(seen, a, subject)[:, 170:]  # right of the image
    colourful = (panel.max(axis=2).astype(int) - panel.min(axis=2)) > 40
    assert not colourful.any()
    assert render.heat_panel(np.eye(4), "inferno", "t", "m").shape[0] > 160 + 20  # title, map, colour bar


def test_sanity_check_scores_are_never_empty():
    """Adebayo's table has a number or an "n/a: <why>" for every method, never None/NaN shown to a user."""
    from cnnviz.views.visualize import sanity_figure
    from cnnviz.viz.session import demo_image, prepare, random_subject

    subject = random_subject("resnet18", num_classes=10)
    x, seen = prepare(demo_image(64), subject.meta)
    sc = sanity_check(subject.model, x, 0, methods=("saliency", "grad_cam"), cam_layer="avgpool")
    table = sc.table()
    scores = dict(zip(table.method, table["rank correlation, original vs randomised"], strict=True))
    assert scores["Grad-CAM"].startswith("n/a: this layer's map is 1x1"), scores
    assert float(scores["Saliency (gradient)"]) == pytest.approx(sc.scores.spearman_abs[0], abs=0.005)
    inner = dict(zip(table.method, table["without the border's fade"], strict=True))
    assert inner["Grad-CAM"].startswith("n/a: this layer's map is 1x1")
    assert float(inner["Saliency (gradient)"]) == pytest.approx(sc.scores.spearman_abs_no_border[0], abs=0.005)
    # original (top row) and randomised (bottom row) side by side in one figure
    fig = sanity_figure(seen, sc, subject)
    from cnnviz.views.visualize import attribution_figure
    assert fig.shape[0] > 2 * attribution_figure(seen, sc.original, subject).shape[0] - 20
