"""The Predict page in Streamlit's AppTest: uploads (good and bad), several checkpoints, broken checkpoints,
validation images. Checkpoints are small random-weight models made by the tests (no shipped files needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cnnviz.paths import checkpoints_dir, data_dir
from tests.predict_helpers import image_bytes, make_checkpoint
from tests.test_predict_images import _bomb_png, _tiff

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "predict.py")


def _run(at: AppTest) -> AppTest:
    at.run(timeout=120)
    assert not at.exception, [e.value for e in at.exception]
    return at


def _charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _bars(spec: dict) -> int:
    return sum(len(t.get("y", [])) for t in spec["data"] if t.get("type") == "bar")


@pytest.fixture
def two_checkpoints():
    root = checkpoints_dir()
    make_checkpoint(root / "starter" / "alpha", seed=1)
    make_checkpoint(root / "starter" / "beta", seed=2)


def test_no_checkpoints_says_how_to_get_some():
    at = _run(AppTest.from_file(PAGE))
    assert "No checkpoints yet" in at.info[0].value


def test_upload_two_checkpoints_side_by_side_and_bad_files_each_get_an_error(two_checkpoints):
    at = _run(AppTest.from_file(PAGE))
    assert at.multiselect[0].value == ["starter/alpha", "starter/beta"]  # the starters (up to 4) by default
    at.file_uploader[0].set_value([
        ("cat.jpg", image_bytes("JPEG", (120, 90), seed=1), "image/jpeg"),
        ("empty.png", b"", "image/png"),
        ("random.png", bytes(range(256)) * 8, "image/png"),
        ("renamed.jpg", _tiff(), "image/jpeg"),
        ("truncated.jpg", image_bytes("JPEG", (400, 300))[:2500], "image/jpeg"),
        ("bomb.png", _bomb_png(), "image/png"),
        ("dog.png", image_bytes("PNG", (64, 64), seed=2), "image/png"),
    ])
    _run(at)
    errors = [e.value for e in at.error]
    assert len(errors) == 5, errors
    for name in ("empty.png", "random.png", "renamed.jpg", "truncated.jpg", "bomb.png"):
        shown = name.replace(".", "\\.")  # names go through Markdown escaped
        assert any(e.startswith(shown + ":") for e in errors), (name, errors)
    charts = _charts(at)
    assert len(charts) == 4  # 2 good images x 2 checkpoints
    assert all(_bars(c) == 5 for c in charts)
    assert [s.value for s in at.subheader] == ["cat\\.jpg", "dog\\.png"]
    md = " ".join(m.value for m in at.markdown)
    assert "starter/alpha" in md and "starter/beta" in md
    shown = [c for i in at.get("image") for c in i.captions if "as the network sees it" in c]
    assert len(shown) == 4 and all(c.endswith(" ms") for c in shown), shown  # each prediction's time
    assert len(at.success) + len(at.warning) == 2  # agreement per image
    assert len(at.get("download_button")) == 1


def test_a_corrupt_checkpoint_is_reported_and_the_other_still_predicts(two_checkpoints):
    w = checkpoints_dir() / "starter" / "beta.safetensors"
    at = _run(AppTest.from_file(PAGE))
    w.write_bytes(w.read_bytes()[:64])  # truncated after the catalog listed it
    at.file_uploader[0].set_value(("a.png", image_bytes("PNG"), "image/png"))
    _run(at)
    assert any("starter/beta cannot be used" in e.value and "corrupt" in e.value for e in at.error)
    assert len(_charts(at)) == 1 and _bars(_charts(at)[0]) == 5


@pytest.mark.parametrize("change, message", [
    ({"arch": "vgg16"}, "cannot rebuild vgg16"),  # metadata of another architecture
    ({"num_classes": 20, "model_args.num_classes": 20}, "has shape"),  # another class count than the weights
])
def test_wrong_kind_of_checkpoint_is_refused_with_a_message(two_checkpoints, change, message):
    meta_path = checkpoints_dir() / "starter" / "beta.json"
    meta = json.loads(meta_path.read_text())
    for k, v in change.items():
        if k.startswith("model_args."):
            meta["model_args"][k.split(".", 1)[1]] = v
        else:
            meta[k] = v
    meta_path.write_text(json.dumps(meta))
    at = _run(AppTest.from_file(PAGE))
    at.file_uploader[0].set_value(("a.png", image_bytes("PNG"), "image/png"))
    _run(at)
    assert any("starter/beta cannot be used" in e.value and message in e.value for e in at.error), \
        [e.value for e in at.error]
    assert len(_charts(at)) == 1


def test_dangerous_file_names_are_only_displayed_escaped(two_checkpoints):
    at = _run(AppTest.from_file(PAGE))
    at.file_uploader[0].set_value(("../../etc/pa\x1bss*wd.png", image_bytes("PNG"), "image/png"))
    _run(at)
    shown = at.subheader[0].value
    assert "\x1b" not in shown and "\\x1b" in shown.replace("\\\\", "\\")
    assert "\\*" in shown  # markdown escaped


def test_validation_images_without_a_dataset_say_so(two_checkpoints):
    at = _run(AppTest.from_file(PAGE))
    at.radio[0].set_value("Validation set")
    _run(at)
    assert any("No Tiny ImageNet dataset found" in i.value for i in at.info)


def test_validation_images_from_a_synthetic_dataset():
    from cnnviz.data import make_synthetic

    root = make_synthetic(data_dir() / "tiny-imagenet-200", num_classes=3, train_per_class=4, val_per_class=3)
    wnids = (root / "wnids.txt").read_text().split()
    make_checkpoint(checkpoints_dir() / "starter" / "syn", num_classes=3, wnids=wnids)
    at = _run(AppTest.from_file(PAGE))
    at.radio[0].set_value("Validation set")
    _run(at)
    at.slider[0].set_value(2)
    _run(at)
    assert [s.value for s in at.subheader][:2] and all(s.value.startswith("val \\#") for s in at.subheader)
    assert len(_charts(at)) == 2 and all(_bars(c) == 3 for c in _charts(at))  # 3 classes -> 3 bars
    assert any("true class" in c.value for c in at.caption)


def test_camera_photo_is_predicted(two_checkpoints):
    at = _run(AppTest.from_file(PAGE))
    at.radio[0].set_value("Camera")
    _run(at)
    at.camera_input[0].set_value(("shot.jpg", image_bytes("JPEG", (640, 480), seed=5), "image/jpeg"))
    _run(at)
    assert [s.value for s in at.subheader] == ["camera"]
    assert len(_charts(at)) == 2 and all(_bars(c) == 5 for c in _charts(at))


def test_a_large_batch_shows_twelve_charts_and_offers_the_csv(two_checkpoints):
    at = _run(AppTest.from_file(PAGE))
    at.file_uploader[0].set_value([(f"img{i}.png", image_bytes("PNG", (64, 64), seed=i), "image/png")
                                   for i in range(14)])
    _run(at)
    assert len(_charts(at)) == 24 and "first 12 of 14" in at.info[0].value
    assert len(at.get("download_button")) == 1


def test_default_selection_is_the_four_most_accurate_starters_else_the_first_two():
    """A fresh clone opens Predict on its shipped starters (the four most accurate of five, in listing order:
    four columns stay readable), not on an arbitrary two."""
    root = checkpoints_dir()
    for i, (name, top1) in enumerate([("a", 0.3), ("b", 0.05), ("c", 0.2), ("d", 0.1), ("e", 0.4)]):
        make_checkpoint(root / "starter" / name, seed=i, metrics={"val_top1": top1})
    at = _run(AppTest.from_file(PAGE))
    assert at.multiselect[0].value == ["starter/a", "starter/c", "starter/d", "starter/e"]
    import shutil

    shutil.rmtree(root / "starter")
    for i, name in enumerate(["run-x", "run-y", "run-z"]):
        make_checkpoint(root / name / "best", seed=i)
    at = _run(AppTest.from_file(PAGE))
    assert len(at.multiselect[0].value) == 2 and all(v.startswith("run-") for v in at.multiselect[0].value)


def _legend_and_colours(spec: dict) -> tuple[set[str], dict[str, str], dict[str, str]]:
    """The legend entries of a bar chart, each bar's colour by its label, and each label's wnid."""
    names = {t["name"] for t in spec["data"]} if spec["layout"].get("showlegend") else set()
    colours = {y: t["marker"]["color"] for t in spec["data"] for y in t["y"]}
    wnids = {y: h.rsplit("(", 1)[1].rstrip(")") for t in spec["data"] for y, h in zip(t["y"], t["hovertext"], strict=True)}
    return names, colours, wnids


def test_the_page_states_the_classes_the_models_know_and_searches_them():
    """Issue 11: nothing said what the models can recognise. The page names the class list (how many, which
    dataset, the input size), that there is no 'person' class, and searches the list."""
    make_checkpoint(checkpoints_dir() / "starter" / "tiny", num_classes=200)
    at = _run(AppTest.from_file(PAGE))
    said = " ".join(m.value for m in at.markdown).replace("\\", "")
    assert "200 classes they were trained on (Tiny ImageNet)" in said and "64x64" in said and "'person'" in said, said
    at.text_input(key="predict_class_query").set_value("thing 19")
    _run(at)
    hits = at.dataframe[0].value
    assert sorted(hits["class"]) == sorted(f"thing {i}, a kind of thing" for i in [19, *range(190, 200)])
    assert any("11 of 200 classes" in c.value for c in at.caption)
    at.text_input(key="predict_class_query").set_value("person")
    _run(at)
    assert any("No class matches 'person'" in w.value for w in at.warning), [w.value for w in at.warning]


def test_validation_bars_are_coloured_by_correctness_with_a_legend():
    """Issue 11: in validation mode the bars meant 'agrees with the majority', without a legend (a wrong top-1
    could be green). Now: the true class is green wherever it is, a wrong top-1 red, and a legend says so."""
    from cnnviz.data import make_synthetic
    from cnnviz.views.predict import CORRECT, WRONG

    root = make_synthetic(data_dir() / "tiny-imagenet-200", num_classes=3, train_per_class=2, val_per_class=4)
    wnids = (root / "wnids.txt").read_text().split()
    for seed, name in enumerate(["one", "two"]):
        make_checkpoint(checkpoints_dir() / "starter" / name, num_classes=3, wnids=wnids, seed=seed)
    at = _run(AppTest.from_file(PAGE))
    at.radio[0].set_value("Validation set")
    _run(at)
    at.slider[0].set_value(3)
    _run(at)
    from cnnviz.data import load_split

    split = load_split(root, "val")
    wnid_of = dict(zip(split.class_names, split.wnids, strict=True))
    truths = [wnid_of[c.value.split("**")[1].replace("\\", "")] for c in at.caption
              if c.value.startswith("true class")]
    charts = _charts(at)
    assert len(truths) == 3 and len(charts) == 6
    for i, spec in enumerate(charts):
        truth = truths[i // 2]
        legend, colours, wnids = _legend_and_colours(spec)
        top = spec["layout"]["yaxis"]["categoryarray"][-1]  # the best class is drawn on top
        right = wnids[top] == truth
        assert colours[top] == (CORRECT if right else WRONG)
        assert spec["layout"]["title"]["text"].startswith("top-1 correct" if right else "top-1 wrong")
        true_bar = next(y for y, w in wnids.items() if w == truth)  # 3 classes: always among the bars
        assert colours[true_bar] == CORRECT
        assert "true class" in legend and (right or "wrong top-1" in legend), legend


def test_an_upload_much_smaller_than_the_input_is_warned():
    """Issue 11: a 1x1 PNG got a confident-looking top-5 silently. The page says its size and the model's."""
    make_checkpoint(checkpoints_dir() / "starter" / "alpha")
    at = _run(AppTest.from_file(PAGE))
    at.file_uploader[0].set_value([("dot.png", image_bytes("PNG", (1, 1)), "image/png"),
                                   ("fine.png", image_bytes("PNG", (48, 48)), "image/png")])
    _run(at)
    warnings = [w.value for w in at.warning]
    assert len(warnings) == 1 and "1x1 pixels" in warnings[0] and "64x64" in warnings[0], warnings
    assert len(_charts(at)) == 2  # it is still predicted, with the warning beside it


def test_an_upload_is_kept_for_the_other_page_and_shown_when_the_uploader_comes_back_empty(two_checkpoints):
    """Issue 12: Streamlit empties a page's file uploader when the user leaves the page; the upload is kept in the
    session (for Visualize too) and Predict shows it again, saying so."""
    from app_pages import _images

    at = _run(AppTest.from_file(PAGE))
    at.file_uploader[0].set_value(("a.png", image_bytes("PNG"), "image/png"))
    _run(at)
    assert [n for n, _ in at.session_state[_images.UPLOADS]] == ["a.png"]
    assert at.session_state[_images.SHOWN][0] == "a.png"  # what Visualize will show
    back = AppTest.from_file(PAGE)  # the page opened again: an empty uploader, the same session state
    back.session_state[_images.UPLOADS] = at.session_state[_images.UPLOADS]
    _run(back)
    assert [s.value for s in back.subheader] == ["a\\.png"] and len(_charts(back)) == 2
    assert any("Your last upload" in c.value for c in back.caption)
    assert [b.label for b in back.button].count("Look inside") == 2  # under each checkpoint's bars
