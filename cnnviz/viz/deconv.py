"""The deconvnet of Zeiler & Fergus (ECCV 2014, section 2.1): project one activation back to pixel space.

Keep the strongest activation of the chosen feature map (or a chosen unit), zero every other activation of
the layer, and send that signal down the network: *unpool* with the switches (argmax locations) recorded in
the forward pass, *rectify* with a ReLU, and *filter* with the transpose of the same convolution weights.

Two implementations, tested to agree (``tests/test_viz_deconv.py``):

* :func:`project` (``method="autograd"``, every model of the zoo): the gradient of the chosen activation
  with respect to the input, with each ``nn.ReLU``'s backward replaced by a ReLU of the incoming signal (what
  captum's ``Deconvolution`` does). The rest is what autograd gives, and for each layer that *is* the
  deconvnet step:

  - max-pool backward routes the signal to the recorded argmax = unpooling with switches; through
    overlapping pools (3x3 stride 2, AlexNet/ZFNet) autograd *sums* contributions that share an argmax
    (``nn.MaxUnpool2d`` would overwrite them, which is wrong);
  - convolution backward is the transposed convolution with the same weights (biases play no part);
  - batch norm (eval mode) is the per-channel linear map ``x * gamma / sqrt(var + eps)``, so its backward
    multiplies by the same scale: we keep it, it is part of the linear filtering the unit sees;
  - local response normalisation: **identity on the way back** by default (``lrn="identity"``), because ZF's
    deconvnet has no contrast-normalisation step; ``lrn="gradient"`` uses LRN's true Jacobian instead;
  - Inception concatenation splits the signal between its branches; residual additions send it down both
    the shortcut and the residual branch (the transpose of a sum is a copy); average pools and linear layers
    are their own transposes; dropout is the identity in eval mode.

* :func:`project_switches` (``method="switches"``, sequential conv / ReLU / max-pool stacks: LeNet-like,
  AlexNet, ZFNet, VGG): the explicit algorithm, written out with recorded switches, a scatter-*add*
  unpooling, ReLU, and ``conv_transpose2d`` with the layer's own weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnviz.viz.hooks import capture, forward_quietly, get_module, modified_backward, private_view


@dataclass
class Projection:
    """A deconvnet projection of one unit of ``layer``/``channel``."""

    image: np.ndarray  # C x H x W, input space (same size as the network's input), float32
    layer: str
    channel: int
    position: tuple[int, int]  # (y, x) of the projected unit in the layer's map
    value: float  # its activation
    method: str  # "autograd" or "switches" (deconvnet), "guided backprop"
    # Measured by is_same_for_every_image(): True when this unit projects to the same picture from any image.
    # None: not measured.
    same_for_every_image: bool | None = None


def _device_of(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def _pick_unit(fmap: torch.Tensor, channel: int, position: tuple[int, int] | None) -> tuple[int, int, float]:
    """(y, x, value) of the unit to project: ``position`` or the strongest activation of ``channel``."""
    if fmap.dim() != 4:
        raise ValueError(f"the layer's output has shape {tuple(fmap.shape)}: pick a convolutional layer "
                         "(an output with channels x height x width)")
    c, h, w = fmap.shape[1:]
    if not 0 <= channel < c:
        raise ValueError(f"channel {channel} does not exist: the layer has {c} feature maps (0..{c - 1})")
    if position is None:
        flat = int(torch.argmax(fmap[0, channel]).item())
        y, x = divmod(flat, w)
    else:
        y, x = int(position[0]), int(position[1])
        if not (0 <= y < h and 0 <= x < w):
            raise ValueError(f"position {(y, x)} is outside the {h}x{w} feature map")
    return y, x, float(fmap[0, channel, y, x].item())


def project(model: nn.Module, x: torch.Tensor, layer: str, channel: int,
            position: tuple[int, int] | None = None, *, lrn: str = "identity",
            keep_value: bool = True, relu: str = "deconv") -> Projection:
    """Deconvnet projection of the strongest activation of ``channel`` in ``layer`` (or of the unit at
    ``position``), by the modified-gradient route; works for every model of the zoo.

    ``x`` is one preprocessed image, ``1 x C x H x W`` (``cnnviz.preprocess.to_tensor_for``). The model is not
    modified (the work happens on a private view). ``keep_value`` seeds the projection with the activation's
    value (ZF); otherwise with 1. ``relu="guided"`` gives guided backprop instead (:func:`guided_backprop`).
    """
    if x.dim() == 3:
        x = x.unsqueeze(0)
    view = private_view(model)
    x = x.detach().to(_device_of(view)).clone().requires_grad_(True)
    with torch.enable_grad(), modified_backward(view, relu=relu, lrn=lrn), \
            capture(view, [layer], stop_after=layer) as store:
        forward_quietly(view, x)
        if layer not in store:
            raise RuntimeError(f"layer {layer!r} was not reached in the forward pass")
        fmap = store[layer]
        y, xx, value = _pick_unit(fmap, channel, position)
        seed = torch.zeros_like(fmap)
        seed[0, channel, y, xx] = value if keep_value else 1.0
        if not fmap.requires_grad:
            raise RuntimeError(f"layer {layer!r} does not depend on the input through differentiable operations")
        (grad,) = torch.autograd.grad(fmap, x, seed)
    method = {"deconv": "autograd", "guided": "guided backprop"}.get(relu, relu)
    return Projection(grad[0].detach().cpu().numpy().astype(np.float32), layer, channel, (y, xx), value, method)


def guided_backprop(model: nn.Module, x: torch.Tensor, layer: str, channel: int,
                    position: tuple[int, int] | None = None, *, keep_value: bool = True) -> Projection:
    """Guided backprop (Springenberg et al. 2015) of one unit: the deconvnet's way back, except that each ReLU
    also stops the signal where its forward input was not positive. Unlike the deconvnet it is conditioned on
    the image even where no max-pool switch lies below the unit. LRN keeps its true Jacobian (guided backprop
    is a gradient method; ZF's identity rule is the deconvnet's)."""
    return project(model, x, layer, channel, position, lrn="gradient", keep_value=keep_value, relu="guided")


def is_same_for_every_image(model: nn.Module, x: torch.Tensor, proj: Projection, seed: int = 0) -> bool:
    """True when ``proj``'s unit projects to the same picture, up to scale and sign (the unit's value), from
    a random input (``seed``) as from ``x``: |cosine similarity| of the two projections above 0.9999.

    Measured, not read from the architecture (see the module's docstring): one more backward pass, from the
    random input. ``proj`` is a projection of ``x`` (either method: the two agree; LRN as ZF, the default). Where
    the unit projects to nothing from both inputs, it is the same (blank) picture, and True.
    """
    if x.dim() == 3:
        x = x.unsqueeze(0)
    other = project(model, random_probe(x, seed), proj.layer, proj.channel, proj.position, keep_value=False).image
    return same_picture(proj.image, other, signed=False)


def random_probe(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A random input shaped like ``x`` (the same one for a given ``seed`` on every device), on ``x``'s device:
    what the "same for every image?" checks project from besides ``x``."""
    return torch.randn(x.shape, generator=torch.Generator().manual_seed(seed)).to(x.device, x.dtype)


def same_picture(a: np.ndarray, b: np.ndarray, signed: bool = True, tolerance: float = 1e-4) -> bool:
    """True when two projections are one picture up to a positive scale (``signed``) or any nonzero scale:
    cosine similarity (its absolute value when not ``signed``) above ``1 - tolerance``, or both blank."""
    # Element-wise sums, not np.dot / np.linalg.norm: those call the BLAS, whose threads then fight torch's
    # for the cores (measured: 90 ms added to a 60 ms projection on 2 cores).
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    na, nb = float(np.sqrt((a * a).sum())), float(np.sqrt((b * b).sum()))
    if na == 0.0 or nb == 0.0:
        return na == nb
    cos = float((a * b).sum()) / (na * nb)
    return (cos if signed else abs(cos)) > 1.0 - tolerance


# --- the explicit, switch-based deconvnet for sequential stacks -----------------------------------------------

_SUPPORTED = (nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.LocalResponseNorm, nn.BatchNorm2d, nn.Dropout, nn.Identity)


def sequential_path(model: nn.Module, layer: str) -> list[tuple[str, nn.Module]]:
    """The chain of leaf modules from the input to ``layer`` when that chain is a plain ``nn.Sequential``
    (``features.7`` -> ``features.0`` .. ``features.7``); raises ``ValueError`` otherwise."""
    get_module(model, layer)
    parent_name, _, child = layer.rpartition(".")
    parent = get_module(model, parent_name) if parent_name else model
    if not isinstance(parent, nn.Sequential):
        raise ValueError(f"{layer!r} is not inside an nn.Sequential: use the autograd deconvnet for this model")
    # The Sequential must be the first thing the model applies to its input: check by running it alone.
    chain = []
    for name, m in parent.named_children():
        chain.append((f"{parent_name}.{name}" if parent_name else name, m))
        if name == child:
            break
    for name, m in chain:
        if not isinstance(m, _SUPPORTED):
            raise ValueError(f"{name} is a {type(m).__name__}: the switch-based deconvnet handles conv / ReLU / "
                             "max-pool / LRN / batch-norm stacks only; use method='autograd'")
        if isinstance(m, nn.Conv2d) and (m.padding_mode != "zeros" or isinstance(m.padding, str)):
            raise ValueError(f"{name} pads with {m.padding_mode!r}/{m.padding!r}: only explicit zero padding "
                             "is supported by the switch-based deconvnet; use method='autograd'")
    return chain


def _unpool_add(signal: torch.Tensor, switches: torch.Tensor, in_shape: torch.Size) -> torch.Tensor:
    """Unpooling with switches that ADDS signals sharing a switch (overlapping pools; MaxUnpool2d overwrites)."""
    n, c, h, w = in_shape
    out = torch.zeros(n, c, h * w, dtype=signal.dtype, device=signal.device)
    out.scatter_add_(2, switches.flatten(2), signal.flatten(2))
    return out.view(n, c, h, w)


def _conv_transpose(signal: torch.Tensor, conv: nn.Conv2d, in_shape: torch.Size) -> torch.Tensor:
    """Transposed filtering with the conv's own weights, sized back to the conv's input."""
    sh, sw = conv.stride
    ph, pw = conv.padding
    dh, dw = conv.dilation
    kh, kw = conv.kernel_size
    oh, ow = signal.shape[2:]
    # Rows/columns the forward conv never reached (input size not a multiple of the stride) get output_padding.
    op_h = in_shape[2] - ((oh - 1) * sh - 2 * ph + dh * (kh - 1) + 1)
    op_w = in_shape[3] - ((ow - 1) * sw - 2 * pw + dw * (kw - 1) + 1)
    return F.conv_transpose2d(signal, conv.weight, None, conv.stride, (ph, pw), (op_h, op_w), conv.groups,
                              conv.dilation)


_VERIFIED: set = set()


@torch.no_grad()
def project_switches(model: nn.Module, x: torch.Tensor, layer: str, channel: int,
                     position: tuple[int, int] | None = None, *, keep_value: bool = True) -> Projection:
    """The explicit deconvnet (ZF 2.1) for a sequential conv / ReLU / max-pool stack ending at ``layer``.

    Forward: run the chain, recording each max-pool's switches. Backward: unpool (scatter-add at the
    switches), rectify, transposed-convolve with the same weights; batch norm multiplies by its eval-mode
    scale, LRN and dropout pass the signal through unchanged. Uses the weights read-only; no hooks.
    """
    if x.dim() == 3:
        x = x.unsqueeze(0)
    chain = sequential_path(model, layer)
    if chain and isinstance(chain[0][1], nn.Conv2d) and x.shape[1] != chain[0][1].in_channels:
        raise ValueError(f"input has {x.shape[1]} channels, {chain[0][0]} expects {chain[0][1].in_channels}")
    h = x.detach().to(_device_of(model))
    records: list[tuple[nn.Module, torch.Size, torch.Tensor | None]] = []
    for _name, m in chain:
        in_shape = h.shape
        switches = None
        if isinstance(m, nn.Conv2d):
            h = F.conv2d(h, m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups)
        elif isinstance(m, nn.ReLU):
            h = h.clamp(min=0)
        elif isinstance(m, nn.MaxPool2d):
            h, switches = F.max_pool2d(h, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode,
                                       return_indices=True)
        elif isinstance(m, nn.LocalResponseNorm):
            h = m(h)  # the module itself: AlexNet's LRN works within each GPU's half (groups=2)
        elif isinstance(m, nn.BatchNorm2d):
            h = F.batch_norm(h, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps)
        records.append((m, in_shape, switches))
    # The chain must be what the model really computes from its input up to ``layer`` (not, say, a
    # Sequential that the model feeds with something else): compare with the model's own forward pass.
    # Checked once per architecture (arguments, input shape) and layer: it depends on the code, not the weights.
    arch = getattr(model, "arch", None)
    key = (type(model).__qualname__, arch or str(model), repr(getattr(model, "model_args", None)),
           tuple(x.shape[1:]), layer)
    if key not in _VERIFIED:
        from cnnviz.viz.hooks import run_to

        expected = run_to(private_view(model), x.detach().to(h.device), layer)
        if expected.shape != h.shape or not torch.allclose(expected, h, rtol=1e-4, atol=1e-4):
            raise ValueError(f"the layers up to {layer!r} are not a plain sequential stack applied to the input; "
                             "use method='autograd'")
        _VERIFIED.add(key)
    y, xx, value = _pick_unit(h, channel, position)
    signal = torch.zeros_like(h)
    signal[0, channel, y, xx] = value if keep_value else 1.0
    for m, in_shape, switches in reversed(records):
        if isinstance(m, nn.Conv2d):
            signal = _conv_transpose(signal, m, in_shape)
        elif isinstance(m, nn.ReLU):
            signal = signal.clamp(min=0)
        elif isinstance(m, nn.MaxPool2d):
            signal = _unpool_add(signal, switches, in_shape)
        elif isinstance(m, nn.BatchNorm2d):
            var = m.running_var if m.running_var is not None else torch.ones_like(signal[0, :, 0, 0])
            scale = torch.rsqrt(var + m.eps)
            if m.weight is not None:
                scale = scale * m.weight
            signal = signal * scale.view(1, -1, 1, 1)
        # LRN, dropout, identity: the signal passes unchanged (ZF's deconvnet has no normalisation step).
    return Projection(signal[0].cpu().numpy().astype(np.float32), layer, channel, (y, xx), value, "switches")


def deconvnet(model: nn.Module, x: torch.Tensor, layer: str, channel: int,
              position: tuple[int, int] | None = None, method: str = "auto") -> Projection:
    """Dispatch: ``method="switches"``, ``"autograd"``, or ``"auto"`` (switches where the path is a plain
    sequential stack, autograd otherwise)."""
    if method == "switches":
        return project_switches(model, x, layer, channel, position)
    if method == "autograd":
        return project(model, x, layer, channel, position)
    if method != "auto":
        raise ValueError(f"method must be 'auto', 'autograd' or 'switches', not {method!r}")
    try:
        return project_switches(model, x, layer, channel, position)
    except ValueError:  # not a plain stack (or a bad channel, which project() reports the same way)
        return project(model, x, layer, channel, position)


def top_channels(model: nn.Module, x: torch.Tensor, layer: str, k: int = 9) -> list[tuple[int, float]]:
    """The ``k`` channels of ``layer`` with the strongest single activation for ``x``: ``[(channel, value)]``."""
    from cnnviz.viz.hooks import run_to

    if x.dim() == 3:
        x = x.unsqueeze(0)
    view = private_view(model)
    with torch.inference_mode():
        fmap = run_to(view, x.to(_device_of(view)), layer)
    if fmap.dim() != 4:
        raise ValueError(f"{layer!r} is not a convolutional layer (output {tuple(fmap.shape)})")
    peak = fmap[0].flatten(1).amax(1)
    vals, idx = peak.topk(min(k, peak.numel()))
    return [(int(i), float(v)) for i, v in zip(idx.tolist(), vals.tolist(), strict=True)]
