"""Journey: open the Visualize page with a small checkpoint, upload an image, see the filters, a deconvnet
projection and an occlusion map render in headless Chromium without errors; the heat maps' colour bars and
legend are on screen; Grad-CAM of the ResNet-18 starter is a picture, not a constant."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from playwright.sync_api import expect

from tests.e2e.conftest import assert_no_errors, shot, wait_idle


def _checkpoint(folder):
    from cnnviz.checkpoint import build_meta, save_checkpoint
    from cnnviz.models import create_model

    torch.manual_seed(0)
    m = create_model("lenet5", num_classes=3, input_size=64)
    save_checkpoint(folder / "starter" / "tiny_lenet", m,
                    build_meta(m, class_names=["alpha", "beta", "gamma"], mean=(0.45,) * 3, std=(0.25,) * 3))


def _tab(page, name):
    page.get_by_role("tab", name=name).click()
    wait_idle(page)


def _loaded_image(page, caption_text):
    """The ``st.image`` whose caption contains ``caption_text``, once visible and fully decoded."""
    img = page.locator("[data-testid=stImage]").filter(has_text=caption_text).locator("img")
    expect(img).to_be_visible(timeout=60_000)  # a tab click reruns the page (lazy tabs): it may not have begun yet
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle())
    return img


def test_filters_projection_and_occlusion_render(app_server, page, tmp_path):
    base = tmp_path / "app"
    _checkpoint(base / "checkpoints")
    server = app_server(base=base)
    page.goto(server.url + "/visualize")
    wait_idle(page)

    img = tmp_path / "upload.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(img)
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(img))
    wait_idle(page)
    expect(page.get_by_text("What the network saw").first).to_be_visible()

    # Filters (the first tab): the grid and its caption
    expect(page.get_by_text("each filter scaled to its own").first).to_be_visible()
    # Deconvnet projection
    _tab(page, "Deconvnet")
    _loaded_image(page, "receptive field")
    # Occlusion map
    _tab(page, "Occlusion")
    page.get_by_role("button", name="Run occlusion").click()
    wait_idle(page, timeout=120_000)
    expect(page.get_by_text("grey square 8x8").first).to_be_visible(timeout=60_000)
    occl = _loaded_image(page, "grey square 8x8")
    assert occl.evaluate("img => img.naturalWidth") > 300  # four labelled maps side by side
    assert_no_errors(page)
    expect(page.get_by_test_id("stAlertContentError")).to_have_count(0)
    assert not page.js_errors, page.js_errors
    shot(page, tmp_path, "visualize")


def test_clicking_a_unit_on_a_feature_map_outlines_its_input_region(app_server, page, tmp_path):
    """ZF's question "what does this unit see?": a click on a cell of the feature map picks that unit, and the
    page names it and outlines its receptive field in the input."""
    from cnnviz.checkpoint import load_checkpoint
    from cnnviz.views import visualize as vv
    from cnnviz.viz import session
    from cnnviz.viz.layers import output_shapes
    from cnnviz.viz.maps import unit_region

    base = tmp_path / "app"
    _checkpoint(base / "checkpoints")
    ck = load_checkpoint(base / "checkpoints" / "starter" / "tiny_lenet")
    subject = session.Subject(ck.model, ck.meta, "tiny_lenet", None)
    layer = session.default_layer(subject)
    _, h, w = output_shapes(subject.model, subject.input_size)[layer]
    assert h >= 4 and w >= 4, (layer, h, w)  # a map with cells worth clicking

    server = app_server(base=base)
    page.goto(server.url + "/visualize")
    wait_idle(page)
    _tab(page, "Feature maps")
    chart = page.get_by_test_id("stPlotlyChart").first
    plot_area = chart.locator(".nsewdrag").first  # plotly's plotting area = the map's extent
    plot_area.wait_for()
    for row, col in [(1, 2), (h - 2, w - 1)]:
        chart.scroll_into_view_if_needed()
        box = plot_area.bounding_box()
        page.mouse.move(box["x"] + (col + 0.5) / w * box["width"], box["y"] + (row + 0.5) / h * box["height"])
        page.mouse.down()
        page.mouse.up()
        wait_idle(page)
        region = vv.box_text(unit_region(subject.model, layer, row, col, subject.input_size))
        expect(page.get_by_text(f"unit (row, column) ({row}, {col}) (clicked) and the input region {region}").first
               ).to_be_visible(timeout=30_000)
    assert_no_errors(page)
    assert not page.js_errors, page.js_errors
    shot(page, tmp_path, "visualize_feature_maps_click")


def test_top9_scan_shows_progress_then_the_zf_figure(app_server, page, tmp_path):
    from cnnviz.data import make_synthetic

    base = tmp_path / "app"
    _checkpoint(base / "checkpoints")
    make_synthetic(base / "data" / "tiny-imagenet-200", num_classes=3, train_per_class=2, val_per_class=20)
    server = app_server(base=base)
    page.goto(server.url + "/visualize")
    wait_idle(page)
    _tab(page, "Top-9")
    page.get_by_role("button", name="Scan the validation set").click()
    wait_idle(page, timeout=120_000)
    # the finished bar says how many images and how long; then ZF Fig. 2: projections beside patches
    expect(page.get_by_text("60 images in").first).to_be_visible(timeout=60_000)
    fig = _loaded_image(page, "receptive-field patches")
    assert fig.evaluate("img => img.naturalWidth > img.naturalHeight")  # two 3x3 grids side by side
    assert list((base / "data" / "viz_cache").glob("*.npz"))  # kept on disk for this checkpoint and layer
    assert_no_errors(page)
    assert not page.js_errors, page.js_errors
    shot(page, tmp_path, "visualize_top9")


def _on_screen(page, caption_text) -> np.ndarray:
    """What the browser shows of the captioned figure: a screenshot of the image element, as RGB pixels."""
    import io

    img = _loaded_image(page, caption_text)
    img.scroll_into_view_if_needed()
    return np.asarray(Image.open(io.BytesIO(img.screenshot())).convert("RGB"))


def _has_colour_bar(pixels: np.ndarray, cmap: str, min_length: int = 120) -> bool:
    """A horizontal run of at least ``min_length`` pixels that walks through ``cmap`` from its dark end to its
    bright end in order: a colour bar as drawn on screen (within a small colour tolerance)."""
    from matplotlib import colormaps

    lut = (colormaps[cmap](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.int32)
    for row in pixels.astype(np.int32):
        dist = ((row[:, None, :] - lut[None, :, :]) ** 2).sum(axis=2)
        level, ok = dist.argmin(axis=1), dist.min(axis=1) < 12 ** 2
        start = None
        for i in range(len(row) + 1):
            if i < len(row) and ok[i] and (start is None or level[i] >= level[i - 1] - 3):
                start = i if start is None else start
                continue
            if start is not None and i - start >= min_length and level[i - 1] - level[start] > 200:
                return True
            start = i if i < len(row) and ok[i] else None
    return False


def test_occlusion_colour_bars_and_class_legend_are_on_screen(app_server, page, tmp_path):
    """Issue 11: every heat map says what its colours mean. In the browser: the occlusion figure shows the
    colour bars of (a) and (b) and, under (c), a legend swatch for each class that (c) paints."""
    from matplotlib import colormaps

    base = tmp_path / "app"
    _checkpoint(base / "checkpoints")
    server = app_server(base=base)
    page.goto(server.url + "/visualize")
    wait_idle(page)
    _tab(page, "Occlusion")
    picked = page.get_by_role("combobox", name="Class").input_value()
    assert picked.split(" (#")[0] in ("alpha", "beta", "gamma"), picked  # the class by name, not 0..199
    page.get_by_role("button", name="Run occlusion").click()
    expect(page.get_by_text("grey square 8x8").first).to_be_visible(timeout=120_000)  # (the rerun may not have begun)
    wait_idle(page, timeout=120_000)
    pixels = _on_screen(page, "grey square 8x8")
    assert _has_colour_bar(pixels, "viridis") and _has_colour_bar(pixels, "magma")
    legend_area = pixels[pixels.shape[0] * 3 // 4:, pixels.shape[1] * 3 // 4:]  # under (c): text and legend
    tab20 = {tuple(int(round(c * 255)) for c in rgb) for rgb in colormaps["tab20"].colors}
    found = {tuple(p) for p in legend_area.reshape(-1, 3).tolist()} & tab20
    assert found, "no legend swatch under panel (c)"
    assert_no_errors(page)
    shot(page, tmp_path, "visualize_occlusion")


def test_grad_cam_of_the_resnet18_starter_is_a_picture(app_server, page, tmp_path):
    """Issue 11: ResNet-18's Grad-CAM used its 1x1 avgpool, a constant painted as a crimson square. Now the
    panel is a real map (many colours of the inferno scale) with its colour bar."""
    import shutil

    from tests.e2e.conftest import REPO

    starter = REPO / "checkpoints" / "starter" / "resnet18_tinyimagenet"
    if not starter.with_suffix(".safetensors").exists():
        import pytest

        pytest.skip("the ResNet-18 starter is not in this checkout")
    base = tmp_path / "app"
    (base / "checkpoints" / "starter").mkdir(parents=True)
    for suffix in (".safetensors", ".json"):
        shutil.copy(starter.with_suffix(suffix), base / "checkpoints" / "starter")
    server = app_server(base=base)
    page.goto(server.url + "/visualize")
    wait_idle(page)
    _tab(page, "Attribution")
    page.get_by_role("button", name="Compute attributions").click()
    expect(page.get_by_text("explaining").first).to_be_visible(timeout=180_000)  # (the rerun may not have begun)
    wait_idle(page, timeout=180_000)
    pixels = _on_screen(page, "explaining")
    natural = _loaded_image(page, "explaining").evaluate("img => img.naturalWidth")
    k = pixels.shape[1] / natural  # the page may draw the figure narrower than it is
    cell, pad = 160, 6  # views.visualize.attribution_figure: the image, then six panels of 160 px, 6 px apart
    x0 = pad + 5 * (cell + pad)  # the sixth tile: Grad-CAM
    tile = pixels[int(40 * k):int((40 + cell - 20) * k), int((x0 + 10) * k):int((x0 + cell - 10) * k)]
    colourful = tile.max(axis=2).astype(int) - tile.min(axis=2) > 40
    assert colourful.mean() > 0.3, "the Grad-CAM panel is not a colour map"
    _, counts = np.unique(tile.reshape(-1, 3), axis=0, return_counts=True)
    # a constant CAM stretched over float noise was one crimson colour with a striped patch
    assert len(counts) > 50 and counts.max() < 0.2 * counts.sum(), "the Grad-CAM panel is (nearly) constant"
    assert _has_colour_bar(pixels, "inferno", min_length=int(120 * k))
    assert page.get_by_role("combobox", name="Grad-CAM layer").input_value() == "layer4"  # not the 1x1 avgpool
    assert_no_errors(page)
    shot(page, tmp_path, "visualize_gradcam_resnet18")


def test_invariance_and_layer_probes_draw_their_charts(app_server, page, tmp_path):
    """ZF Fig. 5 and Table 6 in the browser: the invariance panels (one line per val image) and the probe's
    accuracy-against-depth chart after its progress bar, with nothing raised."""
    from cnnviz.data import make_synthetic

    base = tmp_path / "app"
    _checkpoint(base / "checkpoints")
    make_synthetic(base / "data" / "tiny-imagenet-200", num_classes=3, train_per_class=4, val_per_class=4)
    server = app_server(base=base)
    page.goto(server.url + "/visualize")
    wait_idle(page)
    _tab(page, "Invariance")
    page.get_by_role("button", name="Transform and measure").click()
    wait_idle(page, timeout=120_000)
    panel = page.get_by_role("tabpanel", name="Invariance")
    expect(panel.get_by_test_id("stPlotlyChart")).to_have_count(1)
    expect(panel.locator(".legendtext")).to_have_count(3)  # three val images, one legend entry each
    expect(panel.get_by_text("probability of the class").first).to_be_visible()
    _loaded_image(page, "what the network saw, shift (pixels)")
    shot(page, tmp_path, "visualize_invariance")
    _tab(page, "Layer probes")
    page.get_by_role("button", name="Run the probes").click()
    wait_idle(page, timeout=120_000)
    expect(page.get_by_text("1 checkpoint in").first).to_be_visible(timeout=60_000)
    probes = page.get_by_role("tabpanel", name="Layer probes")
    expect(probes.get_by_test_id("stPlotlyChart")).to_have_count(1)
    expect(probes.get_by_text("val top-1 of a linear probe (%)").first).to_be_visible()
    assert_no_errors(page)
    expect(page.get_by_test_id("stAlertContentError")).to_have_count(0)
    assert not page.js_errors, page.js_errors
    shot(page, tmp_path, "visualize_probes")
