"""What compression costs a trained model: int8 per output channel, and truncated SVD of the fc layers.

``.venv/bin/python -m bench.bench_compress [--checkpoint PATH ...] [--images N] [--fc6 64,128,...]``

For each checkpoint (default: the shipped starters), on ``--images`` val images spread evenly over the split
(default all 10,000), in float32:

* **int8**: the whole model with every conv/linear weight int8 per output channel, against the checkpoint's
  own weights (``cnnviz.starter.measure_compression``: top-1/top-5 change, logits' relative L2 error);
* **SVD sweep** (models with big fully connected layers: AlexNet, ZFNet, VGG): the features are computed once
  (by the reference model and by the int8 model); every rank combination then re-runs only the head, with
  the truncated layers applied as their two int8 factors. Reported with the energy each rank keeps
  (``sum s_i^2`` over the kept singular values / all) and the file size under that plan.

Written to docs/benchmarks.md (section ``compress``). It chose the ranks of ``cnnviz.compress.default_plan``.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench._report import write_section  # noqa: E402
from cnnviz.checkpoint import load_checkpoint  # noqa: E402
from cnnviz.compress import (  # noqa: E402
    compress_state_dict,
    compressed_bytes,
    decompress_state_dict,
    dequantize_rows,
    make_plan,
    quantize_rows,
)
from cnnviz.starter import measure_compression, starter_dir  # noqa: E402

_LOAD_AT_START = os.getloadavg()


class _FactoredLinear(nn.Module):
    """``x @ R^T @ L^T + b``: an SVD-truncated Linear applied as its two (dequantised int8) factors."""

    def __init__(self, left: torch.Tensor, right: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.left, self.right, self.bias = left, right, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = (x @ self.right.T) @ self.left.T
        return y if self.bias is None else y + self.bias


def _int8_model(model: nn.Module) -> nn.Module:
    tensors, spec = compress_state_dict(model.state_dict(), make_plan(int8=True))
    out = copy.deepcopy(model)
    out.load_state_dict(decompress_state_dict(tensors, spec))
    return out.eval()


def _features(model: nn.Module, images: torch.Tensor, batch: int = 250) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model.forward_features(images[i:i + batch]) for i in range(0, len(images), batch)])


def _val_batch(meta: dict, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    from cnnviz.data import BatchPipeline, load_split
    from cnnviz.train import resolve_data

    val = load_split(resolve_data((meta.get("train_config") or {}).get("data") or "auto"), "val")
    images, labels = val.images, val.labels
    if n is not None and n < len(labels):
        pick = torch.linspace(0, len(labels) - 1, n).long().numpy()
        images, labels = images[pick], labels[pick]
    pipe = BatchPipeline(images, labels, len(labels), "cpu", train=False, augment="none", mean=meta["mean"],
                         std=meta["std"], drop_last=False, size=int(meta["input_size"]))
    return next(iter(pipe))


def _scores(z: torch.Tensor, ref: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    rel = (z - ref).norm(dim=1) / ref.norm(dim=1)
    top5 = z.topk(5, dim=1).indices
    return {"top1": (top5[:, 0] == y).float().mean().item(), "top5": (top5 == y[:, None]).any(1).float().mean().item(),
            "rel_mean": rel.mean().item(), "rel_max": rel.max().item(),
            "same": (z.argmax(1) == ref.argmax(1)).float().mean().item()}


def svd_sweep(ckpt, int8_model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
              configs: list[tuple[int | None, ...]]) -> list[str]:
    """Markdown rows: each (fc6, fc7, fc8) rank combination (None: int8, full rank) against the reference."""
    model = ckpt.model
    linears = [(f"{n}.weight", m) for n, m in model.named_modules() if isinstance(m, nn.Linear)][:3]
    t = time.perf_counter()
    svds = {k: torch.linalg.svd(m.weight.detach().float(), full_matrices=False) for k, m in linears}
    svd_s = time.perf_counter() - t
    f_ref, f_q = _features(model, images), _features(int8_model, images)
    with torch.no_grad():
        ref = model.forward_head(f_ref)
        base = _scores(ref, ref, labels)
        rows = [f"SVD sweep: {len(labels)} val images; reference top-1 {100 * base['top1']:.2f}%, top-5 "
                f"{100 * base['top5']:.2f}%; full SVDs of {', '.join(k for k, _ in linears)} took {svd_s:.0f} s",
                "", "| fc6 rank | fc7 rank | fc8 rank | energy kept (fc6/fc7/fc8) | top-1 change | top-5 change | "
                "same top-1 | logit error mean | max | file |", "|---|---|---|---|---|---|---|---|---|---|"]
        for ranks in configs:
            head = copy.deepcopy(int8_model).eval()
            plan_ranks, energy = {}, []
            for (key, _), r in zip(linears, ranks, strict=False):
                s = svds[key][1]
                if r is None or r >= len(s):
                    energy.append("1")
                    continue
                u, vh = svds[key][0], svds[key][2]
                root = s[:r].sqrt()
                left = dequantize_rows(*quantize_rows(u[:, :r] * root))
                right = dequantize_rows(*quantize_rows(root[:, None] * vh[:r]))
                parent, _, attr = key.removesuffix(".weight").rpartition(".")
                owner = head.get_submodule(parent) if parent else head
                setattr(owner, attr, _FactoredLinear(left, right, getattr(owner, attr).bias))
                plan_ranks[key] = r
                energy.append(f"{(s[:r].square().sum() / s.square().sum()).item():.3f}")
            z = head.forward_head(f_q)
            sc = _scores(z, ref, labels)
            mib = compressed_bytes(model, make_plan(int8=True, svd_ranks=plan_ranks)) / 2**20
            cells = [str(r) if r else "full (int8)" for r in ranks] + ["full (int8)"] * (3 - len(ranks))
            rows.append(f"| {' | '.join(cells)} | {' / '.join(energy)} | "
                        f"{100 * (sc['top1'] - base['top1']):+.2f} pp | {100 * (sc['top5'] - base['top5']):+.2f} pp | "
                        f"{100 * sc['same']:.1f}% | {100 * sc['rel_mean']:.1f}% | {100 * sc['rel_max']:.1f}% | "
                        f"{mib:.2f} MiB |")
            print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", action="append", help="checkpoint path (repeatable; default: the starters)")
    p.add_argument("--images", type=int, default=None, help="val images (default all)")
    p.add_argument("--svd-images", type=int, default=2000, help="val images for the SVD sweep")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    paths = args.checkpoint or [str(w) for w in sorted(starter_dir(REPO / "checkpoints").glob("*.safetensors"))]
    rows = ["| checkpoint | arch | images | top-1 before | top-1 change | top-5 change | same top-1 | "
            "logit error mean | max | int8 file |", "|---|---|---|---|---|---|---|---|---|---|"]
    sweeps: list[str] = []
    for path in paths:
        ckpt = load_checkpoint(path)
        t = time.perf_counter()
        q = _int8_model(ckpt.model)
        m = measure_compression(ckpt.model, q, ckpt.meta, device="cpu", max_images=args.images)
        mib = compressed_bytes(ckpt.model, make_plan(int8=True)) / 2**20
        rows.append(f"| `{Path(path).stem}` | {ckpt.meta['arch']} | {m['n']} | {100 * m['reference_top1']:.2f}% | "
                    f"{m['top1_change_pp']:+.2f} pp | {m['top5_change_pp']:+.2f} pp | "
                    f"{100 * m['same_top1_fraction']:.1f}% | {100 * m['logit_rel_error_mean']:.2f}% | "
                    f"{100 * m['logit_rel_error_max']:.2f}% | {mib:.2f} MiB |")
        print(rows[-1], f"({time.perf_counter() - t:.0f} s)", flush=True)
        big = [m for m in ckpt.model.modules() if isinstance(m, nn.Linear) and m.weight.numel() >= 2**22]
        if big:
            x, y = _val_batch(ckpt.meta, args.svd_images)
            configs = [(r6, None, None) for r6 in (64, 128, 192, 256, 384, 512)]
            configs += [(None, r7, None) for r7 in (32, 64, 128, 256)]
            configs += [(None, None, r8) for r8 in (32, 64, 128)]
            configs += [(256, 128, None), (192, 128, None), (192, 96, None), (128, 128, None), (128, 64, None),
                        (64, 64, None), (256, 128, 64)]
            sweeps += [f"\n`{Path(path).stem}` ({ckpt.meta['arch']}, epoch {ckpt.meta.get('epoch')}, step "
                       f"{ckpt.meta.get('step')}):", ""] + svd_sweep(ckpt, q, x, y, configs)
    load = ", ".join(f"{x:.1f}" for x in _LOAD_AT_START)
    body = ("## Compressed checkpoints (`bench/bench_compress.py`)\n\n"
            "int8 per output channel, the whole model, against each checkpoint's own weights in float32 "
            f"(load average at start: {load}):\n\n" + "\n".join(rows) + "\n" + "\n".join(sweeps))
    print(body)
    if not args.no_write:
        print("written to", write_section("compress", body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
