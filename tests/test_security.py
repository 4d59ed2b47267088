"""Security defaults (issue 6), checked where they are decided: the server's config file, the code that reads
weights, and the functions that turn run names into folders. The running server is checked in a browser
session too (tests/e2e/test_bad_input.py: bound to 127.0.0.1, HTTP 413 over the limit, XSRF, CORS)."""

from __future__ import annotations

import ast
import logging

import pytest

from cnnviz.images import MAX_BYTES, MAX_PIXELS, safe_display_name
from cnnviz.paths import REPO_ROOT
from cnnviz.training import jobs
from cnnviz.training.runs import RunError, create_run, new_run_id, resolve_run
from tests._synthetic import tiny_config

CONFIG = REPO_ROOT / ".streamlit" / "config.toml"
CODE = sorted([*(REPO_ROOT / "cnnviz").rglob("*.py"), *(REPO_ROOT / "app_pages").rglob("*.py"), REPO_ROOT / "app.py"])


def test_streamlit_config_defaults_are_safe():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    cfg = tomllib.loads(CONFIG.read_text())
    server = cfg["server"]
    assert server["address"] == "127.0.0.1"  # loopback unless the user passes --server.address
    assert server["enableXsrfProtection"] is True
    assert server["enableCORS"] is True
    assert 1 <= server["maxUploadSize"] <= 50  # MB, enforced by the server itself (HTTP 413 beyond)
    assert server["maxUploadSize"] * 2**20 == MAX_BYTES  # the library's own cap says the same thing
    assert cfg["client"]["showErrorDetails"] in ("none", False)  # tracebacks go to the log, not the page
    assert cfg["browser"]["gatherUsageStats"] is False
    assert server.get("fileWatcherType", "none") == "none"  # no reloading of code while students use it


def test_readme_says_how_to_expose_the_app_safely():
    readme = (REPO_ROOT / "README.md").read_text()
    assert "## Exposing the app safely" in readme
    section = readme.split("## Exposing the app safely", 1)[1].split("\n## ", 1)[0]
    for words in ("127.0.0.1", "--server.address", "XSRF", "maxUploadSize"):
        assert words in section, words


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f"{f.value.id}.{f.attr}" if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) \
                else f.id if isinstance(f, ast.Name) else None
            yield name, node


def _kw(node: ast.Call, key: str):
    for k in node.keywords:
        if k.arg == key:
            return k.value.value if isinstance(k.value, ast.Constant) else "<expr>"
    return None


@pytest.mark.parametrize("path", CODE, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_no_pickle_anywhere_weights_only_torch_load(path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names = {(node.module or "").split(".")[0]}
        else:
            continue
        assert not names & {"pickle", "cPickle", "dill", "joblib", "cloudpickle", "shelve", "marshal"}, \
            f"{path.name}:{node.lineno} imports {names}"
    for name, node in _calls(tree):
        where = f"{path.relative_to(REPO_ROOT)}:{node.lineno}"
        if name == "torch.load":
            assert _kw(node, "weights_only") is True, f"{where}: torch.load without weights_only=True"
        if name in ("np.load", "numpy.load"):
            assert _kw(node, "allow_pickle") in (None, False), f"{where}: np.load with allow_pickle"
        if name in ("pd.read_pickle", "torch.jit.load"):
            raise AssertionError(f"{where}: {name} unpickles")


def test_the_scan_would_catch_an_unsafe_load():
    bad = ast.parse("import torch\nx = torch.load('f.pt')\ny = torch.load('g.pt', weights_only=False)\n")
    found = [_kw(n, "weights_only") for name, n in _calls(bad) if name == "torch.load"]
    assert found == [None, False]  # both would fail the test above


@pytest.mark.parametrize("name", ["../x", "..", ".", "../../etc/passwd", "/etc", "/", "a/../../b", ".locks",
                                  "run\x00name", "run\nname", "run\x1b[31m", "..\\x", " spaced", "-rf"])
def test_run_names_never_become_paths_outside_the_checkpoints_folder(tmp_path, name):
    root = tmp_path / "checkpoints"
    root.mkdir()
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "config.json").write_text("{}")  # a run-looking folder just outside the root
    with pytest.raises((RunError, ValueError)):
        create_run({"arch": "lenet5"}, root=root, run_id=name)
    if "/" not in name:  # plain names are looked up inside the root only (paths are a CLI feature)
        with pytest.raises(RunError):
            resolve_run(name, root)
    with pytest.raises((RunError, ValueError)):
        jobs.delete(name, root=root)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints", "x"]  # nothing created or removed
    assert list(root.iterdir()) == []


def test_delete_refuses_a_run_folder_outside_the_root_given_as_a_path(tmp_path):
    root = tmp_path / "checkpoints"
    outside = create_run({"arch": "lenet5"}, root=tmp_path / "elsewhere", run_id="victim")
    with pytest.raises(RunError, match="refusing to delete"):
        jobs.delete(str(outside), root=root)
    with pytest.raises(RunError, match="refusing to delete"):
        jobs.delete(f"{root}/../elsewhere/victim", root=root)
    assert (outside / "config.json").is_file()


@pytest.mark.parametrize("name", ["../../etc/passwd", "/abs/path", "a\x00b\n\x1b[2J", "..", "   ", "é/ü"])
def test_a_chosen_run_name_is_sanitised_into_one_folder_name(tmp_path, name):
    run_id = new_run_id("lenet5", name)
    assert "/" not in run_id and ".." not in run_id and run_id.isprintable() and not run_id.startswith(".")
    run = create_run(tiny_config(name=name).to_dict(), root=tmp_path, run_id=run_id)
    assert run.parent == tmp_path


@pytest.mark.parametrize("name, shown", [
    ("../../etc/passwd.png", "../../etc/passwd.png"),  # shown as text, never opened
    ("evil\x1b[31m.png", "evil\\x1b[31m.png"),
    ("a\nb\rc\x00.png", "a\\nb\\rc\\x00.png"),
    ("x" * 500 + ".png", "x" * 79 + "…"),
    ("", "(unnamed)"),
])
def test_file_names_are_only_displayed_escaped(name, shown):
    assert safe_display_name(name) == shown
    assert safe_display_name(name).isprintable()


def test_pixel_cap_is_well_below_pillows_bomb_limits():
    from PIL import Image

    assert MAX_PIXELS <= Image.MAX_IMAGE_PIXELS // 2  # Pillow warns above ~89 Mpx and refuses above ~179 Mpx


def test_error_details_go_to_the_log_not_the_page(caplog):
    import streamlit as st

    from app_pages._shared import show_error

    shown = []
    original = st.error
    st.error = lambda msg, *a, **k: shown.append(msg)
    try:
        try:
            raise RuntimeError("secret internal detail /srv/x.py line 3")
        except RuntimeError as e:
            with caplog.at_level(logging.ERROR, logger="cnnviz.app"):
                show_error("The model cannot be loaded.", e)
    finally:
        st.error = original
    assert shown == ["The model cannot be loaded."]
    assert "Traceback" in caplog.text and "secret internal detail" in caplog.text
