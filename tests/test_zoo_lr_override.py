"""``zoo train --lr FAMILY=LR``: a member trains at a rate other than its own (a sweep, one zoo per rate). The
rate reaches the member's run, survives a resume (the manifest's recipe), is recorded in its result file, and
docs/zoo.md says so on its row instead of calling the result out of date. Bad values get one line, before any
zoo folder exists."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from cnnviz.zoo.recipe import Recipe, config_for, member, member_lr, parse_families, parse_lr_override
from tests.test_zoo import SMOKE, cli, synthetic  # noqa: F401 - the fixture

REPO = Path(__file__).resolve().parent.parent


def test_override_reaches_the_members_config_and_survives_the_manifest():
    members = parse_families("lenet5,nin")
    recipe = Recipe(batch_size=128, lr_override=parse_lr_override("NIN = 3e-3", members))
    assert recipe.lr_override == {"nin": 0.003}
    assert config_for(member("nin"), recipe, "zoo-t").lr == pytest.approx(0.003 * 128 / 256)
    assert config_for(member("lenet5"), recipe, "zoo-t").lr == pytest.approx(member("lenet5").lr * 128 / 256)
    resumed = Recipe.from_dict(json.loads(json.dumps(recipe.to_dict())))  # zoo.json, read back by --resume
    assert member_lr(member("nin"), resumed) == pytest.approx(0.003)
    assert parse_lr_override(None, members) == {}


@pytest.mark.parametrize("text,message", [
    ("nin", "'nin' is not FAMILY=LR (for example nin=0.003)"),
    ("nin=", "'nin=' is not FAMILY=LR"),
    ("vgg99=0.1", "unknown family 'vgg99': the zoo has lenet5"),
    ("alexnet=0.1", "alexnet is not among the families being trained (lenet5, nin)"),
    ("nin=fast", "nin's rate 'fast' is not a number"),
    ("nin=0", "nin's rate must be more than 0, not 0"),
    ("nin=-1e-3", "nin's rate must be more than 0"),
    ("nin=nan", "nin's rate must be more than 0"),
    (" , ", "no FAMILY=LR given"),
])
def test_bad_overrides_name_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_lr_override(text, parse_families("lenet5,nin"))


def test_the_cli_refuses_a_bad_rate_before_any_zoo_exists(synthetic):  # noqa: F811
    from cnnviz.paths import checkpoints_dir

    r = cli("zoo", "train", "--families", "lenet5", "--lr", "lenet5=0", *SMOKE)
    assert r.returncode == 2 and "--lr 'lenet5=0': lenet5's rate must be more than 0" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (checkpoints_dir() / "zoo").exists() or not any((checkpoints_dir() / "zoo").iterdir())


def test_the_cli_passes_the_override_to_the_recipe():
    from cnnviz.cli.zoo import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["zoo", "train", "--families", "nin", "--lr", "nin=0.003"])
    assert args.lr == "nin=0.003"  # _train parses it against the chosen families (tested above)


def test_the_report_says_a_member_trained_at_another_rate(tmp_path):
    """A sweep's result is marked on its row, with the command that made it; no 'predates' note for the rate."""
    from cnnviz.zoo.report import recipe_lines, rows

    shipped = REPO / "checkpoints" / "results" / "nin.json"
    if not shipped.is_file():
        pytest.skip("no shipped nin result in checkpoints/results")
    result = json.loads(shipped.read_text())
    scale = result["config"]["batch_size"] / 256
    swept = {**result, "lr_override": 0.003, "config": {**result["config"], "lr": 0.003 * scale}}
    line = next(ln for ln in recipe_lines(rows([swept])) if ln.startswith("| nin |"))
    assert "**Trained at an lr other than the member's:** 0.003 for 256 images (`zoo train --lr nin=0.003`)" in line
    assert "predates" not in line
    plain = next(ln for ln in recipe_lines(rows([result])) if ln.startswith("| nin |"))
    assert "other than the member's" not in plain
    own = {**result, "lr_override": result["config"]["lr"] / scale}  # a sweep's baseline arm: --lr nin=0.001
    assert "other than the member's" not in next(ln for ln in recipe_lines(rows([own])) if ln.startswith("| nin |"))
    # the rate alone differing, without the override recorded, is still called out of date (as before)
    stale = {**result, "config": {**result["config"], "lr": 0.003 * scale}}
    assert "predates" in next(ln for ln in recipe_lines(rows([stale])) if ln.startswith("| nin |"))


@pytest.mark.slow
def test_a_zoo_trained_with_an_override_records_it(synthetic):  # noqa: F811
    from cnnviz.paths import checkpoints_dir
    from cnnviz.training.runs import read_run
    from cnnviz.zoo.results import read_result

    r = cli("zoo", "train", "--families", "lenet5", "--lr", "lenet5=0.05", *SMOKE)
    assert r.returncode == 0, r.stderr[-3000:]
    zoo_dir = checkpoints_dir() / "zoo" / r.stdout.splitlines()[0]
    manifest = json.loads((zoo_dir / "zoo.json").read_text())
    assert manifest["recipe"]["lr_override"] == {"lenet5": 0.05}
    run = read_run(checkpoints_dir() / manifest["runs"]["lenet5"])
    assert run.config["lr"] == pytest.approx(0.05 * 16 / 256)  # SMOKE's batch of 16
    assert read_result(zoo_dir / "results" / "lenet5.json")["lr_override"] == pytest.approx(0.05)
