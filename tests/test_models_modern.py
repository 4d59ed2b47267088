"""VGG, GoogLeNet and ResNet against their papers (and torchvision where the designs are the same).

Everything at 224 runs on the ``meta`` device (shapes without arithmetic), except two real forward passes
that prove our wiring computes exactly what torchvision's does once given the same weights.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torchvision

from cnnviz.models import create_model, get_card, meta_model
from cnnviz.models.googlenet import Inception, InceptionAux
from cnnviz.models.registry import InputSizeError

VGG = ["vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]
RESNET = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small models, one thread


def _meta(name: str, **kwargs) -> nn.Module:
    return meta_model(name, **kwargs).eval()


def _torchvision_meta(name: str) -> nn.Module:
    with torch.device("meta"):
        return getattr(torchvision.models, name)(weights=None).eval()


def _nparams(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _output_shapes(model: nn.Module, size: int, names: list[str]) -> dict[str, tuple[int, ...]]:
    """Output shape (no batch) of the named submodules for one meta forward pass at ``size``."""
    modules = dict(model.named_modules())
    shapes: dict[str, tuple[int, ...]] = {}
    handles = [modules[n].register_forward_hook(
        lambda _m, _i, out, n=n: shapes.__setitem__(n, tuple(out.shape[1:]))) for n in names]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size, device=next(model.parameters()).device))
    finally:
        for h in handles:
            h.remove()
    return shapes


def _macs(model: nn.Module, size: int) -> int:
    """Multiply-accumulates of the convolutions and linear layers (meta forward)."""
    total = 0

    def hook(m, _inp, out):
        nonlocal total
        if isinstance(m, nn.Conv2d):
            total += out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Linear):
            total += m.in_features * m.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size, device=next(model.parameters()).device))
    finally:
        for h in handles:
            h.remove()
    return total


# --------------------------------------------------------------------------------------------------- VGG


@pytest.mark.parametrize("name", VGG + RESNET)
def test_same_parameters_as_torchvision(name):
    ours, theirs = _meta(name), _torchvision_meta(name)
    assert _nparams(ours) == _nparams(theirs)
    # Same layer names and shapes too, so torchvision's ImageNet weights load into ours.
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {
        k: tuple(v.shape) for k, v in theirs.state_dict().items()
    }


def test_vgg16_has_138_million_parameters():
    assert _nparams(_meta("vgg16")) == 138_357_544
    assert get_card("vgg16").figures.params == 138_000_000  # Table 2 of the paper


@pytest.mark.parametrize("name,millions", [("vgg11", 133), ("vgg13", 133), ("vgg16", 138), ("vgg19", 144)])
def test_vgg_parameters_round_to_table2(name, millions):
    card = get_card(name)
    assert card.figures.params == millions * 1_000_000  # Table 2 of the paper, in millions
    assert round(_nparams(_meta(name)) / 1e6) == millions
    assert card.figures.top1_error is not None and "Table 3" in card.figures.note


@pytest.mark.parametrize("name,convs", [("vgg11", 8), ("vgg13", 10), ("vgg16", 13), ("vgg19", 16)])
def test_vgg_configurations(name, convs):
    for bn in (False, True):
        model = _meta(name + ("_bn" if bn else ""))
        conv = [m for m in model.features if isinstance(m, nn.Conv2d)]
        pools = [m for m in model.features if isinstance(m, nn.MaxPool2d)]
        assert len(conv) == convs and len(conv) + 3 == int(name[3:])  # + 3 FC = the depth in the name
        assert all(c.kernel_size == (3, 3) and c.stride == (1, 1) and c.padding == (1, 1) for c in conv)
        assert len(pools) == 5 and all(p.kernel_size == 2 and p.stride == 2 for p in pools)
        assert [c.out_channels for c in conv][-1] == 512 and conv[0].out_channels == 64
        assert sum(isinstance(m, nn.BatchNorm2d) for m in model.features) == (convs if bn else 0)
        fcs = [m for m in model.classifier if isinstance(m, nn.Linear)]
        assert [(f.in_features, f.out_features) for f in fcs] == [(7 * 7 * 512, 4096), (4096, 4096), (4096, 1000)]
        assert [m.p for m in model.classifier if isinstance(m, nn.Dropout)] == [0.5, 0.5]


def test_vgg_at_64_classifies_the_2x2x512_map():
    model = _meta("vgg16", num_classes=200, input_size=64)
    assert _output_shapes(model, 64, ["features"])["features"] == (512, 2, 2)
    assert model.classifier[0].in_features == 2 * 2 * 512
    card = get_card("vgg16")
    assert any("2x2x512" in s for s in card.adaptations_64)
    assert get_card("vgg16_bn").figures.params is None  # the paper has no BN variant: no invented figures


def test_vgg11_computes_what_torchvision_computes_with_the_same_weights():
    # Built on meta and materialised uninitialised (skips two slow 133M-parameter inits), then filled once.
    theirs = _torchvision_meta("vgg11").to_empty(device="cpu")
    ours = _meta("vgg11").to_empty(device="cpu")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in theirs.parameters():
            p.uniform_(-0.03, 0.03, generator=gen)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))


# --------------------------------------------------------------------------------------------- GoogLeNet

# Table 1 of the paper: output size, then #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
TABLE1 = {
    "inception3a": ((256, 28, 28), (64, 96, 128, 16, 32, 32)),
    "inception3b": ((480, 28, 28), (128, 128, 192, 32, 96, 64)),
    "inception4a": ((512, 14, 14), (192, 96, 208, 16, 48, 64)),
    "inception4b": ((512, 14, 14), (160, 112, 224, 24, 64, 64)),
    "inception4c": ((512, 14, 14), (128, 128, 256, 24, 64, 64)),
    "inception4d": ((528, 14, 14), (112, 144, 288, 32, 64, 64)),
    "inception4e": ((832, 14, 14), (256, 160, 320, 32, 128, 128)),
    "inception5a": ((832, 7, 7), (256, 160, 320, 32, 128, 128)),
    "inception5b": ((1024, 7, 7), (384, 192, 384, 48, 128, 128)),
}
STEM = {
    "conv1": (64, 112, 112), "pool1": (64, 56, 56), "conv2_reduce": (64, 56, 56), "conv2": (192, 56, 56),
    "pool2": (192, 28, 28), "pool3": (480, 14, 14), "pool4": (832, 7, 7), "avgpool": (1024, 1, 1),
    "fc": (1000,),
}


def test_googlenet_table1_output_shapes():
    model = _meta("googlenet")
    shapes = _output_shapes(model, 224, list(STEM) + list(TABLE1))
    assert shapes == {**STEM, **{n: out for n, (out, _) in TABLE1.items()}}
    assert isinstance(model.lrn1, nn.LocalResponseNorm) and isinstance(model.lrn2, nn.LocalResponseNorm)
    assert model.conv1.kernel_size == (7, 7) and model.conv1.stride == (2, 2)
    assert model.avgpool.kernel_size == 7 and model.dropout.p == 0.4


@pytest.mark.parametrize("module", list(TABLE1))
def test_googlenet_inception_branches(module):
    m = getattr(_meta("googlenet"), module)
    assert isinstance(m, Inception)
    n1, r3, n3, r5, n5, pp = TABLE1[module][1]
    convs = {name: c for name, c in m.named_modules() if isinstance(c, nn.Conv2d)}
    # Layer names that read well: inception3a.branch3.2 is the 5x5 conv of 3a.
    assert {n: (c.out_channels, c.kernel_size) for n, c in convs.items()} == {
        "branch1.0": (n1, (1, 1)),
        "branch2.0": (r3, (1, 1)), "branch2.2": (n3, (3, 3)),
        "branch3.0": (r5, (1, 1)), "branch3.2": (n5, (5, 5)),  # the paper's 5x5, not torchvision's 3x3
        "branch4.1": (pp, (1, 1)),
    }
    pool = m.branch4[0]
    assert isinstance(pool, nn.MaxPool2d) and pool.kernel_size == 3 and pool.stride == 1
    assert sum(isinstance(x, nn.ReLU) for x in m.modules()) == 6  # one after every convolution


def test_googlenet_parameters_follow_table1():
    # Recompute the parameter count from Table 1's channel numbers (weights + biases, no aux classifiers).
    def conv(cin, cout, k):
        return cin * cout * k * k + cout

    expected = conv(3, 64, 7) + conv(64, 64, 1) + conv(64, 192, 3)
    cin = 192
    for out, (n1, r3, n3, r5, n5, pp) in TABLE1.values():
        expected += conv(cin, n1, 1) + conv(cin, r3, 1) + conv(r3, n3, 3) + conv(cin, r5, 1)
        expected += conv(r5, n5, 5) + conv(cin, pp, 1)
        cin = out[0]
    expected += 1024 * 1000 + 1000
    model = _meta("googlenet", aux_logits=False)
    assert _nparams(model) == expected
    paper = get_card("googlenet").figures.params
    assert abs(expected - paper) / paper < 0.05  # Table 1's params column sums to ~6.8M


def test_googlenet_auxiliary_classifiers():
    model = _meta("googlenet")
    assert model.aux_loss_weight == 0.3
    for aux, cin in ((model.aux1, 512), (model.aux2, 528)):
        assert isinstance(aux, InceptionAux)
        assert isinstance(aux.pool, nn.AvgPool2d) and aux.pool.kernel_size == 5 and aux.pool.stride == 3
        assert aux.conv.in_channels == cin and aux.conv.out_channels == 128 and aux.conv.kernel_size == (1, 1)
        assert (aux.fc1.in_features, aux.fc1.out_features) == (4 * 4 * 128, 1024)
        assert aux.dropout.p == 0.7 and aux.fc2.out_features == 1000
        assert isinstance(aux.relu1, nn.ReLU) and isinstance(aux.relu2, nn.ReLU)
    model.train()
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 224, 224, device="meta"))
    assert isinstance(out, tuple) and [tuple(o.shape) for o in out] == [(2, 1000)] * 3
    # The aux classifiers read inception 4a and 4d.
    seen = _output_shapes(model, 224, ["aux1.pool", "aux2.pool"])
    assert seen == {"aux1.pool": (512, 4, 4), "aux2.pool": (528, 4, 4)}


def test_googlenet_without_aux_and_at_64():
    plain = _meta("googlenet", aux_logits=False).train()
    assert plain.aux1 is None and not any(isinstance(m, InceptionAux) for m in plain.modules())
    with torch.no_grad():
        assert isinstance(plain(torch.zeros(2, 3, 224, 224, device="meta")), torch.Tensor)
    tiny = _meta("googlenet", num_classes=200, input_size=64)
    # 4a is 4x4 at 64x64: the 5x5/3 pool cannot run, the aux FC keeps its 4x4x128 inputs.
    assert isinstance(tiny.aux1.pool, nn.Identity) and tiny.aux1.fc1.in_features == 2048
    assert tiny.avgpool.kernel_size == 2  # global average over the 2x2 map of inception 5b
    shapes = _output_shapes(tiny, 64, ["inception4a", "inception5b"])
    assert shapes == {"inception4a": (512, 4, 4), "inception5b": (1024, 2, 2)}


def test_googlenet_small_stem_keeps_the_papers_map_sizes_at_64():
    """stem='small' (the zoo's at 64x64): conv1 at stride 1 and no first pool, so from conv2 on the maps are
    the paper's (56, 28, 14, 7 at 224; 64, 32, 16, 8 here), the aux heads' 5x5/3 pool runs as in the paper, and
    the weights are the paper stem's, same keys and shapes."""
    small = _meta("googlenet", num_classes=200, input_size=64, stem="small")
    paper = _meta("googlenet", num_classes=200, input_size=64)
    assert small.conv1.stride == (1, 1) and isinstance(small.pool1, nn.Identity) and small.stem == "small"
    shapes = _output_shapes(small, 64, ["conv1", "conv2", "inception3b", "inception4a", "inception5b"])
    assert shapes == {"conv1": (64, 64, 64), "conv2": (192, 64, 64), "inception3b": (480, 32, 32),
                      "inception4a": (512, 16, 16), "inception5b": (1024, 8, 8)}
    for aux in (small.aux1, small.aux2):  # 16x16 -> 4x4, the paper's pool and the paper's FC width
        assert isinstance(aux.pool, nn.AvgPool2d) and aux.fc1.in_features == 4 * 4 * 128
    assert small.avgpool.kernel_size == 8  # still a global average
    assert {k: v.shape for k, v in small.state_dict().items()} == {k: v.shape for k, v in paper.state_dict().items()}
    # compute per image about the paper network's at 224 (1.6G), not the paper stem's at 64 (0.13G)
    assert 1.1 < _macs(small, 64) / _macs(_meta("googlenet"), 224) < 1.4
    assert _macs(small, 64) > 10 * _macs(paper, 64)


def test_googlenet_stem_defaults_to_the_papers_so_old_checkpoints_load_as_trained():
    """A checkpoint saved before the option existed names no stem; both stems have the same weight shapes, so
    only a default of 'paper' at every input size rebuilds the network it was trained as."""
    assert create_model("googlenet", num_classes=10, input_size=64).stem == "paper"
    with pytest.raises(ValueError, match="googlenet option stem takes 'paper' or 'small', not 'tiny'"):
        create_model("googlenet", num_classes=10, input_size=64, stem="tiny")


def test_googlenet_small_stem_is_built_down_to_its_own_minimum_input():
    """The registry checks each stem against its own minimum: the small stem halves the map three times, so
    it runs from 8 pixels, although the paper stem (the default, the card's min_input) needs 31."""
    card = get_card("googlenet")
    assert card.smallest_input() == card.min_input == 31
    assert card.smallest_input({"stem": "small"}) == 8
    model = create_model("googlenet", num_classes=5, input_size=8, stem="small").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 8, 8)).shape == (1, 5)
    with pytest.raises(InputSizeError, match=r"stem='small'\) needs an input of at least 8x8 pixels \(asked for 7x7\)"):
        create_model("googlenet", num_classes=5, input_size=7, stem="small")
    with pytest.raises(InputSizeError, match=r"stem='paper'\) needs an input of at least 31x31 pixels"):
        create_model("googlenet", num_classes=5, input_size=20)


