"""The Visualize page in AppTest, with a real (small, random-weight) checkpoint and no fakes: each view renders
when opened (and only the open one is computed); occlusion and attributions render on their buttons; the
page shows what the network saw, says when weights are untrained, and nothing raises."""

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


def _open(at: AppTest, view: str) -> AppTest:
    at.session_state["viz_view"] = view  # what a click on the tab does (lazy tabs: only the open one runs)
    return _run(at)


def test_page_renders_filters_maps_and_projection(checkpoint):
    """Each view renders when opened; on load only the first (Filters) is computed. (This test used to expect
    every view's figure on load: exactly the all-tabs-every-rerun behaviour issue 11 removes.)"""
    at = _run(AppTest.from_file(PAGE, default_timeout=240))
    assert at.selectbox[0].value.startswith("starter/lenet_small")
    text = _captions(at)
    assert "What the network saw" in text
    assert "filters" in text and "strongest first" not in text and "deconvnet" not in text, text
    assert any("dead" in m.value for m in at.markdown)
    # every figure has its PNG download
    assert any(getattr(d.proto, "label", "") == "PNG" for d in at.get("download_button"))
    text = _captions(_open(at, "Feature maps"))
    assert "strongest first" in text and "deconvnet" not in text, text
    text = _captions(_open(at, "Deconvnet"))
    assert "deconvnet" in text and "strongest first" not in text and "each filter scaled" not in text, text
    assert _images(at) == 2  # what the network saw + the projection: nothing of the other views


def test_occlusion_and_attribution_buttons(checkpoint):
    at = _open(_run(AppTest.from_file(PAGE, default_timeout=240)), "Occlusion")
    before = _images(at)
    _button(at, "Run occlusion").click()
    _run(at)
    assert _images(at) == before + 1
    assert "grey square 8x8" in _captions(at)
    _open(at, "Attribution")
    _button(at, "Compute attributions").click()
    _run(at)
    assert "explaining" in _captions(at)


def test_random_model_and_layer_choice(checkpoint):
    at = _run(AppTest.from_file(PAGE, default_timeout=240))
    at.selectbox[0].select("random init: zfnet")
    _run(at)
    layer = at.selectbox[1]
    layer.select("features.pool1")
    _open(at, "Deconvnet")
    assert "features.pool1[" in _captions(at)


def test_bad_channel_is_a_clean_message(checkpoint):
    at = _open(_run(AppTest.from_file(PAGE, default_timeout=240)), "Deconvnet")
    at.number_input(key="dc_ch").set_value(100000)
    at.run(timeout=240)
    assert not at.exception
    assert any("does not exist" in e.value for e in at.error)


def test_across_training_slider_over_a_real_runs_epoch_snapshots(tmp_path_factory):
    """ZF Fig. 4 on a real run: the training code itself (keep_snapshots) writes epochs/epoch_NNN, the page
    finds them, the slider offers exactly those epochs, and moving it shows the filters of that epoch, which
    differ from the previous epoch's because the network learnt in between."""
    import numpy as np

    from cnnviz.training.runs import create_run
    from cnnviz.training.worker import run_training
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
    _open(at, "Across training")
    epochs = at.radio(key="trn_epoch")
    assert list(epochs.options) == ["after epoch 1", "after epoch 2"]  # every epoch named, not a slider's ends
    assert "first-layer filters after epoch 1" in _captions(at)
    epochs.set_value(2)
    _run(at)
    assert "first-layer filters after epoch 2" in _captions(at)
    assert "strongest projection of" in _captions(at)


