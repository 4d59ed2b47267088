"""ImageNet entries (issue 14) on the pages, in AppTest: Predict lists and predicts with imagenet/resnet18 and
fetches offline with one clear message; Visualize shows it at 224x224 with its cost-aware defaults.

Weights: torchvision's ResNet-18 with random weights in the test's own torch.hub cache (TORCH_HOME,
tests/conftest.py), as tests/imagenet_helpers.py places them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cnnviz import imagenet
from cnnviz.data import make_synthetic
from cnnviz.paths import data_dir
from tests.imagenet_helpers import place_random_weights
from tests.predict_helpers import image_bytes

PAGES = Path(__file__).resolve().parents[2] / "app_pages"


def _run(at: AppTest, timeout: int = 240) -> AppTest:
    at.run(timeout=timeout)
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture
def resnet18():
    return place_random_weights(imagenet.get_entry("resnet18"))[1]


def test_predict_with_an_imagenet_entry(resnet18):
    at = _run(AppTest.from_file(str(PAGES / "predict.py")))
    assert at.expander[0].label == f"ImageNet networks (torchvision's weights): 1 of {len(imagenet.ENTRIES)} here"
    assert imagenet.LICENSE_URL in at.expander[0].caption[0].value
    assert at.multiselect[0].options == ["imagenet/resnet18 (resnet18, val top-1 69.8%)"]
    at.multiselect[0].set_value(["imagenet/resnet18"])
    at.file_uploader[0].set_value([("photo.jpg", image_bytes("JPEG", (320, 240), seed=3), "image/jpeg")])
    _run(at)
    assert not at.error, [e.value for e in at.error]
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert sum(len(t["y"]) for t in spec["data"]) == 5
    assert any("as the network sees it (224×224)" in " ".join(i.captions) for i in at.get("image"))
    notes = " ".join(m.value for m in at.markdown)
    assert "can only name the 1000 classes they were trained on" in notes and "ImageNet" in notes and "224x224" in notes


def test_fetch_offline_says_where_to_put_the_file(monkeypatch):
    monkeypatch.setattr(imagenet.download, "weights_url", lambda e: "http://127.0.0.1:9/refused.pth")
    at = _run(AppTest.from_file(str(PAGES / "predict.py")))
    assert at.expander[0].label.endswith(f"0 of {len(imagenet.ENTRIES)} here")
    at.selectbox(key="imagenet_fetch_choice").select("vgg16")
    at.button(key="imagenet_fetch").click()
    _run(at)
    (err,) = [e.value for e in at.error]
    assert "vgg16-397923af.pth" in err and str(imagenet.cache_dir()) in err and "TORCH_HOME" in err
    assert not imagenet.cached_file("vgg16").exists()


def test_visualize_an_imagenet_entry_at_224(resnet18):
    make_synthetic(data_dir() / "tiny-imagenet-200", num_classes=3, train_per_class=2, val_per_class=2)
    at = AppTest.from_file(str(PAGES / "visualize.py"), default_timeout=240)
    _run(at)
    at.selectbox[0].select(next(o for o in at.selectbox[0].options if o.startswith("imagenet/resnet18")))
    _run(at)
    assert not at.error, [e.value for e in at.error]
    assert "What the network saw (224x224" in _captions(at)
    assert "deconvnet" in _captions(_open(at, "Deconvnet"))  # lazy views: each one runs when opened
    _open(at, "Occlusion")
    assert (at.slider(key="occ_size").value, at.slider(key="occ_stride").value) == (28, 14)  # square, stride at 224
    _open(at, "Top-9")
    assert any("resized from 64x64 to 224x224" in c.value for c in at.caption)  # top-9's cost, said first


def _captions(at) -> str:
    return " ".join(" ".join(i.captions) for i in at.get("image"))


def _open(at, view: str):
    at.session_state["viz_view"] = view  # what a click on the tab does (lazy tabs: only the open one runs)
    return _run(at)
