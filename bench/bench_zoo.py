"""The zoo's speed on one card: ceilings, each member's training rate and MFU, which tricks pay, and the ratio to a
plain torchvision ImageFolder + DataLoader loop. Written for the GPU session of scripts/gpu_zoo.sh.

    python3 bench/bench_zoo.py device --out bench.json           # on the GPU: ceilings, members, ablations,
                                                                 # one vs two members at once (synthetic data)
    python3 bench/bench_zoo.py dataloader --zip TIN.zip --out dl.json   # on the GPU, with the real data
    .venv/bin/python -m bench.bench_zoo write bench.json dl.json # here: docs/benchmarks.md (MFU from our MACs)
    .venv/bin/python -m bench.bench_zoo device --device cpu --small --out /tmp/b.json   # CPU rehearsal

What is measured, and how:

* ceilings: a bf16 matrix product (8192^3 on a GPU) and a device-to-device copy (bytes read + written), timed
  with CUDA events after warm-up; MFU = 6 x MACs x images/s over the matmul rate (forward + backward).
* members: :func:`cnnviz.zoo.driver.calibrate`, the code the zoo plans its epochs with: real training steps
  (the recipe's bf16 autocast, channels_last, fused optimizer, label smoothing) on batches made by the
  project's on-device pipeline, after warm-up steps (cuDNN autotuning, compilation) that are timed apart.
* tricks: ResNet-18 and AlexNet with each trick added in turn (fp32 NCHW -> bf16 -> channels_last -> compile).
* concurrency: two members trained one after the other, then at the same time in two processes.
* dataloader: ResNet-18 (3x3 stem) on the real train split through torchvision's ImageFolder + DataLoader
  (16 workers, pinned memory, RandomCrop(64, padding=4, reflect) + flip + normalise, per image on the CPU)
  against the project's BatchPipeline (the split resident on the GPU as uint8, augmented there in bulk).

This file runs on the GPU machine (torch and torchvision, no streamlit, no torchinfo): MFU is computed by
``write``, here, where cnnviz.summary can count MACs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `python3 bench/bench_zoo.py` on the device machine
    sys.path.insert(0, str(REPO))


def _device(name: str):
    import torch

    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else
                        ("cpu" if name == "auto" else name))


def ceilings(dev, small: bool = False) -> dict:
    """bf16 matmul FLOP/s and copy bandwidth, median of timed repeats after warm-up."""
    import torch

    n = 1024 if small or dev.type != "cuda" else 8192
    a = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    big = torch.randn((64 if dev.type == "cuda" and not small else 4) * 2**20, device=dev)  # 256 MiB on a GPU
    out = torch.empty_like(big)

    def timed(fn, reps: int) -> float:
        for _ in range(3):
            fn()
        times = []
        for _ in range(reps):
            if dev.type == "cuda":
                s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                s.record()
                fn()
                e.record()
                torch.cuda.synchronize()
                times.append(s.elapsed_time(e) / 1e3)
            else:
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
        return sorted(times)[len(times) // 2]

    t_mm = timed(lambda: a @ b, 10)
    t_cp = timed(lambda: out.copy_(big), 10)
    return {"bf16_matmul_flops": 2 * n**3 / t_mm, "matmul_n": n,
            "copy_bytes_per_s": 2 * big.numel() * 4 / t_cp}


def _failure(e: Exception, limit: int = 300) -> str:
    """How the JSON records a part that failed: the exception's type and message, cut to ``limit``."""
    return f"{type(e).__name__}: {e}"[:limit]


def _recipe(data: str, device: str, small: bool, **kw):
    from cnnviz.zoo.recipe import Recipe

    r = Recipe(data=data, device=device, batch_size=16 if small else 256)
    for k, v in kw.items():
        setattr(r, k, v)
    return r


def members_rates(families: list[str], dev, small: bool, steps: int) -> dict:
    from cnnviz.zoo.driver import calibrate
    from cnnviz.zoo.recipe import member

    rec = _recipe("synthetic", dev.type, small)
    rates: dict = {}
    for f in families:  # one at a time, so that one member's failure is recorded and costs only its own row
        try:
            rates.update(calibrate([member(f)], rec, steps=steps, warmup=3 if small else 10))
        except Exception as e:  # noqa: BLE001
            rates[f] = {"error": _failure(e)}
            print(f"member {f} FAILED: {rates[f]['error']}", flush=True)
    return rates


