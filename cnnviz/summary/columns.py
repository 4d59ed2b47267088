"""The columns of a layer table: what each one counts, and :func:`row_columns`, which counts them for one row.

Column definitions (per image; the batch dimension is never in the shapes):

* ``params``: elements of the module's parameters (``weight_params`` + ``bias_params``), as torchinfo counts them.
* ``activations``: elements of the module's output; ``activation_bytes`` = activations x the dtype's size.
* ``macs``: multiply-accumulates, NOT FLOPs (1 MAC ~ 2 FLOPs). Conv and Linear follow torchinfo's convention
  (one MAC per weight per output position, plus one per bias: ``out_elements x (in_ch/groups x kh x kw + 1)``),
  and for those layers our numbers equal torchinfo's (tests check it). Where we count and torchinfo does not
  (it only counts layers with parameters, and BatchNorm as ``2 x C`` once):

  - pooling (max, average, adaptive): ``out_elements x kh x kw`` (one accumulate, or compare, per window element);
  - LeNet's trainable subsampling: ``out_elements x (kh x kw + 1)`` (window sum, then coefficient and bias);
  - LocalResponseNorm: ``out_elements x (size + 1)`` (the squared sum across ``size`` maps, then the scaling);
  - BatchNorm (folded scale and shift): ``out_elements``;
  - Euclidean RBF units: ``in x out`` (one squared difference accumulated per input and unit);
  - activation functions, dropout, flatten, identity: 0 (no multiply-accumulates);
  - free ops between modules (residual adds, concatenation) have no row and are not counted.
* ``connections`` (LeNet-5 paper convention, a connection = one input feeding one unit, the bias counted as one):

  - conv: ``out_elements x (in_ch/groups x kh x kw + 1)``; with a ``connection_mask`` (out x in, LeNet's C3)
    each output map counts only its connected input maps: ``out_h x out_w x sum_m(n_in(m) x kh x kw + 1)``;
  - trainable subsampling (LeNet S2/S4): ``out_elements x (kh x kw + 1)``;
  - linear: ``in x out + out``;
  - pooling: ``out_elements x kh x kw``; LocalResponseNorm: ``out_elements x size``;
  - Euclidean RBF output units (LeNet's output layer): ``in x out`` (each unit compares all inputs to its centre);
  - elementwise layers (activation functions, batch norm, dropout) and pure reshapes (flatten, identity): 0.
    The paper counts the squashing function as part of the unit it follows, not as extra connections; with
    this convention LeNet-5's rows add up to the paper's 340,908 connections.
* torchinfo: each row's ``params`` and the conv/linear ``macs`` come from torchinfo's own ``LayerInfo``
  (``calculate_num_params`` / ``calculate_macs``) built for that row's module object (identity, no printed text).
  We do not run ``torchinfo.summary`` in the table path: its hooks on every container module cost about
  0.2 s of CPU for ResNet-152, twice our whole trace; ``tests/test_summary.py`` runs ``torchinfo.summary``
  independently and checks totals, per-layer shapes and conv/linear MACs against ours.
* ``rf`` / ``jump``: receptive field and effective stride w.r.t. the input, through the real dataflow, the largest
  field over all paths for branches and residual adds (see :mod:`cnnviz.summary.trace`).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from cnnviz.summary.trace import adaptive_window

MACS_NOTE = (
    "MACs are multiply-accumulates, not FLOPs (1 MAC = 2 FLOPs); conv/linear count the bias as one MAC per "
    "output, as torchinfo does; pooling and LRN are counted too (torchinfo counts them as 0)."
)

_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
                nn.Mish, nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus,
                nn.Softsign, nn.Tanhshrink, nn.LogSigmoid)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)
_ADAPTIVE = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_ELEMENTWISE = (*_ACTIVATIONS, *_NORMS, nn.Dropout, nn.Dropout2d, nn.AlphaDropout)
_RESHAPES = (nn.Flatten, nn.Unflatten, nn.Identity)


def _pair_or_none(v) -> tuple[int, int] | None:
    if v is None or isinstance(v, str):
        return None
    if isinstance(v, (tuple, list)):
        return (int(v[0]), int(v[-1]))
    return (int(v), int(v))


def is_activation(m: nn.Module) -> bool:
    if isinstance(m, _ACTIVATIONS) or getattr(m, "is_activation", False):
        return True
    name = type(m).__name__.lower()
    return not any(True for _ in m.parameters()) and any(k in name for k in ("relu", "tanh", "sigmoid", "squash"))


def _mask_in_counts(m: nn.Module) -> list[int] | None:
    """Connected input maps per output map from a LeNet-style ``connection_mask`` (out x in), if any."""
    mask = getattr(m, "connection_mask", None)
    if mask is None:
        return None
    mask = torch.as_tensor(mask)
    if mask.is_meta:
        return None
    return [int(v) for v in mask.reshape(mask.shape[0], -1).bool().sum(dim=1).tolist()]


def row_columns(m: nn.Module, source: nn.Module | None, in_shape, out_shape, out_numel: int, params: int,
             bias: int) -> tuple[int, int, tuple | None, tuple | None, tuple | None]:
    """(macs, connections, kernel, stride, padding) of one row (per image; shapes without the batch dim)."""
    kernel = _pair_or_none(getattr(m, "kernel_size", None))
    stride = _pair_or_none(getattr(m, "stride", None)) if kernel else None
    padding = getattr(m, "padding", 0) if kernel else None
    if isinstance(padding, str) and kernel:  # Conv2d(padding="same"/"valid")
        padding = ((kernel[0] - 1) // 2, (kernel[1] - 1) // 2) if padding == "same" else (0, 0)
    padding = _pair_or_none(padding) if kernel else None
    if kernel and stride is None:
        stride = kernel
    out_spatial = math.prod(out_shape[1:]) if len(out_shape) >= 2 else 1
    masks = _mask_in_counts(source if source is not None else m)

    if isinstance(m, _ADAPTIVE):
        # adaptive pooling: kernel/stride are implied by the sizes.
        k = _adaptive_kernel(in_shape, out_shape)
        return out_numel * k, out_numel * k, None, None, None
    if kernel and params and (isinstance(m, nn.modules.conv._ConvNd) or hasattr(m, "in_channels")
                              or hasattr(m, "connection_mask")):
        # Conv (LeNet C3 included): torchinfo's MACs = out positions x (weights + biases) = connections.
        kk = kernel[0] * kernel[1]
        if masks is not None:
            has_bias = 1 if bias else 0
            conn = out_spatial * sum(n * kk + has_bias for n in masks)
            return conn, conn, kernel, stride, padding
        return out_spatial * params, out_spatial * params, kernel, stride, padding
    if kernel and params:
        # Trainable subsampling (LeNet S2/S4): window sum x coefficient + bias per output unit.
        n = out_numel * (kernel[0] * kernel[1] + 1)
        return n, n, kernel, stride, padding
    if kernel:  # pooling: one accumulate (or compare) per window element; torchinfo counts 0
        n = out_numel * kernel[0] * kernel[1]
        return n, n, kernel, stride, padding
    if isinstance(m, nn.Linear) or (params and type(m).__name__.lower().endswith("linear")):
        lead = math.prod(out_shape[:-1]) if len(out_shape) > 1 else 1
        return lead * params, lead * params, None, None, None
    if isinstance(m, nn.LocalResponseNorm):
        return out_numel * (m.size + 1), out_numel * m.size, None, None, None
    if isinstance(m, _NORMS):
        return out_numel, 0, None, None, None
    if isinstance(m, _RESHAPES):
        return 0, 0, None, None, None
    if "rbf" in type(m).__name__.lower() and len(in_shape) == 1 and len(out_shape) == 1:
        n = int(in_shape[0]) * int(out_shape[0])
        return n, n, None, None, None
    if isinstance(m, _ELEMENTWISE) or is_activation(m):
        return 0, 0, None, None, None
    # Unknown leaf: None = torchinfo's count for a parameterised layer (filled in by build_table), 0 otherwise.
    return (None, None, None, None, None) if params else (0, 0, None, None, None)


def _adaptive_kernel(in_shape, out_shape) -> int:
    if len(in_shape) < 3 or len(out_shape) < 3:
        return 1
    kh, _ = adaptive_window(int(in_shape[-2]), int(out_shape[-2]))
    kw, _ = adaptive_window(int(in_shape[-1]), int(out_shape[-1]))
    return kh * kw

