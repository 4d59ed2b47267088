"""Models built on the ``meta`` device: every module and shape, no memory and no arithmetic.

The layer tables, the check of a training configuration and the Architectures page's input check build
registered models this way (:func:`meta_model`): VGG-19 at 224x224 costs milliseconds instead of 548 MB of
weights and their random initialisation.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

from cnnviz.models.registry import create_model


class SkipInitOnMeta(TorchFunctionMode):
    """Skips weight initialisation (``normal_``, ``uniform_``, ``fill_`` ...) on meta tensors.

    A meta tensor has no values, so an in-place fill of one is a no-op that returns it -- but on the meta
    device these ops run as Python decompositions, and ResNet-152's 155 ``kaiming_normal_`` calls were about
    a third of its whole table time. Only in-place value fills are skipped (never shape-changing ops), only
    for meta tensors, and the mode is thread-local (it is active only while this thread builds a model).
    """

    _FILLS = frozenset({"uniform_", "normal_", "fill_", "zero_", "erfinv_", "mul_", "add_", "sub_", "div_",
                        "clamp_", "copy_", "exponential_", "random_", "bernoulli_", "log_normal_", "cauchy_",
                        "geometric_", "trunc_normal_"})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if (getattr(func, "__name__", "") in self._FILLS and args and isinstance(args[0], torch.Tensor)
                and args[0].is_meta):
            return args[0]
        return func(*args, **(kwargs or {}))


def meta_model(name: str, num_classes: int | None = None, input_size: int | None = None,
               **variant: Any) -> nn.Module:
    """:func:`~cnnviz.models.registry.create_model` on the meta device, weight initialisation skipped.

    Raises what ``create_model`` raises for a request the architecture refuses (``KeyError``, ``TypeError``,
    ``ValueError`` and its :class:`~cnnviz.models.registry.InputSizeError`). A constructor that needs real
    values (an op without a meta kernel raises ``NotImplementedError``, a ``RuntimeError``) is built on the
    CPU instead, with its weights.
    """
    try:
        with torch.device("meta"), SkipInitOnMeta():
            return create_model(name, num_classes=num_classes, input_size=input_size, **variant)
    except RuntimeError:
        return create_model(name, num_classes=num_classes, input_size=input_size, **variant)
