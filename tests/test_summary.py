"""Per-layer tables: hand-computed small nets, torchvision models vs torchinfo, the registry, paper figures."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchinfo

from cnnviz.models.meta import SkipInitOnMeta, meta_model
from cnnviz.models.registry import create_model, get_card, list_models
from cnnviz.summary import (
    KNOWN_WRITEUP_ERRORS,
    MACS_NOTE,
    LayerTable,
    cs231n_memory,
    input_region,
    layer_table,
    receptive_fields,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small models, one thread


# ---------------------------------------------------------------------------------------------------------
# Hand-made nets, every number computed by hand
# ---------------------------------------------------------------------------------------------------------


class ConvReluPool(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(8, 4, 3)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(4 * 4 * 4, 10)

    def forward(self, x):
        return self.fc(self.flatten(self.conv2(self.pool(self.relu1(self.conv1(x))))))


class TwoBranch(nn.Module):
    """Inception-like: 1x1 | 5x5 pad 2 | 3x3 max-pool + 1x1, concatenated, then a 1x1 conv."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1)
        self.b = nn.Conv2d(3, 4, 5, padding=2)
        self.c = nn.Sequential(nn.MaxPool2d(3, 1, padding=1), nn.Conv2d(3, 4, 1))
        self.merge = nn.Conv2d(12, 2, 1)

    def forward(self, x):
        return self.merge(torch.cat([self.a(x), self.b(x), self.c(x)], dim=1))


class Residual(nn.Module):
    """conv3x3/2 -> conv3x3 on the main path, conv1x1/2 shortcut, functional add, then a ReLU module."""

    def __init__(self):
        super().__init__()
        self.conv_a = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.conv_b = nn.Conv2d(8, 8, 3, padding=1)
        self.short = nn.Conv2d(3, 8, 1, stride=2)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv_b(F.relu(self.conv_a(x))) + self.short(x))


def test_conv_relu_pool_by_hand():
    t = layer_table(ConvReluPool(), (3, 12, 12))
    assert [r.name for r in t.rows] == ["conv1", "relu1", "pool", "conv2", "flatten", "fc"]
    c1, relu, pool, c2, flat, fc = t.rows
    assert c1.output_shape == (8, 12, 12) and pool.output_shape == (8, 6, 6) and c2.output_shape == (4, 4, 4)
    assert fc.input_shape == (64,) and fc.output_shape == (10,)
    assert (c1.params, c1.weight_params, c1.bias_params) == (224, 216, 8)
    assert c1.connections == 8 * 12 * 12 * (3 * 9 + 1) == c1.macs
    assert (c1.kernel, c1.stride, c1.padding) == ((3, 3), (1, 1), (1, 1))
    assert c1.activation == "ReLU" and relu.activation == "ReLU" and c2.activation is None
    assert pool.connections == 8 * 6 * 6 * 4 and pool.params == 0
    assert relu.macs == 0 and relu.connections == 0
    assert fc.connections == 64 * 10 + 10 == fc.macs
    # receptive fields: conv3 -> 3, pool 2/2 -> 4 (jump 2), conv3 -> 4 + 2*2 = 8, flatten over a 4x4 map
    # with jump 2 -> 8 + 3*2 = 14
    assert [(r.rf, r.jump) for r in t.rows] == [(3, 1), (3, 1), (4, 2), (8, 2), (14, 8), (14, 8)]
    rf = receptive_fields(t)
    assert rf["conv1"] == (3, 1, -1) and rf["pool"] == (4, 2, -1) and rf["conv2"] == (8, 2, -1)
    # totals
    assert t.totals["params"] == sum(p.numel() for p in ConvReluPool().parameters())
    assert t.totals["activations"] == sum(math.prod(r.output_shape) for r in t.rows)
    assert t.totals["activation_bytes"] == 4 * t.totals["activations"]
    assert t.totals["param_bytes"] == 4 * t.totals["params"]
    assert t.rows[1].inputs == ("conv1",) and t.rows[0].inputs == ("input",)


