"""Tiny ImageNet's layout: find a dataset root, read its class list, names and labels, list a split's images.

Dataset root
------------
A *dataset root* is a folder in the official layout::

    wnids.txt                      200 wnids, the class order (label k = line k)
    words.txt                      wnid <TAB> "name, synonym, ..." (covers all of ImageNet)
    train/<wnid>/<wnid>_boxes.txt
    train/<wnid>/images/<wnid>_<k>.JPEG        labels from the folder names
    val/val_annotations.txt        file <TAB> wnid <TAB> box: the ONLY source of val labels
    val/images/val_<k>.JPEG        one flat folder (an ImageFolder over val/ gives chance accuracy)
    cache/                         the decoded uint8 arrays + manifests (cnnviz.data.cache)

Where the images come from (decided by :func:`cnnviz.data.prepare.prepare`; :func:`read_source` here reads it):

* an extracted folder: the images are read from the folder itself, the cache is written into it;
* a zip (the local copy or the official download): only the small text files (wnids, words, annotations,
  boxes) are extracted into ``<root>/tiny-imagenet-200/``, and ``source.json`` there points to the zip; the
  JPEG bytes are read straight from the zip when the cache is built, so 110,000 files never hit the disk.
  ``prepare(..., extract_images=True)`` (CLI ``--extract-images``) extracts everything instead.

Either way the root has the official text layout, and ``load_split`` only ever needs the cache once it exists.
The test split (no published labels) is ignored.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnviz import paths
from cnnviz.data.errors import PREPARE_HINT, DatasetError
from cnnviz.data.zipsource import zip_index
from cnnviz.fsutil import read_json

DIRNAME = "tiny-imagenet-200"
SOURCE_FILE = "source.json"
SPLITS = ("train", "val")
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")
# Tiny ImageNet's train-split statistics (RGB, [0, 1]): what the pipeline normalises with unless told otherwise
# (the cache recomputes them from the pixels it decodes), and what a checkpoint without its own is read with.
TINY_IMAGENET_MEAN = (0.4802, 0.4481, 0.3975)
TINY_IMAGENET_STD = (0.2770, 0.2691, 0.2821)


# --------------------------------------------------------------------------------------------- locate


def is_dataset_root(path: str | Path) -> bool:
    """True when ``path`` has the official text files and a place the images come from."""
    p = Path(path)
    if not ((p / "wnids.txt").is_file() and (p / "words.txt").is_file()
            and (p / "val" / "val_annotations.txt").is_file()):
        return False
    return (p / "train").is_dir() or (p / SOURCE_FILE).is_file()


def find_dataset(path: str | Path | None = None) -> Path | None:
    """An extracted (prepared) Tiny ImageNet root, or ``None``.

    With ``path``: ``path`` itself or ``path/tiny-imagenet-200``. Without: the same under
    :func:`cnnviz.paths.data_dir`. Never downloads or extracts anything (see :func:`prepare`).
    """
    base = Path(path).expanduser() if path is not None else paths.data_dir()
    for candidate in (base, base / DIRNAME):
        if is_dataset_root(candidate):
            return candidate.resolve()
    return None


# ---------------------------------------------------------------------------------------------- parse


def read_wnids(root: Path) -> list[str]:
    """The class order: one wnid per line of ``wnids.txt`` (blank lines ignored, duplicates refused)."""
    path = Path(root) / "wnids.txt"
    try:
        wnids = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError:
        raise DatasetError(f"{path} is missing: {Path(root)} is not a Tiny ImageNet folder; {PREPARE_HINT}") from None
    if not wnids:
        raise DatasetError(f"{path} is empty; {PREPARE_HINT}")
    if len(set(wnids)) != len(wnids):
        raise DatasetError(f"{path} lists a class twice; the file is damaged: {PREPARE_HINT}")
    return wnids


def read_words(root: Path, wnids: Iterable[str]) -> tuple[list[str], list[str]]:
    """``(short names, full names)`` for ``wnids`` from ``words.txt``.

    The full name is the whole ``words.txt`` string ("Egyptian cat" or "tabby, tabby cat"); the short name is
    its first synonym. A wnid missing from words.txt keeps the wnid as its name rather than failing.
    """
    wanted = set(wnids)
    words: dict[str, str] = {}
    path = Path(root) / "words.txt"
    try:
        with path.open(encoding="utf-8") as f:
            for line in f:
                wnid, _, name = line.rstrip("\n").partition("\t")
                if wnid in wanted:
                    words[wnid] = name.strip()
    except FileNotFoundError:
        raise DatasetError(f"{path} is missing; {PREPARE_HINT}") from None
    full = [words.get(w) or w for w in wnids]
    short = [n.split(",")[0].strip() or n for n in full]
    return short, full


def read_val_annotations(root: Path, wnid_index: dict[str, int]) -> list[tuple[str, int]]:
    """``[(file name, label)]`` from ``val/val_annotations.txt`` (file <TAB> wnid <TAB> box...)."""
    path = Path(root) / "val" / "val_annotations.txt"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"{path} is missing: the val labels live there; {PREPARE_HINT}") from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        if len(fields) < 2:
            raise DatasetError(f"{path} line {n} is not 'file<TAB>wnid<TAB>box': {line[:80]!r}; {PREPARE_HINT}")
        name, wnid = fields[0].strip(), fields[1].strip()
        if wnid not in wnid_index:
            raise DatasetError(f"{path} line {n} names class {wnid!r}, which is not in wnids.txt; the dataset "
                               f"files do not belong together: {PREPARE_HINT}")
        if "/" in name or "\\" in name or name.startswith("."):
            raise DatasetError(f"{path} line {n} has an unexpected file name {name!r}")
        out.append((name, wnid_index[wnid]))
    if not out:
        raise DatasetError(f"{path} has no labels; {PREPARE_HINT}")
    return out


def _natural_key(name: str) -> tuple:
    """``n01443537_10`` sorts after ``n01443537_9`` (numbers compared as numbers)."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


