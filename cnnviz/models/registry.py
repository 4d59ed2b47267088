"""The model registry: one factory and one model card per architecture.

Every model family lives in its own module (``lenet.py``, ``alexnet.py`` ...) and registers each of its
architectures with :func:`register_model`. Models are built with :func:`create_model`::

    model = create_model("vgg16", num_classes=200, input_size=64)

A factory takes ``num_classes`` and ``input_size`` (the square side of the input in pixels) plus the
architecture's own variant keyword arguments (listed on its card as ``variants``). It raises
:class:`InputSizeError` with a readable message when the architecture cannot take that input size.

Conventions every registered model follows (tests in ``tests/test_models.py`` check them all):

* ``model.features``: the convolutional body (an ``nn.Module``);
* ``model.forward_features(x)``: the last feature map before the classifier head;
* ``model.forward_head(feats)``: logits from that feature map;
* ``model(x) == model.forward_head(model.forward_features(x))`` in eval mode;
* in training mode a model with auxiliary classifiers (GoogLeNet) returns a tuple
  ``(logits, aux1, aux2, ...)`` and exposes ``model.aux_loss_weight`` (0.3 in the paper); in eval mode every
  model returns the logits tensor alone;
* every ReLU is its own non-in-place ``nn.ReLU`` module (hooks and captum must see each use);
* ``model.feature_info``: the model's hidden blocks, declared where the model is built (timm's
  ``feature_info``): one :class:`FeatureInfo` per block, in execution order, with the module that starts it,
  the module whose output is its output, its kind, channels and reduction. The probes, the invariance
  analysis and their charts read it; ``tests/test_models.py`` checks every declaration against a forward pass.

A card's variant options are data (:class:`VariantOption`: name, type, choices, default, help): the app's
widgets, the CLI's ``--variant KEY=VALUE`` and ``python -m cnnviz list``, and the validation of
:func:`create_model` and of a training configuration all read them.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch.nn as nn

from cnnviz.errors import UnknownName
from cnnviz.models.declared import VariantOption


class InputSizeError(ValueError):
    """Raised when an architecture cannot take the requested input size (the message says why)."""


@dataclass(frozen=True)
class PaperFigures:
    """Figures the paper itself reports (None where it reports none)."""

    params: int | None = None  # parameters, as reported
    top1_error: float | None = None  # percent
    top5_error: float | None = None  # percent
    gmacs: float | None = None  # multiply-accumulates (billions) per image, as reported
    note: str = ""  # which setting the figures are for (single model, crops, which test set)
    dataset: str = "ImageNet"  # what the errors were measured on; charts compare ImageNet figures only


@dataclass(frozen=True)
class ModelCard:
    """What a user should know about an architecture: its paper, ideas and every deviation of our code."""

    name: str  # registry key, e.g. "vgg16_bn"
    display_name: str  # e.g. "VGG-16 (batch norm)"
    family: str  # e.g. "VGG"
    title: str  # paper title
    authors: str
    venue: str
    year: int
    url: str
    key_ideas: tuple[str, ...]
    paper_input: tuple[int, int, int]  # (C, H, W) the paper used
    paper_classes: int
    figures: PaperFigures
    deviations: tuple[str, ...] = ()  # every way our code differs from the paper, at the paper's input
    adaptations_64: tuple[str, ...] = ()  # what changes at 64x64 (Tiny ImageNet) and why
    min_input: int = 32  # smallest square input the model accepts with its default variant
    options: tuple[VariantOption, ...] = ()  # the factory's variant keywords, in the order forms show them
    # Where a variant takes smaller inputs than the default (GoogLeNet's small stem runs from 8 pixels, the
    # paper's stem from 31): the full variant -> its smallest input. None: min_input for every variant (a
    # variant that needs more, such as AlexNet's explicit stem='paper', is refused by its factory).
    min_input_of: Callable[[dict[str, Any]], int] | None = None

    @property
    def variants(self) -> dict[str, str]:
        """Variant keyword -> its help text."""
        return {o.name: o.help for o in self.options}

    @property
    def default_variant(self) -> dict[str, Any]:
        """Variant keyword -> its default value."""
        return {o.name: o.default for o in self.options}

    @property
    def form_options(self) -> tuple[VariantOption, ...]:
        """The options a form offers (those that no other input decides)."""
        return tuple(o for o in self.options if o.in_forms)

    def smallest_input(self, variant: dict[str, Any] | None = None) -> int:
        """The smallest square input the registry lets through for ``variant`` (options left out take their
        defaults); :attr:`min_input` unless the card has :attr:`min_input_of`."""
        if self.min_input_of is None:
            return self.min_input
        return self.min_input_of({**self.default_variant, **(variant or {})})

    def option(self, name: str) -> VariantOption:
        """The option called ``name``; ``KeyError`` naming the options this architecture has."""
        for o in self.options:
            if o.name == name:
                return o
        raise UnknownName(f"{self.name} has no variant option {name!r}; it takes {self._option_names()}")

    def check_variant(self, variant: dict[str, Any]) -> None:
        """``TypeError`` for an option this architecture does not have, ``ValueError`` for a value an option
        does not allow (its type or choices); the message names the option and what it takes."""
        unknown = set(variant) - {o.name for o in self.options}
        if unknown:
            raise TypeError(f"{self.name} has no variant option(s) {sorted(unknown)}; "
                            f"it takes {self._option_names()}")
        for name, value in variant.items():
            option = self.option(name)
            if not option.allows(value):
                raise ValueError(f"{self.name} {option.refusal(value)}")

    def _option_names(self) -> str:
        return str(sorted(o.name for o in self.options) or "none")


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., nn.Module]
    card: ModelCard


_REGISTRY: dict[str, _Entry] = {}


def register_model(card: ModelCard) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering ``factory(num_classes, input_size, **variant)`` under ``card.name``."""

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if card.name in _REGISTRY:
            raise ValueError(f"model {card.name!r} registered twice")
        _REGISTRY[card.name] = _Entry(factory, card)
        return factory

    return wrap


