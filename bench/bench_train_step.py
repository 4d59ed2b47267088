"""One training step, taken apart: what the LRN backward and the fused optimizer buy (an ablation, airbench-style).

    .venv/bin/python -m bench.bench_train_step                 # CPU: AlexNet, ZFNet, GoogLeNet at 64x64, each
                                                               # as the zoo trains it (its member's variant)
    .venv/bin/python -m bench.bench_train_step --device cuda --batch-size 256

Each step is the training loop's: bf16 autocast (where the device has it), channels-last, cross-entropy,
backward, optimizer step (AdamW, weight decay on weights only). Four settings per architecture, interleaved
in one process so a busy host slows them alike: LRN through autograd (the forward's own ops, the training
path before ``_LRNFunction``) or through ``_LRNFunction``; the optimizer's default foreach path
or its fused kernels. The median of ``--steps`` steps after one warm-up step, per setting and round. A
second table times LRN alone (forward and backward) at AlexNet's norm1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn as nn

from bench._report import write_section
from cnnviz.models.layers import LocalResponseNorm, _band, _window


class AutogradLRN(LocalResponseNorm):
    """The training path before the hand-written backward: the same forward, differentiated by autograd."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        band = _band(x.shape[1], self.size, self.groups, self.alpha / self.size, x.device, x.dtype)
        denom = _window(x * x, band).to(torch.promote_types(x.dtype, torch.float32)) + self.k
        scale = (denom * denom.sqrt()).rsqrt() if self.beta == 0.75 else denom.pow(-self.beta)
        return (x * scale).to(x.dtype)


def _swap_lrn(model: nn.Module, autograd: bool) -> None:
    for m in model.modules():
        if isinstance(m, LocalResponseNorm):
            m.__class__ = AutogradLRN if autograd else LocalResponseNorm


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _zoo_variant(arch: str) -> dict:
    """The network the zoo trains for ``arch`` (GoogLeNet's small stem, AlexNet's He init), or the default."""
    from cnnviz.zoo.recipe import member_for_arch

    m = member_for_arch(arch)
    return dict(m.variant) if m else {}


def _step_times(arch: str, device: torch.device, batch: int, steps: int, amp: bool) -> dict[tuple, list[float]]:
    from cnnviz.models import create_model
    from cnnviz.training.optim import param_groups

    torch.manual_seed(0)
    model = create_model(arch, num_classes=200, input_size=64, **_zoo_variant(arch))
    model = model.to(device, memory_format=torch.channels_last)
    model.train()
    x = torch.randn(batch, 3, 64, 64, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 200, (batch,), device=device)
    settings = [(lrn, opt) for lrn in ("autograd", "ours") for opt in ("foreach", "fused")]
    optimizers = {opt: torch.optim.AdamW(param_groups(model, 0.05), lr=1e-5, **({"fused": True} if opt == "fused"
                                                                                 else {"foreach": True}))
                  for opt in ("foreach", "fused")}
    times: dict[tuple, list[float]] = {s: [] for s in settings}
    for _ in range(2):  # two rounds, interleaved
        for lrn, opt in settings:
            _swap_lrn(model, lrn == "autograd")
            for i in range(steps + 1):
                _sync(device)
                t0 = time.perf_counter()
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    out = model(x)
                    out = out[0] if isinstance(out, tuple) else out
                loss = nn.functional.cross_entropy(out.float(), y)
                optimizers[opt].zero_grad(set_to_none=True)
                loss.backward()
                optimizers[opt].step()
                _sync(device)
                if i:  # the first step of a setting warms its caches
                    times[(lrn, opt)].append(time.perf_counter() - t0)
    return times


def _lrn_alone(device: torch.device, batch: int, amp: bool, repeats: int = 7) -> dict[str, float]:
    shape = (batch, 96, 56, 56)  # AlexNet's norm1 at 64x64 (small stem), two groups
    g = torch.Generator().manual_seed(0)
    dtype = torch.bfloat16 if amp else torch.float32
    x0 = (torch.rand(shape, generator=g) * 30).to(device, dtype).contiguous(memory_format=torch.channels_last)
    grad = torch.randn(shape, generator=g).to(device, dtype).contiguous(memory_format=torch.channels_last)
    out = {}
    for name, cls in (("autograd", AutogradLRN), ("ours", LocalResponseNorm)) * 2:
        lrn = cls(5, alpha=5e-4, beta=0.75, k=2.0, groups=2)
        times = []
        for _ in range(repeats):
            x = x0.clone().requires_grad_(True)
            _sync(device)
            t0 = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                y = lrn(x)
            y.backward(grad)
            _sync(device)
            times.append(time.perf_counter() - t0)
        out.setdefault(name, []).extend(times)
    return {k: statistics.median(v) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", action="append", help="architecture(s) (default: alexnet, zfnet, googlenet)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=3, help="timed steps per setting and round")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = p.parse_args(argv)
    from cnnviz.device import bf16_autocast_ok, pick_device

    device = pick_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(min(2, os.cpu_count() or 1))
    amp = bf16_autocast_ok(device)
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    archs = args.arch or ["alexnet", "zfnet", "googlenet"]
    b = args.batch_size
    lines = [f"## One training step, taken apart (`bench.bench_train_step`, {device.type}, batch {b}, 64x64, "
             f"{'bf16 autocast' if amp else 'float32'}, channels-last, AdamW)", "",
             "Median seconds per step (images/s). *Before*: LRN differentiated by autograd, optimizer's foreach "
             "path; *now*: `_LRNFunction`'s hand-written backward, fused optimizer.", "",
             "| architecture | before | LRN backward only | fused optimizer only | now (both) | speed-up |",
             "|---|---:|---:|---:|---:|---:|"]
    for arch in archs:
        t = {k: statistics.median(v) for k, v in _step_times(arch, device, b, args.steps, amp).items()}
        cell = {k: f"{v:.2f} s ({b / v:.0f})" for k, v in t.items()}
        before, now = t[("autograd", "foreach")], t[("ours", "fused")]
        variant = ", ".join(f"{k}={v}" for k, v in _zoo_variant(arch).items())
        lines.append(f"| {arch}{f' ({variant})' if variant else ''} | {cell[('autograd', 'foreach')]} | {cell[('ours', 'foreach')]} | "
                     f"{cell[('autograd', 'fused')]} | {cell[('ours', 'fused')]} | **{before / now:.2f}x** |")
        print(lines[-1], flush=True)
    alone = _lrn_alone(device, b, amp)
    lines += ["", f"LRN alone at AlexNet's norm1 ({b} x 96 x 56 x 56, two groups, "
              f"{'bf16' if amp else 'float32'}), forward + backward, median of 14: autograd "
              f"{1000 * alone['autograd']:.0f} ms, ours {1000 * alone['ours']:.0f} ms "
              f"(**{alone['autograd'] / alone['ours']:.2f}x**). Same values: `tests/test_models_lrn.py` checks ours "
              "against `nn.LocalResponseNorm`'s gradient (float64, gradcheck) and under bf16 autocast."]
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines += ["", f"Load average on {os.cpu_count()} cores: {load_start:.1f} at the start, {load_end:.1f} at the "
              "end (the benchmark's own two threads make about 2; more means other work shared the cores)."]
    print("\n".join(lines[-3:]))
    if not args.no_write:
        write_section("train_step", "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
