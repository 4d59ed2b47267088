"""Visualize's Invariance and Layer probes tabs in AppTest, with a real (small, random-weight) checkpoint and a
synthetic dataset: each renders its chart on its button, says what it plotted, and bad input is a clean
message."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
import torch
from streamlit.testing.v1 import AppTest

from cnnviz.checkpoint import build_meta, save_checkpoint
from cnnviz.models import create_model
from cnnviz.paths import checkpoints_dir, data_dir

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "visualize.py")


@pytest.fixture
def setup():
    from cnnviz.data import make_synthetic

    torch.manual_seed(0)
    m = create_model("lenet5", num_classes=3, input_size=64)
    meta = build_meta(m, class_names=["alpha", "beta", "gamma"], mean=(0.45,) * 3, std=(0.25,) * 3)
    save_checkpoint(checkpoints_dir() / "starter" / "lenet_small", m, meta)
    make_synthetic(data_dir() / "tiny-imagenet-200", num_classes=3, train_per_class=4, val_per_class=4)


def _run(at: AppTest) -> AppTest:
    at.run(timeout=240)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def _open(at: AppTest, view: str) -> AppTest:
    at.session_state["viz_view"] = view  # what a click on the tab does (lazy tabs: only the open one runs)
    return _run(at)


def _charts(at) -> list:
    return at.get("plotly_chart")


def test_invariance_tab_plots_one_line_per_val_image(setup):
    at = _open(_run(AppTest.from_file(PAGE, default_timeout=240)), "Invariance")
    assert at.multiselect(key="inv_layers_starter/lenet_small").value == ["features.act1", "act6"]  # first block, last hidden layer
    at.number_input(key="inv_count").set_value(2)
    before = len(_charts(at))
    at.button(key="inv_run").click()
    _run(at)
    assert len(_charts(at)) == before + 1
    captions = " ".join(" ".join(i.captions) for i in at.get("image"))
    assert "what the network saw, shift (pixels)" in captions
    assert any("p(the true class)" in c.value for c in at.caption)
    at.selectbox[0].select("random init: resnet18")  # another model: its own default layers, not the last ones
    _run(at)
    assert at.multiselect(key="inv_layers_resnet18 (random init, seed 0)").value == ["maxpool", "avgpool"]
    at.radio(key="inv_tf").set_value("rotate")
    _run(at)
    assert len(_charts(at)) == before  # a new transform: nothing stale on screen until it is measured
    at.text_input(key="inv_values_rotate").set_value("0, ninety")
    at.button(key="inv_run").click()
    at.run(timeout=240)
    assert not at.exception
    assert any("numbers separated by commas" in e.value for e in at.error)


def test_probes_tab_runs_with_a_progress_bar_and_caches(setup):
    at = _open(_run(AppTest.from_file(PAGE, default_timeout=240)), "Layer probes")
    assert any("logistic regression" in c.value for c in at.caption)
    at.number_input(key="pr_train").set_value(3)
    at.number_input(key="pr_val").set_value(2)
    at.button(key="pr_run").click()
    _run(at)
    assert any("1 checkpoint in" in p.proto.text for p in at.get("progress"))
    table = at.dataframe[-1].value
    assert list(table["layer"]) == ["features.act1", "features.act2", "features.act3", "features.act4", "pool",
                                    "act6"]
    assert table["val_top1"].between(0, 1).all()
    # written as percentages with two decimals (the chart's unit), not as bare fractions
    shown = pa.ipc.open_stream(at.dataframe[-1].proto.arrow_data.styler.display_values).read_all().to_pandas()
    assert list(shown["val_top1"]) == [f"{100 * v:.2f}%" for v in table["val_top1"]], shown
    assert all(s.endswith("%") for s in shown["train_top1"]), shown
    assert list((data_dir() / "viz_cache").glob("probe_*.json"))