def tricks(families: list[str], dev, small: bool, steps: int) -> list[dict]:
    """Each trick added in turn, on the same member: the rate and its gain over the row before."""
    from cnnviz.zoo.driver import calibrate
    from cnnviz.zoo.recipe import member

    ladder = [("fp32, NCHW", {"amp": False, "channels_last": False}),
              ("+ bf16 autocast", {"amp": True, "channels_last": False}),
              ("+ channels_last", {"amp": True, "channels_last": True}),
              ("+ torch.compile", {"amp": True, "channels_last": True, "compile": True})]
    rows = []
    for fam in families:
        prev = None
        for name, kw in ladder:
            rec = _recipe("synthetic", dev.type, small, **kw)
            try:
                r = calibrate([member(fam)], rec, steps=steps, warmup=3 if small else 10)[fam]
            except Exception as e:  # noqa: BLE001 - one failed rung (a compiler error) must not cost the others
                rows.append({"family": fam, "setting": name, "error": _failure(e)})
                prev = None
                continue
            rows.append({"family": fam, "setting": name, "images_per_s": r["images_per_s"],
                         "warmup_s": r["warmup_s"], "gain": (r["images_per_s"] / prev) if prev else None})
            prev = r["images_per_s"]
    return rows


def concurrency(families: list[str], dev, small: bool, steps: int) -> dict:
    """Wall time of training ``families`` one after another vs all at once (one process each)."""
    def cmd(fam: str) -> list[str]:
        return [sys.executable, str(Path(__file__).resolve()), "one", fam, "--device", dev.type,
                "--steps", str(steps)] + (["--small"] if small else [])

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    t = time.perf_counter()
    for f in families:
        subprocess.run(cmd(f), check=True, env=env, capture_output=True)
    sequential = time.perf_counter() - t
    t = time.perf_counter()
    procs = [subprocess.Popen(cmd(f), env=env, stdout=subprocess.DEVNULL) for f in families]
    if any(p.wait() for p in procs):
        raise RuntimeError("a concurrent member failed")
    parallel = time.perf_counter() - t
    return {"families": families, "steps": steps, "sequential_s": sequential, "concurrent_s": parallel,
            "speedup": sequential / parallel}


def dataloader_vs_pipeline(zip_path: str, dev, steps: int, workers: int, small: bool = False) -> dict:
    """ResNet-18 (3x3 stem) training steps fed by ImageFolder + DataLoader, then by the project's pipeline."""
    import tempfile
    import zipfile

    import torch
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder

    from cnnviz.data import BatchPipeline, load_split, prepare
    from cnnviz.models import create_model
    from cnnviz.training.optim import make_optimizer
    from cnnviz.zoo.recipe import config_for, member

    tmp = Path(tempfile.mkdtemp(prefix="dl-bench-"))
    t = time.perf_counter()
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(tmp, [n for n in z.namelist() if "/train/" in n and n.endswith(".JPEG")])
    extract_s = time.perf_counter() - t
    train_root = next(tmp.glob("*/train"))
    root = prepare(zip_path)
    split = load_split(root, "train")
    tf = T.Compose([T.RandomCrop(64, padding=4, padding_mode="reflect"), T.RandomHorizontalFlip(), T.ToTensor(),
                    T.Normalize(split.mean, split.std)])
    ds = ImageFolder(str(train_root), transform=tf)
    m = member("resnet18")
    cfg = config_for(m, _recipe("auto", dev.type, small), "zoo-bench")
    warm = 2 if small else 10

    def run(batches) -> float:
        torch.manual_seed(0)
        model = create_model(m.arch, num_classes=200, input_size=64, **m.variant).to(
            dev, memory_format=torch.channels_last).train()
        opt = make_optimizer(cfg, model, dev)
        crit = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
        it = iter(batches)
        for i in range(warm + steps):
            if i == warm:
                torch.cuda.synchronize() if dev.type == "cuda" else None
                t0 = time.perf_counter()
            x, y = next(it)
            x = x.to(dev, non_blocking=True).contiguous(memory_format=torch.channels_last)
            y = y.to(dev, non_blocking=True)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                loss = crit(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        torch.cuda.synchronize() if dev.type == "cuda" else None
        return steps * cfg.batch_size / (time.perf_counter() - t0)

    loader = torch.utils.data.DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, num_workers=workers,
                                         pin_memory=dev.type == "cuda", drop_last=True, persistent_workers=True)
    base = run(loader)
    pipe = BatchPipeline(split.images, split.labels, cfg.batch_size, dev, train=True, augment="crop_flip",
                         mean=split.mean, std=split.std, channels_last=True)
    ours = run(pipe)
    return {"model": "resnet18 (3x3 stem)", "batch_size": cfg.batch_size, "steps": steps, "workers": workers,
            "dataloader_images_per_s": base, "pipeline_images_per_s": ours, "ratio": ours / base,
            "extract_s": extract_s}


