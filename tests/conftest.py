"""Shared fixtures. Tests run on the CPU; nothing here needs a GPU or the network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SHARED_ZIP = Path(os.environ.get("CNNVIZ_SHARED_ZIP") or REPO.parent / "shared" / "data" / "tiny-imagenet-200.zip")

# One intra-op thread: the tests' forwards are tiny (batch 1-8), where a second thread mostly waits, and the
# browser tests run a Streamlit server and Chromium beside pytest on the same 2 cores.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory, monkeypatch):
    """Every test gets its own checkpoints and data folders, so nothing touches the repo's."""
    base = tmp_path_factory.mktemp("cnnviz")
    monkeypatch.setenv("CNNVIZ_CHECKPOINTS", str(base / "checkpoints"))
    monkeypatch.setenv("CNNVIZ_DATA", str(base / "data"))
    monkeypatch.setenv("TORCH_HOME", str(base / "torch"))  # torch.hub's cache: ImageNet weights (cnnviz.imagenet)
    yield


@pytest.fixture
def shared_zip() -> Path:
    """The real Tiny ImageNet zip; the test is skipped, with the reason, where it is absent."""
    if not SHARED_ZIP.is_file():
        pytest.skip(f"real Tiny ImageNet not found at {SHARED_ZIP} (set CNNVIZ_SHARED_ZIP to run this test)")
    return SHARED_ZIP


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a test module of small models (``pytestmark = pytest.mark.usefixtures(
    "one_thread")``): on a shared 2-core machine a second thread only adds contention. OpenMP's barriers made
    ResNet-152's 32x32 forward ~10x slower (3.8 s vs 0.3 s wall, measured) and small backward passes ~15x."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
