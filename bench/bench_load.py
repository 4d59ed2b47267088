"""Load: many browser sessions on one dashboard at once (issue 6).

``.venv/bin/python -m bench.bench_load [--sessions 10] [--rounds 3] [--attr-sessions 2]``

One ``streamlit run app.py`` server (its own temporary checkpoints/data folders), one headless Chromium with a
browser context per user:

* ``--sessions`` users on the Predict page, each uploading ``--rounds`` images one after another and waiting for
  the page to finish with five bars per image and checkpoint (the page's default: the first two checkpoints,
  here the starter and the running job's latest; the uploader keeps earlier files, so round k redraws k images);
* ``--attr-sessions`` users on the Visualize page pressing "Compute attributions" (saliency, deconvnet, guided
  backprop, integrated gradients, Grad-CAM) on the *same* cached checkpoint the predict users use;
* meanwhile a real training job (LeNet-5 on the synthetic set, detached worker) runs on the same CPU.

Reported: the time from upload to the finished page (p50/p95 over all uploads), failed requests (HTTP >= 400 or
network failures), page exceptions, error elements, tracebacks in the server log, and whether the training job
kept making progress. The first round of the first sessions includes loading the checkpoint into the cache.
Written to docs/benchmarks.md (section ``load``).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench._browser import BARS, IDLE

_LOAD_AT_START = os.getloadavg()  # before this benchmark adds its own load

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))



def _image(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _prepare(base: Path) -> None:
    """A starter checkpoint (LeNet-5, 10 classes) and the synthetic data set, in the server's folders."""
    from cnnviz.checkpoint import build_meta, save_checkpoint
    from cnnviz.data import load_split, make_synthetic
    from cnnviz.models import create_model

    torch.manual_seed(0)
    m = create_model("lenet5", num_classes=10, input_size=64, variant="modern")
    meta = build_meta(m, classes=[f"n{i:08d}" for i in range(10)], class_names=[f"class {i}" for i in range(10)],
                      mean=(0.48, 0.45, 0.40), std=(0.28, 0.27, 0.28))
    save_checkpoint(base / "checkpoints" / "starter" / "lenet", m, meta)
    syn = make_synthetic(base / "data" / "synthetic", num_classes=10, train_per_class=100, val_per_class=10)
    load_split(syn, "train")
    load_split(syn, "val")


class Stats:
    def __init__(self) -> None:
        self.upload_s: list[float] = []
        self.attr_s: list[float] = []
        self.failed_requests: list[str] = []
        self.page_errors: list[str] = []
        self.error_elements: list[str] = []
        self.external: list[str] = []  # requests leaving the machine (none can succeed here: no internet)


def _probe(url: str) -> bool:
    """Streamlit's frontend finds its base path by first trying ``<page>/_stcore/health|host-config``: a 404
    there is expected (it then uses ``/_stcore/...``), not a failed request."""
    path = "/" + url.split("/", 3)[-1]
    return path.count("/") >= 3 and path.endswith(("/_stcore/health", "/_stcore/host-config"))


def _watch(page, stats: Stats, server: str) -> None:
    def failed(r) -> None:
        (stats.failed_requests if r.url.startswith(server) else stats.external).append(
            f"{r.method} {r.url}: {r.failure}")

    def response(r) -> None:
        if r.status >= 400 and not _probe(r.url):
            (stats.failed_requests if r.url.startswith(server) else stats.external).append(f"{r.status} {r.url}")

    page.on("pageerror", lambda e: stats.page_errors.append(str(e)))
    page.on("requestfailed", failed)
    page.on("response", response)


async def _check_clean(page, stats: Stats, who: str) -> None:
    for sel in ("[data-testid=stException]", "[data-testid=stAlertContentError]"):
        n = await page.locator(sel).count()
        if n:
            stats.error_elements.append(f"{who}: {await page.locator(sel).first.inner_text()}")


