"""Training throughput of the real loop (cnnviz.training.worker.run_training): images/s and model-FLOPs utilisation.

    .venv/bin/python -m bench.bench_train                                   # CPU, synthetic set, small
    .venv/bin/python -m bench.bench_train --device cuda --data auto --arch resnet18 --variant stem=tiny \\
        --batch-size 512 --steps 200 --compile --peak-tflops 989            # one H100, Tiny ImageNet

Each architecture runs twice in the same process: a baseline (fp32, contiguous, no compile) and the fast
path (bf16 autocast where it pays: CUDA, or a CPU with native bf16;
+ channels_last, + torch.compile when asked); the ratio is printed. MFU counts
3 x forward MACs x 2 FLOPs per image (forward + backward), from cnnviz.summary's layer table.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

import torch

from bench._report import shared_note, write_section


def _run(arch: str, variant: dict, data: str, device: str, batch: int, steps: int, fast: bool,
         compile_: bool) -> dict:
    from cnnviz.training.config import TrainConfig
    from cnnviz.training.runs import create_run, read_run
    from cnnviz.training.worker import run_training

    cfg = TrainConfig(arch=arch, variant=variant, data=data, epochs=2, batch_size=batch, device=device,
                      optimizer="sgd", lr=0.02, max_steps_per_epoch=steps, amp=fast, channels_last=fast,
                      compile=compile_ and fast, heartbeat_s=30, save_every_min=0, allow_concurrent=True)
    run = create_run(cfg.to_dict())
    state = run_training(run, cfg, to_stderr=False, take_locks=False)
    info = read_run(run)
    if state != "done":
        raise RuntimeError(f"{arch}: {info.message}")
    # Epoch 1 includes warm-up (cuDNN autotune, compile); epoch 2 is the steady state.
    return info.metrics[-1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", action="append", help="architecture(s) (default: lenet5 modern, resnet18 tiny stem)")
    p.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--data", default="synthetic")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=4, help="steps per epoch (2 epochs; the second is reported)")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--peak-tflops", type=float, default=None, help="the device's dense peak for MFU")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = p.parse_args(argv)
    if args.device == "cpu":
        torch.set_num_threads(min(2, os.cpu_count() or 1))
    from cnnviz.models import parse_variant
    from cnnviz.summary import layer_table

    user_variant = parse_variant(args.variant)
    archs = [(a, user_variant) for a in args.arch] if args.arch else [
        ("lenet5", {"variant": "modern"}), ("resnet18", {"stem": "tiny"})]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CNNVIZ_CHECKPOINTS"] = tmp  # throw-away runs
        for arch, variant in archs:
            macs = layer_table(arch, input_size=(3, 64, 64), num_classes=200, **variant).totals["macs"]
            base = _run(arch, variant, args.data, args.device, args.batch_size, args.steps, False, False)
            fast = _run(arch, variant, args.data, args.device, args.batch_size, args.steps, True, args.compile)
            ips_b, ips_f = base["images_per_s"], fast["images_per_s"]
            flops = 6 * macs * ips_f
            row = {"arch": arch, "variant": variant, "baseline_img_s": round(ips_b, 1), "fast_img_s": round(ips_f, 1),
                   "ratio": round(ips_f / ips_b, 2), "tflops": round(flops / 1e12, 3),
                   "mfu": round(flops / (args.peak_tflops * 1e12), 3) if args.peak_tflops else None,
                   "peak_mem_bytes": fast["peak_mem_bytes"]}
            rows.append(row)
            print(json.dumps(row))
    if args.no_write:
        return 0
    from cnnviz.device import bf16_autocast_ok, pick_device

    bf16 = bf16_autocast_ok(pick_device(args.device))
    fast_name = "bf16 + channels_last" if bf16 else "channels_last (no native bf16: no autocast)"
    if args.compile:
        fast_name += " + compile"
    lines = [f"## Training throughput (`bench.bench_train`, {args.device}, data {args.data}, batch "
             f"{args.batch_size}, {args.steps} steps/epoch, 2nd epoch reported)", "",
             f"| architecture | baseline fp32 img/s | {fast_name} img/s | ratio | model TFLOP/s | MFU |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        v = ",".join(f"{k}={x}" for k, x in r["variant"].items())
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "-"
        lines.append(f"| {r['arch']} {v} | {r['baseline_img_s']:.0f} | {r['fast_img_s']:.0f} | {r['ratio']:.2f}x "
                     f"| {r['tflops']:.3f} | {mfu} |")
    lines += ["", f"At the end of the run: {shared_note()}.",
              "", "The whole training step is timed (forward, backward, optimizer, the device batch pipeline); "
              "evaluation is excluded. GPU numbers: run the command in the module docstring on the GPU.",
              "", "Fused vs foreach SGD, measured apart (the interleaved AdamW ablation is in \"One training step, "
              "taken apart\" below): for SGD (Nesterov, momentum 0.9) a step over AlexNet's 58M parameters with "
              "made-up gradients took 422-473 ms on the foreach path and 58-64 ms fused (two rounds each, "
              "2026-11-27 23:25 UTC, the 2-core Intel Xeon dev machine)."]
    write_section("train", "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
