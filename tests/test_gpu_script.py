"""scripts/gpu_zoo.sh, the one script a GPU session runs: the phases that need no GPU and no data run here, as a
lent device would run them. A failure there costs minutes of a 15-minute budget, so what can be checked on the
CPU is checked here; the whole plan is rehearsed with ``scripts/gpu_zoo.sh rehearse`` (about 25 minutes)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cnnviz.paths import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "gpu_zoo.sh"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """The script from a copy of its folder (it works from its checkout's root: here ``tmp_path``)."""
    (tmp_path / "scripts").mkdir(exist_ok=True)
    shutil.copy(SCRIPT, tmp_path / "scripts" / "gpu_zoo.sh")
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return subprocess.run(["bash", "scripts/gpu_zoo.sh", *args], cwd=tmp_path, capture_output=True, text=True,
                          env={**keep, "OUT": str(tmp_path / "out"), "CNNVIZ_CHECKPOINTS": str(tmp_path / "ck"),
                               "CNNVIZ_DATA": str(tmp_path / "data"), **env}, timeout=60)


def test_the_script_parses():
    r = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_the_last_call_runs_to_its_end_without_the_optional_settings(tmp_path):
    """The plain final call (no RANK_SWEEP) stopped at 'RANK_SWEEP: unbound variable' under ``set -u``: the
    rehearsal of 2026-12-07 found it after the rank sweep had been added and rehearsed only with the variable
    set. The call's last step lists what comes back; reaching it means nothing stopped the call before."""
    r = _run(tmp_path, "final", SKIP_DATALOADER="1")
    assert r.returncode == 0, r.stderr
    assert "unbound variable" not in r.stderr
    assert r.stdout.startswith("total"), r.stdout  # ls -l "$OUT", the call's last step


def test_a_rank_sweep_without_its_trained_member_says_so_and_goes_on(tmp_path):
    (tmp_path / "ck").mkdir()
    r = _run(tmp_path, "final", SKIP_DATALOADER="1", RANK_SWEEP="zfnet,vgg16")
    assert r.returncode == 0, r.stderr
    assert "no trained zfnet here: no rank sweep" in r.stdout and "no trained vgg16 here" in r.stdout


def test_an_unknown_phase_is_refused(tmp_path):
    r = _run(tmp_path, "launhc")
    assert r.returncode == 2 and "unknown phase launhc" in r.stderr


def test_restore_brings_back_a_starters_shipped_snapshots_and_not_a_replaced_ones(tmp_path):
    """After a session, `restore` puts back the starters the zoo did not replace. LeNet-5's starter ships its
    epoch snapshots in ``<name>.epochs/``: they must come back with it (Visualize's across training would be empty
    on the next clone otherwise), and a replaced starter must not come back, snapshots included."""
    import json

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "start")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").symlink_to(shutil.which("python3") or shutil.which("python"))
    aside, starter = tmp_path / ".gpu" / "starter-aside", tmp_path / "checkpoints" / "starter"
    (aside / "lenet5_tinyimagenet.epochs").mkdir(parents=True)
    starter.mkdir(parents=True)
    for folder, stem, arch in ((aside, "lenet5_tinyimagenet", "lenet5"), (aside, "zfnet_tinyimagenet", "zfnet"),
                               (starter, "zfnet_tinyimagenet", "zfnet")):
        (folder / f"{stem}.json").write_text(json.dumps({"arch": arch, "from": folder.name}))
        (folder / f"{stem}.safetensors").write_bytes(b"w")
    (aside / "lenet5_tinyimagenet.epochs" / "epoch_001.safetensors").write_bytes(b"s")
    (aside / "lenet5_tinyimagenet.epochs" / "epoch_001.json").write_text("{}")
    r = _run(tmp_path, "restore")
    assert r.returncode == 0, r.stderr
    assert (starter / "lenet5_tinyimagenet.epochs" / "epoch_001.safetensors").read_bytes() == b"s"
    assert json.loads((starter / "zfnet_tinyimagenet.json").read_text())["from"] == "starter"  # the zoo's stays
    assert "not restored (the zoo replaced zfnet): zfnet_tinyimagenet" in r.stdout
    assert not (tmp_path / ".gpu" / "starter-aside").exists()
