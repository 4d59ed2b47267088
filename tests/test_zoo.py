"""The zoo end to end on the synthetic set, on the CPU, through the same code path as on a GPU: the CLI starts
ordinary detached workers K at a time, a killed driver and worker resume without retraining, each member
leaves a result file, and import and report turn them into checkpoints/results and docs/zoo.md. Bad input
(an unknown family, a budget too small for one epoch, damaged result files) gets one clear message."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cnnviz.device import device_name
from cnnviz.paths import checkpoints_dir
from cnnviz.training.runs import read_run
from cnnviz.zoo import driver
from cnnviz.zoo.recipe import (
    CORE_FAMILIES,
    MEMBERS,
    Recipe,
    config_for,
    member,
    member_for_arch,
    member_order,
    parse_families,
)
from cnnviz.zoo.results import import_zoo, per_class_accuracy, read_result
from tests._synthetic import NUM_CLASSES, install_synthetic
from tests.test_jobs import wait_for

REPO = Path(__file__).resolve().parent.parent
SMOKE = ["--data", "synthetic", "--device", "cpu", "--epochs", "2", "--max-steps-per-epoch", "2",
         "--batch-size", "16"]


@pytest.fixture
def synthetic(tmp_path_factory):
    install_synthetic(tmp_path_factory)
    yield
    for pid_file in list(checkpoints_dir().glob("*/worker.pid")) + list(checkpoints_dir().glob("zoo/*/driver.pid")):
        try:
            text = pid_file.read_text()
            pid = int(json.loads(text)["pid"]) if text.lstrip().startswith("{") else int(text)
            os.killpg(pid, signal.SIGKILL)
        except (OSError, ValueError, KeyError):
            pass


def cli(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "cnnviz", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def test_every_family_has_a_member_whose_config_validates():
    assert CORE_FAMILIES == ("lenet5", "alexnet", "zfnet", "vgg16", "googlenet", "resnet18", "nin")
    for m in MEMBERS:
        cfg = config_for(m, Recipe(), "zoo-test")
        assert cfg.allow_concurrent and cfg.name == f"zoo-test-{m.family}"
        assert m.why, f"{m.family}: the report must say why its settings are what they are"
    assert [m.family for m in parse_families("resnet18, alexnet")] == ["alexnet", "resnet18"]  # table order
    with pytest.raises(ValueError, match="unknown family 'vgg99'.*the zoo has lenet5"):
        parse_families("vgg99")


def test_members_found_by_architecture_and_sorted_in_the_tables_order():
    googlenet = member_for_arch("googlenet")
    assert googlenet is not None and googlenet.family == "googlenet" and googlenet.variant  # its small stem
    assert member_for_arch("no_such_net") is None
    families = [m.family for m in MEMBERS]
    assert sorted(reversed(families), key=member_order) == families
    assert member_order("a starter outside the zoo") == len(MEMBERS)  # after every member, not in between


def test_learning_rate_scales_with_the_batch():
    m = MEMBERS[0]
    assert config_for(m, Recipe(batch_size=512), "zoo-t").lr == pytest.approx(2 * m.lr)


def test_zoo_train_keeps_every_members_snapshots_when_asked():
    """`zoo train --keep-snapshots` (a starter that ships some of them): the flag reaches each member's run."""
    import argparse

    from cnnviz.cli.zoo import _recipe, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    for argv, kept in ((["zoo", "train", "--keep-snapshots"], True), (["zoo", "train"], False)):
        recipe = _recipe(parser.parse_args(argv))
        assert recipe.keep_snapshots is kept
        assert config_for(member("lenet5"), recipe, "zoo-t").keep_snapshots is kept


def test_epochs_planned_from_the_measured_rate_or_refused_with_the_numbers():
    cal = {"a": {"epoch_s": 30.0}, "b": {"epoch_s": 10.0}}
    assert driver.plan_epochs(400, cal) == 10
    assert driver.plan_epochs(400, cal, overhead_s=50) == 8
    with pytest.raises(driver.BudgetTooSmall, match=r"too small to finish one epoch.*about 40 s.*a 30 s, b 10 s"):
        driver.plan_epochs(39, cal)


