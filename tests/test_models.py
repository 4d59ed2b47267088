"""Registry-wide model tests: every registered architecture, every convention of ``registry.py``.

Real forward/backward passes run at 64x64 (the Tiny ImageNet size) with batch 1-2; the paper-sized checks
(224/227/32 inputs, 1000 classes) run on the ``meta`` device, which computes shapes without arithmetic or
memory, so VGG-19 at 224 costs milliseconds.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from cnnviz.models import InputSizeError, ModelCard, PaperFigures, create_model, get_card, list_models

NAMES = list_models()
TINY = 64
TINY_CLASSES = 200


def _meta_model(name: str, **kwargs) -> nn.Module:
    """The model on the meta device (shapes only, no memory); on the CPU where a constructor needs real data."""
    try:
        with torch.device("meta"):
            return create_model(name, **kwargs)
    except NotImplementedError:  # e.g. LeNet-5's connection table uses nonzero(), which has no meta kernel
        return create_model(name, **kwargs)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _in_channels(model: nn.Module) -> int:
    """Input channels of the first convolution (1 for LeNet-5 at 32x32, 3 elsewhere)."""
    return next(m.in_channels for m in model.modules() if isinstance(m, nn.Conv2d))


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # On a loaded 2-core machine two intra-op threads make small backward passes ~15x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
