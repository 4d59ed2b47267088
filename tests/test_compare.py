"""cnnviz.compare: the Compare page's numbers equal the runs' files; evaluation, caching and export."""

from __future__ import annotations

import io
import json
import statistics
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cnnviz.checkpoint import load_checkpoint
from cnnviz.compare import (
    cached_evaluation,
    compare_table,
    curves_frame,
    differing_hyperparameters,
    list_entries,
    model_stats,
    most_confused,
    per_class_frame,
    subset_indices,
)
from cnnviz.models import create_model
from cnnviz.paths import checkpoints_dir
from cnnviz.training.evaluate import EvalResult, class_mapping
from cnnviz.training.evaluate import evaluate_images as evaluate  # the image-set face of the one evaluation
from cnnviz.training.runs import training_rate, training_seconds
from cnnviz.views.compare import TABLE_FORMATS, export_bundle, fold_shared_columns, table_formats
from cnnviz.views.format import to_markdown
from tests.predict_helpers import default_arch, make_checkpoint, write_run

REPO = Path(__file__).resolve().parent.parent


def _metrics(n, top1s, t0=0.0):
    out, clock = [], t0
    for i in range(n):
        clock += 10.0 + i
        out.append({"epoch": i + 1, "train_loss": 2.0 - 0.1 * i, "train_acc": 0.1 * i, "val_loss": 2.1 - 0.1 * i,
                    "val_top1": top1s[i], "val_top5": min(1.0, top1s[i] + 0.2), "lr": 0.1 / (i + 1),
                    "images_per_s": 100.0 + 10 * i, "train_time_s": 8.0 + i, "epoch_time_s": 10.0 + i,
                    "elapsed_s": clock,
                    "peak_mem_bytes": 1000 * (i + 1)})
    return out


@pytest.fixture
def runs():
    root = checkpoints_dir()
    arch = default_arch()
    base = {"arch": arch, "num_classes": 10, "input_size": 64, "epochs": 3, "batch_size": 64,
            "optimizer": {"name": "sgd", "momentum": 0.9}}
    a = write_run(root / "run-a", config={**base, "lr": 0.1, "optimizer": {"name": "sgd", "momentum": 0.9}},
                  metrics=_metrics(3, [0.1, 0.3, 0.25]), seed=1)
    b = write_run(root / "run-b", config={**base, "lr": 0.01, "optimizer": {"name": "sgd", "momentum": 0.5}},
                  metrics=_metrics(2, [0.2, 0.22]), seed=2)
    make_checkpoint(root / "starter" / "lenet", metrics={"val_top1": 0.31, "val_top5": 0.6}, seed=3)
    return root, a, b


def _read_metrics(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines() if line.strip()]


def test_training_time_and_rate_of_a_run_from_before_train_time_s():
    """A run written before ``train_time_s`` existed still gets a training time: its summed epoch times."""
    m = [{k: v for k, v in x.items() if k != "train_time_s"} for x in _metrics(3, [0.1, 0.2, 0.3])]
    assert training_seconds(m) == 10.0 + 11.0 + 12.0
    assert training_rate(m[:1]) == 100.0  # one epoch: its own rate, warm-up and all
    assert training_seconds([{"epoch": 1, "elapsed_s": 4.0}, {"epoch": 2, "elapsed_s": 9.0}]) == 9.0  # clock only
    assert training_seconds([{"epoch": 1}]) is None and training_rate([]) is None


def test_compare_and_docs_zoo_give_the_shipped_zoo_the_same_time_and_rate():
    """docs/zoo.md's "train s" and "img/s" are the result files' numbers; Compare's table showed the wall clock
    with every evaluation in (AlexNet 142 s against the report's 93 s) and a mean rate with the warm-up epoch
    in. Both now count the same way, on the files that ship."""
    shipped = REPO / "checkpoints"
    results = sorted((shipped / "results").glob("*.json"))
    if not results:
        pytest.skip("no zoo result files in checkpoints/results")
    df = compare_table([e for e in list_entries(shipped) if e.kind == "zoo"]).frame.set_index("model")
    for path in results:
        r = json.loads(path.read_text())
        row = df.loc[f"zoo/{r['family']}"]
        assert row["train_time_s"] == pytest.approx(r["train_time_s"]), r["family"]
        assert row["images_per_s"] == pytest.approx(r["images_per_s"]), r["family"]
        # the seconds are that machine's: the H200's, and the 2-core CPU's for the LeNet-5 retrained there
        assert row["device"] == r["device_name"] and r["device_name"], r["family"]
    # a starter exported from a zoo member trained on the member's machine too
    devices = {r["arch"]: r["device_name"] for r in (json.loads(p.read_text()) for p in results)}
    starters = compare_table([e for e in list_entries(shipped) if e.kind == "starter"]).frame
    assert {a: d for a, d in zip(starters["arch"], starters["device"], strict=True)} == devices


