"""Training rate per family on the dev CPU, and what it makes one epoch of Tiny ImageNet's 100,000 train images.

    .venv/bin/python -m bench.bench_cpu_epochs            # about 4 minutes on 2 cores; writes docs/benchmarks.md

The real training loop (bench.bench_train's run: cnnviz.training.worker.run_training) on the synthetic set, as
`python -m cnnviz train` runs by default here (bf16 autocast where the CPU computes it natively, channels-last),
batch 128, 3 steps an epoch, the second epoch's rate. A short measurement: it answers "minutes or hours?" for the
README's table of CPU epochs, which had carried the shared Intel Xeon's figures (NiN "about two hours").
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

import torch

from bench._report import shared_note, write_section
from bench.bench_train import _run

TRAIN_IMAGES = 100_000
# The Training form's default and each zoo member's variant (cnnviz/zoo/recipe.py), as the README's table lists them.
FAMILIES = (
    ("ResNet-18, paper stem (the Training form's default)", "resnet18", {}),
    ("ResNet-18, tiny stem (the zoo's)", "resnet18", {"stem": "tiny"}),
    ("ZFNet, small stem", "zfnet", {}),
    ("AlexNet, small stem", "alexnet", {}),
    ("VGG-16-BN", "vgg16_bn", {}),
    ("GoogLeNet, paper stem (aux heads in training)", "googlenet", {"aux_logits": True}),
    ("GoogLeNet, small stem (the zoo's)", "googlenet", {"aux_logits": True, "stem": "small"}),
    ("NiN, CIFAR config", "nin", {"config": "cifar"}),
    ("LeNet-5, modern", "lenet5", {"variant": "modern"}),
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=3, help="steps per epoch (2 epochs; the second is reported)")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = p.parse_args(argv)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CNNVIZ_CHECKPOINTS"] = tmp  # throw-away runs
        for label, arch, variant in FAMILIES:
            rate = _run(arch, variant, "synthetic", "cpu", args.batch_size, args.steps, True, False)["images_per_s"]
            rows.append((label, rate))
            print(json.dumps({"family": label, "images_per_s": round(rate, 1)}), flush=True)
    if args.no_write:
        return 0
    lines = ["## Training rate per family on the dev CPU (`bench.bench_cpu_epochs`)", "",
             f"`python -m cnnviz train`'s defaults here (bf16 autocast, channels-last), batch {args.batch_size}, "
             f"synthetic data, {args.steps} steps an epoch, the second epoch's rate; one epoch = "
             f"{TRAIN_IMAGES:,} train images at that rate (evaluation not included).", "",
             "| network | images/s | one epoch |", "|---|---:|---:|"]
    for label, rate in rows:
        minutes = TRAIN_IMAGES / rate / 60
        lines.append(f"| {label} | {rate:,.0f} | {minutes:.1f} min |" if minutes < 100 else
                     f"| {label} | {rate:,.0f} | {minutes / 60:.1f} h |")
    lines += ["", f"At the end of the run: {shared_note()}. A short measurement (seconds per network): two runs "
              "minutes apart on the 2-core AMD EPYC (2026-12-07) differed by 10-30% (ZFNet 67 and 89 images/s), so "
              "read the minutes as a scale, not to the minute."]
    write_section("cpu_epochs", "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