def test_across_training_on_a_starter_that_ships_snapshots(tmp_path_factory):
    """A fresh clone's only model to watch across training is a starter that ships some of its run's snapshots
    (`starter snapshots`): the slider offers those epochs and then the starter's own, which shows the starter."""
    from cnnviz.starter import export_starter, ship_snapshots
    from cnnviz.training.runs import create_run
    from cnnviz.training.worker import run_training
    from tests._synthetic import install_synthetic, tiny_config

    install_synthetic(tmp_path_factory)
    cfg = tiny_config(epochs=3, keep_snapshots=True, max_steps_per_epoch=3)
    run = create_run(cfg.to_dict())
    assert run_training(run, cfg, to_stderr=False) == "done"
    export_starter(run, "lenet5_demo", device="cpu")
    ship_snapshots(run, "lenet5_demo", [1, 2])

    at = AppTest.from_file(PAGE, default_timeout=240)
    _run(at)
    at.selectbox[0].select(next(o for o in at.selectbox[0].options if o.startswith("starter/lenet5_demo")))
    _open(at, "Across training")
    assert not at.info or not any("no per-epoch snapshots" in i.value for i in at.info)
    epochs = at.radio(key="trn_epoch")
    assert list(epochs.options) == ["after epoch 1", "after epoch 2", "after epoch 3"]
    assert "first-layer filters after epoch 1" in _captions(at)
    epochs.set_value(3)
    _run(at)
    assert "first-layer filters after epoch 3" in _captions(at)
    # every epoch's caption gives its accuracy (a barely trained one's in its note, the others' beside the epoch)
    caption = next(c for i in at.get("image") for c in i.captions if "first-layer filters after epoch 3" in c)
    assert "val top-1" in caption, caption


def test_top9_scan_from_a_synthetic_validation_set(checkpoint):
    from cnnviz.data import make_synthetic
    from cnnviz.paths import data_dir

    make_synthetic(data_dir() / "tiny-imagenet-200", num_classes=3, train_per_class=2, val_per_class=4)
    at = _open(_run(AppTest.from_file(PAGE, default_timeout=240)), "Top-9")
    assert any(n.label == "Validation image" for n in at.number_input)
    assert "after its own preprocessing): validation image 0, true class " in _captions(at)  # what it shows
    _button(at, "Scan the validation set").click()
    _run(at)
    assert "receptive-field patches" in _captions(at)
    # the nine hits' numbers: activation (strongest first), which val image, its true class
    hits = at.dataframe[-1].value
    assert list(hits.columns[:4]) == ["rank", "activation", "val image", "true class"]
    assert hits["activation"].is_monotonic_decreasing and hits["val image"].between(0, 11).all()
    from cnnviz.data import load_split

    val = load_split(data_dir() / "tiny-imagenet-200", "val")
    assert list(hits["true class"]) == [val.class_names[val.labels[i]] for i in hits["val image"]]
    assert any("12 images in" in p.proto.text for p in at.get("progress"))  # the finished bar: count and time
    assert any("top9" in d.proto.id and d.proto.label == "CSV"
               for d in at.get("download_button"))
    assert list((data_dir() / "viz_cache").glob("*.npz"))  # cached per checkpoint and layer


# --- issue 11: every picture tells the truth -------------------------------------------------------------------

def _save(name: str, arch: str = "lenet5", *, top1: float | None = None, seed: int | None = None, classes: int = 3,
          input_size: int = 64):
    """A random-weight checkpoint under checkpoints/starter/<name>, with a recorded val top-1 (and the run's seed
    when ``seed`` is given: the model is then built right after ``torch.manual_seed(seed)``, as training does)."""
    torch.manual_seed(seed if seed is not None else 1)
    m = create_model(arch, num_classes=classes, input_size=input_size)
    meta = build_meta(m, class_names=["alpha", "beta", "gamma"][:classes], mean=(0.45,) * 3, std=(0.25,) * 3,
                      epoch=3, metrics={} if top1 is None else {"val_top1": top1},
                      train_config={} if seed is None else {"seed": seed})
    return save_checkpoint(checkpoints_dir() / "starter" / name, m, meta)[0]


def test_opens_on_the_most_accurate_checkpoint():
    _save("a_weak", top1=0.40)
    _save("b_strong", top1=0.80)
    _save("c_unknown")
    at = _run(AppTest.from_file(PAGE, default_timeout=240))
    assert at.selectbox[0].value.startswith("starter/b_strong"), at.selectbox[0].value


def test_opens_on_the_zfnet_starter_where_one_ships():
    """The page is Zeiler & Fergus's method: it opens on their network when a ZFNet starter is here, even where a
    ResNet is more accurate (a tiny-stem ResNet has no max-pool switches: one fixed deconvnet picture per unit)."""
    _save("resnet18_strong", "resnet18", top1=0.80)
    _save("zfnet_weaker", "zfnet", top1=0.40)
    at = _run(AppTest.from_file(PAGE, default_timeout=240))
    assert at.selectbox[0].value.startswith("starter/zfnet_weaker"), at.selectbox[0].value
    assert "ZFNet starter" in at.selectbox[0].help


