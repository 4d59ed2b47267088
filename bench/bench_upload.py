"""One user, the shipped starters: time from uploading a photo to the finished top-5 charts, in a real browser.

    .venv/bin/python -m bench.bench_upload [--images 10] [--no-write]

Starts ``streamlit run app.py`` on a copy of ``checkpoints/starter/`` (the Predict page then opens with every
starter selected), drives one headless Chromium, and uploads ``--images`` real Tiny ImageNet val images (from
``../shared/data/tiny-imagenet-200.zip``; generated photos-like images when it is absent) one at a time,
removing the previous one so each round draws exactly one image. Each time runs from ``set_input_files`` to the
script having finished with five bars in every chart: what a user waits for. The first upload also loads the
checkpoints into the shared cache and is reported apart (the issue's goal is for a warm app). Writes its section
of docs/benchmarks.md (``upload``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import zipfile
from pathlib import Path

from bench._browser import IDLE, time_uploads

_LOAD_AT_START = os.getloadavg()

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))



def _images(n: int, folder: Path) -> tuple[list[Path], str]:
    from tests.conftest import SHARED_ZIP

    folder.mkdir(parents=True, exist_ok=True)
    if SHARED_ZIP.is_file():
        with zipfile.ZipFile(SHARED_ZIP) as z:
            names = sorted(x for x in z.namelist() if "/val/images/" in x and x.endswith(".JPEG"))[:n]
            paths = []
            for name in names:
                p = folder / Path(name).name
                p.write_bytes(z.read(name))
                paths.append(p)
        return paths, "real Tiny ImageNet val images (64x64 JPEG)"
    import numpy as np
    from PIL import Image

    paths = []
    for i in range(n):
        rng = np.random.default_rng(i)
        p = folder / f"generated_{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(p, quality=90)
        paths.append(p)
    return paths, "generated 640x480 JPEGs (the shared zip is absent)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10)
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from cnnviz.starter import list_starters
    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, AppServer

    starters = list_starters(REPO / "checkpoints")
    if not starters:
        print("no starter checkpoints in checkpoints/starter/: nothing to measure")
        return 1
    with tempfile.TemporaryDirectory(prefix="cnnviz-upload-") as d:
        base = Path(d) / "app"
        shutil.copytree(REPO / "checkpoints" / "starter", base / "checkpoints" / "starter")
        images, origin = _images(args.images, Path(d) / "images")
        server = AppServer(base).start()
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(120_000)
                page.goto(server.url + "/predict")
                page.wait_for_selector(IDLE)
                chosen = [line.strip() for line in page.get_by_test_id("stMultiSelect").first.inner_text().splitlines()
                          if line.strip() and line.strip() != "Checkpoints"]
                times = time_uploads(page, images)
                browser.close()
        finally:
            server.stop()
    warm = times[1:] or times
    names = ", ".join(f"`{s['name']}`" for s in starters)
    body = "\n".join([
        "## Upload to chart, one user, the shipped starters (`bench.bench_upload`)", "",
        f"One headless Chromium on the Predict page with its default selection ({len(chosen)} of the "
        f"{len(starters)} starters, named below; all: {names}); {len(times)} uploads of {origin}, one image at a time. Time from "
        "the upload to the finished page with five bars per chosen starter.", "",
        "| measure | value |", "|---|---|",
        f"| first upload (loads the checkpoints into the cache) | {times[0]:.2f} s |",
        f"| warm uploads, median | {statistics.median(warm):.2f} s |",
        f"| warm uploads, min / max | {min(warm):.2f} / {max(warm):.2f} s |",
        "| goal | under 1 s |", "",
        f"Selected on the page: {'; '.join(chosen)}. Load average when the run started: "
        f"{_LOAD_AT_START[0]:.1f} on {os.cpu_count()} cores (above ~1: other work shared the cores).",
    ]) + "\n"
    print(body)
    if not args.no_write:
        from bench._report import write_section

        print(f"written to {write_section('upload', body)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
