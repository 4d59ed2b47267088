"""Registry-wide model tests: every registered architecture, every convention of ``registry.py``.

Real forward/backward passes run at 64x64 (the Tiny ImageNet size) with batch 1-2; the paper-sized checks
(224/227/32 inputs, 1000 classes) run on the ``meta`` device, which computes shapes without arithmetic or
memory, so VGG-19 at 224 costs milliseconds.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from cnnviz.models import (
    FeatureInfo,
    InputSizeError,
    ModelCard,
    PaperFigures,
    create_model,
    get_card,
    list_models,
    meta_model,
)
from cnnviz.summary import layer_table

NAMES = list_models()
TINY = 64
TINY_CLASSES = 200


def _meta_model(name: str, **kwargs) -> nn.Module:
    """The model on the meta device (shapes only, no memory); on the CPU where a constructor needs real data."""
    return meta_model(name, **kwargs)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _in_channels(model: nn.Module) -> int:
    """Input channels of the first convolution (1 for LeNet-5 at 32x32, 3 elsewhere)."""
    return next(m.in_channels for m in model.modules() if isinstance(m, nn.Conv2d))


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small models, one thread


def _outputs(out) -> tuple[torch.Tensor, ...]:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def _seeded(name: str, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, **kwargs)


@pytest.fixture(scope="module", params=NAMES)
def tiny(request) -> tuple[str, nn.Module]:
    """(name, model at 64x64 / 200 classes), built once per architecture (pytest groups the tests by it)."""
    return request.param, _seeded(request.param, num_classes=TINY_CLASSES, input_size=TINY)


def test_registry_has_the_whole_zoo():
    expected = {
        "lenet5", "alexnet", "zfnet", "nin", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
        "googlenet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    }
    assert expected <= set(NAMES)
    years = [get_card(n).year for n in NAMES]
    assert years == sorted(years), "list_models() must order by the paper's year"


def test_forward_shape_tiny_imagenet(tiny):
    _, model = tiny
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, TINY, TINY))
    assert isinstance(out, torch.Tensor), "eval mode must return the logits tensor alone"
    assert out.shape == (1, TINY_CLASSES)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_forward_shape_paper_input(name):
    card = get_card(name)
    model = _meta_model(name).eval()  # defaults: the paper's input and classes
    assert model.model_args["num_classes"] == card.paper_classes
    assert model.model_args["input_size"] == card.paper_input[1]
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, *card.paper_input, device=_device(model)))
    except NotImplementedError:  # an op without a meta kernel (e.g. nonzero): run it for real
        model = _seeded(name).eval()
        with torch.no_grad():
            out = model(torch.zeros(1, *card.paper_input))
    assert isinstance(out, torch.Tensor)
    assert tuple(out.shape) == (1, card.paper_classes)


def test_every_parameter_gets_a_gradient(tiny):
    _, model = tiny
    model.train()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(1)
    outs = _outputs(model(torch.randn(2, 3, TINY, TINY)))
    for o in outs:
        assert o.shape == (2, TINY_CLASSES)
    if len(outs) > 1:  # auxiliary classifiers: (logits, aux1, aux2, ...) and a loss weight
        assert 0 < model.aux_loss_weight < 1
    loss = sum(o.float().pow(2).mean() for o in outs)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    zero = [n for n, p in model.named_parameters() if not torch.count_nonzero(p.grad)]
    assert not zero, f"parameters with an all-zero gradient: {zero[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    model.zero_grad(set_to_none=True)


def test_relus_are_separate_non_inplace_modules_used_once(tiny):
    _, model = tiny
    model.train()  # train mode: auxiliary classifiers run too
    # No module object may sit at two places in the tree (hooks on one would fire for both).
    leaves = [(n, m) for n, m in model.named_modules(remove_duplicate=False) if not list(m.children())]
    ids = [id(m) for _, m in leaves]
    assert len(ids) == len(set(ids)), "a module object is registered at two places"
    relus = [(n, m) for n, m in leaves if isinstance(m, nn.ReLU)]
    assert all(not m.inplace for _, m in relus), "in-place ReLU found"
    # Each nn.ReLU module must be called exactly once per forward (a reused self.relu is called twice).
    calls = {n: 0 for n, _ in relus}
    handles = [m.register_forward_hook(lambda _m, _i, _o, n=n: calls.__setitem__(n, calls[n] + 1))
               for n, m in relus]
    try:
        with torch.no_grad():
            model(torch.randn(2, 3, TINY, TINY))
    finally:
        for h in handles:
            h.remove()
    wrong = {n: c for n, c in calls.items() if c != 1}
    assert not wrong, f"ReLU modules not called exactly once per forward: {wrong}"


def test_relu_hooks_count_matches_the_activations_of_a_known_model():
    # A functional relu (F.relu / torch.relu) would leave fewer nn.ReLU modules than activations:
    # ResNet-18 applies 17 ReLUs (stem + 2 per basic block x 8).
    model = create_model("resnet18", num_classes=10, input_size=TINY)
    assert sum(isinstance(m, nn.ReLU) for m in model.modules()) == 17


def test_forward_is_head_of_features(tiny):
    _, model = tiny
    model.eval()
    x = torch.randn(1, 3, TINY, TINY)
    with torch.no_grad():
        full = model(x)
        feats = model.forward_features(x)
        split = model.forward_head(feats)
    assert torch.equal(full, split)
    assert isinstance(model.features, nn.Module)
    feature_params = {id(p) for p in model.features.parameters()}
    model_params = {id(p) for p in model.parameters()}
    assert feature_params and feature_params <= model_params, "features must be the model's own conv body"


@pytest.mark.parametrize("name", NAMES)
def test_model_args_rebuild_the_same_model(name):
    model = _meta_model(name, num_classes=7, input_size=TINY)
    assert model.arch == name
    rebuilt = _meta_model(name, **model.model_args)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}


@pytest.mark.parametrize("name", NAMES)
def test_min_input_is_honest(name):
    card = get_card(name)
    model = _seeded(name, num_classes=5, input_size=card.min_input).eval()
    with torch.no_grad():
        out = model(torch.randn(1, _in_channels(model), card.min_input, card.min_input))
    assert out.shape == (1, 5)
    with pytest.raises(InputSizeError, match=r"\d+x\d+"):
        create_model(name, input_size=card.min_input - 1)


def test_create_model_rejects_bad_requests():
    with pytest.raises(KeyError, match="unknown architecture"):
        create_model("vgg17")
    with pytest.raises(TypeError, match="no variant option"):
        create_model("vgg16", num_classes=10, input_size=TINY, batchnorm=True)
    with pytest.raises(InputSizeError, match="at least 32x32"):
        create_model("vgg16", input_size=16)
    with pytest.raises(InputSizeError, match="at least"):
        create_model("resnet50", input_size=8)
    with pytest.raises(ValueError, match="num_classes"):
        create_model("resnet18", num_classes=0)
    with pytest.raises(ValueError, match="stem"):
        create_model("resnet18", num_classes=10, input_size=TINY, stem="cifar")
    with pytest.raises(ValueError, match="stride_in"):
        create_model("resnet50", num_classes=10, input_size=TINY, stride_in="5x5")
    with pytest.raises(TypeError, match="stride_in"):
        create_model("resnet18", num_classes=10, input_size=TINY, stride_in="3x3")  # basic blocks: no 1x1


_GEOMETRY = ("kernel_size", "stride", "padding", "dilation", "output_size", "in_features", "out_features")


def _structure(model: nn.Module) -> list[tuple]:
    """Per leaf: name, type, parameter shapes and geometry (no repr: it may read values, not on meta)."""
    return [
        (n, type(m).__name__, [tuple(p.shape) for p in m.parameters(recurse=False)],
         [getattr(m, a, None) for a in _GEOMETRY])
        for n, m in model.named_modules() if not list(m.children())
    ]


@pytest.mark.parametrize("name", NAMES)
def test_card_is_complete(name):
    card = get_card(name)
    assert isinstance(card, ModelCard) and card.name == name
    for field in ("display_name", "family", "title", "authors", "venue", "url"):
        assert getattr(card, field).strip(), f"card.{field} is empty"
    assert card.url.startswith("http")
    assert 1980 <= card.year <= 2020
    assert card.key_ideas and all(s.strip() for s in card.key_ideas)
    assert card.deviations and all(s.strip() for s in card.deviations)
    assert len(card.paper_input) == 3 and card.paper_classes >= 2
    assert isinstance(card.figures, PaperFigures) and card.figures.note.strip()
    for value in (card.figures.top1_error, card.figures.top5_error):
        assert value is None or 0 < value < 100
    assert set(card.default_variant) <= set(card.variants)
    assert all(desc.strip() for desc in card.variants.values())
    # adaptations_64 must explain every difference between the 64x64 model and the paper's.
    paper = _meta_model(name)
    tiny = _meta_model(name, num_classes=card.paper_classes, input_size=TINY)
    if _structure(paper) != _structure(tiny):
        assert card.adaptations_64 and all(s.strip() for s in card.adaptations_64)


@pytest.mark.parametrize("name", NAMES)
def test_documented_variants_build(name):
    card = get_card(name)
    model = _meta_model(name, num_classes=10, input_size=TINY, **card.default_variant)
    assert all(model.model_args[key] == value for key, value in card.default_variant.items())


def test_variant_specs_offer_the_quoted_choices():
    specs = {s.name: s for s in get_card("lenet5").form_options}
    assert specs["variant"].kind == "choice" and set(specs["variant"].choices) >= {"paper", "modern"}
    assert specs["variant"].default == "paper"
    for card in map(get_card, NAMES):
        for spec in card.form_options:  # every spec's default builds the model
            assert spec.kind in ("bool", "int", "float", "choice"), (card.name, spec)
            if spec.kind == "choice":
                assert spec.default in spec.choices


_KINDS = {"conv", "subsampling", "fc", "stage", "inception", "mlpconv"}


def _check_declared(model: nn.Module, outputs: dict[str, torch.Tensor | tuple], order: list[str], side: int) -> None:
    """``model.feature_info`` against what a pass produced (``outputs``: each module's output shape, ``order``:
    the modules in the order they finished) and the layer table's strides (its jumps)."""
    info = model.feature_info
    assert info and all(isinstance(f, FeatureInfo) and f.kind in _KINDS for f in info)
    table = layer_table(model, (_in_channels(model), side, side))
    ends = [order.index(f.module) for f in info]
    assert ends == sorted(set(ends)), "blocks must be declared in execution order, each ending after the last"
    for f in info:
        assert order.index(f.name) <= order.index(f.module), f
        shape = outputs[f.module]
        assert shape[0] == f.num_chs, (f, shape)
        if f.reduction is None:  # a vector, or a globally pooled 1x1 map
            assert len(shape) == 1 or shape[1:] == (1, 1), (f, shape)
        else:
            assert len(shape) == 3 and table.region_geometry(f.module).jump_h == f.reduction, (f, shape)


