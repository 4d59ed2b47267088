"""Which trained models can be compared with which, and on what data (Compare page, issue 11).

A model's outputs mean the classes it was trained on (:func:`cnnviz.catalog.dataset_of`): a 10-class synthetic
run and a 200-class Tiny ImageNet starter can share a chart of accuracy curves (with a note: chance is 10% for
one and 0.5% for the other), but never a per-class table or a confusion matrix. Each model is evaluated on the
validation split of the dataset it was trained on, found on this machine by its class list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cnnviz.compare import CompareEntry
from cnnviz.paths import data_dir


def class_groups(entries: Sequence[CompareEntry]) -> dict[tuple, list[CompareEntry]]:
    """The entries grouped by the classes their outputs mean (:attr:`DatasetInfo.key`), in entry order."""
    groups: dict[tuple, list[CompareEntry]] = {}
    for e in entries:
        groups.setdefault(e.dataset.key, []).append(e)
    return groups


def mixed_classes(entries: Sequence[CompareEntry]) -> str | None:
    """None when every entry was trained on the same classes; else a sentence naming each group, e.g.
    ``"Tiny ImageNet, 200 classes at 64x64 (starter/a, starter/b); synthetic demo set, 10 classes at 64x64
    (run-x)"``. Accuracies of such groups are not comparable: chance alone is 0.5% for 200 classes and 10%
    for 10."""
    groups = class_groups(entries)
    if len(groups) < 2:
        return None
    return "; ".join(f"{g[0].dataset.label} ({', '.join(e.id for e in g)})" for g in groups.values())


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


@dataclass
class EvaluationPlan:
    """Whether a per-class comparison of ``entries`` can be made, and on which validation set."""

    root: Path | None  # the dataset to evaluate on (None: see refusal / missing)
    entries: list[CompareEntry]  # those with a checkpoint to evaluate
    refusal: str | None = None  # why the comparison would mislead (mixed classes)
    missing: str | None = None  # the dataset is not on this machine


def evaluation_plan(entries: Sequence[CompareEntry]) -> EvaluationPlan:
    """Per-class accuracy and confusion compare models class by class, so every entry must have the same
    classes (else ``refusal``); they are evaluated on the validation split of the dataset they were trained
    on (a synthetic run on the synthetic set, not on Tiny ImageNet)."""
    usable = [e for e in entries if e.checkpoint is not None and e.evaluation is None]
    mixed = mixed_classes([e for e in entries if e.checkpoint is not None or e.evaluation is not None])
    if mixed:
        return EvaluationPlan(None, usable, refusal=(
            "Per-class accuracy and confusion compare models class by class, so they need models trained on "
            f"the same classes. The selection mixes {mixed}. Choose the models of one dataset."))
    if not usable:
        return EvaluationPlan(None, usable, missing="None of the selected models has a checkpoint to evaluate yet.")
    root = evaluation_root(usable[0])
    if root is None:
        ds = usable[0].dataset
        if ds.name == "synthetic demo set":
            missing = ("No synthetic demo set found on this machine: the first training run on it generates it "
                       "(Training page, dataset 'Synthetic').")
        elif ds.data and ds.data != "auto":
            missing = f"The dataset {ds.data} that {usable[0].id} was trained on is not on this machine."
        else:
            missing = ("No Tiny ImageNet dataset found: per-class accuracy and confusion need the validation set "
                       "(prepare it on the Training page or with `python -m cnnviz data prepare`).")
        return EvaluationPlan(None, usable, missing=missing)
    return EvaluationPlan(root, usable)
