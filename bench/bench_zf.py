"""Timings of ZF's invariance (Fig. 5) and layer probes (Table 6) on the shipped starters, real Tiny ImageNet.

    CNNVIZ_DATA=/path/to/data .venv/bin/python -m bench.bench_zf [--only resnet18] [--no-write]

Probes run with the defaults (:data:`cnnviz.viz.probes.DEFAULTS`: 20 train + 10 val images per class, every
hidden block), uncached, with the automatic thread count (one thread while the machine is busy). Baseline, in
the same run: the ResNet-18 starter's probe forced onto 2 threads, torch's default on this 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from bench._report import shared_note, write_section


def _load() -> str:
    return " / ".join(f"{v:.1f}" for v in os.getloadavg())


def bench_probes(only: str | None) -> list[str]:
    from cnnviz.catalog import list_checkpoints
    from cnnviz.data import find_dataset, load_split
    from cnnviz.viz.probes import probe
    from cnnviz.viz.session import checkpoint_subject, mean_std

    root = find_dataset()
    if root is None:
        raise SystemExit("no Tiny ImageNet: set CNNVIZ_DATA")
    train, val = load_split(root, "train"), load_split(root, "val")
    starters = [i for i in list_checkpoints() if i.kind == "starter" and (only is None or only in i.name)]
    lines = ["### Layer probes (defaults: 20 train + 10 val images per class = 6,000 images, every hidden block, "
             "uncached)",
             "| starter | threads | blocks | features | fit (all blocks) | total | val top-1, first -> last block "
             "| load average before -> after |",
             "|---|---:|---:|---:|---:|---:|---|---|"]
    runs = [(i, None) for i in starters] + [(i, 2) for i in starters if "resnet18" in i.name]
    totals = {}
    for info, threads in runs:
        s = checkpoint_subject(info.path)
        mean, std = mean_std(s.meta)
        load_before = _load()
        start = time.perf_counter()
        r = probe(s.model, train.images, train.labels, val.images, val.labels, mean=mean, std=std,
                  input_size=s.input_size[1], channels=s.input_size[0], name=info.name, threads=threads)
        total = time.perf_counter() - start
        totals[(info.name, threads)] = total
        how = f"{r.seconds['threads']} (auto)" if threads is None else f"{threads} (forced)"
        print(f"{info.name}: {total:.1f} s on {how} threads (load {load_before} -> {_load()})", flush=True)
        lines.append(f"| {info.name} | {how} | {len(r.layers)} | {r.seconds['features']:.1f} s | "
                     f"{r.seconds['fit']:.1f} s | **{total:.1f} s** | {r.val_top1[0]:.1%} -> {r.val_top1[-1]:.1%} | "
                     f"{load_before} -> {_load()} |")
    for (name, threads), total in totals.items():
        if threads is not None and (name, None) in totals:
            lines += ["", f"Baseline, same run: {name} on {threads} threads (torch's default on this machine) took "
                      f"{total:.1f} s, {total / totals[(name, None)]:.1f}x the automatic choice."]
    return lines


def bench_invariance(only: str | None) -> list[str]:
    from cnnviz.catalog import list_checkpoints
    from cnnviz.viz.invariance import default_values, invariance
    from cnnviz.viz.session import checkpoint_subject

    lines = ["### Invariance (3 images x 25 rotations, first conv block + last hidden layer, automatic thread count; "
             "median of 3 after a warm-up)", "| starter | time | forward passes |", "|---|---:|---:|"]
    for info in [i for i in list_checkpoints() if i.kind == "starter" and (only is None or only in i.name)]:
        s = checkpoint_subject(info.path)
        x = torch.randn(3, *s.input_size)
        values = default_values("rotate")
        invariance(s.model, x, "rotate", values)
        times = []
        for _ in range(3):
            t = time.perf_counter()
            invariance(s.model, x, "rotate", values)
            times.append(time.perf_counter() - t)
        lines.append(f"| {info.name} | {statistics.median(times):.2f} s | {3 * (len(values) + 1)} images |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="starters whose name contains this")
    ap.add_argument("--no-write", action="store_true", help="print, do not rewrite docs/benchmarks.md")
    args = ap.parse_args()
    start_load = _load()
    body = ["## ZF invariance and layer probes (`bench/bench_zf.py`)", ""]
    body += bench_probes(args.only) + [""] + bench_invariance(args.only)
    body += ["", f"Load average (1 / 5 / 15 min): {start_load} at the start; at the end, {shared_note()}. "
             "The goal is about a minute per starter. The feature pass is the top-9 scan's private copy of the "
             "model (bf16 where the CPU computes it natively, channels-last); the fit is multinomial logistic "
             "regression with torch's LBFGS, one per block."]
    text = "\n".join(body)
    print(text)
    if not args.no_write:
        print(write_section("zf", text))


if __name__ == "__main__":
    main()
