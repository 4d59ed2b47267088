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

``--shipped`` (the default without ``--checkpoint``) measures nothing: the shipped starters are already compressed, so their cost was measured when
they were exported, against the float32 checkpoint of the run (on the machine that trained them; the zoo's
on its GPU). It tabulates those records (``compression.measured`` in each starter's JSON) into the
section ``compress-shipped``, stamped with that machine and time.
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
    dev = next(model.parameters()).device
    with torch.no_grad():
        return torch.cat([model.forward_features(images[i:i + batch].to(dev)) for i in range(0, len(images), batch)])


def _val_batch(meta: dict, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    from cnnviz.data import BatchPipeline, load_split, resolve_data

    val = load_split(resolve_data(meta.trained_on or "auto"), "val")
    images, labels = val.images, val.labels
    if n is not None and n < len(labels):
        pick = torch.linspace(0, len(labels) - 1, n).long().numpy()
        images, labels = images[pick], labels[pick]
    pipe = BatchPipeline(images, labels, len(labels), "cpu", train=False, augment="none", mean=meta.mean,
                         std=meta.std, drop_last=False, size=meta.input_size)
    return next(iter(pipe))


def _scores(z: torch.Tensor, ref: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    rel = (z - ref).norm(dim=1) / ref.norm(dim=1)
    top5 = z.topk(5, dim=1).indices
    return {"top1": (top5[:, 0] == y).float().mean().item(), "top5": (top5 == y[:, None]).any(1).float().mean().item(),
            "rel_mean": rel.mean().item(), "rel_max": rel.max().item(),
            "same": (z.argmax(1) == ref.argmax(1)).float().mean().item()}


def svd_sweep(ckpt, int8_model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
              configs: list[tuple[int | None, ...]], features: bool = True) -> list[str]:
    """Markdown rows: each (fc6, fc7, fc8) rank combination (None: int8, full rank) against the reference.
    ``features=False``: ``images`` already are the head's input (the int8 model then quantises the head only)."""
    model = ckpt.model
    linears = [(f"{n}.weight", m) for n, m in model.named_modules() if isinstance(m, nn.Linear)][:3]
    t = time.perf_counter()
    svds = {k: torch.linalg.svd(m.weight.detach().float(), full_matrices=False) for k, m in linears}
    svd_s = time.perf_counter() - t
    if features:
        f_ref, f_q = _features(model, images), _features(int8_model, images)
    else:
        f_ref = f_q = images
        int8_model = _int8_model(model)
    with torch.no_grad():
        ref = model.forward_head(f_ref)
        base = _scores(ref, ref, labels.to(ref.device))
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
            sc = _scores(z, ref, labels.to(z.device))
            mib = compressed_bytes(model, make_plan(int8=True, svd_ranks=plan_ranks)) / 2**20 if features else None
            cells = [str(r) if r else "full (int8)" for r in ranks] + ["full (int8)"] * (3 - len(ranks))
            rows.append(f"| {' | '.join(cells)} | {' / '.join(energy)} | "
                        f"{100 * (sc['top1'] - base['top1']):+.2f} pp | {100 * (sc['top5'] - base['top5']):+.2f} pp | "
                        f"{100 * sc['same']:.1f}% | {100 * sc['rel_mean']:.1f}% | {100 * sc['rel_max']:.1f}% | "
                        f"{f'{mib:.2f} MiB' if features else 'n/a'} |")
            print(rows[-1], flush=True)
    return rows


def _pooled_features(ckpt, split, n: int, batch: int = 250) -> tuple[torch.Tensor, torch.Tensor]:
    """Global-average-pooled final features of ``n`` images spread over ``split`` (no augmentation)."""
    from cnnviz.data import BatchPipeline

    model = ckpt.model
    pick = torch.linspace(0, len(split.labels) - 1, n).long().numpy()
    pipe = BatchPipeline(split.images[pick], split.labels[pick], batch, "cpu", train=False, augment="none",
                         mean=ckpt.meta.mean, std=ckpt.meta.std, drop_last=False)
    feats, labels = [], []
    with torch.no_grad():
        for x, y in pipe:
            feats.append(model.forward_features(x).mean(dim=(2, 3)))
            labels.append(y)
    return torch.cat(feats), torch.cat(labels)


def head_proxy(checkpoint: str, n_train: int, n_val: int, epochs: int) -> list[str]:
    """A trained AlexNet-style head (fc6 -> 4096, fc7 4096 x 4096, fc8 -> 200, ReLU + dropout 0.5) on the
    frozen pooled features of a trained checkpoint, then the SVD sweep on it: a real trained 4096 x 4096 fc7
    for a few minutes of CPU, where no AlexNet, ZFNet or VGG has been trained yet."""
    from cnnviz.data import load_split, resolve_data

    ckpt = load_checkpoint(checkpoint)
    root = resolve_data("auto")
    t = time.perf_counter()
    xtr, ytr = _pooled_features(ckpt, load_split(root, "train"), n_train)
    xva, yva = _pooled_features(ckpt, load_split(root, "val"), n_val)
    feat_s = time.perf_counter() - t
    torch.manual_seed(0)
    head = nn.Sequential()
    for name, module in [("fc6", nn.Linear(xtr.shape[1], 4096)), ("relu6", nn.ReLU()), ("drop6", nn.Dropout(0.5)),
                         ("fc7", nn.Linear(4096, 4096)), ("relu7", nn.ReLU()), ("drop7", nn.Dropout(0.5)),
                         ("fc8", nn.Linear(4096, int(ytr.max()) + 1))]:
        head.add_module(name, module)
    steps = epochs * (n_train // 128)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=steps, pct_start=0.1)
    t = time.perf_counter()
    head.train()
    for _ in range(steps):
        idx = torch.randint(0, n_train, (128,))
        loss = nn.functional.cross_entropy(head(xtr[idx]), ytr[idx], label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    train_s = time.perf_counter() - t
    head.eval()

    class _Head(nn.Module):  # what svd_sweep expects: forward_head on (cached) features
        def __init__(self, seq):
            super().__init__()
            self.classifier = seq

        def forward_head(self, x):
            return self.classifier(x)

    model = _Head(head)
    fake = type("Ckpt", (), {"model": model})()
    rows = [f"Head proxy on `{Path(checkpoint).stem}` pooled features ({xtr.shape[1]}-d): trained on {n_train} "
            f"train images for {steps} AdamW steps (batch 128, {epochs} epochs; features {feat_s:.0f} s, training "
            f"{train_s:.0f} s); measured on {n_val} val images.", ""]
    configs = [(None, None, None)] + [(None, r7, None) for r7 in (32, 64, 96, 128, 192, 256, 512)]
    configs += [(r6, None, None) for r6 in (32, 64, 128, 256)] + [(None, None, r8) for r8 in (50, 100, 150)]
    configs += [(64, 64, None), (128, 128, None), (256, 128, None)]
    return rows + svd_sweep(fake, copy.deepcopy(model), xva, yva, configs, features=False)


def shipped(root: Path = REPO / "checkpoints") -> tuple[str, str, str, float]:
    """(Markdown table, where, when, largest gap in pp between the record's float32 top-1 of the shipped file and
    the top-1 the pages show, ``evaluate``'s with bf16 autocast) of the shipped starters' compression records."""
    import json

    from cnnviz.zoo.results import list_results, results_dir

    cards = {r.get("starter", {}).get("checkpoint"): r.get("device_name") for r in list_results(results_dir(root))}
    rows = ["| starter | arch | what was done | file | float16 would be | val images | top-1 float32 -> shipped | "
            "top-5 change | same top-1 | logit error mean | max | measured on |", "|---|---|---|---|---|---|---|---|"
            "---|---|---|---|"]
    cards_seen, created, gap = set(), [], 0.0
    for meta_path in sorted(starter_dir(root).glob("*.json")):
        meta = json.loads(meta_path.read_text())
        c = meta.get("compression") or {}
        m = c.get("measured")
        if not m:
            continue
        card = cards.get(meta_path.stem + ".safetensors") or m.get("device", "?")
        cards_seen.add(card)
        shown = (meta.get("metrics") or {}).get("val_top1")
        gap = max(gap, abs(100 * (shown - m["top1"])) if isinstance(shown, float) else 0.0)
        created.append(str(meta.get("created", "?")))
        f16 = f"{m['float16_bytes'] / 2**20:.2f} MiB" if m.get("float16_bytes") else "-"
        rows.append(f"| `{meta_path.stem}` | {meta['arch']} | {c['plan']['description']} | "
                    f"{c['bytes'] / 2**20:.2f} MiB | {f16} | {m['n']:,} | {100 * m['reference_top1']:.2f}% -> "
                    f"{100 * m['top1']:.2f}% ({m['top1_change_pp']:+.2f} pp) | {m['top5_change_pp']:+.2f} pp | "
                    f"{100 * m['same_top1_fraction']:.1f}% | {100 * m['logit_rel_error_mean']:.2f}% | "
                    f"{100 * m['logit_rel_error_max']:.2f}% | {card} |")
    when = f"{min(created)} to {max(created)}" if created else "never"
    return "\n".join(rows), ", ".join(sorted(cards_seen)) or "?", when, gap


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", action="append", help="a float32 checkpoint to measure (repeatable; without "
                   "it: --shipped)")
    p.add_argument("--images", type=int, default=None, help="val images (default all)")
    p.add_argument("--svd-images", type=int, default=2000, help="val images for the SVD sweep")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    p.add_argument("--device", default="cpu", help="cpu or cuda (the measurement is in float32 either way)")
    p.add_argument("--head-proxy", metavar="CKPT", help="only the head proxy, on this checkpoint's features")
    p.add_argument("--proxy-train", type=int, default=20000, help="train images for the head proxy")
    p.add_argument("--proxy-epochs", type=int, default=3)
    p.add_argument("--shipped", action="store_true", help="tabulate the shipped starters' own records (no measuring)")
    args = p.parse_args(argv)
    if args.shipped or not args.checkpoint:  # the starters are compressed files: only their records say the cost
        table, where, when, gap = shipped()
        body = ("## What compression cost the shipped starters (`bench/bench_compress.py --shipped`)\n\n"
                "Each starter was measured when it was exported, on all val images, against its run's float32 "
                "checkpoint, both in float32 (`cnnviz.starter.measure_compression`; the record is "
                "`compression.measured` in the starter's JSON, and the model card shows it). The pages show the "
                "shipped file's top-1 as `evaluate` measured it, with bf16 autocast on the same machine: at most "
                f"{gap:.2f} pp from the float32 figure here. The zoo's table (docs/zoo.md) gives the float32 "
                "checkpoint's. Logit error: "
                "`||z_shipped - z|| / ||z||` per image; same top-1: images whose predicted class did not change."
                "\n\n" + table)
        print(body)
        if not args.no_write:
            print("written to", write_section("compress-shipped", body, on=f"{where} (each starter's zoo export)", at=when))
        return 0
    if args.head_proxy:
        torch.set_num_threads(1)
        rows = head_proxy(args.head_proxy, args.proxy_train, args.images or 5000, args.proxy_epochs)
        print("\n".join(rows))
        return 0
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    paths = args.checkpoint
    rows = ["| checkpoint | arch | images | top-1 before | top-1 change | top-5 change | same top-1 | "
            "logit error mean | max | int8 file |", "|---|---|---|---|---|---|---|---|---|---|"]
    sweeps: list[str] = []
    for path in paths:
        ckpt = load_checkpoint(path, args.device)
        t = time.perf_counter()
        q = _int8_model(ckpt.model)
        m = measure_compression(ckpt.model, q, ckpt.meta, device=args.device, max_images=args.images)
        mib = compressed_bytes(ckpt.model, make_plan(int8=True)) / 2**20
        rows.append(f"| `{Path(path).stem}` | {ckpt.meta['arch']} | {m['n']} | {100 * m['reference_top1']:.2f}% | "
                    f"{m['top1_change_pp']:+.2f} pp | {m['top5_change_pp']:+.2f} pp | "
                    f"{100 * m['same_top1_fraction']:.1f}% | {100 * m['logit_rel_error_mean']:.2f}% | "
                    f"{100 * m['logit_rel_error_max']:.2f}% | {mib:.2f} MiB |")
        print(rows[-1], f"({time.perf_counter() - t:.0f} s)", flush=True)
        big = [m for m in ckpt.model.modules() if isinstance(m, nn.Linear) and m.weight.numel() >= 2**22]
        if big:
            x, y = _val_batch(ckpt.meta, args.svd_images)
            configs = [(None, None, None)] + [(r6, None, None) for r6 in (64, 128, 192, 256, 384, 512)]
            configs += [(None, r7, None) for r7 in (32, 64, 128, 256)]
            configs += [(None, None, r8) for r8 in (32, 64, 128)]
            configs += [(256, 128, None), (192, 128, None), (160, 128, None), (192, 96, None), (128, 128, None),
                        (128, 64, None), (64, 64, None), (256, 128, 64)]  # (160, 128): AlexNet's and ZFNet's shipped
            sweeps += [f"\n`{Path(path).stem}` ({ckpt.meta.arch}, epoch {ckpt.meta.epoch}, step "
                       f"{ckpt.meta.step}):", ""] + svd_sweep(ckpt, q, x, y, configs)
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
