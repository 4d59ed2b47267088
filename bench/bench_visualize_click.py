"""How long a click on the Visualize page takes, in a real browser, on the shipped starters: this checkout against
an older commit (by default the last one whose page computed all seven views on every rerun), in the same run.

    CNNVIZ_DATA=/work/main/data .venv/bin/python -m bench.bench_visualize_click [--before REF] [--no-write]

For each code version, ``streamlit run app.py`` serves a copy of ``checkpoints/starter/`` (and the validation set
of ``$CNNVIZ_DATA`` when there is one), and one headless Chromium opens Visualize. For each starter it picks the
checkpoint (not timed), then times what a user does most:

* *next image*: the "+" of "Validation image" (a rerun that recomputes what is shown), three times on the
  first view and twice more on "Feature maps";
* *option*: the "Scale" radio of the Filters view, there and back;
* *open a view*: "Feature maps", "Deconvnet", then "Filters" again (on the older page a tab switch does
  not rerun: its tabs were all computed already).

Each time runs from the click to the script having finished with the view's figure visible (Streamlit's
``data-test-script-state``, watched by a MutationObserver, so a click that has not started its rerun yet is
not taken for a finished one). The older commit is exported with ``git archive`` into a temporary folder
and run from there, one server at a time. A baseline that predates compressed checkpoints (c3750d6 does) cannot
read the shipped starters: both versions are then served the same dense float16 copies, which this checkout
writes (:func:`float16_copies`); picking a checkpoint, where the two would differ, is not timed.

The same clicks are also timed without a browser (Streamlit's AppTest, in a subprocess importing that
checkout's code): the server's script time alone, which the machine's load disturbs less than a browser
round trip. Writes its section of docs/benchmarks.md (``visualize_click``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# The last commit of the Visualize page that ran all seven st.tabs on every rerun (issue 11).
BEFORE = "c3750d6"
STATE = "document.querySelector('[data-testid=stApp]').getAttribute('data-test-script-state')"
# Counts finished runs from the mutation records' old values: a rerun quicker than the observer's callback reaches
# it as two batched records (running, then notRunning), and reading the attribute in the callback missed it.
WATCH = """() => {
  const app = document.querySelector('[data-testid=stApp]');
  window.__runs = 0;
  new MutationObserver(records => {
    for (const r of records) if (r.oldValue === 'running') window.__runs++;
  }).observe(app, {attributes: true, attributeOldValue: true, attributeFilter: ['data-test-script-state']});
}"""


def _idle(page, runs_before: int | None = None) -> None:
    """Wait until the script is not running (and, given ``runs_before``, has run at least once more since)."""
    if runs_before is None:
        page.wait_for_function(f"() => {STATE} === 'notRunning'")
    else:
        page.wait_for_function(f"n => window.__runs > n && {STATE} === 'notRunning'", arg=runs_before)


def _timed_rerun(page, action) -> float:
    runs = page.evaluate("window.__runs")
    t0 = time.perf_counter()
    action()
    _idle(page, runs)
    return time.perf_counter() - t0


def _timed_view(page, name: str, marker: str, reruns: bool) -> float:
    """``reruns``: the page reruns on a tab switch (the lazy page). Waiting for that rerun to finish, not only for
    the figure, matters: a figure can show before its rerun's end, and a click that lands inside a rerun can be
    lost, which left the next timed click waiting for a rerun that never came."""
    from playwright.sync_api import expect

    runs = page.evaluate("window.__runs")
    t0 = time.perf_counter()
    page.get_by_role("tab", name=name).click()
    expect(page.locator("[data-testid=stImage]").filter(has_text=marker).first).to_be_visible(timeout=180_000)
    _idle(page, runs if reruns else None)
    return time.perf_counter() - t0


def measure(root: Path, starters: list[dict], data: Path | None, label: str, source: Path,
            lazy: bool) -> dict[str, list[float]]:
    """Click times (seconds) by kind for the app checked out at ``root``, serving the starters in ``source``."""
    from playwright.sync_api import sync_playwright

    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, AppServer, choose

    times: dict[str, list[float]] = {"next image": [], "option": [], "open a view": []}
    with tempfile.TemporaryDirectory(prefix="cnnviz-click-") as d:
        base = Path(d) / "app"
        shutil.copytree(source, base / "checkpoints" / "starter")
        env = {"CNNVIZ_DATA": str(data)} if data else None
        server = AppServer(base, env, root=root).start()
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(180_000)
                page.goto(server.url + "/visualize")
                _idle(page)
                page.evaluate(WATCH)
                step_up = (page.get_by_test_id("stNumberInput").filter(has_text="Validation image")
                           .get_by_test_id("stNumberInputStepUp"))
                scale = page.get_by_test_id("stRadio").filter(has_text="Scale")
                for s in starters:
                    choose(page, "Model", re.compile(rf"^starter\/{re.escape(s['name'])} "))
                    _idle(page)
                    got = []
                    if data:
                        got += [("next image", _timed_rerun(page, step_up.click)) for _ in range(3)]
                    got += [("option", _timed_rerun(page, scale.get_by_text(o, exact=True).click))
                            for o in ("global", "per_filter")]
                    got.append(("open a view", _timed_view(page, "Feature maps", "strongest first", lazy)))
                    if data:
                        got += [("next image", _timed_rerun(page, step_up.click)) for _ in range(2)]
                    got.append(("open a view", _timed_view(page, "Deconvnet", "deconvnet", lazy)))
                    got.append(("open a view", _timed_view(page, "Filters", "scaled", lazy)))
                    for kind, t in got:
                        times[kind].append(t)
                    print(f"{label} {s['name']}: " + ", ".join(f"{k} {t:.2f}" for k, t in got), flush=True)
                browser.close()
        finally:
            server.stop()
    return times


# The same clicks through AppTest (no browser): run in a subprocess whose sys.path starts at the checkout,
# so the old page imports the old library. Prints one JSON object {kind: [seconds, ...]}.
_APPTEST = r"""
import json, os, sys, time
sys.path.insert(0, os.getcwd())
import torch
from streamlit.testing.v1 import AppTest
torch.set_num_threads(1)
at = AppTest.from_file(os.path.join(os.getcwd(), "app_pages", "visualize.py"), default_timeout=600)
at.run()
lazy = sys.argv[2] == "lazy"  # the page's tabs run only the open view (a tab switch is a rerun)
times = {"next image": [], "option": [], "open a view": []}
def timed(kind):
    t = time.perf_counter(); at.run(); times[kind].append(time.perf_counter() - t)
    assert not at.exception, [e.value for e in at.exception]
