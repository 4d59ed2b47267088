"""A model cached by ``st.cache_resource`` is one object shared by every browser session: after the Visualize
page (filters, maps, deconvnet, occlusion, attributions and the randomised-weights sanity check), the
Predict page and the Compare page's same-image view have all run on it, it is the same object with the same
weights, eval mode, device, ``requires_grad``, no gradients and no hooks (issue 6, "Load").

The per-function version of this check is tests/test_viz_safety.py and tests/test_predict.py; this one goes
through the pages and the real cache, where a session could only break another by mutating the shared model.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from cnnviz.checkpoint import build_meta, save_checkpoint
from cnnviz.models import create_model
from cnnviz.paths import checkpoints_dir
from cnnviz.viz import hook_counts
from tests.predict_helpers import image_bytes

PAGES = Path(__file__).resolve().parents[1] / "app_pages"


@pytest.fixture
def checkpoint() -> Path:
    torch.manual_seed(0)
    m = create_model("lenet5", num_classes=5, input_size=64)
    meta = build_meta(m, class_names=[f"class {i}" for i in range(5)], classes=[f"n{i:08d}" for i in range(5)],
                      mean=(0.45,) * 3, std=(0.25,) * 3)
    return save_checkpoint(checkpoints_dir() / "starter" / "shared_lenet", m, meta)[0]


def _snapshot(model):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            {n: m.training for n, m in model.named_modules()},
            {n: p.requires_grad for n, p in model.named_parameters()},
            {str(p.device) for p in model.parameters()})


def _run(at: AppTest) -> AppTest:
    at.run(timeout=240)
    assert not at.exception, [e.value for e in at.exception]
    return at


def _click(at: AppTest, label: str) -> AppTest:
    next(b for b in at.button if b.label == label).click()
    return _run(at)


def test_pages_never_mutate_the_shared_cached_model(checkpoint):
    from app_pages._shared import load_checkpoint_cached
    from cnnviz.catalog import list_checkpoints

    path = next(i.path for i in list_checkpoints() if i.name == "starter/shared_lenet")  # what the pages pass
    assert Path(path).resolve() == checkpoint.resolve()
    shared = load_checkpoint_cached(path).model
    before = _snapshot(shared)
    assert hook_counts(shared) == 0 and not shared.training

    viz = _run(AppTest.from_file(str(PAGES / "visualize.py"), default_timeout=240))
    assert viz.selectbox[0].value.startswith("starter/shared_lenet")
    for view, label in (("Occlusion", "Run occlusion"), ("Attribution", "Compute attributions"),
                        ("Attribution", "Sanity check: randomise the weights")):
        viz.session_state["viz_view"] = view  # lazy tabs: a view's buttons exist while it is open
        _click(_run(viz), label)
    assert not viz.error, [e.value for e in viz.error]

    pred = _run(AppTest.from_file(str(PAGES / "predict.py"), default_timeout=240))
    pred.file_uploader[0].set_value(("x.png", image_bytes("PNG", (80, 60), seed=3), "image/png"))
    _run(pred)
    assert not pred.error, [e.value for e in pred.error]

    assert load_checkpoint_cached(path).model is shared  # the pages used this very object
    state, modes, req, devices = _snapshot(shared)
    for k, v in before[0].items():
        assert torch.equal(state[k], v), f"{k} changed"
    assert modes == before[1], "a page switched train/eval mode on the shared model"
    assert req == before[2], "a page changed requires_grad on the shared model"
    assert devices == before[3] == {"cpu"}
    assert all(p.grad is None for p in shared.parameters()), "gradients left on the shared model"
    assert hook_counts(shared) == 0, "hooks left on the shared model"
