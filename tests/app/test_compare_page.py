"""The Compare page in AppTest: its numbers equal the run files; curves, bubbles, per-class, same image, export."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from cnnviz.paths import checkpoints_dir, data_dir
from cnnviz.summary import human
from tests.predict_helpers import default_arch, image_bytes, make_checkpoint, write_run
from tests.test_compare import _metrics

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "compare.py")


def _run(at: AppTest) -> AppTest:
    at.run(timeout=180)
    assert not at.exception, [e.value for e in at.exception]
    return at


def _arr(v):
    """Plotly serialises numpy arrays as {"dtype", "bdata"} (base64)."""
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).tolist()
    return list(v)


def _shown(at, i: int = 0):
    """What the table's cells say (pandas' Styler display values), as a frame indexed by model."""
    import pyarrow as pa

    shown = pa.ipc.open_stream(at.dataframe[i].proto.arrow_data.styler.display_values).read_all().to_pandas()
    return shown.set_index("model")


def _charts(at):
    return {c.proto.id: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


@pytest.fixture
def two_runs():
    root = checkpoints_dir()
    base = {"arch": default_arch(), "num_classes": 10, "input_size": 64, "batch_size": 64}
    write_run(root / "run-a", config={**base, "lr": 0.1}, metrics=_metrics(3, [0.1, 0.3, 0.25]), seed=1)
    write_run(root / "run-b", config={**base, "lr": 0.01}, metrics=_metrics(2, [0.2, 0.22]), seed=2)
    return root


def test_nothing_to_compare():
    at = _run(AppTest.from_file(PAGE))
    assert "Nothing to compare yet" in at.info[0].value


def test_table_matches_run_files_and_curves_render(two_runs):
    at = _run(AppTest.from_file(PAGE))
    assert sorted(at.multiselect[0].value) == ["run-a", "run-b"]
    df = at.dataframe[0].value.set_index("model")
    for run in ("run-a", "run-b"):
        lines = [json.loads(x) for x in (two_runs / run / "metrics.jsonl").read_text().splitlines()]
        cfg = json.loads((two_runs / run / "config.json").read_text())
        assert df.loc[run, "best_val_top1"] == max(m["val_top1"] for m in lines)
        assert df.loc[run, "epochs"] == len(lines)
        assert df.loc[run, "train_time_s"] == sum(m.get("train_time_s") or m["epoch_time_s"] for m in lines)
        assert df.loc[run, "hp: lr"] == cfg["lr"]
    assert [c for c in df.columns if c.startswith("hp: ")] == ["hp: lr"]
    assert any("lr" in c.value and "differ" in c.value for c in at.caption)
    charts = list(_charts(at).values())
    curves = charts[0]
    assert {t["name"] for t in curves["data"]} == {"run-a", "run-b"}
    assert curves["layout"]["xaxis"]["title"]["text"] == "epoch"
    assert len(charts) >= 3  # curves + two bubble charts
    at.radio[0].set_value("elapsed_s")
    _run(at)
    curves = list(_charts(at).values())[0]
    assert curves["layout"]["xaxis"]["title"]["text"] == "wall clock (min)"
    a = next(t for t in curves["data"] if t["name"] == "run-a")
    assert _arr(a["x"]) == pytest.approx([10 / 60, 21 / 60, 33 / 60])


def test_per_class_needs_a_dataset(two_runs):
    at = _run(AppTest.from_file(PAGE))
    assert any("No Tiny ImageNet dataset found" in i.value for i in at.info)


def test_per_class_and_confusion_on_a_synthetic_val_set():
    from cnnviz.data import make_synthetic

    root = make_synthetic(data_dir() / "tiny-imagenet-200", num_classes=3, train_per_class=4, val_per_class=6)
    wnids = (root / "wnids.txt").read_text().split()
    make_checkpoint(checkpoints_dir() / "starter" / "one", num_classes=3, wnids=wnids, seed=1)
    make_checkpoint(checkpoints_dir() / "starter" / "two", num_classes=3, wnids=wnids, seed=2)
    at = _run(AppTest.from_file(PAGE))
    at.toggle[0].set_value(True)
    _run(at)
    titles = [e.label for e in at.expander]
    assert len(titles) == 2 and all("on 18 images" in t for t in titles), titles  # 3 classes x 6 (under the 10 cap)
    assert list((data_dir() / "eval-cache").glob("*.npz"))


def test_same_image_through_several_models_and_export(two_runs):
    at = _run(AppTest.from_file(PAGE))
    at.file_uploader[0].set_value(("x.png", image_bytes("PNG", (90, 90)), "image/png"))
    _run(at)
    bars = [c for c in _charts(at).values() if c["data"] and c["data"][0].get("orientation") == "h"]
    assert len(bars) == 2 and all(len(c["data"][0]["y"]) == 5 for c in bars)
    captions = [c for img in at.image for c in img.captions]
    assert sum("strongest maps first" in c for c in captions) == 2, captions  # a feature-map grid per model
    at.button[0].click()
    _run(at)
    assert len(at.get("download_button")) == 1


def test_bad_image_in_same_image_tab(two_runs):
    at = _run(AppTest.from_file(PAGE))
    at.file_uploader[0].set_value(("x.png", b"nope", "image/png"))
    _run(at)
    assert any(e.value.startswith("x\\.png: not a supported image") for e in at.error), [e.value for e in at.error]


def test_a_fresh_clone_compares_its_starters_by_default():
    """No runs yet: Compare opens on every shipped starter (one per family) with their curves, not on two."""
    root = checkpoints_dir()
    history = [{"epoch": e, "val_top1": 0.1 * e, "elapsed_s": 10.0 * e} for e in (1, 2)]
    for i, name in enumerate(["a", "b", "c", "d", "e"]):
        make_checkpoint(root / "starter" / name, metrics={"val_top1": 0.2, "val_top5": 0.5}, seed=i,
                        extra_meta={"history": history})
    at = _run(AppTest.from_file(PAGE))
    assert at.multiselect[0].value == ["starter/a", "starter/b", "starter/c", "starter/d", "starter/e"]
    assert _charts(at), "the starters' training curves should be drawn"


def _synthetic_run(name: str, created: float, seed: int = 0) -> None:
    """A finished 10-class run on the synthetic demo set (its checkpoint has the synthetic class ids)."""
    from cnnviz.data import synthetic_classes

    folder = write_run(checkpoints_dir() / name, config={"arch": default_arch(), "data": "synthetic",
                                                         "input_size": 64, "created": created},
                       metrics=_metrics(2, [0.3, 0.5]), checkpoint=False)
    make_checkpoint(folder / "best", num_classes=10, wnids=[w for w, _ in synthetic_classes(10)], seed=seed,
                    metrics={"val_top1": 0.5}, extra_meta={"train_config": {"data": "synthetic"}})


def _tiny_imagenet_starter(name: str, seed: int = 0) -> None:
    make_checkpoint(checkpoints_dir() / "starter" / name, num_classes=200, seed=seed,
                    metrics={"val_top1": 0.2, "val_top5": 0.4},
                    extra_meta={"history": [{"epoch": 1, "val_top1": 0.2, "elapsed_s": 10.0}]})


def test_starters_stay_selected_once_runs_exist_in_the_one_order():
    """Issue 11: two runs used to push the starters out of the default selection. The options follow the one
    ordering (cnnviz.catalog): starters by name, then runs newest first."""
    for i, name in enumerate(["b", "a", "c", "d", "e"]):
        _tiny_imagenet_starter(name, seed=i)
    _synthetic_run("run-old", created=100.0)
    _synthetic_run("run-new", created=300.0)
    _synthetic_run("run-mid", created=200.0)
    at = _run(AppTest.from_file(PAGE))
    assert at.multiselect[0].options == ["starter/a", "starter/b", "starter/c", "starter/d", "starter/e",
                                         "run-new", "run-mid", "run-old"]
    assert at.multiselect[0].value == ["starter/a", "starter/b", "starter/c", "starter/d", "starter/e", "run-new",
                                       "run-mid"]


def test_dataset_and_class_columns_and_mixed_classes_are_refused_per_class():
    """A 10-class synthetic run beside 200-class Tiny ImageNet starters: the table says which is which; the
    curves share a chart with a note; per-class accuracy and confusion are refused, saying why."""
    from cnnviz.data import make_synthetic

    make_synthetic(data_dir() / "synthetic", num_classes=10, train_per_class=2, val_per_class=2)
    _tiny_imagenet_starter("tiny")
    _synthetic_run("run-syn", created=100.0)
    at = _run(AppTest.from_file(PAGE))
    df = at.dataframe[0].value.set_index("model")
    assert df.loc["starter/tiny", "dataset"] == "Tiny ImageNet" and df.loc["starter/tiny", "classes"] == 200
    assert df.loc["run-syn", "dataset"] == "synthetic demo set" and df.loc["run-syn", "classes"] == 10
    warnings = [w.value for w in at.warning]
    assert any("trained on different classes" in w and "chance" in w for w in warnings), warnings
    refusal = [w for w in warnings if "Per\\-class accuracy and confusion" in w or "Per-class accuracy" in w]
    assert refusal and "same classes" in refusal[0] and "synthetic demo set" in refusal[0], warnings
    assert not at.toggle, "no evaluation is offered for a mixed selection"


def test_per_class_of_a_synthetic_run_uses_the_synthetic_validation_set():
    """Issue 11: a synthetic run was evaluated against Tiny ImageNet (an error about wnids, or the wrong
    images). It is evaluated on the synthetic set it was trained on: 10 classes x 10 images."""
    from cnnviz.data import make_synthetic

    make_synthetic(data_dir() / "synthetic", num_classes=10, train_per_class=2, val_per_class=12)
    make_synthetic(data_dir() / "tiny-imagenet-200", num_classes=3, train_per_class=2, val_per_class=12)
    _synthetic_run("run-syn", created=100.0)
    at = _run(AppTest.from_file(PAGE))
    at.toggle[0].set_value(True)
    _run(at)
    assert not at.error, [e.value for e in at.error]
    titles = [e.label for e in at.expander]
    assert len(titles) == 1 and "on 100 images" in titles[0], titles


def test_googlenet_parameters_equal_the_architectures_count():
    """The Compare table counts a GoogLeNet checkpoint (auxiliary heads in its file) as the Architectures page
    does at 64x64 and 200 classes: 6,178,552 at inference, the training-only heads in their own column."""
    from cnnviz.summary import parameter_count

    make_checkpoint(checkpoints_dir() / "starter" / "g", arch="googlenet", num_classes=200)
    at = _run(AppTest.from_file(PAGE))
    row = at.dataframe[0].value.set_index("model").loc["starter/g"]
    count = parameter_count("googlenet", (3, 64, 64), 200)
    assert (row["params"], row["training-only params"]) == (count.inference, count.training_only) \
        == (6_178_552, 4_739_728)
    assert any("training-only params" in c.value for c in at.caption)


def _zoo_result(family: str, arch: str, variant: dict, confusion: list[list[int]], top1s: list[float]) -> dict:
    wnids = [f"n{i:08d}" for i in range(len(confusion))]
    return {"format": "cnnviz-zoo-result/1", "family": family, "arch": arch, "zoo": "zoo-test",
            "model_args": {**variant, "num_classes": len(wnids), "input_size": 64},
            "config": {"arch": arch, "data": "auto", "epochs": len(top1s), "optimizer": "sgd"},
            "val_top1": float(np.trace(confusion) / np.sum(confusion)), "val_top5": 1.0, "val_n": int(np.sum(confusion)),
            "history": [{"epoch": i + 1, "val_top1": t, "elapsed_s": 10.0 * (i + 1), "images_per_s": 1000.0}
                        for i, t in enumerate(top1s)],
            "wnids": wnids, "class_names": [f"class {i}" for i in range(len(wnids))],
            "confusion": confusion, "top5_correct": int(np.sum(confusion)), "epochs": len(top1s), "starter": None}


def test_compare_opens_on_the_zoo_results_without_weights_or_data():
    """Result files alone (no checkpoint, no dataset here): the zoo is selected, its numbers are the result
    files' full-val measurements, and the per-class view needs no evaluation."""
    res = checkpoints_dir() / "results"
    res.mkdir(parents=True)
    a = _zoo_result("lenet5", "lenet5", {"variant": "modern"}, [[8, 2], [4, 6]], [0.4, 0.55])
    b = _zoo_result("resnet18", "resnet18", {"stem": "tiny"}, [[9, 1], [1, 9]], [0.7, 0.85])
    (res / "lenet5.json").write_text(json.dumps(a))
    (res / "resnet18.json").write_text(json.dumps(b))
    at = _run(AppTest.from_file(PAGE))
    assert at.multiselect[0].value == ["zoo/lenet5", "zoo/resnet18"]
    assert any("the zoo" in c.value for c in at.caption)
    # the recipe and the published numbers are on the page, not only in docs/zoo.md (a result without lr or
    # weight decay, as these, shows "-" there rather than breaking the page)
    notes = next(x for x in at.expander if x.label.startswith("The zoo's recipe")).markdown[0].value
    assert "| lenet5 | lenet5 | - | sgd | - | - |" in notes and "| epochs | 2 |" in notes
    assert "60.69% top-1" in notes and "these members trained 2" in notes
    df = at.dataframe[0].value.set_index("model")
    assert df.loc["zoo/lenet5", "best_val_top1"] == pytest.approx(0.7)  # 14/20 from the confusion, not 0.55
    assert df.loc["zoo/resnet18", "best_val_top1"] == pytest.approx(0.9)
    # written as docs/zoo.md writes them (two decimals, K/M/G), not Streamlit's compact "70%" and "1B"
    shown = _shown(at)
    assert shown.loc["zoo/lenet5", "best_val_top1"] == "70.00%" and shown.loc["zoo/resnet18", "best_val_top5"] == "100.00%"
    for model in df.index:
        assert shown.loc[model, "macs"] == human(df.loc[model, "macs"]) and shown.loc[model, "macs"][-1] in "KMG"
        assert shown.loc[model, "params"] == human(df.loc[model, "params"])
    # what both rows share (kind, dataset, input, classes, epochs) is said once above them, not in every row
    assert not {"kind", "dataset", "input", "classes", "epochs"} & set(df.columns), list(df.columns)
    shared = next(c.value for c in at.caption if c.value.startswith("All selected models:"))
    assert "kind zoo" in shared and "64x64 input" in shared and "2 epochs" in shared, shared
    charts = _charts(at)
    assert {t["name"] for t in next(iter(charts.values()))["data"]} == {"zoo/lenet5", "zoo/resnet18"}
    per_class = [c for k, c in charts.items() if "per-class" in k or "per_class" in k]
    assert per_class, list(charts)  # drawn from the stored confusion matrices, without any evaluation
    assert not at.toggle  # nothing to evaluate: no toggle offered
    assert any("measured on all validation images" in c.value for c in at.caption)
    # per-class accuracies and confusion shares are percentages, as every accuracy on the page (were 0.6, 0.3)
    per_class_table = json.loads(at.dataframe[1].proto.columns)
    assert {c for c, cfg in per_class_table.items() if cfg.get("type_config", {}).get("format") == "percent"} == {
        "zoo/lenet5", "zoo/resnet18", "spread"}
    assert json.loads(at.dataframe[2].proto.columns)["share"]["type_config"]["format"] == "percent"