def test_input_region_convention_and_clipping():
    t = layer_table(ConvReluPool(), (3, 12, 12))
    # pool unit (y, x) sees rows -1 + 2y .. -1 + 2y + 3 (start -1: the padding of conv1); bottom/right exclusive
    assert input_region(t, "pool", 1, 2) == (1, 3, 5, 7)
    assert input_region(t, "pool", 0, 0) == (0, 0, 3, 3)  # clipped at the top-left
    assert input_region(t, "pool", 5, 5) == (9, 9, 12, 12)  # clipped at the bottom-right
    assert input_region(t, "conv2", 3, 3) == (5, 5, 12, 12)
    assert input_region(ConvReluPool(), "conv1", 0, 0, (3, 12, 12)) == (0, 0, 2, 2)
    with pytest.raises(KeyError, match="nope"):
        input_region(t, "nope", 0, 0)
    with pytest.raises(ValueError):
        input_region(t, "pool", 0, 0, (3, 32, 32))


def test_branches_take_the_largest_field():
    t = layer_table(TwoBranch(), (3, 16, 16))
    assert t.row("a").rf == 1 and t.row("b").rf == 5 and t.row("c.1").rf == 3
    merge = t.row("merge")
    assert merge.rf == 5 and merge.jump == 1
    assert set(merge.inputs) == {"a", "b", "c.1"}
    assert receptive_fields(t)["merge"] == (5, 1, -2)


def test_residual_add_takes_the_union_of_paths():
    t = layer_table(Residual(), (3, 16, 16))
    # main: conv3/2 -> rf 3, jump 2, start -1; conv3 -> rf 3 + 2*2 = 7, start -3. shortcut 1x1/2: rf 1, start 0
    assert receptive_fields(t)["conv_b"] == (7, 2, -3)
    assert receptive_fields(t)["short"] == (1, 2, 0)
    relu = t.row("relu")
    assert (relu.rf, relu.jump) == (7, 2)
    assert set(relu.inputs) == {"conv_b", "short"}
    # the functional F.relu between conv_a and conv_b is traced too
    assert t.row("conv_b").inputs == ("conv_a",)


def test_model_is_not_touched():
    m = ConvReluPool().train()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    layer_table(m, (3, 12, 12))
    assert m.training
    assert all(p.device.type == "cpu" for p in m.parameters())
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert not any(mod._forward_hooks or mod._forward_pre_hooks for mod in m.modules())


def test_bad_inputs_have_clear_messages():
    with pytest.raises(ValueError, match="cannot take an input of 3x4x4"):
        layer_table(ConvReluPool(), (3, 4, 4))
    with pytest.raises(ValueError, match="unknown dtype"):
        layer_table(ConvReluPool(), (3, 12, 12), dtype="float13")
    with pytest.raises(KeyError):
        layer_table("no_such_net")
    with pytest.raises(ValueError, match="square"):
        layer_table("vgg11", (3, 64, 32))


def test_dtype_and_training_memory():
    t32 = layer_table(ConvReluPool(), (3, 12, 12))
    t16 = layer_table(ConvReluPool(), (3, 12, 12), dtype="float16")
    assert t16.totals["activation_bytes"] * 2 == t32.totals["activation_bytes"]
    assert t16.totals["param_bytes"] * 2 == t32.totals["param_bytes"]
    sgd = t32.training_memory(8, "sgd")
    adam = t32.training_memory(8, "adam")
    p = t32.totals["params"]
    assert sgd["weights"] == sgd["grads"] == sgd["optim"] == 4 * p
    assert adam["optim"] == 8 * p
    assert sgd["activations"] == 8 * t32.totals["activation_bytes"]
    assert t32.training_memory(16)["activations"] == 2 * sgd["activations"]
    assert sgd["total"] == sgd["weights"] + sgd["grads"] + sgd["optim"] + sgd["activations"]
    frozen = ConvReluPool()
    frozen.conv1.requires_grad_(False)
    tf = layer_table(frozen, (3, 12, 12))
    assert tf.training_memory(1)["grads"] == 4 * (p - 224)
    with pytest.raises(ValueError, match="optimizer"):
        t32.training_memory(8, "lbfgs2")
    with pytest.raises(ValueError, match="batch size"):
        t32.training_memory(0)


