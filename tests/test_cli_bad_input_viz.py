"""Bad input to ``python -m cnnviz viz ...`` and ``python -m cnnviz probe``: exit 2 with one line that names
the option, before any work is done, never a traceback or a silently ignored value."""

from __future__ import annotations

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

    d = tmp_path_factory.mktemp("vizbad")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(d / "img.png")
    torch.manual_seed(0)
    m = create_model("lenet5", num_classes=3, input_size=64)
    save_checkpoint(d / "l5", m, build_meta(m, class_names=["a", "b", "c"], mean=(0.4,) * 3, std=(0.2,) * 3))
    make_synthetic(d / "tin", num_classes=3, train_per_class=2, val_per_class=2)
    (d / "folder").mkdir()
    (d / "file.txt").write_text("not a folder")
    return d


def run(argv, capsys) -> tuple[int, str]:
    """``main``'s exit code, argparse's errors (SystemExit) included, and stderr."""
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:
        rc = e.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err


def ck(files):
    return ["--checkpoint", files / "l5.safetensors"]


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if the scan or the probe runs: a bad output path must be refused before them."""
    import cnnviz.viz
    import cnnviz.viz.probes

    def fail(*a, **k):
        raise AssertionError("the work ran before the output path was checked")

    monkeypatch.setattr(cnnviz.viz, "scan", fail)
    monkeypatch.setattr(cnnviz.viz.probes, "probe", fail)


# 1. output paths: checked at the start of each handler, before any work and before any other file is written
@pytest.mark.parametrize("extra,message", [
    (["--out", "{folder}"], "--out '{folder}' is a folder"),
    (["--out", "{tmp}/f.png", "--save-array", "{folder}"], "--save-array '{folder}' is a folder"),
    (["--out", "{tmp}/f.png", "--stats", "{folder}"], "--stats '{folder}' is a folder"),
    (["--out", "{file}/x.png"], "is a file, not a folder"),
])
def test_filters_output_paths(files, tmp_path, capsys, extra, message):
    names = {"folder": files / "folder", "file": files / "file.txt", "tmp": tmp_path}
    rc, err = run(["viz", "filters", "--arch", "lenet5", *[e.format(**names) for e in extra]], capsys)
    assert rc == 2 and err.startswith("error: ") and message.format(**names) in err
    assert not list(tmp_path.iterdir())  # the PNG is not written when the array cannot be


def test_top9_invariance_and_probe_refuse_a_folder_as_output_before_the_work(files, capsys, no_work):
    folder = files / "folder"
    rc, err = run(["viz", "top9", *ck(files), "--data", files / "tin", "--out", folder], capsys)
    assert rc == 2 and "--out" in err and "is a folder" in err
    rc, err = run(["viz", "invariance", *ck(files), "--image", files / "img.png", "--transform", "scale",
                   "--out", files / "i.png", "--save-array", folder], capsys)
    assert rc == 2 and "--save-array" in err and "is a folder" in err
    rc, err = run(["probe", *ck(files), "--data", files / "tin", "--out", folder], capsys)
    assert rc == 2 and "--out" in err and "is a folder" in err
    rc, err = run(["probe", *ck(files), "--data", files / "tin", "--out", files / "file.txt" / "p.png"], capsys)
    assert rc == 2 and "is a file, not a folder" in err


# 2. a folder given as --image
@pytest.mark.parametrize("cmd,extra", [("maps", []), ("invariance", ["--transform", "scale"])])
def test_a_folder_as_image_says_so(files, capsys, cmd, extra):
    rc, err = run(["viz", cmd, *ck(files), "--image", files / "folder", "--out", files / "x.png", *extra], capsys)
    assert rc == 2 and "--image" in err and "is a folder" in err and "image file" in err
    rc, err = run(["viz", cmd, *ck(files), "--image", files / "nope.png", "--out", files / "x.png", *extra], capsys)
    assert rc == 2 and "--image" in err and "no such file" in err


# 3. top9's numbers and cache folder
@pytest.mark.parametrize("option,value", [("--batch-size", "-1"), ("--batch-size", "0"), ("--limit", "-195"),
                                          ("--limit", "0")])
def test_top9_counts_must_be_at_least_1(files, capsys, option, value):
    rc, err = run(["viz", "top9", *ck(files), "--data", files / "tin", "--out", files / "t.png", option, value],
                  capsys)
    assert rc == 2 and f"argument {option}: must be at least 1" in err


@pytest.mark.parametrize("where", ["file.txt", "file.txt/cache"])
def test_top9_cache_dir_that_is_or_lies_under_a_file(files, capsys, no_work, where):
    rc, err = run(["viz", "top9", *ck(files), "--data", files / "tin", "--out", files / "t.png",
                   "--cache-dir", files / where], capsys)
    assert rc == 2 and "--cache-dir" in err and "is a file, not a folder" in err


def test_probe_cache_dir_under_a_file(files, capsys, no_work):
    rc, err = run(["probe", *ck(files), "--data", files / "tin", "--cache-dir", files / "file.txt"], capsys)
    assert rc == 2 and "--cache-dir" in err and "is a file, not a folder" in err


def test_scan_refuses_a_negative_limit_or_batch_size():
    from cnnviz.viz import scan

    images = np.zeros((4, 8, 8, 3), np.uint8)
    for kw in ({"limit": -2}, {"batch_size": 0}):
        with pytest.raises(ValueError, match="must be at least 1"):
            scan(torch.nn.Conv2d(3, 2, 3), images, "", mean=(0.5,) * 3, std=(0.5,) * 3, **kw)


# 4. occlusion: 0 is an error, not "the default"
@pytest.mark.parametrize("option", ["--size", "--stride"])
def test_occlusion_zero_size_or_stride(files, capsys, option):
    rc, err = run(["viz", "occlusion", *ck(files), "--image", files / "img.png", "--out", files / "o.png",
                   option, "0"], capsys)
    assert rc == 2 and f"argument {option}: must be at least 1, not 0" in err


def test_occlusion_uses_the_size_and_stride_given(files, capsys):
    arr = files / "o.npy"
    rc, _ = run(["viz", "occlusion", *ck(files), "--image", files / "img.png", "--out", files / "o.png",
                 "--save-array", arr, "--size", "16", "--stride", "16"], capsys)
    assert rc == 0 and np.load(arr).shape == (4, 4)  # (64 - 16) / 16 + 1


# 5. the dataset message: the folder given, or how to prepare one
@pytest.mark.parametrize("cmd", [["viz", "maps"], ["viz", "top9"], ["probe"]])
def test_missing_dataset_names_the_folder_or_the_fix(files, capsys, cmd):
    out = [] if cmd == ["probe"] else ["--out", files / "x.png"]
    rc, err = run([*cmd, *ck(files), "--data", files / "nowhere", *out], capsys)
    assert rc == 2 and f"no Tiny ImageNet dataset at {files / 'nowhere'} (--data)" in err
    rc, err = run([*cmd, *ck(files), *out], capsys)  # $CNNVIZ_DATA is an empty folder (conftest)
    assert rc == 2 and "python -m cnnviz data prepare" in err and "--data PATH" in err


# 6. an empty method list
@pytest.mark.parametrize("methods", ["", ",,", " , "])
def test_attribution_needs_a_method(files, capsys, methods):
    rc, err = run(["viz", "attribution", *ck(files), "--image", files / "img.png", "--out", files / "a.png",
                   "--methods", methods], capsys)
    assert rc == 2 and "--methods is empty" in err and "saliency" in err and "grad_cam" in err


def test_attribution_unknown_method_names_the_option(files, capsys):
    rc, err = run(["viz", "attribution", *ck(files), "--image", files / "img.png", "--out", files / "a.png",
                   "--methods", "saliency,nope"], capsys)
    assert rc == 2 and "--methods: unknown method 'nope'" in err


# 6b. attribution's --layer is Grad-CAM's layer, as the page's "Grad-CAM layer" picks it
def test_attribution_layer_picks_grad_cams_layer(files, capsys):
    out = files / "cam.png"
    rc = main([str(a) for a in ["viz", "attribution", *ck(files), "--image", files / "img.png", "--out", out,
                                "--methods", "grad_cam", "--layer", "features.c1", "--save-array", files / "cam.npy"]])
    printed = capsys.readouterr().out
    assert rc == 0 and out.exists() and "Grad-CAM at features.c1" in printed
    assert np.load(files / "cam.npy").shape == (1, 64, 64)


@pytest.mark.parametrize("layer,message", [
    ("nope", "no layer named 'nope' in this model; conv layers are: features.c1"),
    ("f6", "Grad-CAM needs a layer whose output is a map (channels x height x width); f6's is 84"),
])
def test_attribution_bad_layer_is_named(files, capsys, layer, message):
    rc, err = run(["viz", "attribution", *ck(files), "--image", files / "img.png", "--out", files / "a.png",
                   "--methods", "saliency,grad_cam", "--layer", layer], capsys)
    assert rc == 2 and message in err and not (files / "a.png").exists()


def test_attribution_layer_without_grad_cam_is_refused(files, capsys, no_work):
    rc, err = run(["viz", "attribution", *ck(files), "--image", files / "img.png", "--out", files / "a.png",
                   "--methods", "saliency", "--layer", "features.c1"], capsys)
    assert rc == 2 and "--layer names Grad-CAM's layer: add grad_cam or guided_grad_cam to --methods" in err


# 7. counts name their option
@pytest.mark.parametrize("argv,option", [
    (["probe", "--arch", "lenet5", "--train-per-class", "0"], "--train-per-class"),
    (["probe", "--arch", "lenet5", "--val-per-class", "0"], "--val-per-class"),
    (["probe", "--arch", "lenet5", "--max-iter", "0"], "--max-iter"),
    (["probe", "--arch", "lenet5", "--l2", "-1"], "--l2"),
    (["viz", "filters", "--arch", "lenet5", "--classes", "0", "--out", "f.png"], "--classes"),
    (["viz", "maps", "--arch", "lenet5", "--input-size", "0", "--out", "f.png"], "--input-size"),
])
def test_counts_name_the_option(capsys, argv, option):
    rc, err = run(argv, capsys)
    assert rc == 2 and f"argument {option}: must be at least" in err


# 8. help: a plain sentence, not a module docstring
@pytest.mark.parametrize("argv,words", [(["viz", "--help"], "invariance"), (["probe", "--help"], "linear")])
def test_help_describes_the_command_in_plain_words(capsys, argv, words):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr().out
    description = out.split("\n\n")[1]
    assert e.value.code == 0 and words in description and "``" not in out and "CLI:" not in out


# 9. options a subcommand does not use are refused, not ignored
@pytest.mark.parametrize("cmd,extra", [
    ("maps", ["--channel", "1"]), ("top9", ["--image", "img.png"]), ("top9", ["--index", "1"]),
    ("attribution", ["--channel", "1"]),
])
def test_options_a_subcommand_ignores_are_refused(files, capsys, cmd, extra):
    rc, err = run(["viz", cmd, *ck(files), "--out", files / "x.png", *extra], capsys)
    assert rc == 2 and f"unrecognized arguments: {extra[0]}" in err


def test_filters_notes_the_input_options_it_ignores(files, capsys):
    # accepted, so that one command line can drive every subcommand (tests/test_viz_cli.py), but not silently
    rc, err = run(["viz", "filters", *ck(files), "--out", files / "f.png", "--image", files / "img.png",
                   "--index", "1"], capsys)
    assert rc == 0 and "note: filters are drawn from the weights alone; --image, --index ignored" in err


@pytest.mark.parametrize("cmd,extra", [("maps", []), ("invariance", ["--transform", "scale"])])
def test_image_and_index_together_are_refused(files, capsys, cmd, extra):
    rc, err = run(["viz", cmd, *ck(files), "--image", files / "img.png", "--index", "1", "--data", files / "tin",
                   "--out", files / "x.png", *extra], capsys)
    assert rc == 2 and "not allowed with argument" in err


def test_arch_only_options_beside_a_checkpoint_are_refused(files, capsys):
    """--classes/--input-size/--seed shape a random --arch model; with a checkpoint they were silently ignored."""
    out = str(files / "never.png")
    assert main(["viz", "filters", "--checkpoint", str(files / "l5.safetensors"), "--classes", "10",
                 "--out", out]) == 2
    err = capsys.readouterr().err
    assert "--classes shape a randomly initialised --arch model" in err
    assert not (files / "never.png").exists()
    drawn = files / "random_filters.png"
    assert main(["viz", "filters", "--arch", "lenet5", "--classes", "10", "--seed", "3", "--out", str(drawn)]) == 0
    assert drawn.exists()