def test_a_zoo_member_shows_its_shipped_files_accuracy_beside_its_own():
    """The same network read 42.03% on Compare (the zoo's uncompressed weights) and 40.5% on Visualize and Predict
    (the compressed starter file they load), with nothing saying why: the table gives both, and the shipped
    file's number is the one its starter row and the other pages show."""
    shipped = REPO / "checkpoints"
    results = sorted((shipped / "results").glob("*.json"))
    if not results:
        pytest.skip("no zoo result files in checkpoints/results")
    entries = list_entries(shipped)
    df = compare_table([e for e in entries if e.kind in ("zoo", "starter")]).frame.set_index("model")
    for path in results:
        r = json.loads(path.read_text())
        if not (shipped / "starter" / str((r.get("starter") or {}).get("checkpoint"))).is_file():
            continue
        row, starter = df.loc[f"zoo/{r['family']}"], df.loc[f"starter/{r['starter']['name']}"]
        assert row["best_val_top1"] == pytest.approx(r["val_top1"]), r["family"]
        assert row["shipped_top1"] == pytest.approx(r["starter"]["top1"]) == starter["shipped_top1"], r["family"]
        assert starter["best_val_top1"] == pytest.approx(starter["shipped_top1"]), r["family"]


def test_runs_alone_have_no_shipped_file_column(runs):
    assert "shipped_top1" not in compare_table([e for e in list_entries() if e.kind == "run"]).frame


def test_entries_are_runs_then_starters(runs):
    entries = list_entries()
    assert sorted(e.id for e in entries if e.kind == "run") == ["run-a", "run-b"]
    assert [e.id for e in entries if e.kind == "starter"] == ["starter/lenet"]
    a = next(e for e in entries if e.id == "run-a")
    assert a.checkpoint.name == "best.safetensors" and a.arch == default_arch() and a.input_size == 64


def test_table_numbers_equal_the_run_files(runs):
    root = runs[0]
    entries = list_entries()
    table = compare_table(entries)
    df = table.frame.set_index("model")
    for run_id in ("run-a", "run-b"):
        m = _read_metrics(root / run_id)
        row = df.loc[run_id]
        assert row["epochs"] == len(m)
        assert row["best_val_top1"] == max(x["val_top1"] for x in m)
        assert row["best_val_top5"] == max(x["val_top5"] for x in m)
        # the steps alone (evaluation left out) and the median rate after the warm-up epoch, as docs/zoo.md
        assert row["train_time_s"] == sum(x["train_time_s"] for x in m) < m[-1]["elapsed_s"]
        assert row["images_per_s"] == pytest.approx(statistics.median(x["images_per_s"] for x in m[1:]))
        assert row["peak_mem_bytes"] == max(x["peak_mem_bytes"] for x in m)
        cfg = json.loads((root / run_id / "config.json").read_text())
        assert row["hp: lr"] == cfg["lr"]
        assert row["hp: optimizer.momentum"] == cfg["optimizer"]["momentum"]
    model = create_model(default_arch(), num_classes=10, input_size=64)
    assert df.loc["run-a", "params"] == sum(p.numel() for p in model.parameters())
    assert df.loc["starter/lenet", "best_val_top1"] == 0.31 and df.loc["starter/lenet", "best_val_top5"] == 0.6


def test_only_differing_hyperparameters(runs):
    entries = [e for e in list_entries() if e.kind == "run"]
    assert differing_hyperparameters(entries) == ["lr", "optimizer.momentum"]
    assert differing_hyperparameters(entries[:1]) == []
    assert compare_table(entries).differing == ["lr", "optimizer.momentum"]


