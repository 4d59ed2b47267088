"""How fast is a per-layer table? Every architecture at 224 (LeNet-5 at its 32), against torchinfo.summary.

Run: ``.venv/bin/python -m bench.bench_tables`` (``--quick`` skips the torchinfo baseline). Measures, in one run:

* cold start: a fresh ``python`` process building its first table (imports torch, torchinfo and, on the first
  meta-device op, torch._dynamo, which PyTorch imports lazily);
* ours, uncached: ``layer_table`` without its cache (meta model build + traced forward + rows), median of 3,
  wall-clock and CPU time of this process (the machine is shared, CPU time is the steadier number);
* ours, cached: a repeated ``layer_table(name, ...)`` call (lru_cache hit + defensive copy);
* baseline: ``torchinfo.summary`` of the same architecture, the usual way (a CPU model, a real forward at
  batch 1), the faster of one run with 1 and one with 2 intra-op threads (the model is built on the meta
  device and then allocated with zeros, so model construction is not counted).

Writes the ``tables`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import torch

from bench._report import write_section

SNIPPET = ("import time; t = time.perf_counter(); from cnnviz.summary import layer_table; "
           "layer_table('vgg16', (3, 224, 224)); print(time.perf_counter() - t)")


def timed(fn, repeat: int = 1) -> tuple[float, float, object]:
    """(median wall s, median CPU s, last result) over ``repeat`` calls."""
    walls, cpus, out = [], [], None
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus), out


def input_for(name: str) -> tuple[int, int, int]:
    from cnnviz.models.registry import get_card

    card = get_card(name)
    return card.paper_input if name.startswith("lenet") else (card.paper_input[0], 224, 224)


def torchinfo_baseline(name: str, size: tuple[int, int, int]) -> float:
    import torchinfo

    from cnnviz.models import create_model, meta_model

    if name.startswith("lenet"):  # its C3 index buffers must keep their values: built for real
        model = create_model(name, input_size=size[1])
    else:
        model = meta_model(name, input_size=size[1]).to_empty(device="cpu")
        with torch.no_grad():
            for t in [*model.parameters(), *model.buffers()]:
                t.zero_()
    # torchinfo at its best: the faster of 1 and 2 intra-op threads (on the shared machine two threads can
    # be ~10x slower for small inputs, OpenMP barriers waiting for a busy core; idle, two are faster for VGG).
    best = float("inf")
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            w = time.perf_counter()
            torchinfo.summary(model, input_size=(1, *size), verbose=0, device="cpu")
            best = min(best, time.perf_counter() - w)
    finally:
        torch.set_num_threads(before)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the torchinfo baseline")
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)

    from cnnviz.models.registry import list_models
    from cnnviz.summary import layer_table
    from cnnviz.summary.builder import arch_table

    load_before = os.getloadavg()[0]
    cold = subprocess.run([sys.executable, "-c", SNIPPET], capture_output=True, text=True, check=True)
    cold_s = float(cold.stdout.strip().splitlines()[-1])
    print(f"cold start (fresh process, first table = vgg16): {cold_s:.2f} s")

    arch_table("resnet18", (), (3, 224, 224), None, "float32")  # warm-up (lazy imports)
    rows = []
    for name in list_models():
        size = input_for(name)
        wall, cpu, table = timed(lambda n=name, s=size: arch_table(n, (), s, None, "float32"), repeat=3)
        layer_table(name, size)
        cached, _, _ = timed(lambda n=name, s=size: layer_table(n, s), repeat=5)
        base = None if args.quick else torchinfo_baseline(name, size)
        rows.append((name, size, len(table.rows), wall, cpu, cached, base))
        ratio = f", torchinfo {base * 1e3:.0f} ms, ratio {wall / base:.2f}" if base else ""
        print(f"{name:10s} {len(table.rows):4d} rows  {wall * 1e3:7.1f} ms wall  {cpu * 1e3:7.1f} ms CPU  "
              f"cached {cached * 1e6:6.0f} us{ratio}")
    load_after = os.getloadavg()[0]

    total_wall = sum(r[3] for r in rows)
    total_cpu = sum(r[4] for r in rows)
    worst = max(rows, key=lambda r: r[3])
    lines = [
        "## Per-layer tables (`bench/bench_tables.py`)",
        "",
        "`layer_table(name, input)` for every registered architecture at 224x224 (LeNet-5 at its 32x32), uncached "
        "(meta-device model build + traced forward + rows; median of 3), against `torchinfo.summary` of the same "
        "architecture run the usual way (CPU model, real forward at batch 1, the faster of 1 and 2 threads).",
        "",
        "| arch | input | rows | ours, wall (ms) | ours, CPU (ms) | cached call (us) | torchinfo.summary (ms) | "
        "ours / torchinfo |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, size, n, wall, cpu, cached, base in rows:
        lines.append(
            f"| {name} | {'x'.join(map(str, size))} | {n} | {wall * 1e3:.1f} | {cpu * 1e3:.1f} | {cached * 1e6:.0f} "
            f"| {'-' if base is None else f'{base * 1e3:.0f}'} | {'-' if base is None else f'{wall / base:.2f}'} |"
        )
    lines += [
        "",
        f"- All {len(rows)} architectures: **{total_wall:.2f} s wall** ({total_cpu:.2f} s CPU) uncached "
        f"(target < 3 s); slowest: {worst[0]} {worst[3] * 1e3:.0f} ms wall (target < 500 ms).",
        f"- Cold start, a fresh process's first table (VGG-16; imports torch, torchinfo and torch._dynamo, which "
        f"PyTorch loads on the first meta-device op): {cold_s:.2f} s. The app pays it once per server.",
        f"- Shared machine: 1-minute load average {load_before:.1f} before, {load_after:.1f} after (2 cores, other "
        "engineers' tests running); wall times include waiting for a core, CPU times do not.",
    ]
    vgg = next((r for r in rows if r[0] == "vgg16" and r[6]), None)
    if vgg is not None:
        lines.append(
            f"- For scale: torchinfo.summary of VGG-16 took {vgg[6] * 1e3:.0f} ms in this run; issue 2 quotes about "
            f"300 ms for it on this machine when idle, so this run saw the machine about {vgg[6] / 0.3:.1f}x slower "
            "than idle. The ratio column compares both in the same conditions."
        )
    body = "\n".join(lines)
    if not args.no_write:
        write_section("tables", body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
