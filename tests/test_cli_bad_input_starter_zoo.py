"""Bad input to ``starter`` and ``zoo`` gets one clear line and loses nothing: a failed export leaves no
starter behind and keeps the one it would have replaced, a shipped starter is not overwritten by accident, a
synthetic zoo does not replace the Tiny ImageNet results, and no report is written from a bad bench file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cnnviz.__main__ import main
from cnnviz.data import make_synthetic
from cnnviz.paths import REPO_ROOT, checkpoints_dir
from cnnviz.starter import starter_dir
from cnnviz.zoo.results import TINY_IMAGENET, dataset_of
from tests.test_starter import _run_with_snapshots


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def export(capsys, run_id: str, root: Path, name: str, *extra: str) -> tuple[int, str, str]:
    return run(capsys, "starter", "export", run_id, "--name", name, "--data", str(root), "--device", "cpu",
               *extra)


@pytest.fixture
def synthetic_run(tmp_path):
    """``(run id, data root)``: a LeNet-5 run in the checkpoints folder with snapshots of epochs 1-3."""
    root = make_synthetic(tmp_path / "syn", num_classes=4, train_per_class=8, val_per_class=6, seed=1)
    _run_with_snapshots(checkpoints_dir(), "run-a", root)
    return "run-a", root


def _starter_files() -> list[str]:
    """Everything in the starter folder, hidden entries included (an export's staging folder would show)."""
    folder = starter_dir()
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


# ------------------------------------------------------------------------------------------ starter export
@pytest.mark.parametrize("bad,message", [
    (["--device", "bogus"], "error: unknown device 'bogus'"),
    (["--data", "/nonexistent"], "error: the dataset path /nonexistent does not exist"),
])
def test_a_refused_export_writes_no_starter(synthetic_run, capsys, bad, message):
    run_id, root = synthetic_run
    argv = ["starter", "export", run_id, "--name", "x5", "--compress", "int8"]
    code, out, err = run(capsys, *argv, *([] if "--data" in bad else ["--data", str(root)]), *bad)
    assert code == 2 and out == "" and message in err and "Traceback" not in err
    assert _starter_files() == []
    code, out, _ = run(capsys, "starter", "list", "--format", "json")
    assert code == 0 and json.loads(out) == []


def test_an_export_that_fails_after_writing_leaves_nothing_and_keeps_the_starter_it_would_replace(
        synthetic_run, capsys, monkeypatch):
    import cnnviz.starter as starter_mod

    run_id, root = synthetic_run
    assert export(capsys, run_id, root, "keep")[0] == 0
    before = {name: (starter_dir() / name).read_bytes() for name in _starter_files()}

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(starter_mod, "evaluate_checkpoint", out_of_memory)
    for name in ("keep", "fresh"):
        code, _, err = export(capsys, run_id, root, name, "--compress", "int8", "--force")
        assert code == 2 and "error: CUDA out of memory" in err
        assert {n: (starter_dir() / n).read_bytes() for n in _starter_files()} == before  # none new or lost


def test_export_refuses_an_existing_name_without_force(synthetic_run, capsys):
    run_id, root = synthetic_run
    assert export(capsys, run_id, root, "lenet5_syn")[0] == 0
    first = (starter_dir() / "lenet5_syn.json").read_bytes()
    code, out, err = export(capsys, run_id, root, "lenet5_syn", "--compress", "int8")
    assert code == 2 and out == ""
    assert f"error: a starter called 'lenet5_syn' already exists in {starter_dir()}: give another --name, " \
           "or --force to replace it" in err
    assert (starter_dir() / "lenet5_syn.json").read_bytes() == first
    code, out, _ = export(capsys, run_id, root, "lenet5_syn", "--compress", "int8", "--force")
    assert code == 0 and json.loads(out)["checkpoint"] == str(starter_dir() / "lenet5_syn.safetensors")
    assert json.loads((starter_dir() / "lenet5_syn.json").read_text())["dtype"] == "int8"


def test_the_library_export_still_replaces_for_the_zoo(synthetic_run):
    """The zoo exports through export_starter (a resumed zoo may export a member again): no --force there."""
    from cnnviz.starter import export_starter

    run_id, root = synthetic_run
    for compress in ("none", "int8"):
        export_starter(checkpoints_dir() / run_id, "again", compress=compress, data=str(root), device="cpu")
    assert json.loads((starter_dir() / "again.json").read_text())["dtype"] == "int8"
    assert _starter_files() == ["again.json", "again.safetensors"]


def test_export_takes_a_run_id_and_names_one_that_does_not_exist(synthetic_run, capsys):
    run_id, root = synthetic_run
    code, out, _ = export(capsys, run_id, root, "by_id")
    assert code == 0 and json.loads(out)["n"] == 24
    code, _, err = run(capsys, "starter", "export", "run-nope", "--name", "y")
    assert code == 2 and f"error: no run or checkpoint 'run-nope': give a run folder, the id of a run in " \
                          f"{checkpoints_dir()}, or a checkpoint file" in err


# --------------------------------------------------------------------------------------- starter snapshots
def test_snapshots_of_a_run_that_does_not_exist_say_so(synthetic_run, capsys):
    code, _, err = run(capsys, "starter", "snapshots", "nope", "--name", "s", "--epochs", "1")
    assert code == 2 and "error: no run 'nope': give the folder (or the id, in" in err
    assert "kept no snapshot" not in err


def test_snapshots_do_not_offer_svd_int8(synthetic_run, capsys):
    from cnnviz.starter import ship_snapshots

    with pytest.raises(SystemExit) as exc:
        main(["starter", "snapshots", "run-a", "--name", "s", "--epochs", "1", "--compress", "svd-int8"])
    assert exc.value.code == 2
    assert "argument --compress: invalid choice: 'svd-int8'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="snapshots are stored as auto, none or int8, not 'svd-int8'"):
        ship_snapshots("run-a", "s", [1], compress="svd-int8")


def test_snapshots_must_come_from_the_run_the_starter_was_exported_from(synthetic_run, capsys):
    run_id, root = synthetic_run
    _run_with_snapshots(checkpoints_dir(), "run-b", root, epochs=(1, 2))
    assert export(capsys, run_id, root, "s")[0] == 0
    code, _, err = run(capsys, "starter", "snapshots", "run-b", "--name", "s", "--epochs", "1")
    assert code == 2 and "error: starter 's' was exported from run run-a, not run-b" in err
    assert not (starter_dir() / "s.epochs").exists()
    code, _, err = run(capsys, "starter", "snapshots", run_id, "--name", "s", "--epochs", "1,7,9")
    assert code == 2 and "kept no snapshot of epochs 7, 9; it has 1, 2, 3" in err
    code, out, _ = run(capsys, "starter", "snapshots", run_id, "--name", "s", "--epochs", "1")
    assert code == 0 and out.strip() == str(starter_dir() / "s.epochs" / "epoch_001.safetensors")
    code, out, _ = run(capsys, "starter", "list")
    assert "(+ " in out and "MiB: epoch 1 for Visualize's" in out  # one epoch: "epoch", not "epochs"


# --------------------------------------------------------------------------------------------- zoo train
@pytest.mark.parametrize("families", ["", " , "])
def test_zoo_train_refuses_an_empty_family_list(capsys, families):
    code, _, err = run(capsys, "zoo", "train", "--families", families, "--data", "synthetic")
    assert code == 2 and f"error: --families {families!r}: no family given" in err
    assert not (checkpoints_dir() / "zoo").exists()


def test_zoo_train_names_the_budget_the_user_gave(capsys, monkeypatch):
    from cnnviz.zoo import driver

    monkeypatch.setattr(driver, "calibrate", lambda members, recipe, progress=None: {
        m.family: {"images_per_s": 100.0, "warmup_s": 1.0, "epoch_s": 30.0} for m in members})
    code, _, err = run(capsys, "zoo", "train", "--families", "lenet5", "--budget-s", "1", "--device", "cpu")
    assert code == 2
    assert "error: --budget-s 1 is too small to finish one epoch of every family: " in err
    assert "one epoch of lenet5 takes about 50 s on this device (lenet5 30 s, plus 20 s to start" in err
    assert re.search(r"give at least 5[01] s$", err.strip())  # 50 s, and what the measuring took
    assert "-0 s" not in err and "fewer families" not in err
    assert "measuring the training rate of 1 member..." in err
    assert not (checkpoints_dir() / "zoo").exists()


@pytest.mark.parametrize("argv,message", [
    (["--concurrency", "0"], "argument --concurrency: must be at least 1, not 0"),
    (["--budget-s", "0"], "argument --budget-s: must be more than 0, not 0"),
    (["--epochs", "0"], "argument --epochs: must be at least 1, not 0"),
])
def test_zoo_train_refuses_numbers_out_of_range_before_measuring(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(["zoo", "train", "--families", "lenet5", *argv])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_zoo_members_line_up(capsys):
    code, out, _ = run(capsys, "zoo", "members")
    member_lines = [ln for ln in out.splitlines() if not ln.startswith(" ")]
    assert any("aux_logits=True, stem=small" in ln for ln in member_lines)
    assert len({ln.index(" lr ") for ln in member_lines}) == 1, out


# -------------------------------------------------------------------------------------------- zoo report
def test_zoo_report_names_a_bad_bench_file_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "docs" / "zoo.md"
    bad = {"array.json": ("[1, 2]", "holds a JSON list: expected the JSON object `bench/bench_zoo.py device "
                                    "--out` writes"),
           "torn.json": ('{"bf16_matmul_flops": ', "is not valid JSON ("),
           "tricks.json": ('{"tricks": [{"family": "lenet5"}]}', "its tricks are not a list of")}
    for name, (text, message) in bad.items():
        (tmp_path / name).write_text(text)
        code, _, err = run(capsys, "zoo", "report", "--results", str(tmp_path), "--out", str(out), "--bench",
                           str(tmp_path / name))
        assert code == 2 and f"error: the bench file {str(tmp_path / name)!r}" in err and message in err, err
        assert "Traceback" not in err
    assert not out.parent.exists()


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_zoo_report_refuses_a_results_folder_that_is_not_one(tmp_path, capsys, kind):
    results = tmp_path / "results"
    if kind == "file":
        results.write_text("{}")
    code, _, err = run(capsys, "zoo", "report", "--results", str(results), "--out", str(tmp_path / "zoo.md"))
    what = "does not exist" if kind == "missing" else "is not a folder"
    assert code == 2 and f"error: --results {str(results)!r} {what}" in err
    assert not (tmp_path / "zoo.md").exists()


def test_zoo_report_writes_the_repositorys_page_by_default_and_says_so(capsys):
    from cnnviz.__main__ import build_parser

    args = build_parser().parse_args(["zoo", "report"])
    assert Path(args.out) == REPO_ROOT / "docs" / "zoo.md"  # not docs/zoo.md under wherever it runs
    with pytest.raises(SystemExit):
        main(["zoo", "report", "--help"])
    assert "default:" in capsys.readouterr().out


# -------------------------------------------------------------------------------------------- zoo import
def _result(family: str, wnids: list[str], data: str) -> dict:
    n = len(wnids)
    return {"format": "cnnviz-zoo-result/1", "family": family, "arch": "lenet5",
            "model_args": {"variant": "modern", "num_classes": n, "input_size": 64},
            "config": {"data": data, "epochs": 1, "batch_size": 16}, "device": "cpu", "device_name": "a CPU",
            "epochs": 1, "best_epoch": 1, "val_top1": 0.5, "val_top5": 1.0, "val_n": 10 * n,
            "train_time_s": 2.0, "wall_time_s": 3.0, "images_per_s": 100.0, "peak_mem_bytes": 0,
            "history": [{"epoch": 1, "val_top1": 0.5}], "wnids": wnids, "class_names": wnids,
            "confusion": [[10 if i == j else 0 for j in range(n)] for i in range(n)]}


def test_zoo_import_refuses_a_synthetic_zoo_unless_allowed_and_the_report_marks_it(tmp_path, capsys):
    from cnnviz.imagenet.tiny_classes import TINY_TO_IMAGENET

    tiny = sorted(TINY_TO_IMAGENET)
    fetched = tmp_path / "fetched"
    fetched.mkdir()
    (fetched / "alexnet.json").write_text(json.dumps(_result("alexnet", tiny, "auto")))  # a LeNet-5: cheap
    (fetched / "lenet5.json").write_text(json.dumps(_result("lenet5", ["s0000001", "s0000002"], "synthetic")))
    results = checkpoints_dir() / "results"
    code, _, err = run(capsys, "zoo", "import", str(fetched))
    assert code == 2 and "error: not trained on Tiny ImageNet: lenet5.json (synthetic data, 2 classes)" in err
    assert "nothing was imported" in err and "--allow-synthetic" in err and "alexnet.json" not in err
    assert not results.exists()

    code, out, _ = run(capsys, "zoo", "import", str(fetched), "--allow-synthetic")
    assert code == 0 and json.loads(out)["results"] == ["alexnet", "lenet5"]
    page = tmp_path / "docs" / "zoo.md"
    assert run(capsys, "zoo", "report", "--out", str(page))[0] == 0
    text = page.read_text()
    assert text.startswith("# The zoo: every family under one recipe\n")  # not "on Tiny ImageNet"
    lenet = next(ln for ln in text.splitlines() if ln.startswith("| lenet5 (lenet5) |"))
    assert "| 50.00% (synthetic data, 2 classes) |" in lenet and "- (not Tiny ImageNet)" in lenet
    alex = next(ln for ln in text.splitlines() if ln.startswith("| alexnet (lenet5) |"))
    assert "| 50.00% |" in alex and "41.8% [1]" in alex  # a Tiny ImageNet row: unmarked, beside the paper's
    assert "**Not Tiny ImageNet:** lenet5 (synthetic data, 2 classes; 20 val images)" in text
    assert "measured on all 2,000 val images" in text  # the Tiny ImageNet rows' count only


def test_zoo_import_refuses_a_synthetic_starter(synthetic_run, capsys):
    """A synthetic lenet5_tinyimagenet would replace the shipped one."""
    run_id, root = synthetic_run
    assert export(capsys, run_id, root, "lenet5_tinyimagenet")[0] == 0
    fetched = checkpoints_dir().parent / "fetched"
    fetched.mkdir()
    for f in starter_dir().glob("lenet5_tinyimagenet.*"):
        f.rename(fetched / f.name)
    code, _, err = run(capsys, "zoo", "import", str(fetched))
    assert code == 2 and "lenet5_tinyimagenet.safetensors (synthetic data, 4 classes)" in err
    assert _starter_files() == []


def test_dataset_of_decides_by_the_classes():
    from cnnviz.imagenet.tiny_classes import TINY_TO_IMAGENET

    assert dataset_of(list(reversed(list(TINY_TO_IMAGENET))), "/any/folder") == TINY_IMAGENET
    assert dataset_of(["s0000001", "s0000002"], "/tmp/syn") == "synthetic data, 2 classes"
    assert dataset_of(["a", "b", "c"], "auto") == "not Tiny ImageNet, 3 classes"
    assert dataset_of([], None) == "not Tiny ImageNet, no classes recorded"
