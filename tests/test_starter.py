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
