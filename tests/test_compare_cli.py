"""``python -m cnnviz compare``: the same numbers as the Compare page, as text/JSON/CSV, plus the export zip."""

from __future__ import annotations

import json
import zipfile

import pytest

from cnnviz.__main__ import main
from cnnviz.paths import checkpoints_dir
from tests.predict_helpers import default_arch, write_run
from tests.test_compare import _metrics


@pytest.fixture
def runs():
    root = checkpoints_dir()
    cfg = {"arch": default_arch(), "num_classes": 10, "input_size": 64}
    write_run(root / "run-a", config={**cfg, "lr": 0.1}, metrics=_metrics(3, [0.1, 0.3, 0.25]), seed=1)
    write_run(root / "run-b", config={**cfg, "lr": 0.01}, metrics=_metrics(2, [0.2, 0.22]), seed=2)
    return root


def test_json_table_equals_run_files(runs, capsys):
    assert main(["compare", "run-a", "run-b", "--format", "json"]) == 0
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    for run in ("run-a", "run-b"):
        lines = [json.loads(x) for x in (runs / run / "metrics.jsonl").read_text().splitlines()]
        assert rows[run]["best_val_top1"] == max(m["val_top1"] for m in lines)
        assert rows[run]["epochs"] == len(lines)
    assert rows["run-a"]["hp: lr"] == 0.1 and rows["run-b"]["hp: lr"] == 0.01


def test_curves_csv(runs, capsys):
    assert main(["compare", "run-a", "--curves", "--format", "csv"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "model,epoch,elapsed_s,metric,value"
    assert "run-a,2,21.0,val_top1,0.3" in out


def test_export_and_unknown_id(runs, tmp_path, capsys):
    dest = tmp_path / "bundle.zip"
    assert main(["compare", "--export", str(dest)]) == 0
    names = zipfile.ZipFile(dest).namelist()
    assert "tables/runs.csv" in names and "configs/run-a.json" in names
    assert main(["compare", "run-x"]) == 2
    assert "unknown model(s) run-x" in capsys.readouterr().err


def test_text_table_is_readable(runs, capsys):
    """The terminal table writes accuracies and counts as docs/zoo.md does (it was pandas' raw dump: 0.3,
    5351025664.0, NaN and every hyper-parameter column)."""
    assert main(["compare", "run-a", "run-b"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split()[:4] == ["model", "dataset", "epochs", "top-1"] and "hp:" not in header
    row_a = next(r for r in rows if r.startswith("run-a"))
    assert "30.00%" in row_a and "NaN" not in row_a and "nan" not in row_a


def test_bad_values_are_refused_before_work(runs, tmp_path, capsys):
    assert main(["compare", "--export", str(tmp_path)]) == 2  # a folder: refused before the bundle is built
    err = capsys.readouterr().err
    assert err.startswith("error: --export") and "is a folder" in err
    with pytest.raises(SystemExit) as e:  # 0 images per class was read as "not given"
        main(["compare", "--evaluate", "0"])
    assert e.value.code == 2 and "--evaluate: must be at least 1" in capsys.readouterr().err
