"""``python -m cnnviz predict``: the JSON schema, text output, bad images and bad checkpoints."""

from __future__ import annotations

import json
import os

import pytest

from cnnviz.__main__ import main
from cnnviz.checkpoint import load_checkpoint
from cnnviz.images import open_image
from cnnviz.paths import checkpoints_dir
from cnnviz.predict import topk
from tests.predict_helpers import image_bytes, make_checkpoint


@pytest.fixture
def setup(tmp_path):
    ck = make_checkpoint(checkpoints_dir() / "starter" / "tiny", num_classes=8)
    a, b = tmp_path / "a.png", tmp_path / "b.jpg"
    a.write_bytes(image_bytes("PNG", (64, 64), seed=1))
    b.write_bytes(image_bytes("JPEG", (100, 80), seed=2))
    return ck, a, b


def test_json_schema_and_values(setup, capsys):
    ck, a, b = setup
    assert main(["predict", "--checkpoint", str(ck), str(a), str(b), "--top", "3", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert isinstance(out, list) and len(out) == 2
    c = load_checkpoint(ck)
    for rec, path in zip(out, (a, b), strict=True):
        assert set(rec) == {"image", "checkpoint", "predictions", "ms"}
        assert rec["image"] == str(path) and rec["checkpoint"] == "starter/tiny"
        assert isinstance(rec["ms"], float) and rec["ms"] > 0
        assert len(rec["predictions"]) == 3
        for p in rec["predictions"]:
            assert set(p) == {"wnid", "name", "prob"} and 0.0 <= p["prob"] <= 1.0
        expected = topk(c.model, open_image(path), c.meta, 3)
        assert [p["wnid"] for p in rec["predictions"]] == [p.wnid for p in expected.predictions]
        assert [p["prob"] for p in rec["predictions"]] == pytest.approx([p.prob for p in expected.predictions],
                                                                        abs=1e-5)


def test_catalog_name_and_two_checkpoints(setup, capsys):
    ck, a, _ = setup
    make_checkpoint(checkpoints_dir() / "run-1" / "best", num_classes=8, seed=5)
    assert main(["predict", "-c", "starter/tiny", "-c", "run-1/best", str(a), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["checkpoint"] for r in out] == ["starter/tiny", "run-1/best"]
    assert all(len(r["predictions"]) == 5 for r in out)


def test_text_output(setup, capsys):
    ck, a, _ = setup
    assert main(["predict", "--checkpoint", str(ck), str(a)]) == 0
    out = capsys.readouterr().out
    assert "starter/tiny" in out and " ms" in out
    assert out.count("%") == 5


def test_bad_image_is_reported_and_others_still_predicted(setup, tmp_path, capsys):
    ck, a, _ = setup
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x00" * 100)
    rc = main(["predict", "--checkpoint", str(ck), str(bad), str(a), "--format", "json"])
    assert rc == 1
    out = json.loads(capsys.readouterr().out)
    assert out[0] == {"image": str(bad), "error": "not a supported image: use JPEG, PNG, WebP, BMP or GIF"}
    assert len(out[1]["predictions"]) == 5


def test_missing_image_file_is_reported(setup, tmp_path, capsys):
    ck, _, _ = setup
    assert main(["predict", "--checkpoint", str(ck), str(tmp_path / "nope.png")]) == 1
    assert "nope.png: error:" in capsys.readouterr().err


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, setup, capsys):
    _, a, _ = setup
    bad = make_checkpoint(tmp_path / "bad")
    bad.write_bytes(bad.read_bytes()[:100])
    assert main(["predict", "--checkpoint", str(bad), str(a)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "truncated or corrupt" in err and "Traceback" not in err


def test_unknown_checkpoint_name(setup, capsys):
    _, a, _ = setup
    assert main(["predict", "--checkpoint", "starter/nothing", str(a)]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint 'starter/nothing'" in err and "did you mean" not in err
    assert "`python -m cnnviz starter list`" in err  # where the names are listed


@pytest.mark.parametrize("typed", ["starter/ti", "starter/tinny", "tiny"])
def test_a_short_or_misspelt_name_is_offered_the_listed_one(setup, capsys, typed):
    """The README's starters are starter/<family>_tinyimagenet; typing starter/resnet18 (or a typo) must say
    which name was meant, for predict, evaluate and viz alike (one resolver)."""
    _, a, _ = setup
    assert main(["predict", "-c", typed, str(a)]) == 2
    assert "did you mean 'starter/tiny'?" in capsys.readouterr().err
    assert main(["viz", "filters", "--checkpoint", typed, "--out", str(a.with_suffix(".out.png"))]) == 2
    assert "did you mean 'starter/tiny'?" in capsys.readouterr().err


def test_filename_with_control_characters_is_escaped(setup, tmp_path, capsys):
    ck, _, _ = setup
    odd = tmp_path / "we\x1bird\nname.png"
    odd.write_bytes(image_bytes("PNG"))
    assert main(["predict", "--checkpoint", str(ck), os.fspath(odd), "--format", "json"]) == 0
    rec = json.loads(capsys.readouterr().out)[0]
    assert "\x1b" not in rec["image"] and "\\x1b" in rec["image"] and "\\n" in rec["image"]
