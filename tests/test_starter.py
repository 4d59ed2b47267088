"""Starter export: a run's best checkpoint becomes a (compressed) starter whose recorded accuracy, and the
cost of its compression, are measured."""

from __future__ import annotations

import json

import pytest
import torch

from cnnviz.checkpoint import build_meta, load_checkpoint, save_checkpoint
from cnnviz.data import load_split, make_synthetic
from cnnviz.models import create_model
from cnnviz.starter import export_starter, list_starters, starter_dir, starter_table
from cnnviz.training.evaluate import evaluate_checkpoint


def test_export_records_the_accuracy_that_evaluate_measures(tmp_path):
    root = make_synthetic(tmp_path / "syn", num_classes=4, train_per_class=8, val_per_class=6, seed=1)
    val = load_split(root, "val")
    torch.manual_seed(0)
    model = create_model("lenet5", num_classes=len(val.wnids), input_size=64, variant="modern")
    meta = build_meta(model, classes=val.wnids, class_names=val.class_names, mean=val.mean, std=val.std, epoch=3,
                      train_config={"data": str(root)})
    run = tmp_path / "run"
    save_checkpoint(run / "best", model, meta)
    history = [{"epoch": e, "val_top1": 0.1 * e, "elapsed_s": 5.0 * e, "images_per_s": 80.0} for e in (1, 2, 3, 4)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))

    result = export_starter(run, "lenet5_demo", data=str(root), root=tmp_path / "ckpts", device="cpu")

    shipped = tmp_path / "ckpts" / "starter" / "lenet5_demo.safetensors"
    assert shipped.exists()
    saved = json.loads(shipped.with_suffix(".json").read_text())
    assert saved["dtype"] == "float16"
    # What the metadata records is what evaluating the shipped file gives, independently re-measured.
    again = evaluate_checkpoint(shipped, data=str(root), device="cpu")
    assert saved["metrics"]["val_top1"] == again["top1"] == result["top1"]
    assert saved["metrics"]["val_top5"] == again["top5"]
    assert saved["metrics"]["val_n"] == len(val.labels)
    # The run's curves travel with it, up to the exported epoch (3; epoch 4 came after the best checkpoint).
    assert saved["history"] == history[:3]
    from cnnviz.compare import compare_table, curves_frame, list_entries

    (entry,) = list_entries(tmp_path / "ckpts")
    curve = curves_frame([entry])
    assert curve[curve.metric == "val_top1"]["value"].tolist() == [0.1, 0.2, 0.1 * 3]
    row = compare_table([entry]).frame.iloc[0]
    assert row["best_val_top1"] == result["top1"]  # the headline stays the number measured on the shipped file
    assert row["train_time_s"] == 15.0 and row["images_per_s"] == 80.0
    # The float16 round trip keeps the weights close to the original.
    loaded = load_checkpoint(shipped).model
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-2, rtol=1e-2), k
    rows = list_starters(tmp_path / "ckpts")
    assert [r["name"] for r in rows] == ["lenet5_demo"]
    assert f"{100 * result['top1']:.2f}%" in starter_table(tmp_path / "ckpts")
    # Re-exported from the shipped file itself (compressed to make room for another family): the curves and the
    # run it came from stay, and the new file's accuracy is measured again.
    again = export_starter(shipped, "lenet5_demo", compress="int8", data=str(root), root=tmp_path / "ckpts",
                           device="cpu")
    rewritten = json.loads(shipped.with_suffix(".json").read_text())
    assert rewritten["history"] == history[:3] and rewritten["starter"]["source"] == "run/best.safetensors"
    assert rewritten["dtype"] == "int8" and rewritten["metrics"]["val_top1"] == again["top1"]


def test_export_refuses_a_name_that_is_a_path(tmp_path):
    with pytest.raises(ValueError, match="plain file name"):
        export_starter(tmp_path, "../evil")