async def predict_user(browser, url: str, idx: int, rounds: int, stats: Stats, tmp: Path) -> None:
    from playwright.async_api import expect

    ctx = await browser.new_context(viewport={"width": 1200, "height": 900})
    page = await ctx.new_page()
    page.set_default_timeout(300_000)  # a shared 2-core machine under load: generous, the counts are the point
    _watch(page, stats, url)
    await page.goto(url + "/predict")
    await page.get_by_text("starter/lenet").first.wait_for()
    await page.wait_for_selector(IDLE)
    for r in range(1, rounds + 1):
        path = tmp / f"user{idx}-img{r}.jpg"
        path.write_bytes(_image(1000 * idx + r))
        t0 = time.perf_counter()
        await page.locator("[data-testid=stFileUploaderDropzoneInput]").set_input_files(str(path))
        # this image's heading, then the script finished: every chart of the page is drawn
        await expect(page.get_by_role("heading", name=path.name)).to_be_visible(timeout=300_000)
        await page.wait_for_selector(IDLE)
        charts = page.get_by_test_id("stPlotlyChart")
        n = await charts.count()
        await expect(page.locator(BARS)).to_have_count(5 * n, timeout=60_000)  # five bars in every chart
        stats.upload_s.append(time.perf_counter() - t0)
        stats.charts = max(getattr(stats, "charts", 0), n)
    await _check_clean(page, stats, f"predict user {idx}")
    await ctx.close()


async def attribution_user(browser, url: str, idx: int, rounds: int, stats: Stats) -> None:
    from playwright.async_api import expect

    ctx = await browser.new_context(viewport={"width": 1200, "height": 900})
    page = await ctx.new_page()
    page.set_default_timeout(300_000)
    _watch(page, stats, url)
    await page.goto(url + "/visualize")
    await page.get_by_role("tab", name="Attribution").wait_for()
    await page.wait_for_selector(IDLE)
    await page.get_by_role("tab", name="Attribution").click()
    await page.wait_for_selector(IDLE, timeout=180_000)
    for _ in range(rounds):
        t0 = time.perf_counter()
        await page.get_by_role("button", name="Compute attributions").click()
        await expect(page.locator("[data-testid=stImage]").filter(has_text="explaining")).to_have_count(
            1, timeout=300_000)
        await page.wait_for_selector(IDLE, timeout=180_000)
        stats.attr_s.append(time.perf_counter() - t0)
    await _check_clean(page, stats, f"attribution user {idx}")
    await ctx.close()