def _hooked_pass(model: nn.Module, names: set[str], side: int) -> tuple[dict, list[str]]:
    modules = dict(model.named_modules())
    assert names <= set(modules), f"declared modules that do not exist: {sorted(names - set(modules))}"
    shapes: dict[str, tuple[int, ...]] = {}
    order: list[str] = []

    def record(_m, _i, out, name):
        if name not in shapes:
            order.append(name)
            shapes[name] = tuple(out.shape[1:])

    handles = [modules[n].register_forward_hook(lambda m, i, o, n=n: record(m, i, o, n)) for n in names]
    try:
        with torch.no_grad():
            model(torch.zeros(1, _in_channels(model), side, side, device=_device(model)))
    finally:
        for h in handles:
            h.remove()
    assert names <= set(shapes), f"declared modules that do not run at evaluation: {sorted(names - set(shapes))}"
    return shapes, order


def test_declared_blocks_match_a_forward_pass(tiny):
    """Every model declares its hidden blocks once (``model.feature_info``, timm's convention: the module that
    starts each block, the one whose output is its output, kind, channels, stride); a real forward pass at
    64x64 checks that the modules exist and run in that order with those channels, and the layer table that
    each output has the declared stride. The windows a family sizes its maps with agree with the pass too."""
    _, model = tiny
    model.eval()
    sizes = {f"features.{k}": v for k, v in getattr(model, "sizes", {}).items()}  # AlexNet, ZFNet, NiN
    names = {n for f in model.feature_info for n in (f.name, f.module)} | set(sizes)
    shapes, order = _hooked_pass(model, names, TINY)
    _check_declared(model, shapes, order, TINY)
    assert {n: shapes[n][-1] for n in sizes} == sizes