def test_untrained_weights_say_so_in_every_caption(checkpoint):
    at = _run(AppTest.from_file(PAGE, default_timeout=240))  # the fixture records no accuracy
    assert "no recorded accuracy" in " ".join(w.value for w in at.warning)
    figures = [c for i in at.get("image") for c in i.captions if "What the network saw" not in c]
    assert figures and all("no recorded accuracy" in c for c in figures), figures
    at.selectbox[0].select("random init: resnet18")
    for view in ("Filters", "Feature maps", "Deconvnet"):
        _open(at, view)
        figures = [c for i in at.get("image") for c in i.captions if "What the network saw" not in c]
        assert figures and all("random initialisation" in c for c in figures), (view, figures)


def test_a_trained_checkpoint_has_no_untrained_note():
    _save("good", top1=0.9)
    at = _run(AppTest.from_file(PAGE, default_timeout=240))
    assert not any("Not a trained model" in w.value for w in at.warning)
    assert "untrained" not in _captions(at) and "barely trained" not in _captions(at)


def test_barely_trained_checkpoint_is_said_so():
    _save("weak", top1=0.34)  # 3 classes: chance is 33%
    at = _run(AppTest.from_file(PAGE, default_timeout=240))
    assert "barely trained: val top-1 34.0% after 3 epochs (chance 33.3%)" in _captions(at)


def test_filters_show_how_far_they_moved_from_their_random_start():
    """A checkpoint written right after its seeded initialisation has not moved at all: the page measures 0.00 from
    its start (rebuilt from the recorded seed) and warns that the filters are still their random start."""
    _save("fresh", top1=0.9, seed=0)
    at = _run(AppTest.from_file(PAGE, default_timeout=240))
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["moved from the random start"] == "0.00", metrics
    assert "neighbour-pixel correlation" in metrics
    assert any("still close to their random start" in w.value for w in at.warning)


def test_fig6_says_when_it_shows_random_weights(checkpoint):
    at = _run(AppTest.from_file(PAGE, default_timeout=240))
    at.toggle(key="flt_fig6").set_value(True)
    _run(at)
    captions = [c for i in at.get("image") for c in i.captions if c.startswith(("alexnet", "zfnet"))]
    assert len(captions) == 2, captions
    for arch, c in zip(("alexnet", "zfnet"), captions, strict=True):
        assert f"no trained {arch} checkpoint exists" in c and "random initialisation" in c, c


def test_fig6_uses_the_most_accurate_alexnet_and_zfnet(monkeypatch):
    """The selection reads the real checkpoint metadata on disk; only the weights (AlexNet's and ZFNet's are
    ~20M parameters even at 24x24) come from a patched loader that builds the listed architecture in memory."""
    import app_pages._shared as shared
    from cnnviz.checkpoint import Checkpoint, read_meta

    for name, arch, top1, epochs in [("alex_poor", "alexnet", 0.2, 9), ("alex_good", "alexnet", 0.5, 1),
                                     ("zf_only", "zfnet", 0.3, 6)]:
        folder = checkpoints_dir() / name
        folder.mkdir(parents=True)
        m = create_model(arch, num_classes=3, input_size=32)
        meta = build_meta(m, metrics={"val_top1": top1}, epoch=epochs)
        (folder / "best.json").write_text(__import__("json").dumps(meta))
        (folder / "best.safetensors").write_bytes(b"weights not read: see the patched loader")
    _save("lenet_best", top1=0.9)

    def fake_checkpoint(path, mtime, device):
        meta = read_meta(path)
        torch.manual_seed(0)
        return Checkpoint(model=create_model(meta["arch"], **meta["model_args"]).eval(), meta=meta, path=Path(path))

    monkeypatch.setattr(shared, "_checkpoint", fake_checkpoint)
    at = _run(AppTest.from_file(PAGE, default_timeout=240))
    at.toggle(key="flt_fig6").set_value(True)
    _run(at)
    captions = [c for i in at.get("image") for c in i.captions if c.startswith(("alexnet", "zfnet"))]
    assert len(captions) == 2, captions
    assert "alex_good/best (val top-1 50.0%, 1 epoch," in captions[0] and "random" not in captions[0], captions[0]
    assert "zf_only/best (val top-1 30.0%, 6 epochs," in captions[1], captions[1]
    # trained for different lengths: the page says the comparison is not like for like
    assert any("Not trained alike: AlexNet had 1 epoch and ZFNet 6" in w.value for w in at.warning), at.warning


