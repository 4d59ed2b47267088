"""``python -m cnnviz imagenet list | fetch`` and ``--checkpoint imagenet/<name>`` wherever a checkpoint is
accepted (issue 14). Weights: torchvision's ResNet-18 with random weights placed in the test's torch.hub cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cnnviz import imagenet
from cnnviz.__main__ import main
from tests.imagenet_helpers import place_random_weights


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (240, 320, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def resnet18():
    return place_random_weights(imagenet.get_entry("resnet18"))[1]


def test_list_says_what_is_cached_and_why_alexnet_is_not_there(resnet18, capsys):
    assert main(["imagenet", "list", "--format", "json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert len(rows) == len(imagenet.ENTRIES) and rows["imagenet/resnet18"]["cached"]
    assert not rows["imagenet/vgg16"]["cached"] and rows["imagenet/vgg16"]["mb"] == 528
    assert rows["imagenet/resnet50"]["model"] == "resnet50 (stride_in='3x3')"
    assert main(["imagenet", "list"]) == 0
    text = capsys.readouterr().out
    assert "in the cache" in text and str(imagenet.cache_dir()) in text and imagenet.LICENSE_URL in text
    assert "alexnet: no entry" in text and "googlenet: no entry" in text


def test_fetch_offline_is_one_error_line(monkeypatch, capsys):
    monkeypatch.setattr(imagenet.download, "weights_url", lambda e: "http://127.0.0.1:9/refused.pth")
    assert main(["imagenet", "fetch", "imagenet/resnet34", "--timeout", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: imagenet/resnet34:") and err.count("\n") == 1
    assert "resnet34-b627a593.pth" in err and "TORCH_HOME" in err and str(imagenet.cache_dir()) in err
    assert main(["imagenet", "fetch", "alexnet"]) == 2
    assert "One weird trick" in capsys.readouterr().err


def test_fetch_when_cached_checks_the_file_and_does_nothing(resnet18, monkeypatch, capsys):
    # The fixture's file holds random weights: its SHA-256 cannot start with the prefix in its name, and a file
    # copied in by hand or damaged since is what the check is for.
    assert main(["imagenet", "fetch", "resnet18"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: imagenet/resnet18:") and "SHA-256 does not match" in err and "delete it" in err
    monkeypatch.setattr(imagenet, "cached_file_ok", lambda entry: True)  # as torchvision's own file would pass
    assert main(["imagenet", "fetch", "resnet18"]) == 0
    assert f"already in the cache (SHA-256 checked): {resnet18}" in capsys.readouterr().out


def test_a_damaged_or_misplaced_cache_entry_is_one_clear_line(resnet18, capsys, photo):
    """Garbage in the cache: our words, never PyTorch's advice to load with weights_only=False; a folder where
    the file goes is called a folder (it was 'not in the cache', with the name twice)."""
    resnet18.write_bytes(b"not a weights file" * 100)
    assert main(["predict", "-c", "imagenet/resnet18", str(photo)]) == 2
    err = capsys.readouterr().err
    assert "cannot be read as a tensors-only weights file" in err and "weights_only" not in err
    folder = imagenet.cached_file("resnet34")
    folder.mkdir(parents=True)
    assert main(["predict", "-c", "imagenet/resnet34", str(photo)]) == 2
    err = capsys.readouterr().err
    assert "is a folder" in err and err.count("imagenet/resnet34") == 1


def test_predict_with_an_imagenet_entry(resnet18, photo, capsys):
    assert main(["predict", "-c", "imagenet/resnet18", str(photo), "--format", "json"]) == 0
    (rec,) = json.loads(capsys.readouterr().out)
    names = imagenet.imagenet_meta("resnet18")["class_names"]
    assert rec["checkpoint"] == "imagenet/resnet18" and len(rec["predictions"]) == 5
    assert all(p["name"] in names for p in rec["predictions"])


def test_predict_with_an_entry_not_fetched_says_how(photo, capsys):
    assert main(["predict", "-c", "imagenet/vgg16", str(photo)]) == 2
    err = capsys.readouterr().err
    assert "vgg16-397923af.pth" in err and "python -m cnnviz imagenet fetch vgg16" in err


def test_viz_deconv_and_occlusion_with_an_imagenet_entry(resnet18, photo, tmp_path, capsys):
    for cmd in ("deconv", "occlusion"):
        out, arr = tmp_path / f"{cmd}.png", tmp_path / f"{cmd}.npy"
        rc = main(["viz", cmd, "--checkpoint", "imagenet/resnet18", "--image", str(photo), "--layer", "layer1",
                   "--out", str(out), "--save-array", str(arr)])
        assert rc == 0, capsys.readouterr().err
        a = np.load(arr)
        assert a.shape == ((3, 224, 224) if cmd == "deconv" else (15, 15))  # 28/14 grid at 224


def test_evaluate_refuses_imagenet_weights_on_tiny_imagenet_with_a_reason(resnet18, capsys):
    from cnnviz.data import make_synthetic
    from cnnviz.paths import data_dir

    make_synthetic(data_dir() / "tiny-imagenet-200", num_classes=3, train_per_class=1, val_per_class=1)
    assert main(["evaluate", "--checkpoint", "imagenet/resnet18"]) == 2
    assert "1000 classes that differ from the dataset's 3 classes" in capsys.readouterr().err
