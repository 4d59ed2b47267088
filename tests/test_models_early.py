"""Paper-specific checks for the early CNNs: LeNet-5, AlexNet, ZFNet and Network in Network.

Registry-wide conventions (gradients, ReLU modules, forward == head(features)) are in tests/test_models.py;
here we check what each paper says: layer sizes, parameter counts, the C3 table, the squashing function,
LRN's formula, the two-GPU grouping and the 64x64 adaptations.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnviz.models import InputSizeError, create_model, get_card
from cnnviz.models.alexnet import paper_lrn
from cnnviz.models.lenet import (
    C3_TABLE,
    EuclideanRBF,
    PartialConv2d,
    ScaledTanh,
    TrainableSubsampling,
    c3_connection_mask,
)
from cnnviz.models.registry import _REGISTRY
from cnnviz.models.sizes import out_size
from cnnviz.models.zfnet import renormalize_filters


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def layer_shapes(model: nn.Module, x: torch.Tensor, names: list[str]) -> dict[str, tuple[int, ...]]:
    """Output shape (without the batch) of each named module in one forward pass (hooks removed after)."""
    modules = dict(model.named_modules())
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    try:
        for name in names:
            handles.append(modules[name].register_forward_hook(
                lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:]))))
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return shapes


# ---------------------------------------------------------------------------------------------- fixtures

_BUILT: dict[tuple, nn.Module] = {}


def build(name: str, num_classes: int | None = None, input_size: int | None = None, **variant) -> nn.Module:
    """create_model, cached for this module (building the 60M-parameter nets dominates the test time).
    Tests must not mutate what they get."""
    card = get_card(name)
    num_classes = card.paper_classes if num_classes is None else num_classes
    input_size = card.paper_input[1] if input_size is None else input_size
    key = (name, num_classes, input_size, tuple(sorted({**card.default_variant, **variant}.items())))
    if key not in _BUILT:
        _BUILT[key] = create_model(name, num_classes=num_classes, input_size=input_size, **variant).eval()
    return _BUILT[key]


@pytest.fixture(scope="module", autouse=True)
def _free_cached_models():
    yield
    _BUILT.clear()  # several 60M-parameter nets: give the memory back after this module


@pytest.fixture(scope="module")
def alexnet_paper() -> nn.Module:
    return build("alexnet")  # 227, 1000 classes, groups=2


@pytest.fixture(scope="module")
def zfnet_paper() -> nn.Module:
    return build("zfnet")  # 224, 1000 classes


@pytest.fixture(scope="module")
def lenet_paper() -> nn.Module:
    return build("lenet5")  # 32x32x1, 10 classes, RBF output


# ------------------------------------------------------------------------------------------------ AlexNet

# Section 3.5 / Figure 2 of the paper (with the 227 input that makes its 55x55 work).
ALEXNET_227 = {
    "features.conv1": (96, 55, 55),
    "features.pool1": (96, 27, 27),
    "features.conv2": (256, 27, 27),
    "features.pool2": (256, 13, 13),
    "features.conv3": (384, 13, 13),
    "features.conv4": (384, 13, 13),
    "features.conv5": (256, 13, 13),
    "features.pool5": (256, 6, 6),
    "classifier.fc6": (4096,),
    "classifier.fc7": (4096,),
    "classifier.fc8": (1000,),
}


def test_alexnet_layer_shapes_at_227_are_the_papers(alexnet_paper):
    shapes = layer_shapes(alexnet_paper, torch.randn(1, 3, 227, 227), list(ALEXNET_227))
    assert shapes == ALEXNET_227


def test_alexnet_structure_follows_the_paper(alexnet_paper):
    f = alexnet_paper.features
    names = [n for n, _ in f.named_children()]
    # LRN follows the ReLUs of conv1 and conv2; max pools follow both LRNs and conv5 (Section 3.5).
    assert names == ["conv1", "relu1", "norm1", "pool1", "conv2", "relu2", "norm2", "pool2", "conv3", "relu3",
                     "conv4", "relu4", "conv5", "relu5", "pool5"]
    assert (f.conv1.kernel_size, f.conv1.stride, f.conv1.padding) == ((11, 11), (4, 4), (0, 0))
    assert (f.conv2.kernel_size, f.conv2.padding) == ((5, 5), (2, 2))
    for pool in (f.pool1, f.pool2, f.pool5):  # overlapping pooling: z = 3 > s = 2
        assert (pool.kernel_size, pool.stride) == (3, 2)
    # two-GPU grouping: conv2, conv4, conv5 only see their own GPU's maps; conv3 sees both.
    assert [getattr(f, c).groups for c in ("conv1", "conv2", "conv3", "conv4", "conv5")] == [1, 2, 1, 2, 2]
    # Dropout on the outputs of the first two FC layers (Section 4.2).
    head = [n for n, _ in alexnet_paper.classifier.named_children()]
    assert head == ["fc6", "relu6", "drop6", "fc7", "relu7", "drop7", "fc8"]
    assert alexnet_paper.classifier.drop6.p == 0.5


def test_alexnet_parameter_counts_with_and_without_grouping(alexnet_paper):
    assert n_params(alexnet_paper) == 60_965_224
    f = alexnet_paper.features
    assert n_params(f.conv2) == 2 * 128 * 48 * 25 + 256  # each half sees 48 maps
    assert n_params(f.conv4) == 2 * 192 * 192 * 9 + 384
    ungrouped = build("alexnet", groups=1)
    assert n_params(ungrouped) == 62_378_344
    assert n_params(ungrouped.features.conv2) == 256 * 96 * 25 + 256
    # Both are "60 million" as the paper rounds; torchvision's AlexNet (61,100,840) is a different net.
    assert round(n_params(alexnet_paper) / 1e6) == 61 and round(n_params(ungrouped) / 1e6) == 62


def test_alexnet_paper_init(alexnet_paper):
    f, c = alexnet_paper.features, alexnet_paper.classifier
    for layer in (f.conv2, f.conv4, f.conv5, c.fc6, c.fc7):  # Section 5: biases 1 here, 0 elsewhere
        assert torch.all(layer.bias == 1)
    for layer in (f.conv1, f.conv3, c.fc8):
        assert torch.all(layer.bias == 0)
    assert abs(c.fc6.weight.std().item() - 0.01) < 5e-4


def lrn_by_hand(a: torch.Tensor, k=2.0, n=5, alpha=1e-4, beta=0.75) -> torch.Tensor:
    """Section 3.3, literally: b_i = a_i / (k + alpha * sum_{j=max(0,i-n/2)}^{min(N-1,i+n/2)} a_j^2)^beta."""
    out = torch.empty_like(a)
    channels = a.shape[1]
    for i in range(channels):
        lo, hi = max(0, i - n // 2), min(channels - 1, i + n // 2)
        s = sum(a[:, j] ** 2 for j in range(lo, hi + 1))
        out[:, i] = a[:, i] / (k + alpha * s) ** beta
    return out


def test_lrn_matches_the_papers_formula(alexnet_paper):
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 9, 3, 3, generator=g, dtype=torch.float64) * 100  # large enough for alpha to matter
    expected = lrn_by_hand(a)
    assert torch.allclose(paper_lrn()(a), expected, rtol=1e-10, atol=0)
    assert torch.allclose(build("alexnet", groups=1).features.norm1(a), expected, rtol=1e-10)
    # Passing the paper's alpha straight to torch (which divides it by n) is a different function.
    naive = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)(a)
    assert not torch.allclose(naive, expected, rtol=1e-3)


def test_grouped_lrn_normalises_each_gpus_maps_separately(alexnet_paper):
    # groups=2: each GPU normalised its own 48 (conv1) / 128 (conv2) maps; the window never crosses halves.
    a = torch.rand(1, 96, 2, 2, dtype=torch.float64) * 100
    expected = torch.cat([lrn_by_hand(a[:, :48]), lrn_by_hand(a[:, 48:])], dim=1)
    assert torch.allclose(alexnet_paper.features.norm1(a), expected, rtol=1e-10)
    assert alexnet_paper.features.norm2.groups == 2
    bumped = a.clone()
    bumped[:, 48] += 100  # first map of the second GPU
    out, out2 = alexnet_paper.features.norm1(a), alexnet_paper.features.norm1(bumped)
    assert torch.equal(out[:, 46:48], out2[:, 46:48])  # the first GPU's maps do not see it
    full = build("alexnet", groups=1).features.norm1
    assert not torch.equal(full(a)[:, 46:48], full(bumped)[:, 46:48])


def test_alexnet_small_stem_keeps_paper_sizes_after_pool1():
    model = build("alexnet", num_classes=200, input_size=64)
    assert model.stem == "small"
    shapes = layer_shapes(model, torch.randn(1, 3, 64, 64), list(ALEXNET_227))
    assert shapes["features.conv1"] == (96, 56, 56)
    for name in list(ALEXNET_227)[1:-1]:
        assert shapes[name] == ALEXNET_227[name], name
    assert shapes["classifier.fc8"] == (200,)
    assert model.features.conv1.weight.shape == (96, 3, 11, 11)  # same filters as the paper
    assert n_params(model) == 60_965_224 - (4096 * 1000 + 1000) + (4096 * 200 + 200)


def test_alexnet_paper_stem_at_64_is_a_clear_error():
    with pytest.raises(InputSizeError, match="pool5"):
        create_model("alexnet", num_classes=200, input_size=64, stem="paper")
    with pytest.raises(InputSizeError):
        create_model("alexnet", input_size=22)
    assert create_model("alexnet", num_classes=10, input_size=67, stem="paper").feature_size == 1


def test_wrong_input_size_gives_input_size_error_not_a_shape_error():
    model = build("alexnet", num_classes=200, input_size=64)
    with torch.no_grad(), pytest.raises(InputSizeError, match="built for 64x64"):
        model(torch.randn(1, 3, 96, 96))
    with torch.no_grad(), pytest.raises(InputSizeError, match="at least"):
        model(torch.randn(1, 3, 16, 16))
    with torch.no_grad(), pytest.raises(InputSizeError, match="N x 3 x H x W"):
        model(torch.randn(1, 1, 64, 64))


# -------------------------------------------------------------------------------------------------- ZFNet

# Figure 3 of the paper at 224.
ZFNET_224 = {
    "features.conv1": (96, 110, 110),
    "features.pool1": (96, 55, 55),
    "features.norm1": (96, 55, 55),
    "features.conv2": (256, 26, 26),
    "features.pool2": (256, 13, 13),
    "features.norm2": (256, 13, 13),
    "features.conv3": (384, 13, 13),
    "features.conv4": (384, 13, 13),
    "features.conv5": (256, 13, 13),
    "features.pool5": (256, 6, 6),
    "classifier.fc6": (4096,),
    "classifier.fc7": (4096,),
    "classifier.fc8": (1000,),
}


def test_zfnet_layer_shapes_at_224_are_figure_3s(zfnet_paper):
    shapes = layer_shapes(zfnet_paper, torch.randn(1, 3, 224, 224), list(ZFNET_224))
    assert shapes == ZFNET_224
    f = zfnet_paper.features
    assert (f.conv1.kernel_size, f.conv1.stride) == ((7, 7), (2, 2))
    assert (f.conv2.kernel_size, f.conv2.stride) == ((5, 5), (2, 2))
    assert all(getattr(f, c).groups == 1 for c in ("conv3", "conv4", "conv5"))  # dense, no GPU split
    assert n_params(zfnet_paper) == 62_357_608


def test_zfnet_small_stem_keeps_paper_sizes_from_conv2():
    model = build("zfnet", num_classes=200, input_size=64)
    shapes = layer_shapes(model, torch.randn(1, 3, 64, 64), list(ZFNET_224))
    assert shapes["features.conv1"] == (96, 60, 60) and shapes["features.pool1"] == (96, 30, 30)
    for name in list(ZFNET_224)[3:-1]:
        assert shapes[name] == ZFNET_224[name], name
    assert n_params(model) == 62_357_608 - (4096 * 1000 + 1000) + (4096 * 200 + 200)


def test_ceil_rounding_is_what_gives_figure_3():
    # the reasons for our padding/ceil choices, spelled out
    assert out_size(224, 7, 2, 1) == 110 and out_size(224, 7, 2, 0) == 109
    assert out_size(110, 3, 2, 0, ceil_mode=True) == 55 and out_size(110, 3, 2, 0) == 54
    assert out_size(26, 3, 2, 0, ceil_mode=True) == 13 and out_size(26, 3, 2, 0) == 12


def test_zfnet_filter_renormalisation():
    conv = nn.Conv2d(3, 4, 3)
    with torch.no_grad():
        conv.weight.fill_(0.01)
        conv.weight[1].fill_(1.0)  # RMS 1.0 > 0.1
    before = conv.weight[0].clone()
    assert renormalize_filters(nn.Sequential(conv), radius=0.1) == 1
    assert math.isclose(conv.weight[1].pow(2).mean().sqrt().item(), 0.1, rel_tol=1e-5)
    assert torch.equal(conv.weight[0], before)



def test_zfnet_starter_filters_sit_inside_the_papers_radius():
    """The ZFNet card says our training skips the renormalisation because it would not bind: the shipped
    ZFNet's filters all have RMS at or below 0.042, inside the paper's 0.1. A starter for which that stopped
    being true would make the card wrong."""
    from pathlib import Path

    from cnnviz.checkpoint import load_checkpoint

    path = Path(__file__).resolve().parents[1] / "checkpoints" / "starter" / "zfnet_tinyimagenet.safetensors"
    if not path.exists():
        pytest.skip("the ZFNet starter is not in this checkout")
    model = load_checkpoint(path).model
    rms = [m.weight.detach().pow(2).mean(dim=(1, 2, 3)).sqrt().max().item()
           for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(rms) == 5 and max(rms) <= 0.042 + 5e-4
    assert "would not bind" in " ".join(get_card("zfnet").deviations)
    assert renormalize_filters(model, radius=0.1) == 0

# ------------------------------------------------------------------------------------------------ LeNet-5

def test_lenet_paper_layers_and_parameter_counts(lenet_paper):
    f = lenet_paper.features
    assert n_params(f.c1) == 156
    assert n_params(f.s2) == 12
    assert n_params(f.c3) == 1516  # not 2,416: the partial table of Table I
    assert n_params(f.s4) == 32
    assert n_params(f.c5) == 48_120
    assert n_params(lenet_paper.f6) == 10_164
    assert n_params(lenet_paper) == 60_000  # RBF centres are fixed (a buffer)
    assert n_params(create_model("lenet5", output="linear")) == 60_850


def test_lenet_paper_shapes_and_connections(lenet_paper):
    names = ["features.c1", "features.s2", "features.c3", "features.s4", "features.c5", "f6", "output"]
    shapes = layer_shapes(lenet_paper, torch.randn(1, 1, 32, 32), names)
    assert shapes == {"features.c1": (6, 28, 28), "features.s2": (6, 14, 14), "features.c3": (16, 10, 10),
                      "features.s4": (16, 5, 5), "features.c5": (120, 1, 1), "f6": (84,), "output": (10,)}
    # LeNet-style connections: output positions x (weights per output + bias)
    assert 28 * 28 * n_params(lenet_paper.features.c1) == 122_304
    c3 = lenet_paper.features.c3
    assert 10 * 10 * (int(c3.connection_mask.sum()) * 25 + 16) == 151_600
    s2 = lenet_paper.features.s2
    assert s2.kernel_size == (2, 2) and s2.stride == (2, 2)
    assert 14 * 14 * 6 * (s2.kernel_size[0] * s2.kernel_size[1] + 1) == 5_880


def test_c3_connection_table_is_table_one(lenet_paper):
    mask = lenet_paper.features.c3.connection_mask
    assert mask.dtype == torch.bool and mask.shape == (16, 6)
    assert mask.sum(1).tolist() == [3] * 6 + [4] * 6 + [4] * 3 + [6]
    assert mask.sum(0).tolist() == [10] * 6  # every S2 map feeds 10 C3 maps

    def contiguous(maps: tuple[int, ...]) -> bool:  # contiguous on the circle of 6 maps
        return any(set(maps) == {(s + i) % 6 for i in range(len(maps))} for s in range(6))

    assert all(contiguous(t) for t in C3_TABLE[:12])
    assert not any(contiguous(t) for t in C3_TABLE[12:15])
    # Table I's first column and last row, as printed
    assert mask[0].nonzero().flatten().tolist() == [0, 1, 2]
    assert mask[:, 5].nonzero().flatten().tolist() == [3, 4, 5, 8, 9, 10, 11, 13, 14, 15]


def test_c3_ignores_unconnected_maps():
    torch.manual_seed(0)
    c3 = PartialConv2d(c3_connection_mask())
    nn.init.normal_(c3.weight)
    x = torch.randn(2, 6, 14, 14)
    y = c3(x)
    x2 = x.clone()
    x2[:, 5] += 10.0  # S2 map 5 feeds C3 maps 3, 4, 5, 8, 9, 10, 11, 13, 14, 15 only
    y2 = c3(x2)
    changed = ((y2 - y).abs().amax(dim=(0, 2, 3)) > 1e-4).nonzero().flatten().tolist()
    assert changed == [3, 4, 5, 8, 9, 10, 11, 13, 14, 15]
    # same as a dense convolution whose unconnected kernels are zero
    assert torch.allclose(y, F.conv2d(x, c3.dense_weight(), c3.bias), atol=1e-5)
    assert torch.all(c3.dense_weight()[~c3.connection_mask] == 0)


def test_scaled_tanh_constants():
    act = ScaledTanh()
    assert act.amplitude == 1.7159 and math.isclose(act.slope, 2 / 3)
    x = torch.linspace(-3, 3, 13)
    assert torch.allclose(act(x), 1.7159 * torch.tanh(2 * x / 3))
    # the paper's reason for the constants: f(1) = 1 and f(-1) = -1
    assert math.isclose(act(torch.tensor(1.0)).item(), 1.0, abs_tol=1e-4)
    assert math.isclose(act(torch.tensor(-1.0)).item(), -1.0, abs_tol=1e-4)


def test_trainable_subsampling_is_sum_times_coefficient_plus_bias():
    sub = TrainableSubsampling(2)
    with torch.no_grad():
        sub.weight.copy_(torch.tensor([0.5, -2.0]))
        sub.bias.copy_(torch.tensor([1.0, 0.25]))
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).view(1, 2, 4, 4)
    y = sub(x)
    assert y.shape == (1, 2, 2, 2)
    top_left = x[0, :, :2, :2].sum(dim=(1, 2))
    assert torch.allclose(y[0, :, 0, 0], top_left * sub.weight + sub.bias)


def test_rbf_output_is_minus_squared_distance_to_fixed_codes():
    rbf = EuclideanRBF(84, 10)
    assert n_params(rbf) == 0 and set(rbf.centres.unique().tolist()) == {-1.0, 1.0}
    x = rbf.centres[[3, 7]] * 0.9
    logits = rbf(x)
    assert logits.argmax(1).tolist() == [3, 7]
    assert torch.allclose(logits, -((x[:, None, :] - rbf.centres[None]) ** 2).sum(-1), atol=1e-3)
    assert torch.equal(EuclideanRBF(84, 10).centres, rbf.centres)  # fixed codes: same for every build


def test_lenet_modern_variant():
    model = create_model("lenet5", variant="modern")
    f = model.features
    assert isinstance(f.s2, nn.MaxPool2d) and isinstance(f.relu1, nn.ReLU)
    assert n_params(f.c3) == 2_416  # full C3
    assert isinstance(model.output, nn.Linear)
    assert not any(isinstance(m, ScaledTanh | TrainableSubsampling | PartialConv2d) for m in model.modules())


def test_lenet_at_64_rgb():
    model = build("lenet5", num_classes=200, input_size=64)
    assert model.in_channels == 3 and model.features.c1.in_channels == 3
    shapes = layer_shapes(model, torch.randn(1, 3, 64, 64), ["features.c5", "f6", "output"])
    assert shapes == {"features.c5": (120, 9, 9), "f6": (84,), "output": (200,)}
    with torch.no_grad(), pytest.raises(InputSizeError, match="3-channel"):
        model(torch.randn(1, 1, 64, 64))
    paper = build("lenet5")
    with torch.no_grad(), pytest.raises(InputSizeError):
        paper(torch.randn(1, 1, 64, 64))  # built for 32x32: C5 is not 1x1


# -------------------------------------------------------------------------------------------------- NiN

def test_nin_imagenet_shapes_and_params():
    model = build("nin")
    names = ["features.mlpconv1", "features.pool1", "features.mlpconv2", "features.pool2",
             "features.mlpconv3", "features.pool3", "features.mlpconv4"]
    shapes = layer_shapes(model, torch.randn(1, 3, 224, 224), names)
    assert shapes == {"features.mlpconv1": (96, 54, 54), "features.pool1": (96, 27, 27),
                      "features.mlpconv2": (256, 27, 27), "features.pool2": (256, 13, 13),
                      "features.mlpconv3": (384, 13, 13), "features.pool3": (384, 6, 6),
                      "features.mlpconv4": (1000, 6, 6)}
    assert n_params(model) == 7_595_176
    # global average pooling instead of FC layers: the head has no parameters
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    block = model.features.mlpconv1
    assert [block.cccp1.kernel_size, block.cccp2.kernel_size] == [(1, 1), (1, 1)]
    assert len([m for m in block.modules() if isinstance(m, nn.ReLU)]) == 3


def test_nin_small_stem_gives_released_model_sizes_at_64():
    model = build("nin", num_classes=200, input_size=64)
    shapes = layer_shapes(model, torch.randn(1, 3, 64, 64), ["features.mlpconv1", "features.mlpconv4"])
    assert shapes == {"features.mlpconv1": (96, 54, 54), "features.mlpconv4": (200, 6, 6)}


def test_nin_cifar_config():
    model = build("nin", num_classes=10, input_size=32, config="cifar")
    shapes = layer_shapes(model, torch.randn(1, 3, 32, 32),
                          ["features.mlpconv1", "features.pool1", "features.mlpconv3"])
    assert shapes == {"features.mlpconv1": (96, 32, 32), "features.pool1": (96, 16, 16),
                      "features.mlpconv3": (10, 8, 8)}
    assert n_params(model) == 966_986
    assert [n for n, m in model.features.named_children() if isinstance(m, nn.Dropout)] == ["drop1", "drop2"]


# --------------------------------------------------------------------------------------- every model

CASES = [
    ("lenet5", {}), ("lenet5", {"variant": "modern"}), ("lenet5", {"output": "linear"}),
    ("alexnet", {}), ("alexnet", {"groups": 1}), ("zfnet", {}), ("nin", {}), ("nin", {"config": "cifar"}),
]


@pytest.mark.parametrize("name,variant", CASES, ids=[f"{n}-{v}" for n, v in CASES])
def test_logits_shape_at_64_and_at_the_paper_input(name, variant):
    card = get_card(name)
    paper_c, paper_side, _ = card.paper_input
    classes = card.paper_classes
    if variant.get("config") == "cifar":  # the paper's own CIFAR-10 network
        paper_side, classes = 32, 10
    for channels, side, k in ((paper_c, paper_side, classes), (3, 64, 200)):
        model = build(name, num_classes=k, input_size=side, **variant)
        with torch.no_grad():
            out = model(torch.randn(2, channels, side, side))
        assert out.shape == (2, k), (side, k)
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["lenet5", "alexnet", "zfnet", "nin"])
def test_card_min_input_is_exact(name):
    card = get_card(name)
    side = card.min_input
    channels = 1 if (name == "lenet5" and side == 32) else 3
    model = create_model(name, num_classes=5, input_size=side).eval()
    with torch.no_grad():
        assert model(torch.randn(1, channels, side, side)).shape == (1, 5)
    # one pixel less: the factory itself (not only the registry's min_input check) refuses it
    with pytest.raises(InputSizeError):
        _REGISTRY[name].factory(num_classes=5, input_size=side - 1, **card.default_variant)


@pytest.mark.parametrize("name", ["lenet5", "alexnet", "zfnet", "nin"])
def test_cards_are_complete(name):
    card = get_card(name)
    assert card.title and card.authors and card.venue and card.url.startswith("http")
    assert card.key_ideas and card.deviations and card.adaptations_64
    assert set(card.variants) == set(card.default_variant)
    assert card.figures.note


def test_cards_carry_the_papers_figures():
    assert get_card("lenet5").figures.params == 60_000 and get_card("lenet5").figures.top1_error == 0.95
    alex = get_card("alexnet").figures
    assert alex.params == 60_000_000 and (alex.top1_error, alex.top5_error) == (40.7, 18.2)
    assert get_card("alexnet").paper_input == (3, 227, 227)
    assert get_card("zfnet").figures.top5_error == 16.5
    assert get_card("nin").figures.top1_error == 10.41 and "CIFAR-10" in get_card("nin").figures.note