for name in json.loads(sys.argv[1]):
    at.selectbox[0].select(next(o for o in at.selectbox[0].options if o.startswith("starter/" + name + " ")))
    at.run()
    step = next((n for n in at.number_input if n.label == "Validation image"), None)
    for _ in range(3 if step else 0):
        step.increment(); timed("next image")
    radio = next(r for r in at.radio if r.label == "Scale")
    for v in ("global", "per_filter"):
        radio.set_value(v); timed("option")
    for view in ("Feature maps", "Deconvnet", "Filters"):
        if lazy:
            at.session_state["viz_view"] = view; timed("open a view")
print(json.dumps(times))
"""


def measure_script(root: Path, starters: list[dict], data: Path | None, lazy: bool,
                   source: Path) -> dict[str, list[float]]:
    """Server-side script time of the same clicks, through AppTest, for the app checked out at ``root``."""
    import json

    with tempfile.TemporaryDirectory(prefix="cnnviz-apptest-") as d:
        base = Path(d)
        shutil.copytree(source, base / "checkpoints" / "starter")
        env = {**os.environ, "CNNVIZ_CHECKPOINTS": str(base / "checkpoints"),
               "CNNVIZ_DATA": str(data or base / "data"), "PYTHONPATH": str(root)}
        out = subprocess.run([sys.executable, "-c", _APPTEST, json.dumps([s["name"] for s in starters]),
                              "lazy" if lazy else "all"], cwd=root,
                             env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def float16_copies(source: Path, dest: Path) -> Path:
    """Every checkpoint of ``source`` as a dense float16 checkpoint in ``dest`` (int8 and SVD factors multiplied
    out by this checkout's loader; ``save_checkpoint`` with a dtype writes no compression entry), in the plain
    format every earlier cnnviz reads."""
    import torch

    from cnnviz.checkpoint import load_checkpoint, save_checkpoint

    dest.mkdir(parents=True)
    for meta_path in sorted(source.glob("*.json")):
        ckpt = load_checkpoint(meta_path.with_suffix(""))
        save_checkpoint(dest / meta_path.stem, ckpt.model, ckpt.meta, dtype=torch.float16)
    return dest


def _export(ref: str, folder: Path) -> Path:
    """The app as committed at ``ref`` (tracked files only), unpacked into ``folder``."""
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def _row(kind: str, before: list[float], after: list[float]) -> str:
    def cell(ts):
        return f"{statistics.median(ts):.2f} s ({min(ts):.2f}-{max(ts):.2f}, n={len(ts)})" if ts else "-"

    ratio = f"{statistics.median(before) / statistics.median(after):.1f}x" if before and after else "-"
    return f"| {kind} | {cell(before)} | {cell(after)} | {ratio} |"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default=BEFORE, help=f"git ref of the baseline page (default {BEFORE})")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args(argv)

    from bench._report import shared_note
    from cnnviz.data import find_dataset
    from cnnviz.starter import list_starters

    load_start = os.getloadavg()
    starters = list_starters(REPO / "checkpoints")
    if not starters:
        print("no starter checkpoints in checkpoints/starter/: nothing to measure")
        return 1
    compressed = [s["name"] for s in starters if s.get("dtype") not in (None, "float16", "float32")]
    knows = subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{args.before}:cnnviz/compress.py"],
                           capture_output=True).returncode == 0
    data = find_dataset()
    data_dir = data.parent if data is not None else None
    with tempfile.TemporaryDirectory(prefix="cnnviz-before-") as d:
        source = REPO / "checkpoints" / "starter"
        if compressed and not knows:  # the baseline cannot read them: both pages get the same dense copies
            source = float16_copies(source, Path(d) / "float16")
        old_root = _export(args.before, Path(d) / "src")
        old = measure(old_root, starters, data_dir, "before", source, False)
        old_script = measure_script(old_root, starters, data_dir, False, source)
        new = measure(REPO, starters, data_dir, "after", source, True)
        new_script = measure_script(REPO, starters, data_dir, True, source)
    load_end = os.getloadavg()
    every_old = [t for ts in old.values() for t in ts]
    every_new = [t for ts in new.values() for t in ts]
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    names = ", ".join(f"`{s['name']}`" for s in starters)
    body = "\n".join([
        "## Visualize: one click, in the browser (`bench.bench_visualize_click`)", "",
        f"One headless Chromium on the Visualize page, each of the {len(starters)} starters ({names}) in turn, "
        + ("real Tiny ImageNet val images" if data else "the demo image (no dataset: no *next image* clicks")
        + ". Time from the click to the finished script with the view's figure visible; median (min-max, "
        f"count). *Before*: commit `{args.before}` (every view computed on every rerun); *after*: `{head}` "
        "(only the open view). Both measured in this run, one server after the other"
        + (f"; both served float16 copies of the starters, decompressed by this checkout, since `{args.before}` "
           "predates compressed checkpoints (the weights are the same; loading a checkpoint is not timed)"
           if compressed and not knows else "") + ".", "",
        "| click | before | after | before / after |", "|---|---|---|---|",
        *(_row(k, old[k], new[k]) for k in old),
        _row("every click above", every_old, every_new),
        "| goal | | at most 1 s | |", "",
        "The same clicks without a browser (AppTest: the server's script time only; on the older page a tab "
        "switch runs nothing, so it has no *open a view* row). The script is the part the page controls; the rest of a "
        "browser click is the websocket round trip, sending the figures and drawing them, which the load on "
        "the cores stretches (the first *open a view* also loads plotly.js into the tab):", "",
        "| click | before | after | before / after |", "|---|---|---|---|",
        *(_row(k, old_script[k], new_script[k]) for k in old_script),
        _row("every click above", [t for ts in old_script.values() for t in ts],
             [t for ts in new_script.values() for t in ts]), "",
        f"At the start, {shared_note(load_start[0])}; at the end, {shared_note(load_end[0])} (the server and "
        "Chromium share the cores with the page).",
    ]) + "\n"
    print(body)
    if not args.no_write:
        from bench._report import write_section

        print(f"written to {write_section('visualize_click', body)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