def test_exports():
    t = layer_table(ConvReluPool(), (3, 12, 12))
    d = json.loads(json.dumps(t.to_dict()))
    assert set(d) == {"arch", "input", "classes", "layers", "totals"}
    assert d["input"] == [3, 12, 12] and d["classes"] == 10
    assert set(d["layers"][0]) == {"name", "type", "input_shape", "output_shape", "kernel", "stride", "padding",
                                   "params", "activations", "activation_bytes", "macs", "connections", "rf",
                                   "jump"}
    assert d["layers"][0]["output_shape"] == [8, 12, 12] and d["layers"][0]["kernel"] == [3, 3]
    assert set(d["totals"]) == {"params", "activations", "activation_bytes", "macs", "param_bytes"}
    df = t.to_dataframe()
    assert list(df["name"]) == [r.name for r in t.rows] and df["params"].sum() == t.totals["params"]
    csv_lines = t.to_csv().strip().splitlines()
    assert len(csv_lines) == 1 + len(t.rows) and csv_lines[0].startswith("name,type,")
    md = t.to_markdown()
    assert md.startswith("| layer |") and "multiply-accumulates" in md
    text = t.to_text(batch_size=4)
    assert "not FLOPs" in text and "Training memory estimate at batch 4" in text and "MACs" in text
    assert MACS_NOTE in text


# ---------------------------------------------------------------------------------------------------------
# torchvision models, cross-checked against torchinfo
# ---------------------------------------------------------------------------------------------------------
def _zeroed(factory):
    """Build on the meta device (no random init of 100M+ weights), then allocate zeros on the CPU."""
    with torch.device("meta"), SkipInitOnMeta():
        m = factory()
    m = m.to_empty(device="cpu")
    with torch.no_grad():
        for t in [*m.parameters(), *m.buffers()]:
            t.zero_()
    return m


def _torchinfo_layers(model, size):
    stats = torchinfo.summary(model, input_size=(1, *size), verbose=0, device="cpu")
    return stats, {id(li.module): li for li in stats.summary_list}


@pytest.mark.parametrize("name", ["vgg11", "resnet18", "googlenet"])
def test_torchvision_against_torchinfo(name):
    import torchvision

    kwargs = {"init_weights": False, "aux_logits": False} if name == "googlenet" else {}
    model = _zeroed(lambda: getattr(torchvision.models, name)(**kwargs)).eval()
    size = (3, 64, 64)
    t = layer_table(model, size)
    stats, by_id = _torchinfo_layers(model, size)
    modules = dict(model.named_modules())
    assert t.totals["params"] == stats.total_params == sum(p.numel() for p in model.parameters())
    for r in t.rows:
        li = by_id[id(modules[r.name])]
        if r.type in ("Conv2d", "Linear"):
            assert r.macs == li.macs, r.name  # same convention for the layers torchinfo counts
        assert list(r.output_shape) == list(li.output_size[1:]), r.name
    comparable = sum(r.macs for r in t.rows if r.type in ("Conv2d", "Linear"))
    ti_comparable = sum(li.macs for li in stats.summary_list if li.class_name in ("Conv2d", "Linear"))
    assert comparable == ti_comparable


def test_published_receptive_fields_torchvision():
    """Araujo et al., 'Computing Receptive Fields of CNNs' (Distill 2019): AlexNet 195, VGG-16 212."""
    import torchvision

    with torch.device("meta"):  # layer_table takes meta models too (no weights needed)
        vgg, alex = torchvision.models.vgg16(), torchvision.models.alexnet()
    vgg = layer_table(vgg, (3, 224, 224))
    assert vgg.row("features.29").rf == 196 and vgg.row("features.30").rf == 212
    assert vgg.row("features.30").jump == 32
    alex = layer_table(alex, (3, 224, 224))
    assert alex.row("features.12").rf == 195


# ---------------------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------------------
ARCHS = list_models()


def _real_model(name, size, classes):
    """A CPU model with zero weights (fast to build: shapes do not depend on the values); LeNet for real
    (its index buffers must hold real values)."""
    if name.startswith("lenet"):
        return create_model(name, num_classes=classes, input_size=size)
    return _zeroed(lambda: create_model(name, num_classes=classes, input_size=size))


