"""Layers shared by several families: local response normalisation (AlexNet, ZFNet, GoogLeNet).

``torch.nn.LocalResponseNorm`` sums the squares of neighbouring maps with ``avg_pool3d`` over a padded copy of
the input, which is slow on a CPU: on the 2-core dev machine it took about a third of AlexNet's forward pass at
64x64. The window sum across channels is a product with a banded ``C x C`` matrix, which a matrix multiply
does in one pass (and in bf16 under autocast); the rest is elementwise. Same function, same gradient (tested
against ``nn.LocalResponseNorm``), about 3x faster there (``bench/bench_viz.py`` reports the scan it speeds up).
Training differentiates it with a hand-written backward (``_LRNFunction``), not autograd through those ops:
about 1.8x faster forward + backward at AlexNet's norm1 (``bench/bench_train_step.py``).
"""

from __future__ import annotations

import functools

import torch
import torch.nn as nn


@functools.lru_cache(maxsize=64)
def _band(channels: int, size: int, groups: int, scale: float, device: torch.device,
          dtype: torch.dtype) -> torch.Tensor:
    """``B[c, j] = scale`` where map ``j`` is in map ``c``'s window (and in its group), else 0.

    The window is torch's: ``size // 2`` maps before ``c`` and ``(size - 1) // 2`` after it.
    """
    # Built outside inference mode even when first asked for inside it (a top-9 scan): a cached inference
    # tensor could not be saved for backward later (training, deconvnet projections).
    with torch.inference_mode(False):
        c = torch.arange(channels, device=device)
        offset = c.view(1, -1) - c.view(-1, 1)  # j - c
        inside = (offset >= -(size // 2)) & (offset <= (size - 1) // 2)
        group = c // (channels // groups)
        inside &= group.view(-1, 1) == group.view(1, -1)
        return inside.to(dtype) * scale


def _band_for(channels: int, size: int, groups: int, scale: float, device: torch.device,
              dtype: torch.dtype) -> torch.Tensor:
    """:func:`_band`, cached in eager mode. Under torch.compile the uncached function is traced instead (the
    band becomes a few ops in the graph): Dynamo ignores an lru_cache anyway, and warns of "potential silent
    incorrectness" when it meets one, a warning every compiled AlexNet, ZFNet and GoogLeNet printed."""
    if torch.compiler.is_compiling():
        return _band.__wrapped__(channels, size, groups, scale, device, dtype)
    return _band(channels, size, groups, scale, device, dtype)


def _window(sq: torch.Tensor, band: torch.Tensor, transpose: bool = False) -> torch.Tensor:
    """``sum_j band[c, j] * sq[:, j]`` for every map ``c`` (``band[j, c]`` with ``transpose``): one GEMM over
    the channel axis. A channels-last input is multiplied as N x H x W x C rows, so no transposed copy."""
    n, c, h, w = sq.shape
    if sq.is_contiguous(memory_format=torch.channels_last) and not sq.is_contiguous():
        return torch.matmul(sq.permute(0, 2, 3, 1), band if transpose else band.t()).permute(0, 3, 1, 2)
    return torch.matmul(band.t() if transpose else band, sq.reshape(n, c, h * w)).view(n, c, h, w)


def _inverse_power(denom: torch.Tensor, beta: float) -> torch.Tensor:
    """``denom ** -beta`` as a new tensor (``denom`` is left as it is); for AlexNet's beta 0.75 as
    ``1 / sqrt(d * sqrt(d))``, much cheaper than ``pow``."""
    return denom.sqrt().mul_(denom).rsqrt_() if beta == 0.75 else denom.pow(-beta)


class _LRNFunction(torch.autograd.Function):
    """LRN with a hand-written backward, for training.

    With ``d_c = k + sum_j B[c, j] a_j^2`` (``B`` the band, alpha/n inside it) and ``b_c = a_c d_c^-beta``:

        dL/da_j = g_j d_j^-beta - 2 beta a_j sum_c B[c, j] g_c a_c d_c^(-beta-1)

    that is ``g * scale - 2 beta * a * (B^T (g * a * scale / d))``: a few elementwise passes and one GEMM.
    The elementwise work is in float32 (autocast's rule for pow/rsqrt; the forward's window GEMM follows
    autocast, bf16 under it), converting a bf16 input and gradient once each: CPU kernels that mix bf16 and
    float32 convert an operand on every call, and autograd through the forward's own ops did that a dozen
    times. At AlexNet's norm1 (64 x 96 x 56 x 56, bf16, two threads)
    forward and backward take about half the time autograd took, with the same values (docs/benchmarks.md,
    "One training step, taken apart").
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, band: torch.Tensor, k: float, beta: float) -> torch.Tensor:
        dtype = torch.promote_types(x.dtype, torch.float32)
        xf = x.to(dtype)
        # Under autocast the window's GEMM runs in bf16, as before. No autocast(enabled=False) block here:
        # torch.compile carried its "disabled" past this function, and the next conv then met bf16 input
        # with float32 weights (found on an H200, compiled AlexNet; tests/test_models_lrn.py covers it).
        denom = _window(xf * xf, band).to(dtype).add_(k)  # the band comes in float32 (float64 for float64)
        scale = _inverse_power(denom, beta)
        ctx.save_for_backward(xf, band, scale, scale / denom)
        ctx.beta = beta
        return (xf * scale).to(x.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        xf, band, scale, scale_over_denom = ctx.saved_tensors
        gf = grad.to(xf.dtype)
        # Saved tensors stay untouched: a graph kept with retain_graph=True is walked back again.
        spread = torch.mul(gf, scale_over_denom).mul_(xf)  # g_c a_c d_c^(-beta-1)
        spread = _window(spread, band, transpose=True).to(xf.dtype)  # backward runs outside autocast
        spread.mul_(xf).mul_(-2.0 * ctx.beta).addcmul_(gf, scale)
        return spread.to(grad.dtype), None, None, None


class LocalResponseNorm(nn.LocalResponseNorm):
    """``nn.LocalResponseNorm`` (``b_c = a_c / (k + alpha/n * sum_{j near c} a_j^2) ^ beta``), optionally within
    each of ``groups`` channel groups, computed with a banded matrix multiply.

    ``groups=2`` is AlexNet's: in the paper's two-GPU network each GPU normalised the maps it held, so the
    window never reaches across the two halves; ``groups=1`` is exactly ``nn.LocalResponseNorm``. It stays a
    subclass with the same class name, so tables, hooks and the deconvnet treat it as the LRN it is. The
    normalising factor is computed in float32, except for bf16 inputs with no gradient wanted (inference on
    a bf16 copy, as the top-9 scan runs), where it stays in bf16. With a gradient wanted (training, a
    deconvnet projection with ``lrn="gradient"``) it runs ``_LRNFunction``.
    """

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0, groups: int = 1) -> None:
        super().__init__(size, alpha=alpha, beta=beta, k=k)
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] % self.groups:
            if self.groups == 1:
                return super().forward(x)
            raise ValueError(f"LRN with groups={self.groups} needs N x C x H x W input with C divisible by "
                             f"{self.groups}, got {tuple(x.shape)}")
        if torch.is_grad_enabled() and x.requires_grad:
            band = _band_for(x.shape[1], self.size, self.groups, self.alpha / self.size, x.device,
                             torch.promote_types(x.dtype, torch.float32))
            return _LRNFunction.apply(x, band, float(self.k), float(self.beta))
        band = _band_for(x.shape[1], self.size, self.groups, self.alpha / self.size, x.device, x.dtype)
        window = _window(x * x, band)
        if x.dtype == torch.bfloat16:
            # bf16 inference (a top-9 scan): the factor in bf16 too, about 1.15x faster for AlexNet's scan;
            # it adds an error of the order of bf16's own rounding of the output (about 0.4%).
            denom = window + self.k
        else:  # float32: the factor in float32
            denom = window.to(torch.promote_types(x.dtype, torch.float32)) + self.k
        # Few passes and few temporaries (each is a full-size tensor): in place, no graph to keep.
        return _inverse_power(denom, self.beta).mul_(x).to(x.dtype)

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", groups={self.groups}" if self.groups != 1 else "")