@pytest.mark.slow
def test_zoo_trains_two_members_at_once_and_reports_them(synthetic, tmp_path):
    r = cli("zoo", "train", "--families", "lenet5,googlenet", "--concurrency", "2", "--export", *SMOKE)
    assert r.returncode == 0, r.stderr[-3000:]
    zoo_id = r.stdout.splitlines()[0]
    zoo_dir = checkpoints_dir() / "zoo" / zoo_id
    manifest = json.loads((zoo_dir / "zoo.json").read_text())
    assert manifest["families"] == ["lenet5", "googlenet"] and manifest["concurrency"] == 2
    log = (zoo_dir / "driver.log").read_text()
    # both started before either finished: they trained at the same time
    assert log.index("googlenet: started") < log.index("lenet5: done"), log
    for fam in ("lenet5", "googlenet"):
        run = read_run(checkpoints_dir() / manifest["runs"][fam])  # an ordinary run folder
        assert run.state == "done" and [m["epoch"] for m in run.metrics] == [1, 2]
        assert {"val_top1_tta", "val_top1_raw"} <= set(run.metrics[-1])  # the recipe's EMA and flip TTA
        res = read_result(zoo_dir / "results" / f"{fam}.json")
        assert res["val_n"] == NUM_CLASSES * 10 and len(res["confusion"]) == NUM_CLASSES
        assert res["epochs"] == 2 and res["images_per_s"] > 0 and res["device"] == "cpu"
        assert len(per_class_accuracy(res)) == NUM_CLASSES
        # the exported starter: compressed where it pays (GoogLeNet int8), measured from the written file
        starter = res["starter"]
        assert starter["name"] == f"{fam}_tinyimagenet" and starter["bytes"] > 0
        meta = json.loads((zoo_dir / "starter" / f"{fam}_tinyimagenet.json").read_text())
        assert meta["compression"]["plan"]["name"] == ("int8" if fam == "googlenet" else "float16")
        assert meta["metrics"]["val_top1"] == pytest.approx(starter["top1"])
    st = cli("zoo", "status", zoo_id, "--format", "json")
    rows = {row["family"]: row for row in json.loads(st.stdout)["members"]}
    assert rows["googlenet"]["state"] == "done" and rows["googlenet"]["results"]
    imp = cli("zoo", "import", zoo_id, "--allow-synthetic")  # a synthetic zoo is refused without it
    assert imp.returncode == 0, imp.stderr
    assert sorted(p.stem for p in (checkpoints_dir() / "results").glob("*.json")) == ["googlenet", "lenet5"]
    assert (checkpoints_dir() / "starter" / "googlenet_tinyimagenet.safetensors").is_file()
    out = tmp_path / "docs" / "zoo.md"
    rep = cli("zoo", "report", "--out", str(out))
    assert rep.returncode == 0, rep.stderr
    text = out.read_text()
    assert "| lenet5 (lenet5) |" in text and "| googlenet (googlenet) |" in text
    assert "giung2" in text  # the published numbers, with their sources
    assert (out.parent / "zoo_acc_vs_macs.png").stat().st_size > 5000
    assert (out.parent / "zoo_acc_vs_time.png").stat().st_size > 5000
    # With the GPU session's bench file (bench/bench_zoo.py's format: the card's bf16 ceiling, the trick ladder),
    # as scripts/gpu_zoo.sh's unpack passes it: MFU per member and what each trick paid (a rehearsal found the
    # report reading other keys than the bench writes).
    bench = tmp_path / "bench_device.json"
    bench.write_text(json.dumps({
        "device_name": device_name("cpu"), "bf16_matmul_flops": 1e12, "members": {},  # the card the zoo ran on
        "tricks": [{"family": "lenet5", "setting": "fp32, NCHW", "images_per_s": 100.0, "warmup_s": 1.0, "gain": None},
                   {"family": "lenet5", "setting": "+ bf16 autocast", "images_per_s": 150.0, "warmup_s": 1.0,
                    "gain": 1.5}]}))
    rep = cli("zoo", "report", "--out", str(out), "--bench", str(bench))
    assert rep.returncode == 0, rep.stderr
    text = out.read_text()
    assert "| lenet5 | + bf16 autocast | 150 | 1.50x |" in text and f"Measured on {device_name('cpu')}" in text
    assert "n/a (" not in text  # the ceiling gives every member an MFU


@pytest.mark.slow
def test_a_killed_zoo_resumes_without_training_anything_twice(synthetic):
    slow = {"CNNVIZ_FAULT": "sleep=0.4"}  # steps slow enough to kill the driver and its worker mid-run
    r = cli("zoo", "train", "--families", "lenet5", "--detach", *SMOKE, env=slow)
    assert r.returncode == 0, r.stderr
    zoo_dir = checkpoints_dir() / "zoo" / r.stdout.splitlines()[0]
    run_dir = wait_for(lambda: (lambda m: checkpoints_dir() / m["runs"]["lenet5"] if m["runs"] else None)(
        json.loads((zoo_dir / "zoo.json").read_text())), what="the member to start")
    info = wait_for(lambda: (lambda i: i if i.epoch >= 2 and i.alive else None)(read_run(run_dir)),
                    what="the second epoch")
    os.killpg(int((zoo_dir / "driver.pid").read_text()), signal.SIGKILL)
    os.killpg(int(info.status["pid"]), signal.SIGKILL)
    wait_for(lambda: not read_run(run_dir).alive, what="the worker to die")
    assert not (zoo_dir / "results" / "lenet5.json").exists()
    r = cli("zoo", "train", "--resume", zoo_dir.name)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed" in (zoo_dir / "driver.log").read_text()
    metrics = read_run(run_dir).metrics
    assert [m["epoch"] for m in metrics] == [1, 2]  # epoch 1 was not trained again
    assert read_result(zoo_dir / "results" / "lenet5.json")["epochs"] == 2
    again = cli("zoo", "train", "--resume", zoo_dir.name)  # nothing left to do: nothing retrained
    assert again.returncode == 0 and "already finished: lenet5" in again.stderr
    assert len(read_run(run_dir).metrics) == 2