async def drive(url: str, sessions: int, rounds: int, attr_sessions: int, stats: Stats, tmp: Path) -> float:
    from playwright.async_api import async_playwright

    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        t0 = time.perf_counter()
        await asyncio.gather(*[predict_user(browser, url, i, rounds, stats, tmp) for i in range(sessions)],
                             *[attribution_user(browser, url, i, rounds, stats) for i in range(attr_sessions)])
        wall = time.perf_counter() - t0
        await browser.close()
    return wall


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--attr-sessions", type=int, default=2)
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    from cnnviz.training import jobs
    from cnnviz.training.config import TrainConfig
    from cnnviz.training.runs import read_run
    from tests.e2e.conftest import AppServer

    with tempfile.TemporaryDirectory(prefix="cnnviz-load-") as d:
        base, tmp = Path(d) / "app", Path(d) / "uploads"
        tmp.mkdir(parents=True)
        _prepare(base)
        os.environ["CNNVIZ_CHECKPOINTS"] = str(base / "checkpoints")
        os.environ["CNNVIZ_DATA"] = str(base / "data")
        cfg = TrainConfig(arch="lenet5", variant={"variant": "modern"}, data="synthetic", epochs=200, batch_size=32,
                          optimizer="adamw", lr=2e-3, device="cpu", channels_last=False, heartbeat_s=0.5)
        run = jobs.start(cfg, env={"OMP_NUM_THREADS": "1"})
        server = AppServer(base).start()
        stats = Stats()
        try:
            start_step = None
            deadline = time.monotonic() + 120
            while start_step is None and time.monotonic() < deadline:  # the job is training before users come
                st = read_run(run).status
                start_step = st.get("global_step", st.get("step")) if st.get("state") == "running" else None
                time.sleep(0.5)
            info0 = read_run(run)
            wall = asyncio.run(drive(server.url, args.sessions, args.rounds, args.attr_sessions, stats, tmp))
            info1 = read_run(run)
        finally:
            jobs.stop(run, kill=True, wait=10)
            server.stop()
        log = server.log()
    tracebacks = log.count("Traceback (most recent call last)")
    trained = (info1.epoch, info1.status.get("step")) != (info0.epoch, info0.status.get("step"))
    ups = stats.upload_s
    lines = [
        f"{args.sessions} Predict sessions x {args.rounds} uploads, {args.attr_sessions} Visualize sessions x "
        f"{args.rounds} attribution runs (5 captum methods) on the same cached LeNet-5 checkpoint, one headless "
        f"Chromium (a context per user), while a LeNet-5 training job ran on the synthetic set (1 thread).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| upload -> charts drawn, p50 | {statistics.median(ups):.2f} s |" if ups else "| upload | none |",
        f"| upload -> charts drawn, p95 | {_pct(ups, 95):.2f} s |",
        f"| upload -> charts drawn, max | {max(ups):.2f} s |" if ups else "",
        f"| charts on a Predict page at the end (5 bars each) | up to {getattr(stats, 'charts', 0)} |",
        f"| uploads completed | {len(ups)} of {args.sessions * args.rounds} |",
        f"| attributions, p50 (click -> figure) | {statistics.median(stats.attr_s):.2f} s |"
        if stats.attr_s else "| attributions | none |",
        f"| attributions completed | {len(stats.attr_s)} of {args.attr_sessions * args.rounds} |",
        f"| failed requests to the server (HTTP >= 400 or network) | {len(stats.failed_requests)} |",
        f"| failed requests to other hosts (no internet here) | {len(stats.external)}: "
        f"{', '.join(sorted({u.split()[1].split('/')[2] for u in stats.external})) or '-'} |",
        f"| page exceptions / error elements | {len(stats.page_errors)} / {len(stats.error_elements)} |",
        f"| tracebacks in the server log | {tracebacks} |",
        f"| training job kept training | {'yes' if trained else 'NO'} (epoch {info0.epoch} step "
        f"{info0.status.get('step')} -> epoch {info1.epoch} step {info1.status.get('step')}) |",
        f"| wall time of the whole load | {wall:.0f} s |",
        "",
        "Round k of a session redraws all k of its images (the uploader keeps earlier files), so later uploads "
        "do more work; the first uploads also wait for the checkpoint to load into the shared cache. "
        f"Load average when the run started: {_LOAD_AT_START[0]:.1f} (above ~1 means other work shared the "
        "2 cores, and absolute times are pessimistic); the server, Chromium and the training job share the cores "
        "in any case. The zero counts are the point.",
    ]
    if stats.failed_requests:
        lines += ["", "Failed requests to the server: " + "; ".join(f"`{u.replace(server.url, '')}`"
                                                               for u in stats.failed_requests[:5]) + "."]
    body = "## Load: concurrent sessions (bench_load)\n\n" + "\n".join(x for x in lines if x is not None) + "\n"
    print(body)
    for what, items in (("failed requests", stats.failed_requests), ("external", stats.external[:2]),
                        ("page errors", stats.page_errors),
                        ("error elements", stats.error_elements)):
        for x in items[:10]:
            print(f"{what}: {x}")
    if tracebacks:
        print(log[-4000:])
    if not args.no_write:
        from bench._report import write_section

        print(f"written to {write_section('load', body)}")
    ok = not (stats.failed_requests or stats.page_errors or stats.error_elements or tracebacks) and \
        len(ups) == args.sessions * args.rounds and trained
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
