"""Data benchmark: cache build from the shared zip, reload, and BatchPipeline vs ImageFolder + DataLoader.

    .venv/bin/python -m bench.bench_data [--batches 60] [--keep DIR]

1. ``prepare(shared zip)`` into a fresh temporary folder: the train (100k) and val (10k) uint8 caches, wall
   time and CPU time (this process + its decoding workers).
2. Reload: ``load_split`` of both splits again (manifest check + memory map), and ``BatchPipeline`` set-up.
3. Throughput, side by side in one run, same augmentation (random crop 64 with 4 px reflect padding +
   horizontal flip + normalisation, batch 256): ``torchvision.datasets.ImageFolder`` + ``DataLoader(num_workers=2)``
   over JPEGs extracted from the zip (20 classes, 10,000 images: the per-image cost does not depend on the
   dataset size) against ``BatchPipeline`` on the CPU over the train cache (and on CUDA when there is a GPU).
4. The build again through the background job the Training page starts (``cnnviz.data.job``), from ``start()``
   to ``done`` as its status file says, into another fresh folder.
Writes the "data" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench._report import shared_note, write_section
from cnnviz.data import BatchPipeline, load_split, prepare
from cnnviz.data.layout import DIRNAME, TINY_IMAGENET_MEAN, TINY_IMAGENET_STD
from cnnviz.data.zipsource import check_zip, extract_zip
from cnnviz.paths import shared_zip


def _cpu() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def _load() -> str:
    try:
        return ", ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "?"


def _rate(batches, n_batches: int, device: torch.device | None = None) -> float:
    """Images/s over ``n_batches`` after one warm-up batch (worker start-up is not counted)."""
    it = iter(batches)
    next(it)
    seen, t0 = 0, time.perf_counter()
    for _ in range(n_batches):
        x, _ = next(it)
        seen += x.shape[0]
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - t0)


def bench_build(zip_path: Path, out: Path) -> dict:
    cpu0, t0 = _cpu(), time.perf_counter()
    root = prepare(zip_path, out)
    wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    train, val = load_split(root, "train"), load_split(root, "val")
    return {"root": root, "wall": wall, "cpu": cpu, "train_s": train.manifest["build_seconds"],
            "val_s": val.manifest["build_seconds"], "workers": train.manifest["workers"],
            "train_gray": train.manifest["modes"].get("L", 0)}


def bench_job(zip_path: Path, out: Path, poll_s: float = 0.5) -> dict:
    """The same build as the Training page runs it: :func:`cnnviz.data.job.start` (a detached process that
    writes ``prepare.json``), followed by polling :func:`read_job` as the page's fragment does, until done."""
    from cnnviz.data import job

    t0 = time.perf_counter()
    job.start(zip_path, out)
    t_start = time.perf_counter() - t0
    polls, stages = 0, []
    while (state := job.read_job(out)) is not None and state.active:
        polls += 1
        if state.stage and (not stages or stages[-1] != state.stage):
            stages.append(state.stage)
        time.sleep(poll_s)
    wall = time.perf_counter() - t0
    if state is None or state.state != "done":
        raise SystemExit(f"the background preparation ended {state.state if state else 'without a status'}: "
                         f"{state.message if state else ''}")
    return {"wall": wall, "start": t_start, "polls": polls, "stages": stages}


_RELOAD = """
import sys, time
t0 = time.perf_counter()
from cnnviz.data import BatchPipeline, load_split
t1 = time.perf_counter()
train, val = load_split(sys.argv[1], "train"), load_split(sys.argv[1], "val")
x, y = next(iter(BatchPipeline.from_split(train, 256, "cpu")))
print(t1 - t0, time.perf_counter() - t1)
"""


def bench_reload(root: Path) -> dict:
    t0 = time.perf_counter()
    train, val = load_split(root, "train"), load_split(root, "val")
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    BatchPipeline.from_split(train, 256, "cpu")
    t_tensor = time.perf_counter() - t0
    # a fresh process, as a training worker starts: interpreter + imports, then load + the first batch
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _RELOAD, str(root)], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent).stdout.split()
    t_fresh = time.perf_counter() - t0
    return {"load": t_load, "to_tensor": t_tensor, "n": len(train) + len(val), "fresh_total": t_fresh,
            "fresh_imports": float(out[0]), "fresh_load": float(out[1])}


def bench_dataloader(zip_path: Path, tmp: Path, n_batches: int, classes: int = 20) -> float:
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    index, prefix = check_zip(zip_path)
    wnids = sorted({n[len(prefix):].split("/")[1] for n in index if n[len(prefix):].startswith("train/")
                    and n.count("/") >= 3})[:classes]
    keep = tuple(f"train/{w}/images/" for w in wnids)
    extract_zip(zip_path, index, prefix, tmp, lambda rel: rel.startswith(keep))
    tf = transforms.Compose([
        transforms.RandomCrop(64, padding=4, padding_mode="reflect"),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(TINY_IMAGENET_MEAN, TINY_IMAGENET_STD),
    ])
    ds = datasets.ImageFolder(str(tmp / "train"), transform=tf)
    loader = DataLoader(ds, batch_size=256, shuffle=True, num_workers=2, persistent_workers=False, drop_last=True)
    return _rate(loader, min(n_batches, len(loader) - 1))