def write(paths: list[str]) -> None:
    """docs/benchmarks.md from the JSON files the device wrote: ``zoo-gpu`` from a ``device`` file (ceilings,
    members with MFU from our MACs, tricks, concurrency), ``zoo-gpu-input`` from a ``dataloader`` file. Each
    section is stamped with the machine and time its own file recorded, and a session that measured only one
    of the two leaves the other's section (and its numbers) as it was."""
    from bench._report import write_section

    for p in paths:
        data = json.loads(Path(p).read_text())
        # The stamp names the machine and time of the measurement (recorded in the JSON there), not this one.
        on = data.get("machine") or (f"{data.get('device_name', '?')}, torch {data['torch']}"
                                     if data.get("torch") else None)
        errors = [f"{k}: {v[:160]}" for k, v in (data.get("errors") or {}).items()]
        failed = ["", "Parts that failed in that call: " + "; ".join(errors)] if errors else []
        if "dataloader" in data or (data.get("errors") or {}).get("dataloader"):
            write_section("zoo-gpu-input", "\n".join(_input_lines(data) + failed), on=on, at=data.get("measured_at"))
        else:
            write_section("zoo-gpu", "\n".join(_device_lines(data) + failed), on=on, at=data.get("measured_at"))


def _input_lines(data: dict) -> list[str]:
    lines = [f"### The zoo's input pipeline on {data.get('device_name', '?')}", ""]
    if data.get("dataloader"):
        d = data["dataloader"]
        lines.append(f"Input pipeline, {d['model']}, batch {d['batch_size']}: torchvision ImageFolder + "
                     f"DataLoader ({d['workers']} workers) {d['dataloader_images_per_s']:,.0f} img/s, the "
                     f"project's on-GPU pipeline {d['pipeline_images_per_s']:,.0f} img/s: {d['ratio']:.2f}x.")
    return lines


