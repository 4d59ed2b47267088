"""Where things live. Each location can be moved with an environment variable (tests use that)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# The zoo's report, the repository's own page wherever `zoo report` runs from (its plots sit beside it, and its
# text points at checkpoints/results/, the repository's too unless CNNVIZ_CHECKPOINTS moves it). Not movable.
ZOO_REPORT = REPO_ROOT / "docs" / "zoo.md"


def checkpoints_dir() -> Path:
    """Run folders and starter checkpoints: ``$CNNVIZ_CHECKPOINTS`` or ``<repo>/checkpoints``."""
    return Path(os.environ.get("CNNVIZ_CHECKPOINTS") or REPO_ROOT / "checkpoints").resolve()


def data_dir() -> Path:
    """Datasets and their decoded caches: ``$CNNVIZ_DATA`` or ``<repo>/data`` (ignored by git)."""
    return Path(os.environ.get("CNNVIZ_DATA") or REPO_ROOT / "data").resolve()


def shared_zip() -> Path:
    """The Tiny ImageNet zip that developers and CI have beside the checkout (may be absent)."""
    return Path(os.environ.get("CNNVIZ_SHARED_ZIP") or REPO_ROOT.parent / "shared" / "data" / "tiny-imagenet-200.zip")