@pytest.mark.parametrize(("name", "side", "variant"), [(n, None, {}) for n in NAMES] + [
    ("resnet18", TINY, {"stem": "tiny"}), ("resnet50", TINY, {"stride_in": "3x3"}), ("lenet5", 32, {}),
    ("lenet5", TINY, {"variant": "modern"}), ("lenet5", 32, {"variant": "modern"}), ("nin", TINY, {"config": "cifar"}),
    ("googlenet", TINY, {"aux_logits": False}), ("googlenet", TINY, {"stem": "small"}), ("alexnet", 128, {}),
    ("zfnet", 128, {}),
])
def test_declared_blocks_match_every_stem_and_variant(name, side, variant):
    """The same declarations at the paper's input (on the meta device) and for the variants that change the
    blocks (stems, LeNet-5's modern layers, NiN's CIFAR network)."""
    model = _meta_model(name, input_size=side, **variant).eval()
    side = model.model_args["input_size"]
    names = {n for f in model.feature_info for n in (f.name, f.module)}
    shapes, order = _hooked_pass(model, names, side)
    _check_declared(model, shapes, order, side)


def test_variant_options_are_data_that_validation_and_the_cli_read():
    """Issue 12: options are structured on the card (no regex over prose): each option's type and choices
    refuse a bad value with a message naming the option, and command-line text is read as the option's type."""
    from cnnviz.models import parse_variant

    nin = get_card("nin")
    assert nin.option("config").choices == ("imagenet", "cifar") and nin.option("stem").choices == ("auto", "paper", "small")
    assert [o.name for o in get_card("lenet5").form_options] == ["variant", "output"]  # in_channels follows the input
    with pytest.raises(ValueError, match=r"resnet18 option stem takes 'imagenet' or 'tiny', not 'cifar'"):
        create_model("resnet18", num_classes=10, input_size=TINY, stem="cifar")
    with pytest.raises(ValueError, match="aux_logits takes true or false"):
        meta_model("googlenet", num_classes=10, input_size=TINY, aux_logits="yes")
    assert parse_variant(["dropout=1", "aux_logits=no"], "googlenet") == {"dropout": 1.0, "aux_logits": False}
    assert parse_variant(["output=none", "variant=modern"], "lenet5") == {"output": None, "variant": "modern"}
    with pytest.raises(ValueError, match="alexnet option groups takes a whole number, not 'two'"):
        parse_variant(["groups=two"], "alexnet")
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_variant(["groups"], "alexnet")