def test_torn_metrics_line_and_missing_checkpoint_are_tolerated(runs):
    root = runs[0]
    with open(root / "run-b" / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 3, "val_to')  # a kill mid-append
    write_run(root / "run-c", config={"arch": default_arch(), "lr": 1}, metrics=[], checkpoint=False,
              status={"state": "queued"})
    (root / "run-c" / "status.json").write_text("{torn")
    table = compare_table(list_entries()).frame.set_index("model")
    assert table.loc["run-b", "epochs"] == 2
    assert pd.isna(table.loc["run-c", "best_val_top1"]) and table.loc["run-c", "epochs"] == 0


def test_curves_by_epoch_and_wall_clock(runs):
    root = runs[0]
    entries = [e for e in list_entries() if e.kind == "run"]
    curves = curves_frame(entries)
    a = curves[(curves.model == "run-a") & (curves.metric == "val_top1")]
    m = _read_metrics(root / "run-a")
    assert a["value"].tolist() == [x["val_top1"] for x in m]
    assert a["epoch"].tolist() == [1, 2, 3]
    assert a["elapsed_s"].tolist() == [x["elapsed_s"] for x in m]
    for e in entries:  # without elapsed_s the wall clock is the running sum of epoch times
        for x in e.metrics:
            x.pop("elapsed_s")
    b = curves_frame(entries)
    assert b[(b.model == "run-a") & (b.metric == "lr")]["elapsed_s"].tolist() == [10.0, 21.0, 33.0]


def test_model_stats_has_macs_when_the_summary_exists(runs):
    e = next(e for e in list_entries() if e.id == "run-a")
    params, macs = model_stats(e)
    assert params > 0
    if default_arch() == "lenet5":
        assert macs is not None and macs > params  # convolution layers reuse weights across positions


# ----------------------------------------------------------------------------------------------- evaluation
def _dataset(n_per_class=4, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n_per_class * classes, 64, 64, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(classes), n_per_class)
    wnids = [f"n{i:08d}" for i in range(classes)]
    return images, labels, wnids, [f"thing {i}" for i in range(classes)]


def _manual_predictions(ckpt, images):
    from PIL import Image

    from cnnviz.preprocess import to_tensor_for
    with torch.no_grad():
        x = torch.cat([to_tensor_for(Image.fromarray(a), ckpt.meta) for a in images])
        return ckpt.model(x)


def test_evaluate_matches_per_image_prediction(tmp_path):
    ckpt = load_checkpoint(make_checkpoint(tmp_path / "m"))
    images, labels, wnids, names = _dataset()
    ev = evaluate(ckpt.model, ckpt.meta, images, labels, wnids, names, batch_size=7)
    logits = _manual_predictions(ckpt, images)
    pred = logits.argmax(1).numpy()
    assert ev.n == len(labels) and ev.top1 == pytest.approx((pred == labels).mean())
    expected = np.zeros((10, 10), int)
    np.add.at(expected, (labels, pred), 1)
    assert (ev.confusion == expected).all()
    top5 = (logits.topk(5, 1).indices.numpy() == labels[:, None]).any(1).mean()
    assert ev.top5 == pytest.approx(top5)
    assert ev.per_class_accuracy[0] == pytest.approx(expected[0, 0] / 4)


def test_checkpoint_classes_in_another_order_are_mapped_by_wnid(tmp_path):
    images, labels, wnids, names = _dataset()
    perm = list(reversed(wnids))
    ckpt = load_checkpoint(make_checkpoint(tmp_path / "m", wnids=perm))
    assert class_mapping(ckpt.meta, wnids).tolist() == list(range(9, -1, -1))
    ev = evaluate(ckpt.model, ckpt.meta, images, labels, wnids, names)
    pred_ckpt = _manual_predictions(ckpt, images).argmax(1).numpy()  # in the checkpoint's order
    pred_ds = np.array([wnids.index(perm[p]) for p in pred_ckpt])
    assert ev.top1 == pytest.approx((pred_ds == labels).mean())
    with pytest.raises(ValueError, match="other classes"):
        class_mapping(ckpt.meta, ["nXXXXXXXX"] + wnids[1:])


def test_evaluation_is_cached_once_per_checkpoint(tmp_path):
    images, labels, wnids, names = _dataset()
    weights = make_checkpoint(tmp_path / "m")
    calls = []

    def loader(path):
        calls.append(path)
        return load_checkpoint(path)

    first = cached_evaluation(weights, images, labels, wnids, names, cache_dir=tmp_path / "cache", model_loader=loader)
    again = cached_evaluation(weights, images, labels, wnids, names, cache_dir=tmp_path / "cache", model_loader=loader)
    assert len(calls) == 1 and (again.confusion == first.confusion).all() and again.names == names
    files = list((tmp_path / "cache").glob("*.npz"))
    assert len(files) == 1
    with np.load(files[0], allow_pickle=False) as z:  # no pickled objects inside
        assert set(z.files) == {"confusion", "top5_correct", "wnids", "names"}
    files[0].write_bytes(b"torn")
    cached_evaluation(weights, images, labels, wnids, names, cache_dir=tmp_path / "cache", model_loader=loader)
    assert len(calls) == 2  # a damaged cache is recomputed
    other = make_checkpoint(tmp_path / "other", seed=9)
    cached_evaluation(other, images, labels, wnids, names, cache_dir=tmp_path / "cache", model_loader=loader)
    cached_evaluation(weights, images[:20], labels[:20], wnids, names, cache_dir=tmp_path / "cache",
                      model_loader=loader)
    assert len(calls) == 4 and len(list((tmp_path / "cache").glob("*.npz"))) == 3


def _ev(cm, names=None):
    cm = np.array(cm)
    n = len(cm)
    return EvalResult(confusion=cm, top5_correct=int(cm.sum()), wnids=[f"w{i}" for i in range(n)],
                      names=names or [f"c{i}" for i in range(n)])


def test_most_confused_pairs():
    ev = _ev([[5, 3, 0], [1, 6, 0], [0, 4, 2]])
    mc = most_confused(ev, 5)
    assert list(zip(mc["true"], mc["predicted"], mc["count"], strict=True)) == [
        ("c2", "c1", 4), ("c0", "c1", 3), ("c1", "c0", 1)]
    assert mc["share"].iloc[0] == pytest.approx(4 / 6)
    assert most_confused(_ev([[3, 0], [0, 3]])).empty


def test_per_class_side_by_side_largest_difference_first():
    a = _ev([[5, 5, 0], [0, 10, 0], [0, 0, 10]])
    b = _ev([[10, 0, 0], [0, 9, 1], [0, 0, 10]])
    df = per_class_frame({"A": a, "B": b})
    assert df["wnid"].tolist() == ["w0", "w1", "w2"]
    assert df["spread"].tolist() == pytest.approx([0.5, 0.1, 0.0])
    assert df.loc[0, "A"] == 0.5 and df.loc[0, "B"] == 1.0


def test_subset_is_balanced_and_deterministic():
    labels = np.array([0, 1, 0, 1, 0, 2])
    assert subset_indices(labels, 1).tolist() == [0, 1, 5]
    assert subset_indices(labels, None).tolist() == list(range(6))


def test_export_bundle_contents(runs):
    entries = list_entries()
    ev = _ev([[5, 3, 0], [1, 6, 0], [0, 4, 2]])
    data = export_bundle(entries, evals={"run-a": ev, "starter/lenet": ev})
    z = zipfile.ZipFile(io.BytesIO(data))
    names = set(z.namelist())
    for t in ("runs", "curves", "per_class", "confused_run-a", "confused_starter_lenet"):
        assert f"tables/{t}.csv" in names and f"tables/{t}.md" in names
    assert {"configs/run-a.json", "configs/run-b.json", "configs/starter_lenet.json", "README.md"} <= names
    pngs = [n for n in names if n.startswith("figures/")]
    assert "figures/val_top1_by_epoch.png" in pngs and "figures/val_top1_by_time.png" in pngs
    assert "figures/top1_vs_params.png" in pngs and "figures/confusion_run-a.png" in pngs
    assert all(z.read(n)[:8] == b"\x89PNG\r\n\x1a\n" for n in pngs)
    # the PNGs draw each model in the page's colour (cnnviz.palette), not matplotlib's own cycle
    from cnnviz.palette import model_colours
    from tests.test_zoo import _colours_in

    colours = model_colours(compare_table(entries).frame["model"].astype(str))
    assert {colours["run-a"], colours["run-b"]} <= _colours_in(z.read("figures/val_top1_by_epoch.png"))
    runs_csv = pd.read_csv(io.BytesIO(z.read("tables/runs.csv"))).set_index("model")
    assert runs_csv.loc["run-a", "best_val_top1"] == 0.3
    assert json.loads(z.read("configs/run-a.json"))["config"]["lr"] == 0.1
    md = z.read("tables/runs.md").decode()
    assert md.startswith("| model | kind | arch |") and "run-b" in md


def test_markdown_escapes_pipes_and_blanks_nan():
    md = to_markdown(pd.DataFrame({"a": ["x|y", None], "b": [float("nan"), 0.123456]}))
    assert md.splitlines()[2] == "| x\\|y |  |" and md.splitlines()[3] == "|  | 0.1235 |"


def test_same_image_views_leave_the_models_untouched(tmp_path):
    from cnnviz.images import open_image
    from cnnviz.views.same_image import maps_caption, same_image
    from tests.predict_helpers import image_bytes

    a = load_checkpoint(make_checkpoint(tmp_path / "a", seed=1))
    b = load_checkpoint(make_checkpoint(tmp_path / "b", seed=2))
    before = {k: v.clone() for k, v in a.model.state_dict().items()}
    img = open_image(image_bytes("PNG", (100, 70)))
    views = same_image([("a", a.model, a.meta), ("b", b.model, b.meta)], img, depth=0.0, occlusion_size=8)
    assert [v.model for v in views] == ["a", "b"] and all(v.error is None for v in views)
    assert views[0].depth.startswith("block 1 of ") and views[0].maps.dtype == np.uint8
    assert "each on its own scale (black = its lowest" in maps_caption(views[0])
    assert views[0].occlusion.shape == (64, 64, 3)
    assert len(views[0].prediction.predictions) == 5
    deep = same_image([("a", a.model, a.meta)], img, depth=1.0, occlusion_size=None)[0]
    assert deep.layer != views[0].layer and deep.occlusion is None
    assert not a.model.training and all(torch.equal(before[k], v) for k, v in a.model.state_dict().items())
    assert all(not m._forward_hooks for m in a.model.modules())


def test_bookkeeping_keys_are_not_hyperparameters(runs):
    root = checkpoints_dir()
    for run, commit in (("run-a", "abc"), ("run-b", "def")):
        cfg = json.loads((root / run / "config.json").read_text())
        cfg.update(created=hash(run), git_commit=commit, heartbeat_s=hash(run) % 7, name=run)
        (root / run / "config.json").write_text(json.dumps(cfg))
    entries = [e for e in list_entries() if e.kind == "run"]
    assert differing_hyperparameters(entries) == ["lr", "optimizer.momentum"]


def test_val_accuracy_equals_the_training_codes_evaluate(tmp_path):
    """The Compare page's confusion-based top-1/top-5 and `python -m cnnviz evaluate` agree on the same data."""
    from cnnviz.data import load_split, make_synthetic
    from cnnviz.training.evaluate import evaluate_checkpoint

    root = make_synthetic(tmp_path / "syn", num_classes=8, train_per_class=2, val_per_class=4)
    val = load_split(root, "val")
    weights = make_checkpoint(tmp_path / "m", num_classes=8, wnids=list(val.wnids), seed=4)
    ref = evaluate_checkpoint(weights, data=str(root), device="cpu")
    ev = cached_evaluation(weights, val.images, val.labels, val.wnids, val.class_names, cache_dir=tmp_path / "c")
    assert ev.n == ref["n"] == 32
    assert ev.top1 == pytest.approx(ref["top1"]) and ev.top5 == pytest.approx(ref["top5"])


def test_bubble_chart_names_what_it_cannot_plot_and_reads_its_log_axis():
    """Issue 11 (charts): a model without accuracy or MACs is named under the accuracy-vs-cost chart, not
    dropped silently; the log axis has K/M/G labels, not plotly's bare "2 5" minor digits."""
    import pandas as pd

    from cnnviz.views.compare import bubble_figure

    frame = pd.DataFrame([
        {"model": "a", "arch": "x", "macs": 3e6, "params": 1e5, "best_val_top1": 0.3, "train_time_s": 10.0},
        {"model": "b", "arch": "y", "macs": 4e8, "params": 2e6, "best_val_top1": 0.5, "train_time_s": 20.0},
        {"model": "fresh-run", "arch": "y", "macs": 4e8, "params": 2e6, "best_val_top1": None, "train_time_s": None},
    ])
    fig = bubble_figure(frame, "macs")
    note = " ".join(a.text for a in fig.layout.annotations)
    assert "fresh-run (no best val top-1 yet)" in note
    assert list(fig.layout.xaxis.ticktext) == ["2M", "5M", "10M", "20M", "50M", "100M", "200M", "500M"]


def test_per_class_bars_of_classes_with_the_same_short_name_stay_apart():
    """Two classes shortened to the same label ("synthetic: vertical stripes" and "... (coarse)") were drawn
    as one category, their accuracies stacked into a bar of 190%."""
    import pandas as pd

    from cnnviz.views.compare import per_class_figure

    frame = pd.DataFrame({"wnid": ["s1", "s10"], "name": ["synthetic: vertical stripes",
                                                          "synthetic: vertical stripes (coarse)"],
                          "run": [1.0, 0.9], "spread": [0.0, 0.0]})
    bar = per_class_figure(frame, ["run"]).data[0]
    assert len(set(bar.x)) == 2 and list(bar.y) == [1.0, 0.9]


def test_bubble_chart_says_what_its_bubble_sizes_are():
    """LeNet-5 (78K parameters) drew the biggest bubble: area is training time, and it trained on a CPU. The
    chart names the smallest and largest bubble with their times, and the hover gives each model's."""
    from cnnviz.views.compare import bubble_figure

    table = pd.DataFrame([{"model": m, "arch": m, "macs": macs, "params": p, "best_val_top1": t, "train_time_s": s}
                          for m, macs, p, t, s in (("zoo/lenet5", 7.2e6, 7.8e4, 0.25, 283.0),
                                                   ("zoo/zfnet", 1.05e9, 5.9e7, 0.42, 70.0),
                                                   ("zoo/vgg16", 1.28e9, 4.1e7, 0.46, 91.0))])
    fig = bubble_figure(table)
    keys = [a.text for a in fig.layout.annotations if a.text.startswith("bubble area")]
    assert keys == ["bubble area: training time, from 1m 10s (zoo/zfnet) to 4m 43s (zoo/lenet5)"]
    assert all("train_time_s" in t.hovertemplate or "training time" in t.hovertemplate for t in fig.data)


def test_bubble_labels_avoid_the_plot_edge_other_bubbles_and_each_other():
    """The zoo's AlexNet, ZFNet and VGG sit close in MACs and accuracy: with plotly's one rule ("top center"
    for every label) their names were drawn on top of each other. Each label now takes the first place that
    covers nothing: not the plot's edge, not another bubble, not a label placed before it."""
    from cnnviz.views.charts import label_positions

    assert label_positions([(0.97, 0.5, 10, "at the right edge")]) == ["middle left"]
    # a big bubble with a small one just to its right: its name goes left, the small one's right
    assert label_positions([(0.3, 0.5, 16, "big one"), (0.45, 0.5, 6, "small")]) == ["middle left", "middle right"]
    # two labels that would collide on the right: the second (smaller bubble) takes another place
    places = label_positions([(0.2, 0.5, 10, "first name"), (0.2, 0.53, 8, "second name")])
    assert places[0] == "middle right" and places[1] != "middle right"


def test_bubble_chart_gives_each_model_its_label_place():
    import pandas as pd

    from cnnviz.views.compare import bubble_figure

    zoo = [("zoo/lenet5", 7.2e6, 0.22, 19), ("zoo/alexnet", 7.3e8, 0.386, 93), ("zoo/zfnet", 1.05e9, 0.42, 70),
           ("zoo/vgg16", 1.28e9, 0.458, 91), ("zoo/resnet18", 2.2e9, 0.585, 112)]
    frame = pd.DataFrame([{"model": m, "arch": m[4:], "macs": macs, "params": 1e6, "best_val_top1": top1,
                           "train_time_s": float(s)} for m, macs, top1, s in zoo])
    fig = bubble_figure(frame, "macs")
    places = {t.text[0]: t.textposition[0] for t in fig.data}
    assert set(places) == {m for m, *_ in zoo} and all(t.cliponaxis is False for t in fig.data)
    # the three close ones are named beside their bubbles, at their own heights: above a bubble a name lands
    # on the next one up
    assert all(places[m].startswith("middle") for m in ("zoo/alexnet", "zoo/zfnet", "zoo/vgg16")), places


def test_same_image_colours_the_true_class_only_for_a_model_that_has_it(tmp_path):
    """A validation image's true class reaches the bars of each model trained on it (green true class, red
    wrong top-1); a model with other classes keeps plain bars instead of a "not in the top 5" that blames it."""
    from cnnviz.data import load_split, make_synthetic
    from cnnviz.views.predict import CORRECT, NEUTRAL, topk_figure
    from cnnviz.views.same_image import same_image, validation_image

    root = make_synthetic(tmp_path / "syn", num_classes=8, train_per_class=2, val_per_class=2)
    val = load_split(root, "val")
    img, caption, wnid = validation_image(val, 5)
    assert wnid == val.wnids[int(val.labels[5])] and caption == f"validation image 5: {val.class_names[int(val.labels[5])]}"
    knows = load_checkpoint(make_checkpoint(tmp_path / "a", num_classes=8, wnids=list(val.wnids), seed=1))
    other = load_checkpoint(make_checkpoint(tmp_path / "b", num_classes=8, seed=2))
    views = same_image([("knows", knows.model, knows.meta), ("other", other.model, other.meta)], img,
                       occlusion_size=None, truth=wnid)
    assert [v.truth for v in views] == [wnid, None]
    fig = topk_figure(views[0].prediction, truth=views[0].truth)
    colours = {c for t in fig.data for c in ([t.marker.color] if isinstance(t.marker.color, str) else [])}
    in_top = wnid in {p.wnid for p in views[0].prediction.predictions}
    assert (CORRECT in colours) == in_top and fig.layout.title.text.startswith("top-1")
    plain = topk_figure(views[1].prediction, truth=views[1].truth)
    assert {t.marker.color for t in plain.data} == {NEUTRAL} and plain.layout.title.text is None


def test_a_model_has_one_distinct_colour_on_every_compare_chart():
    """Seven zoo models drew in Streamlit's paired sequence (blue, pale blue, red, pink, ...): look-alike pairs,
    and a different model-to-colour mapping on the bubble chart (by architecture) than on the curves."""
    import pandas as pd

    from cnnviz.palette import MODEL_COLOURS
    from cnnviz.views.compare import bubble_figure, metric_curves_figure, per_class_figure

    models = ["zoo/lenet5", "zoo/alexnet", "zoo/zfnet", "zoo/vgg16", "zoo/googlenet", "zoo/resnet18", "zoo/nin"]
    curves = pd.DataFrame([{"model": m, "epoch": e, "elapsed_s": 10.0 * e, "metric": "val_top1", "value": 0.1 * e}
                           for m in models for e in (1, 2)])
    table = pd.DataFrame([{"model": m, "arch": m.split("/")[1], "macs": 1e6 * (i + 1), "params": 1e5 * (i + 1),
                           "best_val_top1": 0.1 + 0.05 * i, "train_time_s": 10.0} for i, m in enumerate(models)])
    per_class = pd.DataFrame({"wnid": ["a", "b"], "name": ["a", "b"], **{m: [0.5, 0.4] for m in models},
                              "spread": [0.1, 0.1]})
    line = {t.name: t.line.color for t in metric_curves_figure(curves).data}
    bubble = {t.name: t.marker.color for t in bubble_figure(table, "macs").data}
    bars = {t.name: t.marker.color for t in per_class_figure(per_class, models).data}
    assert line == bubble == bars and list(line) == models
    assert len(set(line.values())) == len(models) and set(line.values()) <= set(MODEL_COLOURS)


def test_the_columns_every_model_shares_are_said_once():
    """Compare's table drops a context column on which every row agrees and says its value once, so that seven
    zoo rows fit; a column that differs, has a gap, or belongs to a lone row stays in the table."""
    frame = pd.DataFrame({"model": ["a", "b"], "kind": ["zoo", "zoo"], "dataset": ["Tiny *ImageNet*"] * 2,
                          "input": [64, 64], "classes": [200, 10], "epochs": [10, 10],
                          "device": ["NVIDIA H200", None], "best_val_top1": [0.5, 0.5]})
    folded, text = fold_shared_columns(frame, escape=lambda v: str(v).replace("*", "\\*"))
    assert folded == ["kind", "dataset", "input", "epochs"]  # not classes (they differ), not device (a gap)
    assert text == "All selected models: kind zoo, Tiny \\*ImageNet\\*, 64x64 input, 10 epochs."
    assert "best_val_top1" not in folded  # results are never folded, even when equal
    assert fold_shared_columns(frame.iloc[:1]) == ([], "")
    assert fold_shared_columns(frame[["model", "classes"]]) == ([], "")


def test_charts_of_training_time_warn_when_the_models_trained_on_different_machines():
    """The zoo's LeNet-5 trained on the 2-core CPU and the others on an H200: a bubble's size or a by-time curve
    then compares machines too, and Compare says so (and docs/zoo.md's plots draw each machine's marker)."""
    from cnnviz.views.compare import devices_note
    from cnnviz.zoo.report import device_markers

    frame = pd.DataFrame({"model": ["a", "b", "c"], "device": ["NVIDIA H200", "NVIDIA H200", "AMD EPYC, 2 cores"]})
    assert "trained on different machines" in devices_note(frame)
    assert devices_note(frame.iloc[:2]) is None and devices_note(frame[["model"]]) is None
    assert devices_note(frame.assign(device=["NVIDIA H200", None, None])) is None  # an unknown is no second one
    markers = device_markers(frame.to_dict("records"))
    assert markers["NVIDIA H200"] == "o" and markers["AMD EPYC, 2 cores"] != "o"
    assert device_markers([{"device": None}]) == {"unknown device": "o"}


def test_table_numbers_keep_the_digits_docs_zoo_md_shows():
    """Compare's table writes 25.10% and 1.05G (as docs/zoo.md does), where Streamlit's compact column formats
    wrote 25.1% beside 38.55% and ZFNet's 1.05G MACs as "1B"; an unknown value is "-", not "nan%"."""
    pct, count = TABLE_FORMATS["best_val_top1"], TABLE_FORMATS["macs"]
    assert [pct(0.251), pct(0.3855), pct(1.0), pct(None), pct(float("nan"))] == \
        ["25.10%", "38.55%", "100.00%", "-", "-"]
    assert [count(1.05e9), count(7_240_000), count(78_200), count(None), count(np.nan)] == \
        ["1.05G", "7.24M", "78.2K", "-", "-"]
    # only the columns a table has (Styler.format refuses the others)
    assert set(table_formats(pd.DataFrame(columns=["model", "macs", "best_val_top5"]))) == {"macs", "best_val_top5"}


@pytest.mark.parametrize("family", ["lenet5", "alexnet", "zfnet", "vgg16", "googlenet", "resnet18", "nin"])
def test_same_image_depths_are_block_outputs_with_maps(family):
    """Compare's same-image grids at one depth showed a conv's raw output (negative values) for one model beside
    a ReLU's for another: the depths are now each hidden block's output, rectified, and never a 1x1 "map" (a
    global pool ends ResNet's layer4 and LeNet-5's c5: the map it averages is shown)."""
    from cnnviz.models import create_model
    from cnnviz.views.same_image import depth_layers
    from cnnviz.viz import feature_maps
    from cnnviz.zoo.recipe import member

    m = member(family)
    torch.manual_seed(0)
    model = create_model(m.arch, num_classes=200, input_size=64, **m.variant).eval()
    layers = depth_layers(model, (3, 64, 64))
    assert len(layers) >= 2, layers
    x = torch.randn(1, 3, 64, 64)
    for name, label in layers:
        maps = feature_maps(model, x, name).maps
        assert maps.shape[1] * maps.shape[2] > 1 and maps.min() >= 0, (name, label, maps.shape)
