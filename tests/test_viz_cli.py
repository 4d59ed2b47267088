"""``python -m cnnviz viz ...``: every subcommand writes its PNG and its array; errors are one clean line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnviz.__main__ import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("vizcli")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)).save(d / "img.png")
    from cnnviz.checkpoint import build_meta, save_checkpoint
    from cnnviz.models import create_model

    torch.manual_seed(0)
    m = create_model("zfnet", num_classes=4, input_size=64)
    save_checkpoint(d / "zf", m, build_meta(m, class_names=["a", "b", "c", "d"], mean=(0.4, 0.4, 0.4),
                                           std=(0.2, 0.2, 0.2)))
    return d


@pytest.mark.parametrize("cmd,shape", [("filters", (96, 3, 7, 7)), ("maps", None), ("deconv", (3, 64, 64)),
                                       ("occlusion", (15, 15)), ("attribution", (2, 64, 64))])
def test_subcommands_write_png_and_array(files, cmd, shape, capsys):
    out, arr = files / f"{cmd}.png", files / f"{cmd}.npy"
    extra = ["--methods", "saliency,grad_cam"] if cmd == "attribution" else []
    if cmd in ("maps", "deconv", "occlusion"):
        extra += ["--layer", "features.pool2"]
    rc = main(["viz", cmd, "--checkpoint", str(files / "zf.safetensors"), "--image", str(files / "img.png"),
               "--out", str(out), "--save-array", str(arr), *extra])
    assert rc == 0
    img = Image.open(out)
    assert img.format == "PNG" and img.size[0] > 32
    a = np.load(arr, allow_pickle=False)
    if shape:
        assert a.shape == shape
    if cmd == "deconv":
        assert np.abs(a).max() > 0
        assert "receptive field" in capsys.readouterr().out
    if cmd == "maps":
        assert a.ndim == 3 and a.shape[0] == 256  # zfnet conv2 has 256 maps


def test_random_arch_and_errors(files, capsys):
    out = files / "f.png"
    assert main(["viz", "filters", "--arch", "lenet5", "--out", str(out)]) == 0
    assert main(["viz", "deconv", "--arch", "lenet5", "--image", str(files / "img.png"), "--layer", "nope",
                 "--out", str(out)]) == 2
    assert "no layer named 'nope'" in capsys.readouterr().err
    assert main(["viz", "deconv", "--checkpoint", str(files / "missing.safetensors"), "--image",
                 str(files / "img.png"), "--out", str(out)]) == 2


def test_top9_on_a_synthetic_dataset(files, tmp_path, capsys):
    from cnnviz.data import make_synthetic

    root = make_synthetic(tmp_path / "tin", num_classes=3, train_per_class=2, val_per_class=5)
    out, arr = tmp_path / "t.png", tmp_path / "t.npy"
    args = ["viz", "top9", "--checkpoint", str(files / "zf.safetensors"), "--data", str(root), "--layer",
            "features.pool1", "--out", str(out), "--save-array", str(arr), "--cache-dir", str(tmp_path / "c")]
    assert main(args) == 0
    a = np.load(arr, allow_pickle=False)
    assert a.shape == (96, 9, 4) and set(a[:, :, 1].ravel()) <= set(range(15))
    assert len(list((tmp_path / "c").glob("*.npz"))) == 1
    assert "deconvnet projections (left)" in capsys.readouterr().out  # pool1's switches: ZF's own figure
    assert main(args) == 0  # from the cache
