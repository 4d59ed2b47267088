"""Issue 14 in the browser: Predict with an ImageNet entry (torchvision's ResNet-18 layout, random weights placed
where torch.hub's cache keeps the download; the app server gets that TORCH_HOME), and the offline fetch message."""

from __future__ import annotations

import os

from playwright.sync_api import expect

from cnnviz import imagenet
from tests.e2e.conftest import assert_no_errors, shot, wait_idle
from tests.imagenet_helpers import place_random_weights
from tests.predict_helpers import image_bytes

BARS = "[data-testid=stPlotlyChart] .barlayer .point"


def test_predict_with_an_imagenet_entry_then_fetch_offline(app_server, page, tmp_path):
    _, weights = place_random_weights(imagenet.get_entry("resnet18"))  # into this test's TORCH_HOME
    server = app_server(env={"TORCH_HOME": os.environ["TORCH_HOME"]})
    page.goto(server.url + "/predict")
    wait_idle(page)
    # no starters here: the page opens with the one checkpoint there is, the cached ImageNet entry
    expect(page.get_by_test_id("stMultiSelect").first).to_contain_text("imagenet/resnet18")
    expect(page.get_by_text(f"1 of {len(imagenet.ENTRIES)} here")).to_be_visible()

    photo = tmp_path / "holiday.jpg"
    photo.write_bytes(image_bytes("JPEG", (400, 300), seed=5))
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(photo))
    expect(page.locator(BARS)).to_have_count(5, timeout=120_000)
    wait_idle(page)
    body = page.locator("body").inner_text()
    assert "as the network sees it (224×224)" in body
    assert "1000 classes" in body and "ImageNet" in body and "224x224" in body
    assert_no_errors(page)
    assert not page.js_errors, page.js_errors
    shot(page, tmp_path, "predict_imagenet")

    # offline (this machine and CI): one message that names the file and where it goes
    page.get_by_text("ImageNet networks (torchvision's weights)").click()
    wait_idle(page)  # a click while the upload's rerun still runs can be lost (seen once in a clean-clone run)
    download = page.get_by_role("button", name="Download into the cache")
    error = page.get_by_test_id("stAlertContentError").filter(has_text="vgg11-8a719046.pth")
    # The message must come within the fetch's 10 s connect timeout. Under a full `make test` on 2 cores the
    # click itself was lost twice in clean-clone runs (no progress bar, no rerun, the button still there after
    # 60 s; it passes alone in 15-18 s), so a try that shows nothing within 30 s presses the button again, as a
    # user would. A page that never shows the message still fails after the last try.
    for attempt in range(3):
        expect(download).to_be_enabled()
        download.click()
        try:
            expect(error).to_be_visible(timeout=30_000)
            break
        except AssertionError:
            if attempt == 2:
                raise
            wait_idle(page)
    assert "TORCH_HOME" in error.inner_text() and str(weights.parent) in error.inner_text()
    assert not (weights.parent / "vgg11-8a719046.pth").exists()
    shot(page, tmp_path, "predict_imagenet_offline")
