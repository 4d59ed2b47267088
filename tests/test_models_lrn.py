"""The banded-matmul LocalResponseNorm is nn.LocalResponseNorm: same values, same gradients, any layout."""

import warnings

import pytest
import torch
import torch.nn as nn

from cnnviz.models.layers import LocalResponseNorm


def reference(x, size, alpha, beta, k, groups):
    torch_lrn = nn.LocalResponseNorm(size, alpha=alpha, beta=beta, k=k)
    return torch.cat([torch_lrn(part) for part in x.chunk(groups, dim=1)], dim=1)


@pytest.mark.parametrize("size", [1, 4, 5, 7])
@pytest.mark.parametrize("beta", [0.75, 0.5])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("channels_last", [False, True])
def test_matches_torch_lrn(size, beta, groups, channels_last):
    g = torch.Generator().manual_seed(size)
    x = torch.rand(3, 12, 5, 4, generator=g, dtype=torch.float64) * 80  # large enough for alpha to matter
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    ours = LocalResponseNorm(size, alpha=5e-4, beta=beta, k=2.0, groups=groups)(x)
    expected = reference(x.contiguous(), size, 5e-4, beta, 2.0, groups)
    assert ours.shape == expected.shape and ours.dtype == torch.float64
    assert torch.allclose(ours, expected, rtol=1e-12, atol=0)
    assert not torch.allclose(ours, x, rtol=1e-3)  # it does normalise


@pytest.mark.parametrize("beta", [0.75, 0.5])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("channels_last", [False, True])
def test_gradient_matches_torch_lrn(beta, groups, channels_last):
    # Training goes through the hand-written backward (_LRNFunction): it must be LRN's true Jacobian.
    x = torch.rand(2, 8, 3, 3, dtype=torch.float64) * 50
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    lrn = LocalResponseNorm(5, alpha=5e-4, beta=beta, k=2.0, groups=groups)
    assert torch.autograd.gradcheck(lrn, (x,))
    w = torch.randn(2, 8, 3, 3, dtype=torch.float64)
    (g_ours,) = torch.autograd.grad((lrn(x) * w).sum(), x)
    (g_ref,) = torch.autograd.grad((reference(x.contiguous(), 5, 5e-4, beta, 2.0, groups) * w).sum(), x)
    assert torch.allclose(g_ours, g_ref, rtol=1e-10)
    assert not torch.allclose(g_ours, w, rtol=1e-3)  # the normalisation shows in the gradient too


def test_training_and_inference_paths_give_the_same_output():
    x = torch.rand(2, 10, 4, 4) * 60
    lrn = LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0, groups=2)
    with torch.no_grad():
        inference = lrn(x)
    training = lrn(x.clone().requires_grad_(True))
    assert training.grad_fn is not None
    assert torch.allclose(training.detach(), inference, rtol=1e-6)


def test_bf16_autocast_gradient_stays_close():
    # AlexNet's training step: bf16 activations under autocast; the factor and the gradient in float32.
    x = torch.rand(4, 16, 6, 6) * 60
    w = torch.randn(4, 16, 6, 6)
    lrn = LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)
    xb = x.bfloat16().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = lrn(xb)
    (out.float() * w).sum().backward()
    assert out.dtype == torch.bfloat16 and xb.grad.dtype == torch.bfloat16
    xr = xb.detach().double().requires_grad_(True)  # the same (bf16-rounded) input and output gradient
    (reference(xr, 5, 5e-4, 0.75, 2.0, 1) * w.bfloat16().double()).sum().backward()
    error = (xb.grad.double() - xr.grad).norm() / xr.grad.norm()
    assert error < 4e-3  # bf16's own rounding of the result is about 2e-3


def test_band_cached_in_inference_mode_still_works_with_autograd():
    # A top-9 scan runs under inference_mode first; a deconvnet projection or training step follows.
    lrn = LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)
    with torch.inference_mode():
        lrn(torch.rand(1, 13, 4, 4))
    x = torch.rand(1, 13, 4, 4, requires_grad=True)
    lrn(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_bf16_autocast_keeps_the_dtype_and_stays_close():
    x = torch.rand(4, 16, 6, 6) * 60
    lrn = LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = lrn(x.bfloat16())
    assert out.dtype == torch.bfloat16
    assert torch.allclose(out.float(), reference(x, 5, 5e-4, 0.75, 2.0, 1), rtol=2e-2)


def test_other_ranks_fall_back_and_bad_groups_are_refused():
    x = torch.rand(2, 6, 10, dtype=torch.float64) * 50  # N x C x L
    assert torch.allclose(LocalResponseNorm(3)(x), nn.LocalResponseNorm(3)(x))
    with pytest.raises(ValueError, match="groups=2"):
        LocalResponseNorm(5, groups=2)(torch.rand(1, 5, 2, 2))


def test_compiled_under_bf16_autocast_the_next_layers_still_autocast():
    # A compiled AlexNet on an H200 once failed at conv2 ("Input type BFloat16 and bias type float"): an
    # autocast(enabled=False) block inside the LRN's autograd.Function leaked past it under torch.compile.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0, groups=2),
                          nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, groups=2))
    x = torch.rand(2, 3, 12, 12) * 30
    with torch.autocast("cpu", dtype=torch.bfloat16), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        eager = model(x)
        compiled = torch.compile(model)(x)
    compiled.float().sum().backward()
    # the band's cache is not traced through (Dynamo warned of "potential silent incorrectness" when it was)
    assert not [w for w in caught if "lru_cache" in str(w.message)], [str(w.message)[:120] for w in caught]
    assert compiled.dtype == eager.dtype == torch.bfloat16
    assert torch.allclose(compiled.float(), eager.float(), rtol=3e-2, atol=3e-2)
    assert model[0].weight.grad is not None and torch.isfinite(model[0].weight.grad).all()