# Every family is registered before this module is used: importing it runs cnnviz/models/__init__.py first
# (Python initialises a module's package before the module), and that imports every family.


def list_models() -> list[str]:
    """Registered architecture names, oldest paper first (registration order within a year)."""
    return sorted(_REGISTRY, key=lambda name: _REGISTRY[name].card.year)


def get_card(name: str) -> ModelCard:
    """The model card of a registered architecture."""
    if name not in _REGISTRY:
        raise UnknownName(f"unknown architecture {name!r}; known: {', '.join(_REGISTRY)}")
    return _REGISTRY[name].card


def create_model(name: str, num_classes: int | None = None, input_size: int | None = None, **variant: Any) -> nn.Module:
    """Build a registered architecture.

    ``num_classes`` and ``input_size`` default to the paper's (e.g. 1000 and 224). Unknown variant keywords
    raise ``TypeError``, values an option does not allow ``ValueError`` (:meth:`ModelCard.check_variant`); an
    input size the architecture cannot take raises :class:`InputSizeError`.
    The returned model has ``model.arch`` (the registry name) and ``model.model_args`` (the keyword arguments
    that rebuild it, as saved in checkpoints).
    """
    card = get_card(name)
    num_classes = card.paper_classes if num_classes is None else int(num_classes)
    input_size = card.paper_input[1] if input_size is None else int(input_size)
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    card.check_variant(variant)
    args = {**card.default_variant, **variant}
    need = card.smallest_input(args)
    if input_size < need:
        described = card.display_name
        if card.min_input_of is not None:
            described += f" ({', '.join(f'{k}={v!r}' for k, v in args.items())})"
        raise InputSizeError(
            f"{described} needs an input of at least {need}x{need} pixels (asked for {input_size}x{input_size})"
        )
    model = _REGISTRY[name].factory(num_classes=num_classes, input_size=input_size, **args)
    model.arch = name
    model.model_args = {"num_classes": num_classes, "input_size": input_size, **args}
    return model


def parse_variant(items: Iterable[str], arch: str | None = None) -> dict[str, Any]:
    """Command-line ``KEY=VALUE`` texts -> variant options: ``["groups=1", "stem=paper"]`` ->
    ``{"groups": 1, "stem": "paper"}`` (``ValueError`` for a text without ``=``).

    With ``arch`` each value is read as its option's type (:meth:`VariantOption.parse`). A key the
    architecture does not have (or any key, without ``arch``) is read as a Python literal where it is one
    (``2``, ``0.5``, ``True``; ``none``/``null`` is None), else as text; validation then names what is wrong.
    """
    card = get_card(arch) if arch is not None else None
    known = {o.name for o in card.options} if card is not None else set()
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--variant must be KEY=VALUE, got {item!r}")
        try:
            out[key] = card.option(key).parse(text) if key in known else _literal(text.strip())
        except ValueError as e:
            raise ValueError(f"{arch} {e}") from None
    return out


def _literal(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false", "none", "null"):
        return {"true": True, "false": False}.get(low)
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