def _forward_shapes(model, x, names, train=False):
    shapes, handles = {}, []
    modules = dict(model.named_modules())

    def hook(name):
        def fn(_m, _i, out):
            shapes.setdefault(name, tuple(out.shape[1:]))
        return fn

    try:
        for n in names:
            handles.append(modules[n].register_forward_hook(hook(n)))
        model.train(train)
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return shapes


@pytest.mark.parametrize("name", ARCHS)
def test_registry_rows_match_a_real_forward(name):
    card = get_card(name)
    # the smallest input the model takes (at least 32): a real forward of ResNet-152 stays cheap
    size = max(32, card.min_input)
    classes = 10 if name.startswith("lenet") else 200
    c = card.paper_input[0]
    t = layer_table(name, (c, size, size), num_classes=classes)
    model = _real_model(name, size, classes)
    assert t.totals["params"] == sum(p.numel() for p in model.parameters()) == sum(r.params for r in t.rows)
    assert t.classes == classes and t.rows[-1].output_shape[0] == classes
    names = [r.name for r in t.rows]
    assert len(set(names)) == len(names)
    # One real forward (torchinfo's, on the CPU model) gives the shapes to compare with and its own counts.
    stats = torchinfo.summary(model.eval(), input_size=(1, c, size, size), verbose=0, device="cpu")
    by_id = {id(li.module): li for li in stats.summary_list}
    modules = dict(model.named_modules())
    for r in t.rows:
        li = by_id.get(id(modules[r.name]))
        if r.train_only:
            assert li is None or not li.executed, r.name
            continue
        assert li is not None and li.executed, r.name
        assert tuple(li.output_size[1:]) == r.output_shape, r.name
        assert r.activations == math.prod(r.output_shape)
        assert r.rf is not None and r.rf >= 1 and r.jump >= 1
        if r.type in ("Conv2d", "Linear"):  # same convention as torchinfo's for these layers
            assert r.macs == li.macs, r.name
    # totals equal torchinfo's where comparable: parameters, and the MACs of the layers torchinfo counts
    # (it ignores pooling, LRN and LeNet's subsampling; it counts batch norm differently, see cnnviz.summary)
    assert stats.total_params == t.totals["params"]
    ours = sum(r.macs for r in t.rows if r.type in ("Conv2d", "Linear") and not r.train_only)
    theirs = sum(li.macs for li in stats.summary_list if li.executed and li.class_name in ("Conv2d", "Linear"))
    assert ours == theirs
    if any(r.train_only for r in t.rows):  # auxiliary classifiers: shapes from a training-mode pass
        train_shapes = _forward_shapes(model, torch.zeros(2, c, size, size), names, train=True)
        for r in t.rows:
            if r.train_only:
                assert train_shapes[r.name] == r.output_shape, r.name


@pytest.mark.parametrize("name", ARCHS)
def test_registry_params_at_paper_input(name):
    card = get_card(name)
    t = layer_table(name, card.paper_input)
    m = meta_model(name)
    assert t.totals["params"] == sum(p.numel() for p in m.parameters())
    assert t.classes == card.paper_classes
    assert t.totals["macs"] == sum(r.macs for r in t.rows if not r.train_only)


# ---------------------------------------------------------------------------------------------------------
# Paper figures and the write-ups they correct
# ---------------------------------------------------------------------------------------------------------
def test_lenet5_paper_table():
    t = layer_table("lenet5", (1, 32, 32))
    convs = [r for r in t.rows if r.kernel is not None and r.params]
    c1, s2, c3, s4, c5 = convs
    assert (c1.params, c1.connections, c1.output_shape) == (156, 122_304, (6, 28, 28))
    assert (s2.params, s2.connections, s2.output_shape) == (12, 5_880, (6, 14, 14))
    assert (c3.params, c3.connections, c3.output_shape) == (1_516, 151_600, (16, 10, 10))
    assert (s4.params, s4.connections) == (32, 2_000)
    assert (c5.params, c5.connections) == (48_120, 48_120)
    f6 = next(r for r in t.rows if r.type == "Linear")
    assert (f6.params, f6.connections) == (10_164, 10_164)
    assert t.totals["params"] == 60_000
    # LeCun et al. 1998: 340,908 connections in all (the squashing functions count as part of their units)
    assert sum(r.connections for r in t.rows) == 340_908
    note = KNOWN_WRITEUP_ERRORS["lenet5"][0]
    assert note.correct == c3.params and note.claimed == 16 * (6 * 25 + 1)


