"""ImageNet networks at 224x224 (issue 14): predict latency, upload to chart, deconvnet, occlusion, top-9 rate.

    .venv/bin/python -m bench.bench_imagenet [--repeats 10] [--uploads 5] [--no-browser] [--no-write]

Weights: torchvision's VGG-16 and ResNet-50 (IMAGENET1K_V1) with *random* values, saved where torch.hub's
cache keeps the real download (a temporary TORCH_HOME, as tests/imagenet_helpers.py does): speed does not
depend on the values, and this machine has no network. Everything runs through the real path:
``cnnviz.catalog`` -> ``load_checkpoint`` -> ``cnnviz.imagenet``.

In-process, per model: loading the file; the page's prediction path on a 640x480 photo (resize to 256, crop
224, normalise, forward, softmax: ``cnnviz.predict.measure_latency``) and the forward alone; the deconvnet
projection (``cnnviz.views.visualize.deconv_figure``) of the last convolutional stage; occlusion with the 224x224
defaults (28x28 square, stride 14: 225 positions); the top-9 scan rate over 64 Tiny ImageNet-sized images
resized to 224 (extrapolated to the 10,000 val images). In a browser: the time from uploading a photo on
Predict, with only that ImageNet entry selected, to its finished chart (the first upload also loads the
weights and is reported apart). Writes its section of docs/benchmarks.md (``imagenet``), with the load average
before and after (the 2-core machine is shared).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench._browser import IDLE, time_uploads

_LOAD_AT_START = os.getloadavg()

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MODELS = {"vgg16": "features.29", "resnet50": "layer4"}  # the entry and the layer its deconvnet projects


def _photo(seed: int = 0):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))


def _timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def in_process(name: str, layer: str, repeats: int) -> dict:
    import copy

    import numpy as np
    import torch

    from cnnviz.catalog import find_checkpoint
    from cnnviz.checkpoint import load_checkpoint
    from cnnviz.predict import measure_latency, predict_across
    from cnnviz.views import visualize as vv
    from cnnviz.views.predict import topk_figure
    from cnnviz.viz import occlusion, scan, session

    info = find_checkpoint(f"imagenet/{name}")
    t0 = time.perf_counter()
    ck = load_checkpoint(info.path)
    load_s = time.perf_counter() - t0
    img = _photo()
    page = measure_latency(ck.model, ck.meta, img=img, warmup=2, repeats=repeats)
    fwd = measure_latency(ck.model, ck.meta, warmup=2, repeats=repeats, include_preprocess=False)
    # the same model in torchvision's (contiguous) layout, right after: what loading channels-last buys
    plain = copy.deepcopy(ck.model).to(memory_format=torch.contiguous_format)
    fwd_plain = measure_latency(plain, ck.meta, warmup=2, repeats=repeats, include_preprocess=False)
    del plain
    upload = _timed(lambda: topk_figure(predict_across([(info.name, ck.model, ck.meta)], [("photo", img)])[0]
                                        .results[0]), max(3, repeats // 2))
    subject = session.Subject(ck.model, ck.meta, info.name, None)
    x, seen = session.prepare(img, ck.meta)
    deconv = _timed(lambda: vv.deconv_figure(subject, x, seen, layer), 3)
    t0 = time.perf_counter()
    occ = occlusion(ck.model, x, size=28, stride=14)
    occ_s = time.perf_counter() - t0
    images = np.random.default_rng(0).integers(0, 256, (64, 64, 64, 3), dtype=np.uint8)
    t0 = time.perf_counter()
    scan(ck.model, images, layer, mean=ck.meta["mean"], std=ck.meta["std"], input_size=224)
    scan_rate = len(images) / (time.perf_counter() - t0)
    return {"load_s": load_s, "page_ms": page.median_ms, "page_min_ms": page.min_ms, "fwd_ms": fwd.median_ms,
            "fwd_min_ms": fwd.min_ms, "fwd_plain_ms": fwd_plain.median_ms, "fwd_plain_min_ms": fwd_plain.min_ms,
            "upload_ms": statistics.median(upload) * 1000, "deconv_s": statistics.median(deconv),
            "occ_s": occ_s, "occ_positions": occ.prob.size, "scan_rate": scan_rate, "layer": layer}


def in_browser(name: str, uploads: int, torch_home: str) -> list[float]:
    """Upload-to-chart times on Predict for a server whose cache holds only ``name`` (its default selection)."""
    from playwright.sync_api import expect, sync_playwright

    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, AppServer

    with tempfile.TemporaryDirectory(prefix="cnnviz-imagenet-") as d:
        photos = []
        for i in range(uploads):
            p = Path(d) / f"photo_{i}.jpg"
            _photo(i).save(p, quality=90)
            photos.append(p)
        server = AppServer(Path(d) / "app", env={"TORCH_HOME": torch_home}).start()
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(180_000)
                page.goto(server.url + "/predict")
                page.wait_for_selector(IDLE)
                expect(page.get_by_test_id("stMultiSelect").first).to_contain_text(f"imagenet/{name}")
                times = time_uploads(page, photos, f"browser {name} ")
                browser.close()
        finally:
            server.stop()
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--uploads", type=int, default=5)
    ap.add_argument("--no-browser", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args(argv)

    import torch

    from cnnviz import imagenet
    from tests.imagenet_helpers import place_random_weights

    lib, browser = {}, {}
    with tempfile.TemporaryDirectory(prefix="cnnviz-torch-home-") as homes:
        for name, layer in MODELS.items():  # one cache per model: Predict then opens with it selected
            os.environ["TORCH_HOME"] = home = str(Path(homes) / name)
            place_random_weights(imagenet.get_entry(name))
            lib[name] = in_process(name, layer, args.repeats)
            print(name, {k: round(v, 3) if isinstance(v, float) else v for k, v in lib[name].items()}, flush=True)
            if not args.no_browser:
                browser[name] = in_browser(name, args.uploads, home)
    load_end = os.getloadavg()

    rows = ["| measure | " + " | ".join(f"imagenet/{n}" for n in MODELS) + " |", "|---" * (len(MODELS) + 1) + "|"]

    def row(label: str, fmt) -> None:
        rows.append(f"| {label} | " + " | ".join(fmt(lib[n], browser.get(n)) for n in MODELS) + " |")

    row("load the weights file (our model, strict)", lambda r, b: f"{r['load_s']:.2f} s")
    row("predict, page path (640x480 photo: resize, crop, forward, softmax), median", lambda r, b: f"{r['page_ms']:.0f} ms")
    row("forward alone (1 x 3 x 224 x 224), median (min)", lambda r, b: f"{r['fwd_ms']:.0f} ms ({r['fwd_min_ms']:.0f})")
    row("the same forward in torchvision's contiguous layout, median (min)",
        lambda r, b: f"{r['fwd_plain_ms']:.0f} ms ({r['fwd_plain_min_ms']:.0f})")
    row("server work per upload (+ 'as the network sees it' + chart figure), median", lambda r, b: f"{r['upload_ms']:.0f} ms")
    if browser:
        row("**upload to chart in the browser, warm, median** (min / max)", lambda r, b: (
            f"**{statistics.median(b[1:] or b):.2f} s** ({min(b[1:] or b):.2f} / {max(b[1:] or b):.2f})"))
        row("first upload (loads the weights into the cache)", lambda r, b: f"{b[0]:.2f} s")
    row("the Deconvnet view's figure at 224 (strongest unit of the strongest map, with the image check), median of 3",
        lambda r, b: f"{r['deconv_s']:.2f} s (`{r['layer']}`)")
    row("occlusion, 224x224 defaults (28x28 square, stride 14)", lambda r, b: f"{r['occ_s']:.1f} s ({r['occ_positions']} positions)")
    row("top-9 scan rate up to that layer (images resized 64 -> 224)", lambda r, b: f"{r['scan_rate']:.1f} img/s")
    row("top-9 scan of the 10,000 val images (extrapolated)", lambda r, b: f"about {10_000 / r['scan_rate'] / 60:.0f} min")
    body = "\n".join([
        "## ImageNet networks at 224x224 (`bench.bench_imagenet`)", "",
        "torchvision's VGG-16 and ResNet-50 (IMAGENET1K_V1, ResNet-50 as our `stride_in='3x3'` variant) loaded into "
        "our models through the catalog, in channels-last layout as `cnnviz.imagenet` loads them. The weights "
        "are **random** torchvision weights placed in a temporary torch.hub cache, as the tests place them (speed "
        "does not depend on the values; this machine has no network). The goal is under 1 s from upload to chart.",
        "",
        *rows, "",
        f"Torch threads: {torch.get_num_threads()}. Load average on {os.cpu_count()} cores: {_LOAD_AT_START[0]:.1f} "
        f"when the run started, {load_end[0]:.1f} when it ended (above ~1: other work shared the cores, and the "
        "numbers are slower than on an idle machine).",
    ]) + "\n"
    print(body)
    if not args.no_write:
        from bench._report import write_section

        print(f"written to {write_section('imagenet', body)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
