"""Single-image prediction latency after warm-up, per checkpoint, against torchvision's ResNet-18 at 64x64.

    .venv/bin/python -m bench.bench_predict [--repeats 30] [--threads 2]

Measures every starter checkpoint in ``checkpoints/starter/`` (random-weight models of the planned starter
architectures while none is shipped: latency does not depend on the weights' values). Two numbers per model:
the page's path (resize + normalise + forward + softmax on a 64x64 image, ``cnnviz.predict.measure_latency``)
and the forward pass alone; the ratio is against torchvision's ResNet-18 (200 classes, 64x64, eager) measured
in the same run. Writes its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os

import torch

from bench._report import shared_note, write_section
from cnnviz.catalog import list_checkpoints
from cnnviz.checkpoint import build_meta, load_checkpoint
from cnnviz.models import create_model
from cnnviz.paths import REPO_ROOT
from cnnviz.predict import measure_latency

PLANNED = ("lenet5", "alexnet", "zfnet", "nin", "googlenet", "resnet18")


def _models():
    starters = [i for i in list_checkpoints(REPO_ROOT / "checkpoints") if i.kind == "starter"]
    if starters:
        for info in starters:
            ck = load_checkpoint(info.path)
            yield info.name, ck.model, ck.meta, "shipped"
        return
    for arch in PLANNED:
        torch.manual_seed(0)
        model = create_model(arch, num_classes=200, input_size=64).eval()
        yield arch, model, build_meta(model), "random weights"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    import torchvision

    baseline = torchvision.models.resnet18(num_classes=200).eval()
    base = measure_latency(baseline, None, input_size=64, warmup=args.warmup, repeats=args.repeats)
    rows = []
    for name, model, meta, origin in _models():
        page = measure_latency(model, meta, warmup=args.warmup, repeats=args.repeats)
        fwd = measure_latency(model, meta, warmup=args.warmup, repeats=args.repeats, include_preprocess=False)
        rows.append((name, origin, page.median_ms, page.min_ms, fwd.median_ms, fwd.min_ms, fwd.min_ms / base.min_ms))
        print(f"{name:24s} {origin:15s} page path median {page.median_ms:7.2f} ms (min {page.min_ms:6.2f})  "
              f"forward median {fwd.median_ms:7.2f} ms (min {fwd.min_ms:6.2f})  "
              f"min = {fwd.min_ms / base.min_ms:5.2f}x torchvision ResNet-18")
    base2 = measure_latency(baseline, None, input_size=64, warmup=args.warmup, repeats=args.repeats)
    print(f"torchvision resnet18 64x64 forward: median {base.median_ms:.2f} ms, min {base.min_ms:.2f} ms "
          f"(again at the end: median {base2.median_ms:.2f}, min {base2.min_ms:.2f} ms)")

    lines = ["## Predict latency (one image, after warm-up)", "",
             f"Median of {args.repeats} single-image predictions after {args.warmup} warm-up runs, "
             f"{args.threads} threads, eager PyTorch. *Page path*: resize + centre crop + normalise + forward + "
             "softmax of a 64x64 image (what the Predict page and CLI time); *forward*: the model alone. Baseline: "
             f"torchvision ResNet-18 (200 classes) at 64x64, forward: median {base.median_ms:.2f} ms / min "
             f"{base.min_ms:.2f} ms at the start of the run, {base2.median_ms:.2f} / {base2.min_ms:.2f} ms at the end. "
             f"When the run ended: {shared_note()}. A median includes any wait for a core; the minimum is the "
             "closest to an idle machine, and the ratio uses minima.", "",
             "| model | weights | page path median (ms) | page path min (ms) | forward median (ms) | forward min (ms) "
             "| forward min / torchvision R-18 min |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {n} | {o} | {m:.2f} | {mn:.2f} | {f:.2f} | {fm:.2f} | {r:.2f} |" for n, o, m, mn, f, fm, r in rows]
    write_section("predict", "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