def test_alexnet_paper_shapes():
    t = layer_table("alexnet", (3, 227, 227))
    main = [r.output_shape for r in t.rows if r.type in ("Conv2d", "MaxPool2d", "Linear")]
    assert main == [(96, 55, 55), (96, 27, 27), (256, 27, 27), (256, 13, 13), (384, 13, 13), (384, 13, 13),
                    (256, 13, 13), (256, 6, 6), (4096,), (4096,), (1000,)]
    conv1 = next(r for r in t.rows if r.type == "Conv2d")
    note = KNOWN_WRITEUP_ERRORS["alexnet"][0]
    assert conv1.connections == note.claimed == 55 * 55 * 96 * (11 * 11 * 3 + 1)
    assert conv1.params == note.correct == 96 * (11 * 11 * 3 + 1)
    lrn = [r for r in t.rows if r.type == "LocalResponseNorm"]
    assert lrn and all(r.macs > 0 for r in lrn)  # counted by us, not by torchinfo


def test_vgg16_cs231n_table():
    t = layer_table("vgg16", (3, 224, 224))
    assert t.totals["params"] == 138_357_544  # "138M"
    # CS231n's per-layer memory column: conv, pool and FC outputs
    cs231n = [224 * 224 * 64] * 2 + [112 * 112 * 64] + [112 * 112 * 128] * 2 + [56 * 56 * 128] \
        + [56 * 56 * 256] * 3 + [28 * 28 * 256] + [28 * 28 * 512] * 3 + [14 * 14 * 512] \
        + [14 * 14 * 512] * 3 + [7 * 7 * 512] + [4096, 4096, 1000]
    ours = [r.activations for r in t.rows if r.type in ("Conv2d", "MaxPool2d", "Linear")]
    assert ours == cs231n
    assert ours[0] == 3_211_264  # "224*224*64 = 3.2M"
    true_sum = 224 * 224 * 3 + sum(cs231n)
    note = KNOWN_WRITEUP_ERRORS["vgg16"][0]
    assert cs231n_memory(t) == true_sum == note.correct
    assert round(true_sum / 1e6, 1) == 15.2 and note.claimed == 24_000_000
    # our own total also counts every ReLU and dropout output (non-in-place modules)
    assert t.totals["activations"] > cs231n_memory(t)


def test_published_receptive_fields_resnets():
    """Araujo et al. (Distill 2019): ResNet-50 483, ResNet-101 1027 at the last conv block (stride in the 1x1
    conv, as in the paper); torchvision's stride-in-3x3 variant gives 427 for ResNet-50."""
    for name, rf in (("resnet50", 483), ("resnet101", 1027)):
        t = layer_table(name, (3, 224, 224))
        last_block = [r for r in t.rows if r.output_shape == (2048, 7, 7)][-1]
        assert last_block.rf == rf, name
    t = layer_table("resnet50", (3, 224, 224), stride_in="3x3")
    assert [r for r in t.rows if r.output_shape == (2048, 7, 7)][-1].rf == 427


def test_googlenet_concat_and_aux():
    t = layer_table("googlenet", (3, 224, 224))
    aux = [r for r in t.rows if r.train_only]
    assert aux and all(r.output_shape for r in aux)
    assert t.totals["macs"] == sum(r.macs for r in t.rows if not r.train_only)
    assert t.totals["params"] == sum(r.params for r in t.rows)
    # a layer reading an Inception concat sees all four branches and the largest of their fields
    first = next(r for r in t.rows if len(r.inputs) >= 4)
    branch_rfs = [t.row(n).rf for n in first.inputs]
    assert len(set(branch_rfs)) > 1
    assert first.rf >= max(branch_rfs)
    no_aux = layer_table("googlenet", (3, 224, 224), aux_logits=False)
    assert not any(r.train_only for r in no_aux.rows)
    assert no_aux.totals["macs"] == t.totals["macs"]


