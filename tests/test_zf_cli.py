"""``python -m cnnviz viz invariance`` and ``python -m cnnviz probe``: the files and JSON they promise, and one
clean ``error:`` line (exit 2) for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cnnviz.__main__ import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from cnnviz.checkpoint import build_meta, save_checkpoint
    from cnnviz.data import make_synthetic
    from cnnviz.models import create_model

    d = tmp_path_factory.mktemp("zfcli")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)).save(d / "img.png")
    torch.manual_seed(0)
    m = create_model("resnet18", num_classes=3, input_size=64)
    save_checkpoint(d / "r18", m, build_meta(m, class_names=["a", "b", "c"], mean=(0.4,) * 3, std=(0.2,) * 3))
    make_synthetic(d / "tin", num_classes=3, train_per_class=4, val_per_class=3)
    return d


def test_invariance_writes_the_figure_and_the_numbers(files, capsys):
    out, arr = files / "inv.png", files / "inv.npz"
    rc = main(["viz", "invariance", "--checkpoint", str(files / "r18.safetensors"), "--image", str(files / "img.png"),
               "--transform", "translate", "--values=-4,0,4", "--out", str(out), "--save-array", str(arr)])
    assert rc == 0
    assert Image.open(out).format == "PNG"
    z = np.load(arr, allow_pickle=False)
    assert list(z["values"]) == [-4, 0, 4] and list(z["layers"]) == ["maxpool", "avgpool"]
    assert z["distance_maxpool"].shape == (1, 3) and z["prob"].shape == (1, 3)
    assert "conv1 (maxpool): relative distance" in capsys.readouterr().out


def test_invariance_follows_several_val_images_and_their_true_class(files):
    arr = files / "rot.npz"
    rc = main(["viz", "invariance", "--checkpoint", str(files / "r18.safetensors"), "--data", str(files / "tin"),
               "--index", "0", "--index", "4", "--transform", "rotate", "--layers", "layer2",
               "--out", str(files / "rot.png"), "--save-array", str(arr)])
    assert rc == 0
    z = np.load(arr, allow_pickle=False)
    assert len(z["values"]) == 25 and z["prob"].shape == (2, 25) and list(z["layers"]) == ["layer2"]
    from cnnviz.data import load_split

    val = load_split(files / "tin", "val")
    assert list(z["targets"]) == [int(val.labels[0]), int(val.labels[4])]


@pytest.mark.parametrize("extra,message", [(["--values", "1,x"], "numbers separated by commas"),
                                           (["--values", "2.5"], "whole pixels"),
                                           (["--layers", "nope"], "no layer named 'nope'")])
def test_invariance_errors_are_one_line(files, capsys, extra, message):
    rc = main(["viz", "invariance", "--checkpoint", str(files / "r18.safetensors"), "--image",
               str(files / "img.png"), "--transform", "translate", "--out", str(files / "x.png"), *extra])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and message in err and "Traceback" not in err


def test_probe_prints_json_per_layer_and_caches(files, capsys):
    args = ["probe", "--checkpoint", str(files / "r18.safetensors"), "--data", str(files / "tin"),
            "--train-per-class", "3", "--val-per-class", "2", "--max-iter", "10", "--format", "json",
            "--cache-dir", str(files / "cache"), "--out", str(files / "probe.png")]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["layer"] for r in rows] == ["maxpool", "layer1", "layer2", "layer3", "avgpool"]
    assert all(0 <= r["val_top1"] <= 1 for r in rows)
    assert len(list((files / "cache").glob("probe_*.json"))) == 1 and Image.open(files / "probe.png").format == "PNG"
    assert main(args) == 0 and json.loads(capsys.readouterr().out) == rows  # from the cache


def test_probe_text_on_chosen_layers_and_errors(files, capsys):
    assert main(["probe", "--arch", "lenet5", "--data", str(files / "tin"), "--layers", "features.act1,act6",
                 "--train-per-class", "2", "--val-per-class", "1", "--max-iter", "5"]) == 0
    out = capsys.readouterr().out
    assert "logistic regression" in out and "features.act1" in out and "act6" in out
    assert main(["probe", "--checkpoint", str(files / "r18.safetensors"), "--data", str(files / "nowhere")]) == 2
    assert capsys.readouterr().err.startswith("error: no Tiny ImageNet dataset")
    with pytest.raises(SystemExit) as e:  # argparse's error, naming the option
        main(["probe", "--checkpoint", str(files / "r18.safetensors"), "--data", str(files / "tin"),
              "--train-per-class", "0"])
    assert e.value.code == 2 and "--train-per-class: must be at least 1" in capsys.readouterr().err
