"""Which trained models can be compared with which, and on what data (Compare page, issue 11).

A model's outputs mean the classes it was trained on (:func:`cnnviz.catalog.dataset_of`): a 10-class synthetic
run and a 200-class Tiny ImageNet starter can share a chart of accuracy curves (with a note: chance is 10% for
one and 0.5% for the other), but never a per-class table or a confusion matrix. Each model is evaluated on the
validation split of the dataset it was trained on, found on this machine by its class list. What the Compare
page says about it (the mixed-classes sentence, the evaluation plan) is in :mod:`cnnviz.views.compare`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cnnviz.compare import CompareEntry
from cnnviz.paths import data_dir


def class_groups(entries: Sequence[CompareEntry]) -> dict[tuple, list[CompareEntry]]:
    """The entries grouped by the classes their outputs mean (:attr:`DatasetInfo.key`), in entry order."""
    groups: dict[tuple, list[CompareEntry]] = {}
    for e in entries:
        groups.setdefault(e.dataset.key, []).append(e)
    return groups


def evaluation_root(entry: CompareEntry) -> Path | None:
    """The dataset folder whose validation split ``entry`` is evaluated on: the one it was trained on. Its
    training config's data spec is tried first (``synthetic`` -> ``data_dir()/synthetic``, ``auto`` -> Tiny
    ImageNet in ``data_dir()``, else that folder), then the other known folders; a folder is taken only when
    its class list (``wnids.txt``) is the checkpoint's (else one whose classes are all among the checkpoint's).
    None when no such dataset is on this machine."""
    from cnnviz.data import DatasetError, find_dataset, read_wnids

    data = entry.dataset.data
    candidates: list[Path | None] = []
    if data and data not in ("auto", "synthetic"):
        path = Path(data).expanduser()
        candidates.append(find_dataset(path) if path.is_dir() else None)
    auto, synthetic = find_dataset(None), find_dataset(data_dir() / "synthetic")
    candidates += [synthetic, auto] if data == "synthetic" else [auto, synthetic]
    classes = set(entry.dataset.classes)
    found: list[tuple[Path, set[str]]] = []
    for root in dict.fromkeys(c for c in candidates if c is not None):
        try:
            found.append((root, set(read_wnids(root))))
        except (DatasetError, OSError):
            continue
    if not classes:  # no class list recorded: the first dataset there is
        return found[0][0] if found else None
    # the same classes first; else a dataset whose classes are all among the checkpoint's (class_mapping)
    return next((r for r, w in found if w == classes), None) or next((r for r, w in found if w <= classes), None)