def test_arch_tables_are_cached_and_safe_to_mutate():
    a = layer_table("vgg11", (3, 64, 64), num_classes=200)
    a.rows.clear()
    a.totals["params"] = -1
    b = layer_table("vgg11", (3, 64, 64), num_classes=200)
    assert b.rows and b.totals["params"] > 0
    assert isinstance(b, LayerTable) and b.arch == "vgg11"


def test_model_tables_are_cached_per_model_and_rebuilt_when_it_changes():
    m = ConvReluPool()
    a = layer_table(m, (3, 12, 12))
    a.rows.clear()
    b = layer_table(m, (3, 12, 12))
    assert len(b.rows) == 6
    m.conv1.requires_grad_(False)  # trainable flags are part of the key
    assert layer_table(m, (3, 12, 12)).trainable_params == b.trainable_params - 224
    m.pool = nn.MaxPool2d(3, 2, padding=1)  # a changed window is too
    assert layer_table(m, (3, 12, 12)).row("pool").kernel == (3, 3)


def test_wrapped_and_half_precision_models():
    m = ConvReluPool()
    plain = layer_table(m, (3, 12, 12))
    wrapped = layer_table(nn.DataParallel(m), (3, 12, 12))
    assert [r.name for r in wrapped.rows] == [r.name for r in plain.rows]
    half = layer_table(ConvReluPool().half(), (3, 12, 12), dtype="float16")
    assert [r.output_shape for r in half.rows] == [r.output_shape for r in plain.rows]
    assert half.totals["activation_bytes"] * 2 == plain.totals["activation_bytes"]


class FunctionalPool(nn.Module):
    """Windowed functional ops between modules are traced with their own kernel/stride/padding."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        x = F.max_pool2d(self.conv(x), 3, 2, 1)  # rf 3 + 2 = 5, jump 2, start -1 - 1 = -2
        x = F.avg_pool2d(x, kernel_size=2)  # rf 5 + 2 = 7, jump 4
        return self.head(x)


def test_functional_windows_between_modules():
    t = layer_table(FunctionalPool(), (3, 16, 16))
    assert receptive_fields(t)["head"] == (7, 4, -2)
    assert t.row("head").inputs == ("conv",)


def test_input_size_defaults_and_short_forms():
    assert layer_table("lenet5").input == (1, 32, 32)
    assert layer_table("lenet5", 32).input == (1, 32, 32)
    assert layer_table("alexnet").input == (3, 227, 227)
    assert layer_table("vgg11", (64, 64), num_classes=200).input == (3, 64, 64)
    assert input_region("lenet5", "features.c1", 0, 0, 32) == (0, 0, 5, 5)
    assert receptive_fields("lenet5", 32)["features.s2"] == (6, 2, 0)


def test_callers_hooks_do_not_run_on_the_skeleton():
    m = ConvReluPool()
    seen = []

    class Capture:
        def __init__(self):
            self.big = torch.zeros(1000)

        def hook(self, _m, _i, out):
            seen.append(out)

    cap = Capture()
    handle = m.conv1.register_forward_hook(cap.hook)
    try:
        layer_table(m, (3, 12, 12))
        assert seen == []
        m(torch.zeros(1, 3, 12, 12))  # the caller's hook still works on the caller's model
        assert len(seen) == 1 and seen[0].device.type == "cpu"
    finally:
        handle.remove()


class Scale(nn.Module):
    """A layer the table does not know: a learned per-channel scale."""

    def __init__(self, c):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c, 1, 1))

    def forward(self, x):
        return x * self.weight


def test_unknown_parameterised_layer_uses_torchinfos_count():
    m = nn.Sequential(nn.Conv2d(3, 4, 3), Scale(4))
    t = layer_table(m, (3, 8, 8))
    row = t.row("1")
    assert row.params == 4 and row.output_shape == (4, 6, 6)
    assert row.macs == 4  # torchinfo: batch x parameters for a layer that is not a conv
    assert row.rf == 3


def test_model_with_an_uncopyable_attribute():
    import threading

    m = ConvReluPool()
    m.lock = threading.Lock()  # e.g. a page guarding a shared model
    t = layer_table(m, (3, 12, 12))
    assert len(t.rows) == 6 and isinstance(m.lock, type(threading.Lock()))