def test_googlenet_starter_drops_its_auxiliary_heads_and_predicts_the_same(tmp_path):
    """The auxiliary classifiers only serve training: the starter file leaves them out (4.7M parameters at 200
    classes), and every eval-mode prediction stays what the full checkpoint gives."""
    root = make_synthetic(tmp_path / "syn", num_classes=3, train_per_class=4, val_per_class=4, seed=2)
    val = load_split(root, "val")
    torch.manual_seed(0)
    model = create_model("googlenet", num_classes=len(val.wnids), input_size=64).eval()
    assert model.aux_logits
    meta = build_meta(model, classes=val.wnids, class_names=val.class_names, mean=val.mean, std=val.std, epoch=1,
                      train_config={"data": str(root)})
    save_checkpoint(tmp_path / "run" / "best", model, meta)

    export_starter(tmp_path / "run", "googlenet_demo", data=str(root), root=tmp_path / "ckpts", device="cpu")

    shipped = load_checkpoint(tmp_path / "ckpts" / "starter" / "googlenet_demo")
    assert shipped.meta["model_args"]["aux_logits"] is False
    assert shipped.meta["starter"]["dropped_training_only_heads"] == ["aux1", "aux2"]
    assert not any(k.startswith("aux") for k in shipped.model.state_dict())
    full_params = sum(p.numel() for p in model.parameters())
    lean_params = sum(p.numel() for p in shipped.model.parameters())
    assert full_params - lean_params > 1_000_000
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), shipped.model(x), atol=5e-2)  # float16 weights: close, not equal


def test_readme_states_each_shipped_starters_measured_accuracy():
    """The README's starter table is what the shipped files' metadata records (measured by evaluate), and the
    starters together stay within the 48 MiB budget (issue 10)."""
    from cnnviz.paths import REPO_ROOT
    from cnnviz.starter import SIZE_BUDGET_BYTES

    rows = list_starters(REPO_ROOT / "checkpoints")
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    for r in rows:
        line = next((ln for ln in readme.splitlines() if f"`{r['name']}`" in ln and ln.startswith("|")), None)
        assert line is not None, f"README has no table row for starter {r['name']}"
        assert f"{100 * r['val_top1']:.2f}%" in line and f"{100 * r['val_top5']:.2f}%" in line, line
        assert r["val_n"] == 10_000, f"{r['name']} was not measured on the whole val split"
    # Every file in the folder counts (the .json sidecars too: they travel with the tree just the same).
    shipped = sum(p.stat().st_size for p in (REPO_ROOT / "checkpoints" / "starter").rglob("*") if p.is_file())
    assert sum(r["bytes"] + r["snapshot_bytes"] for r in rows) <= shipped <= SIZE_BUDGET_BYTES


def test_readme_states_what_compression_cost_the_shipped_starters():
    """Every signed figure in the README's paragraph on compression cost is one the shipped starters' own
    records hold (it once quoted an earlier export's: +0.01 pp for AlexNet, whose file cost 1.21 pp)."""
    import json
    import re

    from cnnviz.paths import REPO_ROOT

    costs = set()
    for meta in (REPO_ROOT / "checkpoints" / "starter").glob("*.json"):
        measured = json.loads(meta.read_text())["compression"]["measured"]
        costs |= {f"{measured['top1_change_pp']:+.2f}", f"{measured['top5_change_pp']:+.2f}"}
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("Measured on the shipped starters")
    paragraph = readme[start:readme.index("\n\n", start)]
    quoted = re.findall(r"[-+]\d+\.\d\d(?= pp| to )", paragraph)  # "-0.09 to -0.04 pp", "-1.21 pp"
    assert len(quoted) >= 5
    assert all(q in costs for q in quoted), (quoted, sorted(costs))


def _briefly_trained_run(tmp_path, arch: str, input_size: int, steps: int = 4, low_rank: dict | None = None):
    """A run folder whose ``best`` checkpoint had a few SGD steps on a synthetic set: ``(run, data root)``.
    ``low_rank`` ({Linear name: rank}) then projects those layers' weights to that rank, as a trained fc
    layer's energy sits in few directions (and SVD at that rank keeps them)."""
    root = make_synthetic(tmp_path / "syn", num_classes=5, train_per_class=8, val_per_class=6, seed=3)
    train, val = load_split(root, "train"), load_split(root, "val")
    torch.manual_seed(0)
    model = create_model(arch, num_classes=len(val.wnids), input_size=input_size)
    x = torch.nn.functional.interpolate(torch.tensor(train.images[:16]).permute(0, 3, 1, 2).float() / 255,
                                        size=input_size)
    y = torch.tensor(train.labels[:16])
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(steps):
        opt.zero_grad()
        out = model(x)
        torch.nn.functional.cross_entropy(out[0] if isinstance(out, tuple) else out, y).backward()
        opt.step()
    with torch.no_grad():
        for name, rank in (low_rank or {}).items():
            w = model.get_submodule(name).weight
            u, sv, vh = torch.linalg.svd(w, full_matrices=False)
            w.copy_((u[:, :rank] * sv[:rank]) @ vh[:rank])
    meta = build_meta(model.eval(), classes=val.wnids, class_names=val.class_names, mean=val.mean, std=val.std,
                      epoch=1, train_config={"data": str(root)})
    save_checkpoint(tmp_path / "run" / "best", model, meta)
    return tmp_path / "run", root


