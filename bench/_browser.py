"""What the browser benchmarks share: Streamlit's idle selector, Predict's bars, and the upload-to-chart loop."""

from __future__ import annotations

import time
from pathlib import Path

IDLE = "[data-testid=stApp][data-test-script-state=notRunning]"  # the script has finished its run
BARS = "[data-testid=stPlotlyChart] .barlayer .point"  # one per class of every top-5 chart


def time_uploads(page, paths: list[Path], label: str = "") -> list[float]:
    """Upload each image in turn on an open Predict page (removing the one before) and time it until the page
    has finished with five bars in every chart; the seconds of each upload, the first one included."""
    from playwright.sync_api import expect

    upload = page.locator("[data-testid=stFileUploaderDropzoneInput]")
    times: list[float] = []
    for path in paths:
        delete = page.get_by_test_id("stFileChipDeleteBtn")
        if delete.count():
            delete.first.click()
            page.wait_for_selector(IDLE)
        t0 = time.perf_counter()
        upload.set_input_files(str(path))
        expect(page.get_by_role("heading", name=path.name)).to_be_visible()
        # The idle state can still be the previous run's when the heading shows: wait for a chart first, then
        # for the run to end, and only then count the charts (counting earlier once expected 0 bars of 5).
        charts = page.get_by_test_id("stPlotlyChart")
        expect(charts.first).to_be_visible()
        page.wait_for_selector(IDLE)
        expect(page.locator(BARS)).to_have_count(5 * charts.count())
        times.append(time.perf_counter() - t0)
        print(f"{label}{path.name}: {times[-1]:.2f} s", flush=True)
    return times