def test_bad_input_gets_one_clear_line(synthetic):
    r = cli("zoo", "train", "--families", "alexnet,vgg99", *SMOKE)
    assert r.returncode == 2 and "unknown family 'vgg99'" in r.stderr and "Traceback" not in r.stderr
    r = cli("zoo", "train", "--families", "lenet5", "--budget-s", "0.5", "--data", "synthetic", "--device", "cpu")
    assert r.returncode == 2 and "too small to finish one epoch" in r.stderr, r.stderr[-2000:]
    assert not (checkpoints_dir() / "zoo").exists() or not any((checkpoints_dir() / "zoo").iterdir())
    r = cli("zoo", "status", "zoo-nope")
    assert r.returncode == 2 and "no zoo called 'zoo-nope'" in r.stderr


def test_damaged_result_files_are_refused(tmp_path):
    good = {"format": "cnnviz-zoo-result/1", "family": "lenet5", "arch": "lenet5", "val_top1": 0.5, "history": [],
            "confusion": [[1, 0], [0, 1]], "wnids": ["a", "b"]}
    (tmp_path / "ok.json").write_text(json.dumps(good))
    assert read_result(tmp_path / "ok.json")["family"] == "lenet5"
    (tmp_path / "torn.json").write_text(json.dumps(good)[:40])
    with pytest.raises(ValueError, match="cannot be read"):
        read_result(tmp_path / "torn.json")
    (tmp_path / "bad.json").write_text(json.dumps({**good, "confusion": [[1, 0, 0]]}))
    with pytest.raises(ValueError, match="does not match its 2 classes"):
        read_result(tmp_path / "bad.json")
    src = tmp_path / "fetched"
    src.mkdir()
    (src / "lenet5.json").write_text(json.dumps({**good, "confusion": [[1]]}))
    with pytest.raises(ValueError, match="does not match"):
        import_zoo(src, results_root=tmp_path / "results")
    assert not (tmp_path / "results").exists()  # nothing copied when one file is bad


def test_report_shows_the_shipped_starters_until_a_zoo_has_run(tmp_path):
    """Before any GPU session the starters are the only all-families view on Tiny ImageNet: docs/zoo.md lists
    each with the accuracy measured from its shipped file and says that they are not one recipe. The committed
    docs/zoo.md is the generated one (a stale table would show numbers the files no longer give)."""
    from cnnviz.starter import list_starters
    from cnnviz.zoo.report import write_report

    shipped = list_starters(REPO / "checkpoints")
    assert shipped, "the repository ships starters"
    out = write_report(results=tmp_path / "no-results", out=tmp_path / "zoo.md", starters=REPO / "checkpoints")
    text = out.read_text()
    assert "No zoo has been trained yet" in text and "**not one recipe**" in text
    table = [ln for ln in text.splitlines() if ln.startswith("| ") and "_tinyimagenet`" in ln]
    assert len(table) == len(shipped)
    for r in shipped:
        line = next(ln for ln in table if f"`{r['name']}`" in ln)
        assert f"| {100 * r['val_top1']:.2f}% | {100 * r['val_top5']:.2f}% |" in line
    families = {m.family for m in MEMBERS if not m.extra}
    listed = {ln.split(" (")[0].removeprefix("| ") for ln in table}
    missing = sorted(families - listed)
    assert (f"No starter yet: {', '.join(missing)}." in text) == bool(missing)
    committed = (REPO / "docs" / "zoo.md").read_text()
    if "No zoo has been trained yet" in committed:
        assert committed == text, "docs/zoo.md is stale: run python -m cnnviz zoo report"


def _colours_in(png: bytes | Path) -> set[str]:
    """The exact colours a PNG holds, as "#rrggbb" (a scatter marker's inside is drawn in its own colour)."""
    import io

    import numpy as np
    from PIL import Image

    src = io.BytesIO(png) if isinstance(png, bytes) else png
    pixels = np.asarray(Image.open(src).convert("RGB")).reshape(-1, 3)
    return {"#" + "".join(f"{int(c):02X}" for c in p) for p in np.unique(pixels, axis=0)}


def test_the_report_plots_draw_each_family_in_compares_colour(tmp_path):
    """docs/zoo.md's plots and Compare's charts give a family one colour: the zoo opens on Compare with every
    family selected in the zoo's order, and the report's plots used matplotlib's own cycle instead."""
    from cnnviz.palette import model_colours
    from cnnviz.zoo.report import rows, write_plots
    from cnnviz.zoo.results import list_results

    found = list_results(REPO / "checkpoints" / "results")
    if not found:
        pytest.skip("no zoo result files in checkpoints/results")
    table = rows(found)
    families = [r["family"] for r in sorted(table, key=lambda r: member_order(r["family"]))]
    expected = model_colours(families)
    for png in write_plots(table, tmp_path):
        assert set(expected.values()) <= _colours_in(png), png.name