def test_export_compresses_and_records_what_compression_cost(tmp_path):
    """int8 + SVD: the shipped file is the compressed one, evaluate measures it, and compression.measured holds
    the before/after accuracy (before = the run's float32 checkpoint, as evaluate gives it) and logit error."""
    torch.set_num_threads(1)
    run, root = _briefly_trained_run(tmp_path, "vgg11_bn", 32, low_rank={"classifier.0": 16})

    result = export_starter(run, "vgg_demo", compress="svd-int8", svd_ranks={"classifier.0.weight": 16},
                            data=str(root), root=tmp_path / "ckpts", device="cpu")

    shipped = tmp_path / "ckpts" / "starter" / "vgg_demo.safetensors"
    saved = json.loads(shipped.with_suffix(".json").read_text())
    entry = saved["compression"]
    assert saved["dtype"] == "svd-int8" and entry["plan"]["svd_ranks"] == {"classifier.0.weight": 16}
    assert entry["tensors"]["classifier.0.weight"] == {"shape": [4096, 512], "kind": "svd_int8", "rank": 16}
    assert entry["tensors"]["features.4.weight"]["kind"] == "int8"
    assert entry["tensors"]["features.1.weight"]["kind"] == "float16"  # a batch-norm weight
    m = entry["measured"]
    assert m == result["compression"]
    assert m["n"] == saved["metrics"]["val_n"] == 30
    # "after" is what evaluate measures on the shipped file; "before" what it measures on the run's checkpoint
    assert m["top1"] == saved["metrics"]["val_top1"] and m["top5"] == saved["metrics"]["val_top5"]
    before = evaluate_checkpoint(run / "best.safetensors", data=str(root), device="cpu")
    assert m["reference_top1"] == before["top1"] and m["reference_top5"] == before["top5"]
    assert m["top1_change_pp"] == pytest.approx(100 * (m["top1"] - m["reference_top1"]))
    assert 0 < m["logit_rel_error_mean"] <= m["logit_rel_error_max"] < 0.05  # int8 error; the SVD kept fc6 whole
    assert shipped.stat().st_size < m["float16_bytes"] / 2  # fc7 (16.8M weights) is int8 at full rank here
    row = next(ln for ln in starter_table(tmp_path / "ckpts").splitlines() if "`vgg_demo`" in ln)
    assert "svd-int8 (int8 weights, one scale per output channel + truncated SVD of classifier.0 (rank 16))" in row
    assert f"{m['top1_change_pp']:+.2f} pp top-1" in row and f"logits {100 * m['logit_rel_error_mean']:.1f}% off" in row


