"""How long the Architectures page takes to answer a pick, per architecture (Streamlit AppTest, no browser).

For each architecture at its paper's input: the page rerun after picking it the first time (layer table
computed, Parameters chart built) and a second time (st.cache_data hit), then the Block diagram tab (diagram
built from the cached table). Baseline, measured in the same run: the rerun of the page with nothing changed
(widgets, totals, table frame and chart with every cache warm), so the ratios show what a pick adds.

    .venv/bin/python -m bench.bench_arch_page
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import torch
from streamlit.testing.v1 import AppTest

import cnnviz
from bench._report import shared_note, write_section

PAGE = str(Path(__file__).resolve().parent.parent / "app_pages" / "architectures.py")


def _timed_run(at: AppTest) -> float:
    t = time.perf_counter()
    at.run(timeout=300)
    dt = time.perf_counter() - t
    assert not at.exception, [e.value for e in at.exception]
    return dt


def main() -> None:
    torch.set_num_threads(1)
    at = AppTest.from_file(PAGE, default_timeout=300)
    _timed_run(at)  # imports, VGG-16 default
    base = statistics.median(_timed_run(at) for _ in range(5))
    rows = []
    for arch in cnnviz.list_models():
        at.session_state["arch_charts"] = "Parameters"
        at.selectbox(key="arch_name").set_value(arch)
        first = _timed_run(at)
        at.selectbox(key="arch_name").set_value("vgg16")
        _timed_run(at)
        at.selectbox(key="arch_name").set_value(arch)
        second = _timed_run(at)
        at.session_state["arch_charts"] = "Block diagram"
        diagram = _timed_run(at)
        rows.append((arch, first, second, diagram))
    load = os.getloadavg()[0]
    lines = [
        "## Architectures page (`bench/bench_arch_page.py`)",
        "",
        "Streamlit AppTest reruns of `app_pages/architectures.py` (server-side time: script, layer table, figures; "
        "not the browser's drawing). *First pick*: the architecture's table is computed (paper input, "
        "float32) and the Parameters chart built; *again*: the same pick with the table from `st.cache_data`; "
        "*diagram*: opening the Block diagram tab (first time: the model's structure on the meta device + "
        "DOT). Baseline: a rerun with nothing changed, "
        f"median of 5: **{base * 1000:.0f} ms**. At the end: {shared_note(load)}.",
        "",
        "| arch | first pick (ms) | again, cached (ms) | diagram tab (ms) | first / baseline |",
        "|---|---:|---:|---:|---:|",
    ]
    for arch, first, second, diagram in rows:
        lines.append(f"| {arch} | {first * 1000:.0f} | {second * 1000:.0f} | {diagram * 1000:.0f} | "
                     f"{first / base:.1f} |")
    total_first = sum(r[1] for r in rows)
    lines += ["", f"Every architecture picked once, uncached: {total_first:.1f} s in total."]
    body = "\n".join(lines)
    print(body)
    write_section("arch_page", body)


if __name__ == "__main__":
    main()
