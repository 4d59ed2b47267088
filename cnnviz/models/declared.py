"""What a family declares beyond its modules: its card's variant options (:class:`VariantOption`) and its
models' hidden blocks (:class:`FeatureInfo`, in ``model.feature_info``). Forms, the CLI, validation, the
probes and the invariance analysis read these declarations; none of them works structure out again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_TYPE_WORDS = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}


@dataclass(frozen=True)
class VariantOption:
    """One variant keyword of a factory (beyond ``num_classes`` and ``input_size``), as data.

    ``type`` is the value's type (``bool``, ``int``, ``float`` or ``str``). ``choices`` lists every value
    allowed, in the order a picker offers them (the default first); empty where any value of ``type`` goes
    (numbers). ``None`` as a choice, or as the default of an option without choices, means "the model
    decides" (LeNet-5's output layer follows its variant). ``in_forms`` is False for an option that another
    input decides in the app (LeNet-5's ``in_channels`` follows the input size).
    """

    name: str
    type: type
    default: Any
    help: str
    choices: tuple[Any, ...] = ()
    in_forms: bool = True

    @property
    def kind(self) -> str:
        """How a form asks for it: ``"bool"``, ``"choice"``, ``"int"``, ``"float"`` or ``"text"``."""
        if self.type is bool:
            return "bool"
        if self.choices:
            return "choice"
        return {int: "int", float: "float"}.get(self.type, "text")

    def allows(self, value: Any) -> bool:
        if self.choices:
            return any(value == c and type(value) is type(c) for c in self.choices if c is not None) or (
                value is None and None in self.choices)
        if value is None:
            return self.default is None
        if self.type is float:
            return isinstance(value, int | float) and not isinstance(value, bool)
        if self.type is int:
            return isinstance(value, int) and not isinstance(value, bool)
        return isinstance(value, self.type)

    def takes(self) -> str:
        """What the option takes, in words: ``'auto', 'paper' or 'small'``, ``a whole number``."""
        if self.choices:
            words = ["None (the model's default)" if c is None else repr(c) for c in self.choices]
            return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else words[0]
        return _TYPE_WORDS.get(self.type, self.type.__name__) + (" or None" if self.default is None else "")

    def refusal(self, value: Any) -> str:
        """Why ``value`` is refused: ``option stem takes 'imagenet' or 'tiny', not 'cifar'``."""
        return f"option {self.name} takes {self.takes()}, not {value!r}"

    def parse(self, text: str) -> Any:
        """The value of a command-line ``KEY=VALUE``'s text, read as this option's type (``ValueError`` with
        what it takes when the text is not one)."""
        low = text.strip().lower()
        if low in ("none", "null") and (None in self.choices or self.default is None):
            return None
        try:
            if self.type is bool:
                if low in ("true", "yes", "1", "false", "no", "0"):
                    return low in ("true", "yes", "1")
                raise ValueError(text)
            return self.type(text.strip())
        except ValueError:
            raise ValueError(self.refusal(text)) from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: name, type (its name), choices, default, help."""
        return {"name": self.name, "type": self.type.__name__, "choices": list(self.choices),
                "default": self.default, "help": self.help}


@dataclass(frozen=True)
class FeatureInfo:
    """One hidden block of a model, as the model declares it in ``model.feature_info`` (timm's convention).

    A block is a module that holds weights (a conv or fc layer, a residual stage, an Inception module, an
    mlpconv block, LeNet-5's trainable subsampling) with the parameter-free modules after it (ReLU, LRN,
    pooling) up to the next one; its output is the last of those that is not a dropout. The block that
    computes the logits is the head, not a hidden block, and is not listed.
    """

    name: str  # the module that starts the block: "features.conv1", "layer2", "inception4a"
    module: str  # the module whose output is the block's output (timm's "module"): "features.pool1"
    kind: str  # "conv", "subsampling", "fc", "stage", "inception" or "mlpconv"
    num_chs: int  # channels (features, for a vector) of that output
    reduction: int | None  # input pixels per output unit along a side (the effective stride); None for a
    # vector or a globally pooled 1x1 map, whose every unit sees the whole input
