"""Small Tiny ImageNet trees and zips for the cnnviz.data tests."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

# Class order in wnids.txt is NOT alphabetical, so sorted folder names (what ImageFolder does) give other labels.
WNIDS = ["n03000003", "n01000001", "n02000002"]
COLOURS = {"n03000003": (220, 30, 30), "n01000001": (30, 220, 30), "n02000002": (30, 30, 220)}


def mini_tree(root: Path, train_per_class: int = 4, gray: tuple[str, ...] = ()) -> Path:
    """A hand-made Tiny ImageNet tree whose pixels say the class: a solid colour per class.

    val/images holds every val image in one folder (as in the real dataset); only val_annotations.txt knows
    the labels, listed in a shuffled order. Files named in ``gray`` are saved as mode "L" JPEGs.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    (root / "words.txt").write_text("n09999999\tdecoy\n" + "".join(
        f"{w}\tclass {w[-1]}, synonym {w[-1]}\n" for w in WNIDS))

    def save(path: Path, wnid: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        img = Image.new("RGB", (64, 64), COLOURS[wnid])
        (img.convert("L") if path.name in gray else img).save(path, quality=95)

    for w in WNIDS:
        for k in range(train_per_class):
            save(root / "train" / w / "images" / f"{w}_{k}.JPEG", w)
        (root / "train" / w / f"{w}_boxes.txt").write_text("")
    val_wnids = ["n02000002", "n03000003", "n01000001", "n01000001", "n02000002", "n03000003", "n02000002"]
    lines = []
    for k, w in enumerate(val_wnids):
        save(root / "val" / "images" / f"val_{k}.JPEG", w)
        lines.append(f"val_{k}.JPEG\t{w}\t0\t0\t63\t63\n")
    order = [3, 0, 6, 1, 5, 2, 4]  # annotation lines need not be in file order
    (root / "val" / "val_annotations.txt").write_text("".join(lines[i] for i in order))
    return root


def label_of_colour(img: np.ndarray) -> int:
    """The class whose colour ``img`` (H x W x 3) is closest to."""
    mean = img.reshape(-1, 3).mean(0)
    return int(np.argmin([np.abs(mean - np.array(COLOURS[w])).sum() for w in WNIDS]))


def zip_tree(root: Path, zip_path: Path, prefix: str = "tiny-imagenet-200/", extra: dict | None = None,
             skip: tuple[str, ...] = ()) -> Path:
    """Zip the tree at ``root`` under ``prefix`` (like the official zip); ``extra`` adds raw entries
    (name -> bytes), ``skip`` leaves out relative paths."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root).as_posix()
            if rel in skip or rel.startswith("cache"):
                continue
            if path.is_dir():
                zf.writestr(prefix + rel + "/", b"")
            else:
                zf.write(path, prefix + rel)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return zip_path