def test_cli_export_takes_compress_and_svd_rank(tmp_path, capsys):
    from cnnviz.__main__ import main

    run, root = _briefly_trained_run(tmp_path, "alexnet", 23, steps=1)  # fc6 is 4096 x 256 at 23 px
    assert main(["starter", "export", str(run), "--name", "a", "--data", str(root), "--device", "cpu",
                 "--compress", "svd-int8", "--svd-rank", "classifier.fc6.weight=32",
                 "--svd-rank", "classifier.fc8.weight=4"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["compression"]["n"] == 30
    meta = json.loads((starter_dir() / "a.json").read_text())
    assert meta["compression"]["plan"]["svd_ranks"] == {"classifier.fc6.weight": 32, "classifier.fc8.weight": 4}
    assert meta["compression"]["tensors"]["classifier.fc7.weight"]["kind"] == "int8"

    assert main(["starter", "export", str(run), "--name", "b", "--data", str(root), "--device", "cpu",
                 "--compress", "int8"]) == 0
    capsys.readouterr()
    assert json.loads((starter_dir() / "b.json").read_text())["compression"]["plan"]["svd_ranks"] == {}


@pytest.mark.parametrize("args,message", [
    (["--svd-rank", "nonsense"], "argument --svd-rank: expected KEY=RANK, e.g. classifier.fc6.weight=256"),
    (["--svd-rank", "classifier.fc6.weight=many"], "the rank must be a whole number, got 'many'"),
    (["--svd-rank", "classifier.fc6.weight=0"], "the rank must be at least 1"),
    (["--compress", "zip"], "argument --compress: invalid choice: 'zip'"),
])
def test_cli_export_refuses_bad_options_before_reading_anything(tmp_path, capsys, args, message):
    from cnnviz.__main__ import main

    with pytest.raises(SystemExit) as exc:
        main(["starter", "export", str(tmp_path / "no-such-run"), "--name", "x", *args])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("rank_arg,message", [
    ("classifier.fc6.weight=5000", "error: rank 5000 does not fit classifier.fc6.weight (4096 x 256): use 1 to 256"),
    ("features.conv1.weight=8", "error: 'features.conv1.weight' is not the weight of a Linear layer of this model; "
                                "SVD applies to: classifier.fc6.weight, classifier.fc7.weight, classifier.fc8.weight"),
])
def test_cli_export_refuses_a_rank_that_does_not_fit_and_writes_nothing(tmp_path, capsys, rank_arg, message):
    from cnnviz.__main__ import main

    run, root = _briefly_trained_run(tmp_path, "alexnet", 23, steps=0)
    assert main(["starter", "export", str(run), "--name", "x", "--data", str(root), "--device", "cpu",
                 "--svd-rank", rank_arg]) == 2
    assert message in capsys.readouterr().err
    assert not (starter_dir() / "x.safetensors").exists()


def test_model_card_states_the_shipped_starter_and_what_compression_cost(monkeypatch):
    """Issue 10: the card says what was done to a compressed starter and what it cost, measured. The
    Architectures page's card reads it from the shipped file's metadata, not from prose."""
    from cnnviz.models import get_card
    from cnnviz.paths import REPO_ROOT
    from cnnviz.views.architectures import card_markdown

    monkeypatch.setenv("CNNVIZ_CHECKPOINTS", str(REPO_ROOT / "checkpoints"))
    shipped = {r["arch"]: r for r in list_starters(REPO_ROOT / "checkpoints")}
    compressed = [a for a, r in shipped.items() if "pp top-1" in r["stored_as"]]
    assert compressed, "at least one shipped starter is compressed with a measured cost"
    for arch in compressed:
        text = card_markdown(get_card(arch))
        r = shipped[arch]
        assert "**Shipped starter" in text and f"`{r['name']}`: {100 * r['val_top1']:.2f}% top-1" in text
        assert "pp top-1" in text and "measured at export against the checkpoint" in text
    without = next(a for a in ("vgg19", "resnet152", "vgg13") if a not in shipped)
    assert "Shipped starter" not in card_markdown(get_card(without))


@pytest.mark.parametrize("section", ["predict", "upload", "zf", "compress-shipped", "visualize_click"])
def test_benchmark_sections_about_the_shipped_starters_name_exactly_those(section):
    """These sections of docs/benchmarks.md time or tabulate "the shipped starters": when the starters change,
    their numbers are stale until the bench runs again (the zoo replaced four CPU starters on 2026-11-28, and
    three of these sections went on timing the old ones for nine days)."""
    import re

    from cnnviz.paths import REPO_ROOT

    shipped = {p.stem for p in (REPO_ROOT / "checkpoints" / "starter").glob("*.safetensors")}
    doc = (REPO_ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    body = re.search(rf"<!-- bench:{re.escape(section)} -->(.*?)<!-- /bench:{re.escape(section)} -->", doc, re.S)
    assert body, f"docs/benchmarks.md has no section {section}"
    named = set(re.findall(r"(?:starter/|`)([a-z0-9_]+_tinyimagenet)", body.group(1)))
    assert named == shipped, f"rerun the bench that writes '{section}': it names {sorted(named ^ shipped)} wrongly"


def _run_with_snapshots(tmp_path, name: str, root, epochs=(1, 2, 3)):
    """A run folder with ``best`` (the last epoch) and a snapshot per epoch, each a different LeNet-5."""
    val = load_split(root, "val")
    run = tmp_path / name
    for epoch in epochs:
        torch.manual_seed(epoch)
        model = create_model("lenet5", num_classes=len(val.wnids), input_size=64, variant="modern")
        meta = build_meta(model, classes=val.wnids, class_names=val.class_names, mean=val.mean, std=val.std,
                          epoch=epoch, metrics={"val_top1": 0.1 * epoch}, train_config={"data": str(root)})
        save_checkpoint(run / "epochs" / f"epoch_{epoch:03d}", model, meta)
    save_checkpoint(run / "best", model, meta)
    return run


def test_a_starter_ships_some_snapshots_for_across_training_and_drops_another_runs(tmp_path, capsys):
    """A fresh clone had no model to watch across training (ZF Fig. 4): the starters carried no snapshots. One
    may now carry some of its run's, and Visualize lists them followed by the starter itself. A starter
    replaced by another run's export must not keep the old run's snapshots: they would show another network."""
    from cnnviz.__main__ import main
    from cnnviz.starter import ship_snapshots
    from cnnviz.viz import snapshots_of

    root = make_synthetic(tmp_path / "syn", num_classes=4, train_per_class=8, val_per_class=6, seed=1)
    run = _run_with_snapshots(tmp_path, "run-a", root)
    ckpts = tmp_path / "ckpts"
    export_starter(run, "lenet5_demo", data=str(root), root=ckpts, device="cpu")
    with pytest.raises(ValueError, match=r"kept no snapshot of epoch 7; it has 1, 2, 3"):
        ship_snapshots(run, "lenet5_demo", [1, 7], root=ckpts)
    with pytest.raises(FileNotFoundError, match="export it first"):
        ship_snapshots(run, "other", [1], root=ckpts)
    written = ship_snapshots(run, "lenet5_demo", [2, 1], root=ckpts)
    folder = ckpts / "starter" / "lenet5_demo.epochs"
    assert [p.name for p in written] == ["epoch_001.safetensors", "epoch_002.safetensors"]
    assert all(p.parent == folder for p in written)
    # stored as the starter is (float16 here), and the weights are that epoch's
    first = load_checkpoint(folder / "epoch_001.safetensors")
    original = load_checkpoint(run / "epochs" / "epoch_001.safetensors")
    assert first.meta.dtype == "float16" and first.meta.epoch == 1
    for a, b in zip(original.model.state_dict().values(), first.model.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-2, rtol=1e-2)
    # listed (and counted in the size budget), said in the README table, and shown with the starter last
    row, = list_starters(ckpts)
    assert row["snapshot_epochs"] == [1, 2] and row["snapshot_bytes"] == sum(p.stat().st_size for p in written)
    assert "epochs 1, 2 for Visualize's *Across training*" in starter_table(ckpts)
    shipped = ckpts / "starter" / "lenet5_demo.safetensors"
    snaps = snapshots_of(shipped, "starter", 3)
    assert [s.epoch for s in snaps] == [1, 2, 3] and snaps[-1].path == shipped
    assert snapshots_of(shipped, "file", 3) == []
    # re-exported from the same run (compressed harder): the snapshots stay
    export_starter(shipped, "lenet5_demo", compress="int8", data=str(root), root=ckpts, device="cpu")
    assert [s.epoch for s in snapshots_of(shipped, "starter", 3)] == [1, 2, 3]
    # replaced by another run's export: they go
    other = _run_with_snapshots(tmp_path, "run-b", root, epochs=(1,))
    export_starter(other, "lenet5_demo", data=str(root), root=ckpts, device="cpu")
    assert not folder.exists() and snapshots_of(shipped, "starter", 1) == []
    # the command line refuses a bad list before reading anything
    with pytest.raises(SystemExit):
        main(["starter", "snapshots", str(run), "--name", "lenet5_demo", "--epochs", "one,two"])
    assert "is not a list of epochs such as 1,2,5" in capsys.readouterr().err


def test_a_zoo_import_that_replaces_a_starter_drops_its_shipped_snapshots(tmp_path):
    """`zoo import` (after a GPU session) writes a new run's starter over the shipped one: the old run's
    snapshots beside it must go with it."""
    from cnnviz.starter import ship_snapshots
    from cnnviz.zoo.results import import_zoo

    root = make_synthetic(tmp_path / "syn", num_classes=4, train_per_class=8, val_per_class=6, seed=1)
    ckpts, fetched = tmp_path / "ckpts", tmp_path / "fetched"
    export_starter(_run_with_snapshots(tmp_path, "run-a", root), "lenet5_demo", data=str(root), root=ckpts,
                   device="cpu")
    ship_snapshots(tmp_path / "run-a", "lenet5_demo", [1], root=ckpts)
    export_starter(_run_with_snapshots(tmp_path, "run-b", root, epochs=(1,)), "lenet5_demo", data=str(root),
                   root=fetched, device="cpu")
    import_zoo(fetched / "starter", results_root=tmp_path / "results", starter_root=ckpts / "starter",
               allow_synthetic=True)  # a synthetic starter is refused without it
    assert not (ckpts / "starter" / "lenet5_demo.epochs").exists()
    assert load_checkpoint(ckpts / "starter" / "lenet5_demo.safetensors").meta.extra["starter"]["source"] == \
        "run-b/best.safetensors"