def bench_pipeline(images, labels, device: torch.device, n_batches: int, augment: str = "crop_flip",
                   **kw) -> float:
    p = BatchPipeline(images, labels, 256, device=device, train=True, augment=augment, **kw)
    return _rate(p, min(n_batches, len(p) - 1), device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=60, help="timed batches per loader (after a warm-up one)")
    ap.add_argument("--keep", default=None, help="build into this folder and keep it (default: a temp folder)")
    args = ap.parse_args()
    zip_path = shared_zip()
    if not zip_path.is_file():
        raise SystemExit(f"the shared zip is not at {zip_path}; set CNNVIZ_SHARED_ZIP")
    load_before = _load()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="cnnviz-bench-data-"))
    try:
        shutil.rmtree(work / DIRNAME, ignore_errors=True)
        print(f"building the cache from {zip_path} into {work} (load average {load_before}) ...", flush=True)
        b = bench_build(zip_path, work)
        print(f"  build: {b['wall']:.1f} s wall, {b['cpu']:.1f} s CPU (train {b['train_s']:.1f} s, "
              f"val {b['val_s']:.1f} s, {b['workers']} workers)", flush=True)
        print("the same build as a background job (cnnviz.data.job, as the Training page runs it) ...", flush=True)
        j = bench_job(zip_path, work / "job")
        print(f"  job: {j['wall']:.1f} s from start() to 'done' ({j['start']:.2f} s to return from start(); "
              f"{j['polls']} polls of prepare.json; stages {', '.join(j['stages'])})", flush=True)
        r = bench_reload(b["root"])
        print(f"  reload: {r['load']:.2f} s (manifest + mmap), pipeline set-up {r['to_tensor']:.2f} s; in a "
              f"fresh process {r['fresh_load']:.2f} s to the first batch after {r['fresh_imports']:.1f} s of "
              f"imports ({r['fresh_total']:.1f} s in all)", flush=True)

        print("DataLoader baseline ...", flush=True)
        dl = bench_dataloader(zip_path, work / "imagefolder", args.batches)
        print(f"  ImageFolder + DataLoader(2 workers): {dl:,.0f} images/s", flush=True)
        train = load_split(b["root"], "train")
        cpu = torch.device("cpu")
        threads = torch.get_num_threads()
        rates = {aug: bench_pipeline(train.images, train.labels, cpu, args.batches, aug)
                 for aug in ("crop_flip", "rrc", "none")}
        for aug, v in rates.items():
            print(f"  BatchPipeline CPU {aug}: {v:,.0f} images/s ({v / dl:.1f}x)", flush=True)
        many = bench_pipeline(train.images, train.labels, cpu, args.batches, "crop_flip", cpu_threads=None)
        print(f"  BatchPipeline CPU crop_flip, {threads} torch threads: {many:,.0f} images/s ({many / dl:.1f}x)",
              flush=True)
        gpu_line = ""
        if torch.cuda.is_available():
            dev = torch.device("cuda")
            g = {aug: bench_pipeline(train.images, train.labels, dev, 200, aug) for aug in ("crop_flip", "rrc")}
            gpu_line = (f"| BatchPipeline on {torch.cuda.get_device_name(0)}, crop_flip / rrc | "
                        f"{g['crop_flip']:,.0f} / {g['rrc']:,.0f} | {g['crop_flip'] / dl:.0f}x |\n")
        load_after, shared = _load(), shared_note()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    body = f"""## Data: cache and batch pipeline (`bench/bench_data.py`)

| What | Measured | Goal |
|---|---|---|
| Cache build from the shared zip (train 100k + val 10k, JPEGs read from the zip, {b['workers']} decoding processes) | {b['wall']:.1f} s wall (train {b['train_s']:.1f} s, val {b['val_s']:.1f} s), {b['cpu']:.1f} s CPU | < 60 s |
| The same build as a background job (`cnnviz.data.job.start`, as the Training page runs it), polled every 0.5 s until done | {j['wall']:.1f} s wall; `start()` returns in {j['start']:.2f} s | |
| Reload both splits (manifest check + memory map) | {r['load']:.2f} s | < 3 s |
| `BatchPipeline` set-up over train on the CPU (maps the cache copy-on-write, no copy) | {r['to_tensor']:.2f} s | |
| A fresh process: both splits loaded + first train batch (after {r['fresh_imports']:.1f} s of imports; {r['fresh_total']:.1f} s with interpreter start) | {r['fresh_load']:.2f} s | < 3 s |

The background job took {j['wall'] - b['wall']:+.1f} s against the in-process build. It has two costs that the in-process build does not.
`start()` reads the zip's index before it spawns anything, so that a bad source fails on the page at once. The
worker is a new process, with its interpreter start and imports (about {r['fresh_total'] - r['fresh_load']:.1f} s by the fresh-process row).
The two builds are single runs on a shared machine, so their difference is only indicative.

Throughput, same augmentation (random crop 64, 4 px reflect padding, horizontal flip, normalise), batch 256,
side by side in one run:

| Loader | images/s | vs DataLoader |
|---|---|---|
| `ImageFolder` + `DataLoader(num_workers=2)` (JPEGs on disk, 20 classes) | {dl:,.0f} | 1.0x |
| `BatchPipeline` CPU, crop_flip (default: batches made with 1 torch thread) | {rates['crop_flip']:,.0f} | {rates['crop_flip'] / dl:.1f}x |
| `BatchPipeline` CPU, crop_flip with `cpu_threads=None` ({threads} torch threads) | {many:,.0f} | {many / dl:.1f}x |
| `BatchPipeline` CPU, random-resized crop + flip | {rates['rrc']:,.0f} | {rates['rrc'] / dl:.1f}x |
| `BatchPipeline` CPU, no augmentation (shuffle + normalise) | {rates['none']:,.0f} | {rates['none'] / dl:.1f}x |
{gpu_line}
Load average {load_before} before, {load_after} after; at the end, {shared}. The CPU time of the build is the
steadier figure.
{"No GPU on this machine: the CUDA path (whole split in GPU memory, same code) was not measured here." if not gpu_line else ""}
"""
    path = write_section("data", body)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
