"""``python -m cnnviz data ...``: synthetic, prepare, info, and the clear one-line errors."""

from __future__ import annotations

import io
import json

from cnnviz.__main__ import main
from cnnviz.cli.data import ProgressBar
from cnnviz.paths import data_dir
from tests.data_helpers import mini_tree, zip_tree


def test_data_synthetic_then_info(tmp_path, capsys):
    root = tmp_path / "syn"
    assert main(["data", "synthetic", "--root", str(root), "--classes", "3", "--train-per-class", "4",
                 "--val-per-class", "2"]) == 0
    assert capsys.readouterr().out.strip() == str(root)
    assert main(["data", "info", "--root", str(root), "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["synthetic"] and info["classes"] == 3
    assert info["splits"]["train"]["fresh"] and info["splits"]["train"]["count"] == 12
    assert info["splits"]["val"]["count"] == 6
    assert main(["data", "info", "--root", str(root)]) == 0
    text = capsys.readouterr().out
    assert "synthetic dataset at" in text and "train: 12 images cached" in text


def test_data_prepare_from_a_zip_with_progress(tmp_path, capsys):
    zip_path = zip_tree(mini_tree(tmp_path / "tree"), tmp_path / "t.zip")
    assert main(["data", "prepare", "--source", str(zip_path), "--root", str(tmp_path / "data")]) == 0
    out, err = capsys.readouterr()
    assert "train: 12 images, 3 classes" in out and "val: 7 images" in out
    assert "decode train" in err and "100%" in err  # the progress bar
    # prepared outside the data folder the pages read: the output says how to use it there
    assert f"CNNVIZ_DATA={tmp_path / 'data'} make run" in out and f"--data {tmp_path / 'data'}" in out
    assert main(["data", "prepare", "--source", str(zip_path), "--root", str(data_dir()), "--quiet"]) == 0
    assert "CNNVIZ_DATA" not in capsys.readouterr().out  # prepared where the pages look: nothing to add
    assert main(["data", "info", "--root", str(tmp_path / "data")]) == 0
    assert "images from: zip" in capsys.readouterr().out


def test_data_errors_are_one_line(tmp_path, capsys):
    assert main(["data", "prepare", "--source", str(tmp_path / "missing.zip"), "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "does not exist" in err and "Traceback" not in err
    assert main(["data", "info", "--root", str(tmp_path / "empty")]) == 1
    assert "data prepare --source" in capsys.readouterr().out


def test_progress_bar_renders_bytes_and_counts():
    buf = io.StringIO()
    bar = ProgressBar(buf, width=10)
    bar("download", 0, 2_000_000)
    bar("download", 2_000_000, 2_000_000)
    bar("decode val", 10, 10)
    text = buf.getvalue()
    assert "[##########] 100% 2.0 MB/2.0 MB" in text and "decode val" in text and text.endswith("\n")