def test_googlenet_lrn_follows_the_reference_model():
    lrn = _meta("googlenet").lrn1
    assert (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, 1e-4, 0.75, 1.0)


def test_googlenet_macs_near_the_paper_budget():
    gmacs = _macs(_meta("googlenet"), 224) / 1e9  # eval: the aux classifiers do not run
    assert abs(gmacs - get_card("googlenet").figures.gmacs) / 1.5 < 0.1  # "1.5 billion multiply-adds"


# ------------------------------------------------------------------------------------------------ ResNet

LAYERS = {"resnet18": [2, 2, 2, 2], "resnet34": [3, 4, 6, 3], "resnet50": [3, 4, 6, 3],
          "resnet101": [3, 4, 23, 3], "resnet152": [3, 8, 36, 3]}


@pytest.mark.parametrize("name", RESNET)
def test_resnet_table1(name):
    model = _meta(name)
    assert [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == LAYERS[name]
    expansion = 1 if name in ("resnet18", "resnet34") else 4
    shapes = _output_shapes(model, 224, ["conv1", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool"])
    assert shapes == {
        "conv1": (64, 112, 112), "maxpool": (64, 56, 56), "layer1": (64 * expansion, 56, 56),
        "layer2": (128 * expansion, 28, 28), "layer3": (256 * expansion, 14, 14),
        "layer4": (512 * expansion, 7, 7), "avgpool": (512 * expansion, 1, 1),
    }
    # Batch norm after every convolution; projections (option B) only where the shape changes.
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == len(convs)
    projections = [n for n, m in model.named_modules() if n.endswith("downsample")]
    assert projections == (["layer2.0.downsample", "layer3.0.downsample", "layer4.0.downsample"]
                           if expansion == 1 else
                           ["layer1.0.downsample", "layer2.0.downsample", "layer3.0.downsample",
                            "layer4.0.downsample"])


@pytest.mark.parametrize("name", RESNET)
def test_resnet_macs_match_table1(name):
    # Table 1's "FLOPs" are multiply-adds; the paper's stride-in-1x1 bottleneck reproduces them.
    gmacs = _macs(_meta(name), 224) / 1e9
    assert gmacs == pytest.approx(get_card(name).figures.gmacs, rel=0.03)


def test_resnet_bottleneck_stride_placement():
    paper = _meta("resnet50")
    v15 = _meta("resnet50", stride_in="3x3")
    assert paper.layer2[0].conv1.stride == (2, 2) and paper.layer2[0].conv2.stride == (1, 1)
    assert v15.layer2[0].conv1.stride == (1, 1) and v15.layer2[0].conv2.stride == (2, 2)
    assert _nparams(paper) == _nparams(v15)
    assert _macs(v15, 224) > _macs(paper, 224)  # torchvision's v1.5 costs more (4.1 vs 3.9 GMACs)


def test_resnet50_v15_computes_what_torchvision_computes():
    torch.manual_seed(0)
    theirs = torchvision.models.resnet50(weights=None, num_classes=10).eval()
    v15 = create_model("resnet50", num_classes=10, input_size=64, stride_in="3x3").eval()
    paper = create_model("resnet50", num_classes=10, input_size=64).eval()
    for m in theirs.modules():  # non-trivial BN statistics so that every layer matters
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    v15.load_state_dict(theirs.state_dict())
    paper.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = theirs(x)
        torch.testing.assert_close(v15(x), expected)
        assert not torch.allclose(paper(x), expected)  # the stride placement really changes the function


@pytest.mark.parametrize("stem,sizes", [
    ("imagenet", {"conv1": (64, 32, 32), "layer1": (64, 16, 16), "layer2": (128, 8, 8),
                  "layer3": (256, 4, 4), "layer4": (512, 2, 2)}),
    ("tiny", {"conv1": (64, 64, 64), "layer1": (64, 64, 64), "layer2": (128, 32, 32),
              "layer3": (256, 16, 16), "layer4": (512, 8, 8)}),
])
def test_resnet_stems_at_64(stem, sizes):
    model = _meta("resnet18", num_classes=200, input_size=64, stem=stem)
    assert _output_shapes(model, 64, list(sizes)) == sizes
    if stem == "tiny":
        assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
        assert isinstance(model.maxpool, nn.Identity)
    assert get_card("resnet18").default_variant["stem"] == "imagenet"


def test_resnet_blocks_have_their_own_relus():
    model = _meta("resnet34")
    block = model.layer1[0]
    assert block.relu1 is not block.relu2
    assert isinstance(block.relu1, nn.ReLU) and isinstance(block.relu2, nn.ReLU)
    assert sum(isinstance(m, nn.ReLU) for m in _meta("resnet50").layer1[0].modules()) == 3


def test_resnet_cards_cite_the_right_tables():
    card = get_card("resnet50")
    assert (card.figures.top1_error, card.figures.top5_error, card.figures.gmacs) == (22.85, 6.71, 3.8)
    assert "Table 3" in card.figures.note and "10-crop" in card.figures.note
    assert get_card("resnet18").figures.top5_error is None  # not reported for ResNet-18
    assert [get_card(n).figures.gmacs for n in RESNET] == [1.8, 3.6, 3.8, 7.6, 11.3]
