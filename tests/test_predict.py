"""cnnviz.predict: top-k, batches, agreement, CSV, and that shared models are left untouched."""

from __future__ import annotations

import csv
import io

import pytest
import torch
from PIL import Image

from cnnviz.checkpoint import load_checkpoint
from cnnviz.images import open_image
from cnnviz.predict import (
    agreement,
    class_labels,
    measure_latency,
    network_view,
    predict_batch,
    results_to_csv,
    topk,
)
from cnnviz.preprocess import to_tensor_for
from tests.predict_helpers import image_bytes, make_checkpoint


@pytest.fixture
def ckpt(tmp_path):
    return load_checkpoint(make_checkpoint(tmp_path / "m", num_classes=12))


def test_topk_matches_a_manual_forward_pass(ckpt):
    img = open_image(image_bytes("PNG", (90, 70)))
    r = topk(ckpt.model, img, ckpt.meta, k=5, image="a.png", checkpoint="m")
    with torch.no_grad():
        probs = torch.softmax(ckpt.model(to_tensor_for(img, ckpt.meta)), 1)[0]
    values, idx = probs.topk(5)
    assert [p.index for p in r.predictions] == idx.tolist()
    assert [p.prob for p in r.predictions] == pytest.approx(values.tolist(), abs=1e-6)
    assert [p.wnid for p in r.predictions] == [ckpt.meta["classes"][i] for i in idx.tolist()]
    assert [p.name for p in r.predictions] == [ckpt.meta["class_names"][i] for i in idx.tolist()]
    assert r.ms > 0 and r.image == "a.png" and r.checkpoint == "m"
    assert all(a.prob >= b.prob for a, b in zip(r.predictions, r.predictions[1:], strict=False))


def test_top_is_clipped_to_the_number_of_classes(tmp_path):
    c = load_checkpoint(make_checkpoint(tmp_path / "three", num_classes=3))
    r = topk(c.model, Image.new("RGB", (64, 64)), c.meta, k=10)
    assert len(r.predictions) == 3
    assert sum(p.prob for p in r.predictions) == pytest.approx(1.0, abs=1e-5)


def test_batch_equals_one_by_one(ckpt):
    imgs = [open_image(image_bytes("PNG", (64 + 7 * i, 64), seed=i)) for i in range(5)]
    batch = predict_batch(ckpt.model, imgs, ckpt.meta, 3, names=[f"i{i}" for i in range(5)], batch_size=2)
    assert [r.image for r in batch] == [f"i{i}" for i in range(5)]
    for img, r in zip(imgs, batch, strict=True):
        single = topk(ckpt.model, img, ckpt.meta, 3)
        assert [p.index for p in r.predictions] == [p.index for p in single.predictions]
        assert [p.prob for p in r.predictions] == pytest.approx([p.prob for p in single.predictions], abs=1e-5)


def test_prediction_leaves_the_shared_model_untouched(ckpt):
    model = ckpt.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    topk(model, Image.new("RGB", (64, 64), "red"), ckpt.meta)
    measure_latency(model, ckpt.meta, warmup=1, repeats=2)
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert next(model.parameters()).device.type == "cpu"


def test_a_model_in_training_mode_is_refused_not_switched(ckpt):
    ckpt.model.train()
    with pytest.raises(RuntimeError, match="training mode"):
        topk(ckpt.model, Image.new("RGB", (64, 64)), ckpt.meta)
    assert ckpt.model.training  # we did not flip a shared model behind its owner's back


def test_class_labels_placeholders_when_metadata_lacks_them(ckpt):
    meta = {**ckpt.meta, "classes": None, "class_names": None}
    wnids, names = class_labels(meta)
    assert wnids == [f"class_{i}" for i in range(12)] and names == wnids
    r = topk(ckpt.model, Image.new("RGB", (64, 64)), meta, 2)
    assert r.predictions[0].name.startswith("class_")


def test_network_view_is_the_cropped_input(ckpt):
    img = Image.new("RGB", (200, 100), (200, 30, 30))
    img.paste((10, 10, 240), (0, 0, 50, 100))  # a blue band on the left, cropped away by the centre crop
    view = network_view(img, ckpt.meta)
    assert view.size == (64, 64)
    r, g, b = view.getpixel((0, 32))
    assert r > 150 and b < 80  # centre crop: no blue left


def _result(checkpoint, wnid, prob, name=None):
    from cnnviz.predict import ClassProb, PredictResult

    return PredictResult("img", checkpoint, [ClassProb(0, wnid, name or wnid, prob)], 1.0)