# --------------------------------------------------------------------------------------------- source


@dataclass(frozen=True)
class Source:
    """Where a dataset root's images are read from: the root folder itself, or a zip (+ member prefix)."""

    kind: str  # "folder" | "zip"
    path: Path  # folder: the dataset root; zip: the zip file
    prefix: str = ""  # zip: the members' prefix, e.g. "tiny-imagenet-200/"
    sha256: str | None = None
    official: bool = False

    def describe(self) -> str:
        return f"zip {self.path}" if self.kind == "zip" else f"folder {self.path}"


def read_source(root: Path) -> Source:
    """The image source of a dataset root (``source.json`` when the images stay in a zip)."""
    root = Path(root)
    sf = root / SOURCE_FILE
    if sf.is_file():
        try:
            info = read_json(sf)
            return Source("zip", Path(info["zip"]), info.get("prefix", ""), info.get("sha256"),
                          bool(info.get("official")))
        except (ValueError, KeyError, TypeError) as e:
            raise DatasetError(f"{sf} is damaged ({e}); {PREPARE_HINT}") from None
    return Source("folder", root)


def list_split(root: Path, split: str, wnids: list[str], source: Source | None = None,
               zip_names: Iterable[str] | None = None) -> tuple[list[str], np.ndarray]:
    """``(image names relative to the dataset root, int64 labels)`` for ``split``, in a stable order.

    train: ``train/<wnid>/images/*`` in wnids.txt order, labels from the folder names;
    val: the files named in ``val/val_annotations.txt``, labels from that file (not from any folder).
    Classes in wnids.txt without train images, or annotated val files that are missing, raise DatasetError.
    """
    root = Path(root)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} (the test split has no labels), got {split!r}")
    source = source or read_source(root)
    index = {w: k for k, w in enumerate(wnids)}
    if source.kind == "zip":
        available = _zip_listing(source, zip_names)
    else:
        available = None
    names: list[str] = []
    labels: list[int] = []
    if split == "train":
        for k, wnid in enumerate(wnids):
            folder = f"train/{wnid}/images/"
            if available is not None:
                files = available.get(folder, [])
            else:
                d = root / folder
                files = [e.name for e in os.scandir(d) if e.is_file() and _is_image(e.name)] if d.is_dir() else []
            if not files:
                raise DatasetError(f"class {wnid} (line {k + 1} of wnids.txt) has no training images in "
                                   f"{source.describe()} ({folder}); the dataset is incomplete: {PREPARE_HINT}")
            files.sort(key=_natural_key)
            names.extend(folder + f for f in files)
            labels.extend([k] * len(files))
    else:
        annotations = read_val_annotations(root, index)
        if available is not None:
            present = set(available.get("val/images/", []))
        else:
            d = root / "val" / "images"
            present = {e.name for e in os.scandir(d)} if d.is_dir() else set()
        missing = [n for n, _ in annotations if n not in present]
        if missing:
            raise DatasetError(f"{len(missing)} val images named in val_annotations.txt are missing from "
                               f"{source.describe()} (e.g. val/images/{missing[0]}); {PREPARE_HINT}")
        if len({n for n, _ in annotations}) != len(annotations):
            raise DatasetError(f"val_annotations.txt in {root} lists an image twice; the file is damaged: "
                               f"{PREPARE_HINT}")
        annotations.sort(key=lambda t: _natural_key(t[0]))
        names = [f"val/images/{n}" for n, _ in annotations]
        labels = [k for _, k in annotations]
    return names, np.asarray(labels, dtype=np.int64)


def _zip_listing(source: Source, zip_names: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Image file names of a zip grouped by folder (relative to the prefix): {"train/x/images/": [...]}."""
    if zip_names is None:
        if not source.path.is_file():
            raise DatasetError(f"the zip {source.path} this dataset was prepared from is gone; put it back or "
                               f"{PREPARE_HINT}")
        zip_names = zip_index(source.path)
    out: dict[str, list[str]] = {}
    plen = len(source.prefix)
    for name in zip_names:
        if not name.startswith(source.prefix) or not _is_image(name):
            continue
        folder, _, file = name[plen:].rpartition("/")
        out.setdefault(folder + "/", []).append(file)
    return out


def source_fingerprint(root: Path, split: str, source: Source, names: list[str] | None = None) -> dict:
    """What the cache of ``split`` was built from; any change means the cache is stale.

    zip: path, size and mtime of the zip (a copy with another mtime counts as changed: rebuilding is cheap
    compared to trusting the wrong bytes). folder: number, total size and newest mtime of the split's images.
    Both include a hash of the label file (wnids.txt, and val_annotations.txt for val).
    """
    root = Path(root)
    label_files = ["wnids.txt"] + (["val/val_annotations.txt"] if split == "val" else [])
    h = hashlib.sha1()
    for rel in label_files:
        h.update((root / rel).read_bytes())
    fp: dict = {"kind": source.kind, "labels_sha1": h.hexdigest()}
    if source.kind == "zip":
        st = source.path.stat()
        fp.update(path=str(source.path), size=st.st_size, mtime_ns=st.st_mtime_ns, sha256=source.sha256)
    else:
        if names is None:
            names, _ = list_split(root, split, read_wnids(root), source)
        total, newest = 0, 0
        for rel in names:
            st = os.stat(root / rel)
            total += st.st_size
            newest = max(newest, st.st_mtime_ns)
        fp.update(path=str(root), files=len(names), bytes=total, mtime_ns=newest)
    return fp
