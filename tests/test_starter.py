"""Starter export: a run's best checkpoint becomes a float16 starter whose recorded accuracy is measured."""

from __future__ import annotations

import json

import torch

from cnnviz.checkpoint import build_meta, load_checkpoint, save_checkpoint
from cnnviz.data import load_split, make_synthetic
from cnnviz.models import create_model
from cnnviz.starter import export_starter, list_starters, starter_table
from cnnviz.train import evaluate_checkpoint


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


def test_export_refuses_a_name_that_is_a_path(tmp_path):
    import pytest

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
    starters together stay within the 40 MB budget."""
    from cnnviz.paths import REPO_ROOT
    from cnnviz.starter import SIZE_BUDGET_BYTES

    rows = list_starters(REPO_ROOT / "checkpoints")
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    for r in rows:
        line = next((ln for ln in readme.splitlines() if f"`{r['name']}`" in ln and ln.startswith("|")), None)
        assert line is not None, f"README has no table row for starter {r['name']}"
        assert f"{100 * r['val_top1']:.2f}%" in line and f"{100 * r['val_top5']:.2f}%" in line, line
        assert r["val_n"] == 10_000, f"{r['name']} was not measured on the whole val split"
    assert sum(r["bytes"] for r in rows) <= SIZE_BUDGET_BYTES
