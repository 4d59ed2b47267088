"""The private copy a layer table traces: the model's module tree with meta tensors in place of its weights.

The caller's model is never touched (no hooks, no mode or device switch): the trace runs on this copy, whose
parameters and buffers have shapes but no storage, so VGG-16 at 224x224 costs a few milliseconds.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn as nn

_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
               "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs", "_forward_hooks_always_called",
               "_state_dict_hooks", "_state_dict_pre_hooks", "_load_state_dict_pre_hooks",
               "_load_state_dict_post_hooks")


def meta_skeleton(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` whose parameters and buffers are meta tensors (no data copied).

    Uses deepcopy's memo so that the (possibly huge) tensors are never copied; the modules themselves are
    copied, so hooks and mode switches on the skeleton never reach the caller's model.
    """
    try:
        return copy.deepcopy(model, _skeleton_memo(model, share_attributes=False))
    except (TypeError, RuntimeError, copy.Error):
        # An attribute that cannot be copied (a lock, a file handle ...): share the plain attributes of every
        # module by reference (the skeleton never changes them) and copy only the module tree. A fresh memo:
        # the failed copy left half-built objects in the first one.
        return copy.deepcopy(model, _skeleton_memo(model, share_attributes=True))


def _skeleton_memo(model: nn.Module, share_attributes: bool) -> dict[int, Any]:
    memo: dict[int, Any] = {}
    for m in model.modules():
        # The caller's hooks stay behind: a hook on a shared model (a Visualize page capturing activations)
        # must not run on the skeleton's meta tensors, and deep-copying a bound-method hook copies its owner.
        for attr in _HOOK_DICTS:
            d = getattr(m, attr, None)
            if d is not None:
                memo[id(d)] = type(d)()
        if share_attributes:
            for v in m.__dict__.values():
                if not isinstance(v, (nn.Module, torch.Tensor, dict)):
                    memo.setdefault(id(v), v)
    for p in model.parameters():
        memo[id(p)] = nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
    for b in model.buffers():
        memo[id(b)] = torch.empty_like(b, device="meta")
    return memo


# Modules whose output has exactly the input's shape, whatever their settings. On the meta device their
# kernels are Python decompositions (batch_norm alone is ~100 Python-level ops), the slowest part of the
# pass, so on the private skeleton their forward is replaced by ``empty_like`` (exact types only: a subclass
# may change the shape).
SHAPE_PRESERVING = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh,
    nn.Sigmoid, nn.Hardtanh, nn.Dropout, nn.Dropout2d, nn.LocalResponseNorm, nn.Identity,
)


def _empty_like_forward(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    return torch.empty_like(x)


def fast_forwards(skeleton: nn.Module) -> None:
    """Replace the forward of shape-preserving modules of a *meta skeleton* by ``empty_like`` (see above)."""
    for m in skeleton.modules():
        if type(m) in SHAPE_PRESERVING:
            m.forward = _empty_like_forward