def test_default_layer_is_at_least_8x8_and_whole_image_fields_are_said():
    at = _run(AppTest.from_file(PAGE, default_timeout=240))  # no checkpoints: the random inits are listed
    at.selectbox[0].select("random init: resnet18")
    _run(at)
    assert at.selectbox[1].value == "layer2"  # 8x8 at 64x64 (layer4, the old default, is 2x2)
    at.selectbox[1].select("layer4")
    _open(at, "Deconvnet")
    caption = next(c for i in at.get("image") for c in i.captions if "deconvnet" in c)
    assert "LRN" not in caption, caption  # ResNet has no LRN
    assert "covers the whole image" in caption and "(x0, y0, x1, y1) = (0, 0, 64, 64)" in caption, caption
    assert any("sees the whole 64x64 image" in i.value for i in at.info)
    at.selectbox[0].select("random init: alexnet")
    _open(at, "Deconvnet")
    assert "LRN passes the signal unchanged" in _captions(at)


def test_deconvnet_without_max_pooling_says_so_and_adds_guided_backprop():
    """ResNet-18 with the tiny stem (the zoo's) has no max-pool: its deconvnet picture is the same for every
    image, and the Deconvnet view says so and shows guided backprop of the same unit beside it."""
    torch.manual_seed(0)
    m = create_model("resnet18", num_classes=3, input_size=64, stem="tiny")
    meta = build_meta(m, class_names=["alpha", "beta", "gamma"], mean=(0.45, 0.45, 0.45), std=(0.25, 0.25, 0.25))
    save_checkpoint(checkpoints_dir() / "starter" / "r18_tiny", m, meta)
    at = _run(AppTest.from_file(PAGE, default_timeout=240))
    assert at.selectbox[0].value.startswith("starter/r18_tiny")
    at.selectbox[1].select("layer3")
    caption = next(c for i in _open(at, "Deconvnet").get("image") for c in i.captions if "deconvnet" in c)
    assert "This projection is the same for every image: no max-pooling lies below layer3" in caption, caption
    assert "Guided backprop (right; Springenberg et al. 2015)" in caption, caption
    # the switch says the panel is there (it read "off" beside it), and that it cannot be turned off here
    switch = at.toggle(key="dc_guided_forced")
    assert switch.value is True and switch.disabled and "whatever the switch" in switch.help
    labels = [getattr(d.proto, "label", "") for d in at.get("download_button")]
    assert ".npy" in labels and "Guided backprop .npy" in labels, labels  # both projections, as arrays


def test_guided_backprop_toggle_adds_it_beside_zfs_deconvnet():
    at = _run(AppTest.from_file(PAGE, default_timeout=240))  # no checkpoints: the random inits are listed
    at.selectbox[0].select("random init: zfnet")
    _open(at, "Deconvnet")
    caption = next(c for i in at.get("image") for c in i.captions if "deconvnet" in c)
    assert "Guided backprop" not in caption, caption  # ZF's figure: the deconvnet alone
    at.toggle(key="dc_guided").set_value(True)
    caption = next(c for i in _run(at).get("image") for c in i.captions if "deconvnet" in c)
    assert "Guided backprop (right; Springenberg et al. 2015): the deconvnet's way back" in caption, caption


def test_occlusion_class_is_picked_by_name(checkpoint):
    at = _open(_run(AppTest.from_file(PAGE, default_timeout=240)), "Occlusion")
    picker = next(s for s in at.selectbox if s.label == "Class")
    assert list(picker.options) == ["alpha (#0)", "beta (#1)", "gamma (#2)"]  # names, not 0..199
    picker.select(2)  # "gamma"
    _run(at)
    _button(at, "Run occlusion").click()
    _run(at)
    assert "unoccluded p(gamma)" in _captions(at)
    assert not any(n.label.startswith("Class") for n in at.number_input)


