"""An ImageNet checkpoint (issue 14) is a catalog entry like the starters: listed when its file is cached,
preprocessed as torchvision says, usable by Predict, Visualize, Compare and the CLI's loaders.

Weights: torchvision's ResNet-18 with random weights placed where torch.hub's cache keeps the download
(tests/imagenet_helpers.py), so the predictions mean nothing, but every path is the real one.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnviz import imagenet
from cnnviz.catalog import find_checkpoint, list_checkpoints
from cnnviz.checkpoint import load_checkpoint
from cnnviz.imagenet.tiny_classes import TINY_TO_IMAGENET
from cnnviz.paths import checkpoints_dir
from tests.imagenet_helpers import place_random_weights
from tests.predict_helpers import make_checkpoint


@pytest.fixture
def resnet18():
    """(torchvision model, cached path) for imagenet/resnet18 with random weights."""
    return place_random_weights(imagenet.get_entry("resnet18"))


def test_listed_only_when_cached_after_the_starters(resnet18):
    make_checkpoint(checkpoints_dir() / "starter" / "alpha", seed=1)
    infos = list_checkpoints()
    assert [(i.name, i.kind) for i in infos] == [("starter/alpha", "starter"), ("imagenet/resnet18", "imagenet")]
    meta = infos[1].meta
    assert meta["dataset"] == "ImageNet" and meta["num_classes"] == 1000 and len(meta["class_names"]) == 1000
    assert (meta["input_size"], meta["resize_size"], meta["interpolation"]) == (224, 256, "bilinear")
    assert meta["mean"] == pytest.approx([0.485, 0.456, 0.406]) and meta["std"] == pytest.approx([0.229, 0.224, 0.225])
    assert "val top-1 69.8%" in infos[1].label  # torchvision's reported figure, said as such in the metadata
    assert "not measured here" in meta["metrics_note"]
    assert infos[1].dataset.label == "ImageNet, 1000 classes at 224x224"
    resnet18[1].unlink()
    assert [i.name for i in list_checkpoints()] == ["starter/alpha"]


def test_listed_without_a_checkpoints_folder(resnet18):
    assert not checkpoints_dir().exists()
    assert [i.name for i in list_checkpoints()] == ["imagenet/resnet18"]


def test_a_broken_cached_file_is_refused_not_listed_as_usable():
    path = imagenet.cached_file("resnet34")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    assert list_checkpoints() == []
    assert "empty" in find_checkpoint("imagenet/resnet34").error


@pytest.mark.parametrize("size", [(64, 64), (640, 480), (300, 517), (1000, 257)])
@pytest.mark.parametrize("name,weights", [("vgg16", "VGG16_Weights.IMAGENET1K_V1"),
                                          ("resnet50@IMAGENET1K_V2", "ResNet50_Weights.IMAGENET1K_V2")])
def test_preprocessing_is_torchvisions_own(name, weights, size):
    """to_tensor_for with the entry's metadata gives what the weights' own transforms give (resize 256 or 232,
    centre crop 224, ImageNet mean/std), bit for bit."""
    from torchvision.models import get_weight

    from cnnviz.preprocess import to_tensor_for

    rng = np.random.default_rng(sum(size))
    img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    expected = get_weight(weights).transforms()(img).unsqueeze(0)
    torch.testing.assert_close(to_tensor_for(img, imagenet.imagenet_meta(name)), expected, rtol=0, atol=1e-6)


def test_predict_names_imagenet_classes_and_sees_224(resnet18):
    from cnnviz.predict import known_classes, predict_across

    tv, path = resnet18
    ckpt = load_checkpoint(find_checkpoint("imagenet/resnet18").path)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    (item,) = predict_across([("imagenet/resnet18", ckpt.model, ckpt.meta)], [("photo", img)])
    r = item.results[0]
    assert r.extra["view"].size == (224, 224)  # "as the network sees it"
    x = imagenet.imagenet_meta("resnet18")  # the same answer as torchvision's model on torchvision's transform
    from torchvision.models import get_weight

    with torch.inference_mode():
        probs = torch.softmax(tv(get_weight("ResNet18_Weights.IMAGENET1K_V1").transforms()(img)[None]), 1)[0]
    assert r.top1.index == int(probs.argmax()) and r.top1.name == x["class_names"][r.top1.index]
    assert r.top1.prob == pytest.approx(float(probs.max()), rel=1e-4)
    (group,) = known_classes([("imagenet/resnet18", ckpt.meta)])
    assert "1000 classes" in group.sentence() and "224x224" in group.sentence()
    assert group.search("goldfish") == [{"class": "goldfish", "id": "n01443537"}]


def test_a_tiny_imagenet_label_maps_to_the_imagenet_output(resnet18):
    """Visualize's and Predict's true class of a validation image: its WordNet id, an ImageNet output."""
    from cnnviz.viz.session import class_index

    meta = imagenet.imagenet_meta("resnet18")
    assert class_index(meta, "n01443537", 0) == 1 == TINY_TO_IMAGENET["n01443537"]
    assert class_index(meta, "n99999999", 0) is None  # a class ImageNet does not have: no target


def test_visualize_session_runs_at_224(resnet18):
    from cnnviz.views import visualize as vv
    from cnnviz.viz import session

    ckpt = load_checkpoint(resnet18[1])
    subject = session.Subject(ckpt.model, ckpt.meta, "imagenet/resnet18", "key")
    x, seen = session.prepare(np.zeros((64, 64, 3), np.uint8) + 100, subject.meta)
    assert x.shape == (1, 3, 224, 224) and seen.shape == (224, 224, 3)
    dc = vv.deconv_figure(subject, x, seen, "layer2")
    assert dc.projection.image.shape[-2:] == (224, 224)


def test_compare_lists_it_with_its_dataset_and_torchvisions_accuracy(resnet18):
    from cnnviz import compare as cmp
    from cnnviz.views.compare import mixed_classes

    make_checkpoint(checkpoints_dir() / "starter" / "alpha", seed=1, wnids=sorted(TINY_TO_IMAGENET)[:10])
    entries = cmp.list_entries()
    assert [(e.id, e.kind) for e in entries] == [("starter/alpha", "starter"), ("imagenet/resnet18", "imagenet")]
    assert "torchvision's reported accuracy" in entries[1].problems[0]  # shown above the table, not measured here
    row = cmp.compare_table(entries).frame.set_index("model").loc["imagenet/resnet18"]
    assert (row["dataset"], row["input"], row["classes"]) == ("ImageNet", 224, 1000)
    assert row["params"] == 11_689_512 and row["best_val_top1"] == pytest.approx(0.69758)
    assert "ImageNet, 1000 classes at 224x224 (imagenet/resnet18)" in mixed_classes(entries)


def test_same_image_scales_the_occluder_to_224(resnet18, monkeypatch):
    from cnnviz.views import same_image as cmp

    calls = {}

    def fake_occlusion(model, x, target, size, stride):
        calls["grid"] = (x.shape[-1], size, stride)
        raise RuntimeError("stop here: the grid is what is tested")

    monkeypatch.setattr(cmp, "occlusion", fake_occlusion)
    ckpt = load_checkpoint(resnet18[1])
    img = Image.fromarray(np.zeros((64, 64, 3), np.uint8))
    (view,) = cmp.same_image([("imagenet/resnet18", ckpt.model, ckpt.meta)], img, occlusion_size=8)
    assert calls["grid"] == (224, 28, 14) and view.maps is not None and view.prediction is not None


def test_occlusion_and_scan_are_sized_for_224():
    from cnnviz.viz.occlusion import slider_ranges
    from cnnviz.viz.scan_cost import progress_text, scan_note

    assert slider_ranges(64) == {"square": (2, 32, 8), "stride": (1, 16, 4)}  # unchanged for Tiny ImageNet
    assert slider_ranges(224) == {"square": (2, 112, 28), "stride": (1, 56, 14)}
    note = scan_note(imagenet.imagenet_meta("vgg16"), "features.29", 10_000)
    assert "resized from 64x64 to 224x224" in note and "15.37 GMAC each" in note and "minutes to hours" in note
    assert progress_text(1_000, 10_000, started=0.0, now=60.0) == "1,000/10,000 images, about 9 min left (any click stops the scan)"
