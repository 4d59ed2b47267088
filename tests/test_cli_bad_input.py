"""Bad values on the command line: one clear ``error:`` line (exit 2) that names the option, before any work,
and nothing lost. A review found zeros read as "not given", negative numbers used as slices, folders where
files go ending in tracebacks, and messages that named the wrong command."""

from __future__ import annotations

import json

import pytest

from cnnviz.__main__ import main
from cnnviz.paths import checkpoints_dir


def _argparse_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("argv, words", [
    (["runs", "show", "r", "--log", "-2"], "--log: must be at least 0"),
    (["runs", "stop", "r", "--wait", "-1"], "--wait: must be at least 0.0"),
    (["runs", "resume", "r", "--epochs", "0"], "--epochs: must be at least 1"),
    (["evaluate", "--checkpoint", "x", "--batch-size", "0"], "--batch-size: must be at least 1"),
    (["predict", "-c", "x", "a.png", "--top", "0"], "--top: must be at least 1"),
    (["data", "prepare", "--source", "download", "--workers", "0"], "--workers: must be at least 1"),
    (["data", "synthetic", "--root", "x", "--classes", "0"], "--classes: must be at least 1"),
    (["imagenet", "fetch", "vgg16", "--timeout", "-1"], "--timeout: must be more than 0"),
])
def test_out_of_range_numbers_are_argparse_errors(argv, words, capsys):
    assert words in _argparse_error(argv, capsys)


def test_an_unknown_device_is_named_in_our_words(capsys, tmp_path):
    assert main(["predict", "-c", "nothing", str(tmp_path / "a.png"), "--device", "bogus"]) == 2
    err = capsys.readouterr().err
    assert "unknown device 'bogus'" in err and "cuda:N" in err and "mkldnn" not in err


def test_a_folder_or_a_non_checkpoint_file_as_a_checkpoint(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "best.safetensors").write_bytes(b"x")
    assert main(["evaluate", "--checkpoint", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "is a folder" in err and "best.safetensors" in err  # it was "run.json is missing"
    (tmp_path / "photo.png").write_bytes(b"x")
    assert main(["evaluate", "--checkpoint", str(tmp_path / "photo.png")]) == 2
    assert "is not a checkpoint: give a .safetensors file" in capsys.readouterr().err


def test_an_os_error_is_one_line_naming_the_path(tmp_path, capsys):
    """A file where a folder must be (the data root): the system's reason and the path, no traceback."""
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    assert main(["data", "synthetic", "--root", str(blocker / "syn"), "--classes", "2", "--train-per-class", "1",
                 "--val-per-class", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "notes.txt" in err and "Traceback" not in err and err.count("\n") == 1
    assert blocker.read_text() == "mine"


def test_empty_splits_are_refused(capsys):
    assert main(["data", "prepare", "--source", "download", "--splits", " , "]) == 2
    assert "--splits names no split" in capsys.readouterr().err


def test_a_synthetic_set_written_again_is_replaced_whole(tmp_path, capsys):
    """A smaller set over a larger one kept the larger one's classes and images (train: 8 images cached for a
    2 x 2 set)."""
    root = tmp_path / "syn"
    assert main(["data", "synthetic", "--root", str(root), "--classes", "3", "--train-per-class", "4",
                 "--val-per-class", "2"]) == 0
    assert main(["data", "synthetic", "--root", str(root), "--classes", "2", "--train-per-class", "2",
                 "--val-per-class", "1"]) == 0
    capsys.readouterr()
    assert main(["data", "info", "--root", str(root), "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["classes"] == 2 and info["splits"]["train"]["count"] == 4 and info["splits"]["val"]["count"] == 2
    assert len(list((root / "train").iterdir())) == 2


def _finished_run(tmp_path, capsys) -> str:
    syn = tmp_path / "syn"
    assert main(["data", "synthetic", "--root", str(syn), "--classes", "2", "--train-per-class", "4",
                 "--val-per-class", "2"]) == 0
    assert main(["train", "--arch", "lenet5", "--data", str(syn), "--epochs", "1", "--batch-size", "4",
                 "--max-steps-per-epoch", "1", "--device", "cpu", "--name", "tiny"]) == 0
    return capsys.readouterr().out.splitlines()[-1].strip()


def test_resume_checks_epochs_and_config_and_says_what_it_ignores(tmp_path, capsys):
    run_dir = _finished_run(tmp_path, capsys)
    run = run_dir.rsplit("/", 1)[-1]
    assert main(["train", "--resume", run, "--epochs", "0"]) == 2  # 0 was "not given": it finished, exit 0
    assert "epochs" in capsys.readouterr().err
    config = checkpoints_dir() / run / "config.json"
    kept = config.read_text()
    config.write_text("[1]")
    assert main(["train", "--resume", run, "--epochs", "2"]) == 2  # was a TypeError traceback
    assert "does not hold a training configuration" in capsys.readouterr().err
    config.write_text(kept)
    assert main(["train", "--resume", run, "--epochs", "2", "--lr", "5"]) == 0
    assert "ignored --lr" in capsys.readouterr().err


def test_a_negative_seed_is_refused_before_a_run_exists(tmp_path, capsys):
    before = set(checkpoints_dir().glob("*")) if checkpoints_dir().exists() else set()
    assert main(["train", "--arch", "lenet5", "--data", "synthetic", "--seed", "-1"]) == 2
    assert "seed must be an integer from 0 to 2**32-1" in capsys.readouterr().err
    after = set(checkpoints_dir().glob("*")) if checkpoints_dir().exists() else set()
    assert after == before


def test_a_misspelt_option_gets_its_own_commands_usage(capsys):
    err = _argparse_error(["list", "--fromat", "json"], capsys)
    assert "usage: python -m cnnviz list " in err and "unrecognized arguments: --fromat json" in err
    err = _argparse_error(["runs", "list", "--fast"], capsys)
    assert "usage: python -m cnnviz runs list " in err


def test_compare_evaluates_a_synthetic_run_on_its_own_dataset(tmp_path, capsys):
    """compare --evaluate looked only for Tiny ImageNet, so a run trained on the synthetic set could not be
    evaluated; it now follows the page's plan (each model on the val split of the dataset it was trained on)."""
    run = _finished_run(tmp_path, capsys).rsplit("/", 1)[-1]
    assert main(["compare", run, "--evaluate", "1", "--format", "csv"]) == 0
    err = capsys.readouterr().err
    assert f"{run}: top-1 " in err and "on 2 val images" in err  # 2 classes x 1 image each


def test_a_resumed_zoo_names_the_options_it_ignores(capsys):
    """A zoo resumes with its own recipe (zoo.json): --families/--epochs given beside --resume were dropped
    silently. The note comes before the zoo is looked up, so a missing zoo shows it too."""
    assert main(["zoo", "train", "--resume", "no-such-zoo", "--families", "nin", "--epochs", "5"]) == 2
    err = capsys.readouterr().err
    assert "ignored --families, --epochs" in err and "'no-such-zoo' is not a zoo id" in err
