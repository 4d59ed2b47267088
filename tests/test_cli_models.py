"""`python -m cnnviz list` and `python -m cnnviz table ARCH ...`."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cnnviz.__main__ import main
from cnnviz.cli.models import parse_input, parse_variant
from cnnviz.models.registry import get_card, list_models

REPO = Path(__file__).resolve().parent.parent


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_names_every_architecture(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    lines = out.strip().splitlines()
    assert [line.split()[0] for line in lines] == list_models()
    code, out, _ = run(capsys, "list", "--format", "json")
    data = json.loads(out)
    assert [d["name"] for d in data] == list_models()
    assert data[0]["paper_input"] == list(get_card(data[0]["name"]).paper_input)
    # each architecture's variant options, as data (issue 12), and in the text on its line
    alex = next(d for d in data if d["name"] == "alexnet")
    stem = next(o for o in alex["options"] if o["name"] == "stem")
    assert stem == {"name": "stem", "type": "str", "choices": ["auto", "paper", "small"], "default": "auto",
                    "help": get_card("alexnet").variants["stem"]}
    _, text, _ = run(capsys, "list")
    assert "--variant groups=2 (a whole number) stem=auto|paper|small" in text


def test_table_json_schema(capsys):
    code, out, _ = run(capsys, "table", "lenet5", "--format", "json")
    assert code == 0
    d = json.loads(out)
    assert set(d) == {"arch", "input", "classes", "layers", "totals"}
    assert d["arch"] == "lenet5" and d["input"] == [1, 32, 32] and d["classes"] == 10
    keys = {"name", "type", "input_shape", "output_shape", "kernel", "stride", "padding", "params",
            "activations", "activation_bytes", "macs", "connections", "rf", "jump"}
    assert all(set(layer) == keys for layer in d["layers"])
    assert set(d["totals"]) == {"params", "activations", "activation_bytes", "macs", "param_bytes"}
    c1 = d["layers"][0]
    assert c1["output_shape"] == [6, 28, 28] and c1["params"] == 156 and c1["connections"] == 122_304
    assert d["totals"]["params"] == 60_000 == sum(layer["params"] for layer in d["layers"])


def test_table_options(capsys):
    code, out, _ = run(capsys, "table", "vgg11", "--input", "3x64x64", "--classes", "200", "--dtype", "float16",
                       "--format", "json", "--batch-size", "8", "--optimizer", "adam")
    assert code == 0
    d = json.loads(out)
    assert d["input"] == [3, 64, 64] and d["classes"] == 200 and d["layers"][-1]["output_shape"] == [200]
    assert d["totals"]["param_bytes"] == 2 * d["totals"]["params"]
    assert d["training_memory"]["optim"] == 2 * d["totals"]["param_bytes"]
    # a variant option changes the model: GoogLeNet without its auxiliary classifiers has fewer parameters
    _, with_aux, _ = run(capsys, "table", "googlenet", "--input", "64", "--format", "json")
    _, no_aux, _ = run(capsys, "table", "googlenet", "--input", "64", "--format", "json",
                       "--variant", "aux_logits=false")
    assert json.loads(no_aux)["totals"]["params"] < json.loads(with_aux)["totals"]["params"]
    # several options after one --variant, or one per --variant
    _, one, _ = run(capsys, "table", "alexnet", "--format", "json", "--variant", "groups=1", "stem=paper")
    _, two, _ = run(capsys, "table", "alexnet", "--format", "json", "--variant", "groups=1", "--variant", "stem=paper")
    _, grouped, _ = run(capsys, "table", "alexnet", "--format", "json")
    assert json.loads(one) == json.loads(two)
    assert json.loads(one)["totals"]["params"] > json.loads(grouped)["totals"]["params"]  # groups=1: more


def test_table_text_csv_markdown(capsys):
    code, text, _ = run(capsys, "table", "alexnet", "--batch-size", "32")
    assert code == 0
    assert "features.conv1" in text and "96x55x55" in text and "not FLOPs" in text
    assert "Training memory estimate at batch 32" in text
    header = next(line for line in text.splitlines() if line.startswith("layer"))
    assert "params" in header and "MACs" in header and "rf" in header
    _, out, _ = run(capsys, "table", "alexnet", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    conv1 = next(r for r in rows if r["name"] == "features.conv1")
    assert conv1["output_shape"] == "96x55x55" and int(conv1["params"]) == 34_944
    _, out, _ = run(capsys, "table", "alexnet", "--format", "markdown")
    assert out.startswith("| layer |") and "| features.conv1 |" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["table", "no_such_net"], "unknown architecture"),
        (["table", "vgg11", "--input", "3xbig"], "--input"),
        (["table", "vgg11", "--input", "8"], "at least"),
        (["table", "vgg11", "--variant", "wings=2"], "variant"),
        (["table", "vgg11", "--variant", "oops"], "KEY=VALUE"),
        (["table", "vgg11", "--dtype", "float13"], "unknown dtype"),
        (["table", "vgg11", "--classes", "0"], "--classes"),
        (["table", "vgg11", "--input", "3x64x32"], "square"),
    ],
)
def test_bad_arguments_give_one_clear_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("error:") and message in err and "Traceback" not in err


def test_a_bug_is_not_dressed_up_as_a_user_error(capsys, monkeypatch):
    # A bare KeyError is a missing dict key in cnnviz's own code. It used to print "error: name" and nothing
    # else (the zoo report did exactly that); now it shows the traceback and says it is a bug. Names the user
    # typed still get one line (above), because the library raises UnknownName for them.
    import cnnviz.models.registry as registry

    def broken(*args, **kwargs):
        return {}["name"]

    monkeypatch.setattr(registry, "list_models", broken)
    code, out, err = run(capsys, "list")
    assert code == 1 and out == ""
    assert "Traceback" in err and "KeyError: 'name'" in err and "bug in cnnviz" in err
    assert not err.startswith("error:")


def test_parsers():
    assert parse_input(None, (1, 32, 32)) == (1, 32, 32)
    assert parse_input("224", (3, 224, 224)) == (3, 224, 224)
    assert parse_input("3x227x227", (3, 224, 224)) == (3, 227, 227)
    assert parse_variant(["groups=1", "stem=paper", "aux_logits=False", "dropout=0.2"]) == {
        "groups": 1, "stem": "paper", "aux_logits": False, "dropout": 0.2}


def test_module_entry_point():
    # `list` (no forward pass) keeps this subprocess cheap; the table handler is tested in-process above.
    proc = subprocess.run([sys.executable, "-m", "cnnviz", "list", "--format", "json"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert [d["name"] for d in json.loads(proc.stdout)] == list_models()
    proc = subprocess.run([sys.executable, "-m", "cnnviz", "table", "nope"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2 and "unknown architecture" in proc.stderr and "Traceback" not in proc.stderr
