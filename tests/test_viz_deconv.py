"""Deconvnet (ZF 2.1): a hand-computed case, agreement of the two implementations, receptive-field bounds."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn as nn

from cnnviz.viz.deconv import _unpool_add, deconvnet, project, project_switches


def _one_conv_net() -> nn.Module:
    net = nn.Module()
    net.features = nn.Sequential(OrderedDict([
        ("conv", nn.Conv2d(1, 1, kernel_size=2, bias=False)),
        ("relu", nn.ReLU()),
        ("pool", nn.MaxPool2d(kernel_size=2, stride=1)),
    ]))
    net.forward = net.features.forward
    with torch.no_grad():
        net.features.conv.weight.copy_(torch.tensor([[[[1.0, 0.0], [0.0, -1.0]]]]))
    return net.eval()


X = torch.tensor([[[[1.0, 2, 0, 1], [0, 1, 3, 0], [2, 0, 1, 1], [1, 1, 0, 2]]]])


@pytest.mark.parametrize("method", ["autograd", "switches"])
def test_hand_computed_one_conv_relu_maxpool(method):
    # conv (w = [[1, 0], [0, -1]]): y[i, j] = x[i, j] - x[i+1, j+1] = [[0, -1, 0], [0, 0, 2], [1, 0, -1]]
    # ReLU -> [[0, 0, 0], [0, 0, 2], [1, 0, 0]]; max pool 2x2 stride 1 -> [[0, 2], [1, 2]].
    # Strongest pooled unit: (0, 1) = 2, switch at conv unit (1, 2). Unpool -> 2 at (1, 2); ReLU keeps it;
    # transposed conv puts 2 * w at rows 1..2, cols 2..3: +2 at (1, 2), -2 at (2, 3), zero elsewhere.
    net = _one_conv_net()
    p = deconvnet(net, X, "features.pool", 0, method=method)
    expected = np.zeros((1, 4, 4), np.float32)
    expected[0, 1, 2], expected[0, 2, 3] = 2.0, -2.0
    assert p.position == (0, 1) and p.value == pytest.approx(2.0)
    np.testing.assert_allclose(p.image, expected, atol=1e-6)
    # A chosen unit: pooled (1, 0) = 1 comes from conv unit (2, 0): +1 at (2, 0), -1 at (3, 1).
    q = deconvnet(net, X, "features.pool", 0, position=(1, 0), method=method)
    expected = np.zeros((1, 4, 4), np.float32)
    expected[0, 2, 0], expected[0, 3, 1] = 1.0, -1.0
    np.testing.assert_allclose(q.image, expected, atol=1e-6)


def test_rectification_blocks_negative_signal():
    # Projecting a unit whose value is negative (a conv layer before its ReLU) with keep_value: the ReLU of
    # the signal below... there is none below conv, so the signal reaches the input as value * w.
    net = _one_conv_net()
    p = project(net, X, "features.conv", 0, position=(0, 1))  # y[0, 1] = -1
    expected = np.zeros((1, 4, 4), np.float32)
    expected[0, 0, 1], expected[0, 1, 2] = -1.0, 1.0
    np.testing.assert_allclose(p.image, expected, atol=1e-6)


def test_unpooling_adds_where_overlapping_windows_share_a_switch():
    # 1D-like case: 1 x 1 x 1 x 5 input, pool 1x3 stride 2 -> 2 outputs both with their max at index 2.
    x = torch.tensor([[[[0.0, 1.0, 5.0, 1.0, 0.0]]]])
    out, idx = nn.functional.max_pool2d(x, (1, 3), (1, 2), return_indices=True)
    assert idx.flatten().tolist() == [2, 2]
    signal = torch.tensor([[[[3.0, 4.0]]]])
    added = _unpool_add(signal, idx, x.shape)
    assert added.flatten().tolist() == [0, 0, 7, 0, 0]  # 3 + 4: both windows' signals
    overwritten = nn.MaxUnpool2d((1, 3), (1, 2))(signal, idx, output_size=x.shape)
    assert overwritten.flatten()[2].item() in (3.0, 4.0)  # what MaxUnpool2d would (wrongly) give


def _alexnet_like(groups: int = 2, bn: bool = False) -> nn.Module:
    layers = OrderedDict([
        ("conv1", nn.Conv2d(3, 16, 7, stride=2, padding=2)), ("relu1", nn.ReLU()),
        ("norm1", nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)),
        ("pool1", nn.MaxPool2d(3, 2)),  # overlapping, as in AlexNet/ZFNet
        ("conv2", nn.Conv2d(16, 32, 5, padding=2, groups=groups)),
    ])
    if bn:
        layers["bn2"] = nn.BatchNorm2d(32)
    layers.update([("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(3, 2)),
                   ("conv3", nn.Conv2d(32, 24, 3, padding=1)), ("relu3", nn.ReLU()),
                   ("conv4", nn.Conv2d(24, 24, 3, padding=1, groups=groups)), ("relu4", nn.ReLU()),
                   ("pool3", nn.MaxPool2d(3, 2))])
    net = nn.Module()
    net.features = nn.Sequential(layers)
    net.forward = net.features.forward
    if bn:
        with torch.no_grad():  # non-trivial eval-mode statistics
            net.features.bn2.running_var.uniform_(0.5, 2.0)
            net.features.bn2.running_mean.uniform_(-0.2, 0.2)
            net.features.bn2.weight.uniform_(0.5, 1.5)
    return net.eval()


def _active_channels(net, x, layer, n=3):
    from cnnviz.viz.deconv import top_channels

    return [c for c, v in top_channels(net, x, layer, k=n) if v > 0]


@pytest.mark.parametrize("bn", [False, True])
def test_autograd_and_switches_agree_on_alexnet_like_stack(bn):
    torch.manual_seed(0)
    net = _alexnet_like(bn=bn)
    x = torch.randn(1, 3, 67, 67)
    checked = 0
    for layer in ["features.relu1", "features.pool1", "features.relu2", "features.pool2", "features.relu4",
                  "features.pool3"]:
        for c in _active_channels(net, x, layer):
            a = project(net, x, layer, c)
            b = project_switches(net, x, layer, c)
            assert a.position == b.position
            scale = np.abs(a.image).max()
            assert scale > 0
            np.testing.assert_allclose(a.image, b.image, atol=1e-5 * scale)
            checked += 1
    assert checked >= 6


@pytest.mark.parametrize("arch", ["alexnet", "zfnet", "vgg11_bn"])
def test_autograd_and_switches_agree_on_zoo_models(arch):
    from cnnviz.models import create_model

    torch.manual_seed(1)
    net = create_model(arch, num_classes=10, input_size=64).eval()
    x = torch.randn(1, 3, 64, 64)
    convs = [n for n, m in net.features.named_children() if isinstance(m, nn.MaxPool2d)]
    layer = f"features.{convs[-1]}"
    for c in _active_channels(net, x, layer, n=2):
        a, b = project(net, x, layer, c), project_switches(net, x, layer, c)
        assert a.image.shape == (3, 64, 64)
        np.testing.assert_allclose(a.image, b.image, atol=1e-5 * np.abs(a.image).max())


def test_switches_refuse_non_sequential_models_and_auto_falls_back():
    from cnnviz.models import create_model

    net = create_model("resnet18", num_classes=10, input_size=64).eval()
    x = torch.randn(1, 3, 64, 64)
    with pytest.raises(ValueError, match="autograd"):
        project_switches(net, x, "layer1.0.relu1", 0)
    p = deconvnet(net, x, "layer1", 0, method="auto")
    assert p.method == "autograd" and p.image.shape == (3, 64, 64)


def _support(img: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(np.abs(img).sum(0) > 0)
    return ys.min(), xs.min(), ys.max() + 1, xs.max() + 1


def test_projection_inside_receptive_field_hand_stack():
    # conv 5x5 s1 p0 -> relu -> pool 2x2 s2 -> conv 3x3 s1: unit (y, x) of the last conv sees input rows
    # 2y .. 2y + 5 + 2 + 2*2 - 1 = 2y .. 2y + 9 (rf 10, jump 2).
    torch.manual_seed(3)
    net = nn.Module()
    net.features = nn.Sequential(nn.Conv2d(3, 8, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Conv2d(8, 8, 3), nn.ReLU())
    net.forward = net.features.forward
    net.eval()
    x = torch.randn(1, 3, 32, 32)
    c = _active_channels(net, x, "features.4", n=1)[0]
    p = project(net, x, "features.4", c)
    y, xx = p.position
    top, left, bottom, right = _support(p.image)
    assert top >= 2 * y and left >= 2 * xx and bottom <= 2 * y + 10 and right <= 2 * xx + 10


@pytest.mark.parametrize("arch,layer", [("alexnet", "features.relu3"), ("zfnet", "features.pool2"),
                                        ("resnet18", "layer2"), ("googlenet", "inception3a")])
def test_projection_inside_receptive_field_of_zoo_models(arch, layer):
    from cnnviz.models import create_model
    from cnnviz.viz.maps import unit_region

    torch.manual_seed(2)
    net = create_model(arch, num_classes=10, input_size=64).eval()
    x = torch.randn(1, 3, 64, 64)
    for c in _active_channels(net, x, layer, n=2):
        p = project(net, x, layer, c)
        assert np.abs(p.image).max() > 0
        top, left, bottom, right = unit_region(net, layer, *p.position, (3, 64, 64))
        s_top, s_left, s_bottom, s_right = _support(p.image)
        assert top <= s_top and left <= s_left and s_bottom <= bottom and s_right <= right, \
            (p.position, (top, left, bottom, right), (s_top, s_left, s_bottom, s_right))


def test_lrn_identity_matches_zf_and_gradient_option_differs():
    torch.manual_seed(0)
    net = _alexnet_like()
    with torch.no_grad():
        net.features.norm1.alpha = 5.0  # strong normalisation so that its Jacobian is visibly not identity
    x = torch.randn(1, 3, 67, 67)
    c = _active_channels(net, x, "features.pool1", n=1)[0]
    ident = project(net, x, "features.pool1", c, lrn="identity")
    grad = project(net, x, "features.pool1", c, lrn="gradient")
    sw = project_switches(net, x, "features.pool1", c)
    np.testing.assert_allclose(ident.image, sw.image, atol=1e-6 * np.abs(sw.image).max())
    assert not np.allclose(ident.image, grad.image)


def test_bad_channel_and_layer_give_clear_errors():
    net = _one_conv_net()
    with pytest.raises(ValueError, match="feature maps"):
        project(net, X, "features.pool", 5)
    with pytest.raises(KeyError, match="no layer"):
        project(net, X, "features.nope", 0)


def test_autograd_route_equals_captum_neuron_deconvolution():
    # An independent implementation: captum's NeuronDeconvolution (ReLU backward hooks) seeds the unit with 1
    # and keeps LRN's gradient; ours with lrn="gradient" and keep_value=False must give the same image.
    from captum.attr import NeuronDeconvolution

    from cnnviz.viz.hooks import get_module, private_view

    torch.manual_seed(0)
    net = _alexnet_like()
    x = torch.randn(1, 3, 67, 67)
    c = _active_channels(net, x, "features.relu4", n=1)[0]
    ours = project(net, x, "features.relu4", c, lrn="gradient", keep_value=False)
    view = private_view(net)
    ref = NeuronDeconvolution(view, get_module(view, "features.relu4")).attribute(
        x.clone().requires_grad_(True), neuron_selector=(c, *ours.position))[0].detach().numpy()
    np.testing.assert_allclose(ours.image, ref, atol=1e-6 * np.abs(ref).max())


# --- when the deconvnet shows the same picture for every image (Springenberg et al. 2015, section 3.4) -----------
def _two_images(size: int = 32, channels: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(1, channels, size, size, generator=g), torch.rand(1, channels, size, size, generator=g) * 2


def test_without_max_pooling_the_deconvnet_ignores_the_image_and_guided_backprop_does_not():
    """ResNet-18 with the tiny stem has no max-pool: a layer3 unit projects to one picture from two unrelated
    images (what Visualize showed as the same checkerboard for every upload), and the check says so; guided
    backprop of the same unit differs between the images."""
    from cnnviz.models import create_model
    from cnnviz.viz.deconv import guided_backprop, is_same_for_every_image

    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=10, input_size=32, stem="tiny").eval()
    a, b = _two_images()
    pa, pb = (project(model, x, "layer3", 5, (3, 4), keep_value=False) for x in (a, b))
    assert np.abs(pa.image).max() > 0
    np.testing.assert_allclose(pa.image, pb.image, rtol=0, atol=1e-6 * np.abs(pa.image).max())
    assert is_same_for_every_image(model, a, pa)
    ga, gb = (guided_backprop(model, x, "layer3", 5, (3, 4)) for x in (a, b))
    assert ga.method == "guided backprop"
    assert not np.allclose(ga.image / np.abs(ga.image).max(), gb.image / np.abs(gb.image).max(), atol=1e-2)


@pytest.mark.parametrize("arch,layer,variant,same", [
    ("zfnet", "features.conv2", {}, False),  # pool1's switches carry the image down
    ("zfnet", "features.conv1", {}, True),  # below the first max-pool: a unit projects to its filter
    ("lenet5", "features.c3", {"variant": "paper"}, False),  # no max-pool, but tanh's backward reads the image
])
def test_the_check_is_measured_not_read_from_the_architecture(arch, layer, variant, same):
    from cnnviz.models import create_model
    from cnnviz.viz.deconv import is_same_for_every_image

    torch.manual_seed(0)
    model = create_model(arch, num_classes=10, **variant).eval()
    size = model.input_size if hasattr(model, "input_size") else 64
    channels = next(m for m in model.modules() if isinstance(m, nn.Conv2d)).in_channels
    x, _ = _two_images(int(size), channels)
    assert is_same_for_every_image(model, x, project(model, x, layer, 0)) is same