def test_agreement_unanimous_majority_and_ties():
    a = agreement([_result("a", "n1", 0.9), _result("b", "n1", 0.4)])
    assert a.unanimous and a.majority == "n1" and a.votes == 2 and a.agrees == {"a": True, "b": True}
    assert "all 2 models agree" in a.summary

    a = agreement([_result("a", "n1", 0.9), _result("b", "n2", 0.4), _result("c", "n2", 0.3)])
    assert not a.unanimous and a.majority == "n2" and a.votes == 2 and a.total == 3
    assert a.agrees == {"a": False, "b": True, "c": True}
    assert a.summary == "2 of 3 models say n2"

    # a 1-1 tie goes to the more confident answer
    a = agreement([_result("a", "n1", 0.2), _result("b", "n2", 0.7)])
    assert a.majority == "n2" and a.agrees == {"a": False, "b": True}
    assert a.summary == "the 2 models disagree: each names another class"

    assert agreement([]).total == 0 and agreement([]).summary == "no predictions"
    assert agreement([_result("a", "n1", 0.5)]).summary == "one model"


def test_csv_has_one_row_per_image_checkpoint_and_rank(ckpt):
    imgs = [Image.new("RGB", (64, 64), c) for c in ("red", "green")]
    results = predict_batch(ckpt.model, imgs, ckpt.meta, 5, names=['red, "quoted"', "green"], checkpoint="m")
    rows = list(csv.DictReader(io.StringIO(results_to_csv(results))))
    assert len(rows) == 10
    assert rows[0]["image"] == 'red, "quoted"' and rows[0]["rank"] == "1"
    assert rows[0]["name"] == results[0].predictions[0].name  # commas in class names survive
    assert float(rows[0]["prob"]) == pytest.approx(results[0].predictions[0].prob, abs=1e-6)


def test_latency_fields(ckpt):
    lat = measure_latency(ckpt.model, ckpt.meta, warmup=1, repeats=3)
    assert lat.repeats == 3 and lat.min_ms <= lat.median_ms <= lat.p90_ms
    raw = measure_latency(ckpt.model, None, input_size=64, warmup=0, repeats=2)
    assert raw.repeats == 2 and raw.min_ms > 0


def test_float16_starter_checkpoint_predicts_like_float32(tmp_path):
    f32 = load_checkpoint(make_checkpoint(tmp_path / "f32", seed=7))
    f16 = load_checkpoint(make_checkpoint(tmp_path / "f16", seed=7, dtype=torch.float16))
    assert f16.meta["dtype"] == "float16" and next(f16.model.parameters()).dtype == torch.float32
    img = Image.new("RGB", (64, 64), (90, 140, 200))
    a, b = topk(f32.model, img, f32.meta, 3), topk(f16.model, img, f16.meta, 3)
    assert [p.prob for p in a.predictions] == pytest.approx([p.prob for p in b.predictions], abs=2e-3)


def test_predict_across_reports_a_model_that_cannot_take_the_image(tmp_path, ckpt):
    from cnnviz.checkpoint import build_meta
    from cnnviz.models import create_model
    from cnnviz.predict import predict_across

    gray = create_model("lenet5", num_classes=10, input_size=32).eval()  # the paper's 1-channel LeNet-5
    broken_meta = {**build_meta(gray), "in_channels": 3}  # metadata that lies about what the model takes
    items = predict_across([("broken", gray, broken_meta), ("rgb", ckpt.model, ckpt.meta)],
                           [("a.png", Image.new("RGB", (50, 50), "red"))])
    assert [r.checkpoint for r in items[0].results] == ["rgb"]
    assert "1-channel" in items[0].errors["broken"]
    assert items[0].results[0].extra["view"].size == (64, 64)


def test_predict_across_feeds_a_one_channel_model_grayscale(ckpt):
    from cnnviz.checkpoint import build_meta
    from cnnviz.models import create_model
    from cnnviz.predict import predict_across

    gray = create_model("lenet5", num_classes=10, input_size=32).eval()
    items = predict_across([("gray", gray, build_meta(gray)), ("rgb", ckpt.model, ckpt.meta)],
                           [("a.png", Image.new("RGB", (50, 50), "red"))])
    assert [r.checkpoint for r in items[0].results] == ["gray", "rgb"]
    assert not items[0].errors
    view = items[0].results[0].extra["view"]
    assert view.size == (32, 32)


def test_agreement_colours_only_a_real_majority_and_always_with_a_legend():
    """Issue 11: when every model named another class, one bar was still green, and nothing said what green
    meant. Agreement colours need more than half of the models, and each colour has a legend entry."""
    from cnnviz.predict import ClassProb, PredictResult, agreement
    from cnnviz.views.predict import topk_figure

    def result(name, top):
        return PredictResult("img", name, [ClassProb(0, top, top, 0.6), ClassProb(1, "other", "other", 0.1)], 1.0)

    split = agreement([result("a", "n1"), result("b", "n2"), result("c", "n3")])
    assert [split.agrees_with_majority(m) for m in "abc"] == [None, None, None]
    two_of_three = agreement([result("a", "n1"), result("b", "n1"), result("c", "n3")])
    assert [two_of_three.agrees_with_majority(m) for m in "abc"] == [True, True, False]
    fig = topk_figure(result("c", "n3"), two_of_three.agrees_with_majority("c"))
    assert fig.layout.showlegend and {t.name for t in fig.data} == {"top-1 differs from most models",
                                                                    "other guesses"}
    plain = topk_figure(result("a", "n1"))
    assert not plain.layout.showlegend and [t.name for t in plain.data] == ["guesses"]