def test_sanity_check_keeps_the_attributions_and_never_scores_none(checkpoint):
    at = _open(_run(AppTest.from_file(PAGE, default_timeout=240)), "Attribution")
    intro = next(c.value for c in at.caption if c.value.startswith("Sanity check (Adebayo"))
    # it names the button that runs the check, and claims nothing Adebayo et al. did not test (the deconvnet)
    assert '"Sanity check: randomise the weights"' in intro and "deconvnet" not in intro.lower(), intro
    _button(at, "Compute attributions").click()
    _run(at)
    _button(at, "Sanity check: randomise the weights").click()
    _run(at)
    text = _captions(at)
    assert "explaining" in text, text  # the figure it is compared with is still there
    assert "original model (top)" in text and "re-initialised (bottom)" in text, text
    table = at.dataframe[-1].value
    for column in ("rank correlation, original vs randomised", "without the border's fade"):
        scores = table[column]
        assert scores.notna().all() and not scores.astype(str).isin(["None", "nan", ""]).any(), table


def test_an_image_kept_from_predict_is_shown_on_the_model_predict_chose(checkpoint):
    """Issue 12: Predict's "Look inside" (or an upload there) leaves the model and the image in the session; the
    page opens on them, says where the image comes from, and can go back to a validation or demo image."""
    import io

    from PIL import Image

    from app_pages import _images

    buf = io.BytesIO()
    Image.new("RGB", (80, 80), (220, 30, 30)).save(buf, "PNG")
    at = AppTest.from_file(PAGE, default_timeout=240)
    at.session_state[_images.VIZ_MODEL] = "random init: alexnet"
    at.session_state[_images.SHOWN] = ("red.png", buf.getvalue())
    _run(at)
    assert at.selectbox[0].value == "random init: alexnet"
    assert any("red\\.png" in c.value and "Predict" in c.value for c in at.caption), [c.value for c in at.caption]
    _button(at, "Use a validation or demo image instead").click()
    _run(at)
    assert at.session_state[_images.SHOWN] is None
    assert not any("red\\.png" in c.value for c in at.caption)


def test_a_model_without_snapshots_names_the_training_option_that_keeps_them(checkpoint):
    """The message used to say "train with 'keep snapshots'", a name the Training page does not show; it names
    the page's own checkbox (and the CLI flag), so a user can find it."""
    at = _open(_run(AppTest.from_file(PAGE, default_timeout=240)), "Across training")
    message = next(i.value for i in at.info if "no per-epoch snapshots" in i.value)
    training_page = (Path(PAGE).parent / "training.py").read_text()
    assert "Keep every epoch's weights" in message and '"Keep every epoch\'s weights"' in training_page
    assert "--keep-snapshots" in message


def test_while_tiny_imagenet_is_being_prepared_the_page_says_so_and_does_not_read_it(checkpoint, tmp_path):
    """Mid-preparation the labels are there and the images are not: a page that read the val split then would
    hang until the preparation's lock is free and decode it in the server (seen in Chromium: Compare did).
    The page says what is going on instead, and no val cache appears."""
    import os

    from cnnviz import paths
    from cnnviz.data import find_dataset, prepare
    from cnnviz.data import job as data_job
    from cnnviz.fsutil import atomic_write_json, try_lock
    from tests.data_helpers import mini_tree, zip_tree

    root = prepare(zip_tree(mini_tree(tmp_path / "tree"), tmp_path / "tin.zip"), splits=())  # labels only
    assert find_dataset(None) == root
    fd = try_lock(paths.data_dir() / data_job.LOCK_FILE)  # a running preparation holds this
    try:
        atomic_write_json(paths.data_dir() / data_job.STATUS_FILE, {"state": "running", "stage": "decode train",
                                                                    "done": 1, "total": 12})
        at = _run(AppTest.from_file(PAGE))
        assert any(i.value.startswith("Tiny ImageNet is being prepared (decode train: 1 / 12 images")
                   for i in at.info)
    finally:
        os.close(fd)
    assert not (root / "cache" / "val_manifest.json").exists()