def test_same_image_without_an_upload_uses_a_validation_image_or_your_last_upload(two_runs):
    """The tab used to stay empty until something was uploaded. Now: a validation image (its true class in
    the caption) when Tiny ImageNet is there, and the upload from Predict or Visualize when there is one."""
    from app_pages._images import UPLOADS
    from cnnviz.data import make_synthetic

    at = _run(AppTest.from_file(PAGE))
    assert any("prepare Tiny ImageNet on the Training page" in i.value for i in at.info)  # nothing to show yet
    make_synthetic(data_dir() / "tiny-imagenet-200", num_classes=3, train_per_class=2, val_per_class=2)
    at = _run(AppTest.from_file(PAGE))
    at.number_input(key="cmp_val").set_value(4)
    _run(at)
    captions = [c for img in at.image for c in img.captions]
    assert any(c.startswith("validation image 4: synthetic") for c in captions), captions
    bars = [c for c in _charts(at).values() if c["data"] and c["data"][0].get("orientation") == "h"]
    assert len(bars) == 2  # both models predicted it
    at.session_state[UPLOADS] = [("from-predict.png", image_bytes("PNG", (90, 90)))]  # as Predict leaves it
    _run(at)
    captions = [c for img in at.image for c in img.captions]
    assert "from-predict.png (your last upload)" in captions, captions
