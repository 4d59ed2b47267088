"""The Visualize page in AppTest, with a real (small, random-weight) checkpoint and no fakes: filters, feature
maps and a deconvnet projection render on load; occlusion and attributions render on their buttons; the
page shows what the network saw; nothing raises."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from cnnviz.checkpoint import build_meta, load_checkpoint, save_checkpoint
from cnnviz.models import create_model
from cnnviz.paths import checkpoints_dir

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "visualize.py")


@pytest.fixture
def checkpoint():
    torch.manual_seed(0)
    m = create_model("lenet5", num_classes=3, input_size=64)
    meta = build_meta(m, class_names=["alpha", "beta", "gamma"], mean=(0.45, 0.45, 0.45), std=(0.25, 0.25, 0.25))
    return save_checkpoint(checkpoints_dir() / "starter" / "lenet_small", m, meta)[0]


def _run(at: AppTest) -> AppTest:
    at.run(timeout=240)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def _images(at) -> int:
    return len(at.get("image"))


def _captions(at) -> str:
    return " ".join(" ".join(i.captions) for i in at.get("image"))


def _button(at, label):
    return next(b for b in at.button if b.label == label)


def test_page_renders_filters_maps_and_projection(checkpoint):
    at = _run(AppTest.from_file(PAGE, default_timeout=240))
    assert at.selectbox[0].value.startswith("starter/lenet_small")
    text = _captions(at)
    assert "What the network saw" in text
    assert _images(at) >= 5  # seen image, filter grid, unit detail, maps grid, projection
    assert "deconvnet" in text and "filters" in text and "strongest first" in text, text
    assert any("dead" in m.value for m in at.markdown)
    # every figure has its PNG download
    assert any(getattr(d.proto, "label", "") == "PNG" for d in at.get("download_button"))


def test_occlusion_and_attribution_buttons(checkpoint):
    at = _run(AppTest.from_file(PAGE, default_timeout=240))
    before = _images(at)
    _button(at, "Run occlusion").click()
    _run(at)
    assert _images(at) == before + 1
    assert "grey square 8x8" in _captions(at)
    _button(at, "Compute attributions").click()
    _run(at)
    assert "explaining" in _captions(at)


def test_random_model_and_layer_choice(checkpoint):
    at = _run(AppTest.from_file(PAGE, default_timeout=240))
    at.selectbox[0].select("random init: zfnet")
    _run(at)
    layer = at.selectbox[1]
    layer.select("features.pool1")
    _run(at)
    assert "features.pool1[" in _captions(at)


def test_bad_channel_is_a_clean_message(checkpoint):
    at = _run(AppTest.from_file(PAGE, default_timeout=240))
    at.number_input(key="dc_ch").set_value(100000)
    at.run(timeout=240)
    assert not at.exception
    assert any("does not exist" in e.value for e in at.error)


def test_across_training_slider_over_a_real_runs_epoch_snapshots(tmp_path_factory):
    """ZF Fig. 4 on a real run: the training code itself (keep_snapshots) writes epochs/epoch_NNN, the page
    finds them, the slider offers exactly those epochs, and moving it shows the filters of that epoch, which
    differ from the previous epoch's because the network learnt in between."""
    import numpy as np

    from cnnviz.runs import create_run
    from cnnviz.train import run_training
    from cnnviz.viz import filter_grid, list_snapshots
    from tests._synthetic import install_synthetic, tiny_config

    install_synthetic(tmp_path_factory)
    cfg = tiny_config(epochs=2, keep_snapshots=True, max_steps_per_epoch=4)
    run = create_run(cfg.to_dict())
    assert run_training(run, cfg, to_stderr=False) == "done"
    snaps = list_snapshots(run)
    assert [s.epoch for s in snaps] == [1, 2]
    first, second = (filter_grid(load_checkpoint(s.path).model).image for s in snaps)
    assert not np.array_equal(first, second), "the two epochs' filters should differ"

    at = AppTest.from_file(PAGE, default_timeout=240)
    _run(at)
    at.selectbox[0].select(next(o for o in at.selectbox[0].options if o.startswith(f"{run.name}/best")))
    _run(at)
    slider = at.select_slider[0]
    assert list(slider.options) == ["1", "2"]
    assert "first-layer filters after epoch 1" in _captions(at)
    slider.set_value(2)
    _run(at)
    assert "first-layer filters after epoch 2" in _captions(at)
    assert "strongest projection of" in _captions(at)


def test_top9_scan_from_a_synthetic_validation_set(checkpoint):
    from cnnviz.data import make_synthetic
    from cnnviz.paths import data_dir

    make_synthetic(data_dir() / "tiny-imagenet-200", num_classes=3, train_per_class=2, val_per_class=4)
    at = _run(AppTest.from_file(PAGE, default_timeout=240))
    assert any(n.label == "Validation image" for n in at.number_input)
    _button(at, "Scan the validation set").click()
    _run(at)
    assert "receptive-field patches" in _captions(at)
    assert any("12 images in" in p.proto.text for p in at.get("progress"))  # the finished bar: count and time
    assert any("top9" in d.proto.id and d.proto.label == "CSV"
               for d in at.get("download_button"))
    assert list((data_dir() / "viz_cache").glob("*.npz"))  # cached per checkpoint and layer