def _device_lines(data: dict) -> list[str]:
    from cnnviz.zoo.recipe import member
    from cnnviz.zoo.report import model_size

    card, flops = data.get("device_name", "?"), data.get("bf16_matmul_flops")
    lines = [f"### The zoo on {card}", ""]
    if flops:
        rate = f"{flops / 1e12:.0f} TFLOP/s" if flops >= 1e13 else f"{flops / 1e9:,.0f} GFLOP/s"  # CPU rehearsals
        lines += [f"Ceilings measured in the same call: bf16 matmul ({data['matmul_n']}^3) {rate}, device copy "
                  f"{data['copy_bytes_per_s'] / 1e12:.2f} TB/s.", ""]
    if data.get("members"):
        lines += [f"| member | img/s (bf16, channels_last, batch {data.get('batch_size', 256)}) | warm-up s | MACs "
                  "| MFU |",
                  "| --- | --- | --- | --- | --- |"]
        for fam, r in data["members"].items():
            if "error" in r:
                lines.append(f"| {fam} | failed: {r['error'][:120]} | | | |")
                continue
            m = member(fam)
            _, macs, _ = model_size(m.arch, {**m.variant, "num_classes": 200, "input_size": 64})
            mfu = f"{100 * 6 * macs * r['images_per_s'] / flops:.1f}%" if (macs and flops) else "n/a"
            lines.append(f"| {fam} ({m.arch}) | {r['images_per_s']:,.0f} | {r['warmup_s']:.1f} | "
                         f"{macs / 1e9:.2f} G | {mfu} |")
    if data.get("tricks"):
        lines += ["", "| member | setting | img/s | gain over the row before | warm-up s |", "| --- | --- | --- | --- | --- |"]
        for t in data["tricks"]:
            if "error" in t:
                lines.append(f"| {t['family']} | {t['setting']} | failed: {t['error'][:120]} | | |")
                continue
            gain = "-" if t["gain"] is None else f"{t['gain']:.2f}x"
            lines.append(f"| {t['family']} | {t['setting']} | {t['images_per_s']:,.0f} | {gain} | "
                         f"{t['warmup_s']:.1f} |")
    if data.get("concurrency"):
        c = data["concurrency"]
        lines += ["", f"Concurrency: {', '.join(c['families'])} ({c['steps']} steps each) one after another "
                      f"{c['sequential_s']:.1f} s, at once in separate processes {c['concurrent_s']:.1f} s: "
                      f"{c['speedup']:.2f}x."]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("phase", choices=("device", "dataloader", "one", "write"))
    p.add_argument("args", nargs="*", help="write: JSON files; one: the family")
    p.add_argument("--device", default="auto")
    p.add_argument("--small", action="store_true", help="a quick CPU rehearsal: small batches and matrices")
    p.add_argument("--families", default="lenet5,alexnet,zfnet,vgg16,googlenet,resnet18,nin")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--zip", help="dataloader: the Tiny ImageNet zip")
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--out", help="write the measurements to this JSON file")
    a = p.parse_args(argv)
    if a.phase == "write":
        write(a.args)
        return 0
    import torch

    from cnnviz.device import device_name

    dev = _device(a.device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if a.phase == "one":  # a child of `concurrency`: its exit status says whether it trained
        return 1 if any("error" in r for r in members_rates(a.args, dev, a.small, a.steps).values()) else 0
    if dev.type != "cuda" or a.small:
        os.environ.setdefault("CNNVIZ_DATA", str(Path(os.environ.get("TMPDIR", "/tmp")) / "cnnviz-bench-data"))
    from bench._report import machine, measured_at

    # Stamped here, where it runs: `write` (on the developer's machine) puts these in the section's stamp.
    out: dict = {"device_name": device_name(str(dev)), "torch": torch.__version__,
                 "batch_size": 16 if a.small else 256, "machine": machine(), "measured_at": measured_at()}
    families = [f for f in a.families.split(",") if f]
    t = time.perf_counter()

    def section(key: str, fn, merge: bool = False) -> None:
        """Measure one part, then save everything so far: a part that fails (or a call that runs out of time)
        costs only itself, and the JSON under $OUT comes back with whatever was measured."""
        try:
            result = fn()
            if merge:
                out.update(result)
            else:
                out[key] = result
        except Exception as e:  # noqa: BLE001 - recorded in the JSON and printed; the other parts still run
            out.setdefault("errors", {})[key] = _failure(e, 500)
            print(f"{key} FAILED: {out['errors'][key]}", flush=True)
        print(f"{key} {time.perf_counter() - t:.0f} s", flush=True)
        if a.out:
            Path(a.out).write_text(json.dumps(out, indent=2))

    if a.phase == "device":
        section("ceilings", lambda: ceilings(dev, a.small), merge=True)
        section("members", lambda: members_rates(families, dev, a.small, a.steps))
        section("tricks", lambda: tricks(["resnet18", "alexnet"] if not a.small else ["lenet5"], dev, a.small,
                                         a.steps))
        pair = ["googlenet", "alexnet"] if not a.small else ["lenet5", "lenet5"]
        section("concurrency", lambda: concurrency(pair, dev, a.small, a.steps * 5))
    else:
        section("dataloader", lambda: dataloader_vs_pipeline(a.zip, dev, a.steps * 5, a.workers, a.small))
    if not a.out:
        print(json.dumps(out, indent=2))
    if out.get("errors"):
        print(f"done; failed parts: {', '.join(out['errors'])}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
