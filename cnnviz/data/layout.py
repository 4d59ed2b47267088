"""Tiny ImageNet: find it, download it (resumable, verified), check a zip, extract safely, parse the labels.

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

Where the images come from (decided here, see :func:`prepare`):

* an extracted folder: the images are read from the folder itself, the cache is written into it;
* a zip (the local copy or the official download): only the small text files (wnids, words, annotations,
  boxes) are extracted into ``<root>/tiny-imagenet-200/``, and ``source.json`` there points to the zip; the
  JPEG bytes are read straight from the zip when the cache is built, so 110,000 files never hit the disk.
  ``prepare(..., extract_images=True)`` (CLI ``--extract-images``) extracts everything instead.

Either way the root has the official text layout, and ``load_split`` only ever needs the cache once it exists.
The test split (no published labels) is ignored.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import stat
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnviz import paths
from cnnviz.fsutil import atomic_write_json, read_json

OFFICIAL_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
OFFICIAL_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
OFFICIAL_SIZE = 248_100_043
DIRNAME = "tiny-imagenet-200"
ZIP_NAME = "tiny-imagenet-200.zip"
SOURCE_FILE = "source.json"
SPLITS = ("train", "val")
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")

#: ``progress(stage, done, total)``: stage is e.g. ``"download"`` (bytes), ``"extract"`` (files),
#: ``"decode train"`` (images); ``total`` is 0 when unknown.
Progress = Callable[[str, int, int], None]


class DatasetError(ValueError):
    """A missing, incomplete or corrupt dataset. The message says what is wrong and how to fix it."""


PREPARE_HINT = ("run `python -m cnnviz data prepare --source download` (or `--source PATH` with a local "
                "tiny-imagenet-200.zip or extracted folder)")


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


# ------------------------------------------------------------------------------------------- download


def _hash_file(path: Path, algos: tuple[str, ...] = ("md5",), progress: Progress | None = None) -> dict[str, str]:
    hashes = {a: hashlib.new(a) for a in algos}
    total, done = path.stat().st_size, 0
    with path.open("rb") as f:
        while chunk := f.read(4 << 20):
            for h in hashes.values():
                h.update(chunk)
            done += len(chunk)
            if progress:
                progress("verify", done, total)
    return {a: h.hexdigest() for a, h in hashes.items()}


def download(url: str = OFFICIAL_URL, dest: str | Path | None = None, md5: str | None = OFFICIAL_MD5,
             progress: Progress | None = None, retries: int = 3, timeout: float = 60.0,
             chunk_size: int = 1 << 20) -> Path:
    """Download ``url`` to ``dest`` (default ``data_dir()/tiny-imagenet-200.zip``), resumably, and verify it.

    Bytes go to ``dest + ".part"``; an interrupted download (a cut connection, a kill) resumes from there with
    an HTTP ``Range`` request, automatically up to ``retries`` times and again on the next call. When the
    server ignores ``Range`` the download restarts from zero. ``dest`` appears only once the md5 matches; a
    mismatch deletes the bad file and raises :class:`DatasetError`. ``progress("download", bytes, total)``.
    """
    dest = Path(dest) if dest is not None else paths.data_dir() / ZIP_NAME
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.with_name(dest.name + ".lock"), "a") as lock:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory lock; two downloads at once are not guarded
            fcntl = None
        if fcntl is not None:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise DatasetError(f"another process is already downloading to {dest}; wait for it to finish "
                                   f"(or stop it) and run the command again") from None
        return _download_locked(url, dest, md5, progress, retries, timeout, chunk_size)


def _download_locked(url: str, dest: Path, md5: str | None, progress: Progress | None, retries: int,
                     timeout: float, chunk_size: int) -> Path:
    if dest.is_file():
        if md5 is None or _hash_file(dest, ("md5",))["md5"] == md5:
            return dest
        dest.replace(dest.with_name(dest.name + ".bad"))  # keep it for inspection, never trust it
    part = dest.with_name(dest.name + ".part")
    attempt, total, last_error = 0, 0, ""
    while True:
        offset = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(url, headers={"User-Agent": "cnnviz"})
        if offset:
            request.add_header("Range", f"bytes={offset}-")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                if offset and resp.status == 206:
                    m = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", resp.headers.get("Content-Range", ""))
                    if not m or int(m.group(1)) != offset:
                        raise DatasetError(f"the server at {url} answered a resume request with the wrong "
                                           f"range; delete {part} and try again")
                    total = int(m.group(3)) if m.group(3) != "*" else 0
                    mode = "ab"
                else:  # 200: the whole file (the server ignores Range, or nothing to resume)
                    offset, mode = 0, "wb"
                    total = int(resp.headers.get("Content-Length") or 0)
                done = offset
                with part.open(mode) as f:
                    while True:
                        chunk = resp.read(chunk_size)
                        if not chunk:
                            break
                        f.write(chunk)
                        done += len(chunk)
                        if progress:
                            progress("download", done, total)
                if total and done < total:
                    raise http.client.IncompleteRead(b"", total - done)
                break
        except urllib.error.HTTPError as e:
            if e.code == 416 and offset:  # range not satisfiable: the .part already holds everything
                break
            raise DatasetError(f"downloading {url} failed: HTTP {e.code} {e.reason}. Download the zip by hand "
                               f"and run `python -m cnnviz data prepare --source PATH_TO_ZIP`") from None
        except (TimeoutError, urllib.error.URLError, http.client.HTTPException, ConnectionError, OSError) as e:
            have = part.stat().st_size if part.exists() else 0
            last_error = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
            attempt += 1
            if attempt > retries:
                if have == 0:
                    part.unlink(missing_ok=True)
                    raise DatasetError(f"could not download {url} ({last_error}); check the network connection, "
                                       f"or download the zip by hand and run `python -m cnnviz data prepare "
                                       f"--source PATH_TO_ZIP`") from None
                of = f" of {total / 1e6:.1f} MB" if total else ""
                raise DatasetError(f"the download of {url} was interrupted at {have / 1e6:.1f} MB{of} "
                                   f"({last_error}); the partial file {part} is kept: run the same command "
                                   f"again to resume") from None
            time.sleep(min(1.0 * attempt, 5.0) if not os.environ.get("CNNVIZ_FAST_RETRY") else 0.05)
    if md5 is not None:
        got = _hash_file(part, ("md5",), progress)["md5"]
        if got != md5:
            size = part.stat().st_size
            part.unlink()
            raise DatasetError(f"checksum mismatch for {url}: md5 {got} ({size:,} bytes), expected {md5}. The "
                               f"damaged download was deleted; run the command again, or download the zip by "
                               f"hand and use `--source PATH_TO_ZIP`")
    os.replace(part, dest)
    return dest


# ------------------------------------------------------------------------------------------ zip files


def open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise DatasetError(f"{path} is not a readable zip ({e}); it may be a partial download: delete it "
                           f"and {PREPARE_HINT}") from None
    except FileNotFoundError:
        raise DatasetError(f"{path} does not exist; {PREPARE_HINT}") from None


_INDEX: dict[tuple, dict[str, zipfile.ZipInfo]] = {}


def zip_index(path: str | Path) -> dict[str, zipfile.ZipInfo]:
    """``{member name: ZipInfo}`` of a zip, parsed once per process and file version (parsing the 110k-entry
    central directory costs about a second of CPU; prepare and the cache build both need it)."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise DatasetError(f"{path} does not exist; {PREPARE_HINT}") from None
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _INDEX:
        with open_zip(path) as zf:
            _INDEX.clear()  # one zip at a time is plenty
            _INDEX[key] = {i.filename: i for i in zf.infolist()}
    return _INDEX[key]


_FDS: dict[str, int] = {}  # per process: zip files opened once for os.pread


def release_zip_state() -> None:
    """Forget parsed zip directories and close the zip file descriptors (a long-lived server calls prepare
    rarely; the index of 110k entries is tens of MB)."""
    _INDEX.clear()
    while _FDS:
        with contextlib.suppress(OSError):
            os.close(_FDS.popitem()[1])


def read_member(path: str, offset: int, csize: int, ctype: int, crc: int, name: str) -> bytes:
    """A zip member's bytes from its central-directory entry (``header_offset``, ``compress_size``,
    ``compress_type``, ``CRC``) with ``os.pread``: no ZipFile needed in worker processes, and no file offset
    shared between forked processes. The CRC is checked."""
    fd = _FDS.get(path)
    if fd is None:
        fd = _FDS[path] = os.open(path, os.O_RDONLY)
    header = os.pread(fd, 30, offset)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise DatasetError(f"{name}: bad local header in {path}; the zip is damaged: {PREPARE_HINT}")
    start = offset + 30 + int.from_bytes(header[26:28], "little") + int.from_bytes(header[28:30], "little")
    raw = os.pread(fd, csize, start)
    if ctype == zipfile.ZIP_DEFLATED:
        try:
            data = zlib.decompress(raw, -15)
        except zlib.error as e:
            raise DatasetError(f"{name} is corrupt in {path} ({e}); the zip is damaged: {PREPARE_HINT}") from None
    elif ctype == zipfile.ZIP_STORED:
        data = raw
    else:
        raise DatasetError(f"{name} uses zip compression method {ctype}; extract the zip and use "
                           f"--source FOLDER")
    if zlib.crc32(data) != crc:
        raise DatasetError(f"{name} fails its CRC check in {path}; the zip is damaged: {PREPARE_HINT}")
    return data


def check_member_name(name: str) -> str:
    """``name`` as a safe relative path, or :class:`DatasetError` for path traversal (zip-slip): absolute
    paths, drive letters, ``..`` components (with either slash), NUL bytes. A string check: no file system
    calls, so checking all 110k entries takes milliseconds."""
    parts = re.split(r"[/\\]", name)
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts or "\x00" in name:
        raise DatasetError(f"the zip has an unsafe entry {name!r} (it would be written outside the target "
                           f"folder); refusing to extract it. Use the official tiny-imagenet-200.zip")
    return "/".join(p for p in parts if p not in ("", "."))


def safe_member_path(dest: Path, name: str) -> Path:
    """Where zip member ``name`` may be written under ``dest``; refuses path traversal (zip-slip)."""
    rel = check_member_name(name)
    base = os.path.abspath(dest)
    target = os.path.normpath(os.path.join(base, rel))
    if os.path.commonpath([base, target]) != base:  # belt and braces after the string check
        raise DatasetError(f"the zip entry {name!r} points outside {dest}; refusing to extract it")
    return Path(target)


def zip_prefix(names: list[str], path: Path) -> str:
    """The member prefix of the dataset in a zip (``"tiny-imagenet-200/"`` or ``""``), checking the layout."""
    candidates = sorted((n[: -len("wnids.txt")] for n in names if n.endswith("wnids.txt")
                         and (n == "wnids.txt" or n.endswith("/wnids.txt"))), key=len)
    if not candidates:
        raise DatasetError(f"{path} has no wnids.txt: it is not the Tiny ImageNet zip. {PREPARE_HINT}")
    prefix = candidates[0]
    nameset = set(names)
    missing = [f for f in ("words.txt", "val/val_annotations.txt") if prefix + f not in nameset]
    if not any(n.startswith(prefix + "train/") for n in names):
        missing.append("train/")
    if missing:
        raise DatasetError(f"{path} is incomplete: it has no {', '.join(missing)} under "
                           f"'{prefix or '(top level)'}'. The val labels live in val/val_annotations.txt, so "
                           f"this zip cannot be used; download it again: {PREPARE_HINT}")
    return prefix


def check_zip(path: str | Path) -> tuple[dict[str, zipfile.ZipInfo], str]:
    """Index a Tiny ImageNet zip, refuse unsafe entries, check the layout; returns ``(index, prefix)``."""
    path = Path(path)
    index = zip_index(path)
    for n in index:
        check_member_name(n)
    return index, zip_prefix(list(index), path)


def extract_zip(zip_path: Path, index: dict[str, zipfile.ZipInfo], prefix: str, dest: Path,
                which: Callable[[str], bool], progress: Progress | None = None) -> int:
    """Extract the members under ``prefix`` for which ``which(relative name)`` is true into ``dest``.

    Every target is checked against path traversal and symbolic links, written via a temp name and renamed, so
    an interrupted extraction never leaves a half-written file under its real name. Returns the file count.
    """
    members = [i for i in index.values() if i.filename.startswith(prefix) and not i.is_dir()
               and which(i.filename[len(prefix):])]
    for info in members:  # check everything before writing anything
        safe_member_path(dest, info.filename[len(prefix):])
        if stat.S_ISLNK(info.external_attr >> 16):
            raise DatasetError(f"the zip entry {info.filename!r} is a symbolic link; refusing to extract it")
    for k, info in enumerate(members, 1):
        target = safe_member_path(dest, info.filename[len(prefix):])
        data = read_member(str(zip_path), info.header_offset, info.compress_size, info.compress_type, info.CRC,
                           info.filename)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
        if progress and (k % 500 == 0 or k == len(members)):
            progress("extract", k, len(members))
    return len(members)


def _is_text_member(rel: str) -> bool:
    """The small files a zip-backed root needs: class list, names, val labels, train boxes."""
    return rel in ("wnids.txt", "words.txt", "val/val_annotations.txt") or (
        rel.startswith("train/") and rel.endswith("_boxes.txt") and rel.count("/") == 2)


def _is_labelled_member(rel: str) -> bool:
    return not rel.startswith("test/")  # the test split has no labels


# -------------------------------------------------------------------------------------------- prepare


def prepare(source: str | Path = "download", root: str | Path | None = None, progress: Progress | None = None,
            *, splits: Iterable[str] = SPLITS, extract_images: bool = False, url: str = OFFICIAL_URL,
            md5: str | None = OFFICIAL_MD5, workers: int | None = None) -> Path:
    """Make Tiny ImageNet ready to train on and return its dataset root (with fresh caches for ``splits``).

    ``source``:
      * ``"download"``: fetch the official zip into ``root`` (resumable, md5-verified), then as a zip;
      * a ``.zip`` path: checked (layout, no unsafe entries, the ``.sha256`` file beside it if present);
        the text files go to ``root/tiny-imagenet-200/`` and the images are decoded from the zip
        (``extract_images=True`` extracts everything there instead);
      * an extracted folder (the root or its parent): used in place, the cache goes to ``<folder>/cache``.
    ``root`` defaults to :func:`cnnviz.paths.data_dir`. Calling it again is cheap: fresh caches are kept.
    """
    from cnnviz.data.cache import ensure_cache  # cache imports this module

    root_dir = Path(root).expanduser() if root is not None else paths.data_dir()
    if isinstance(source, str) and source == "download":
        zip_path = download(url, root_dir / ZIP_NAME, md5, progress)
        dataset_root = _prepare_zip(zip_path, root_dir, progress, extract_images, official=md5 == OFFICIAL_MD5)
    else:
        src = Path(source).expanduser()
        if src.is_file():
            dataset_root = _prepare_zip(src.resolve(), root_dir, progress, extract_images, official=False)
        elif src.is_dir():
            found = find_dataset(src)
            if found is None:
                raise DatasetError(f"{src} is not an extracted Tiny ImageNet folder (no wnids.txt, words.txt, "
                                   f"train/ and val/val_annotations.txt in it or in {src / DIRNAME}); "
                                   f"{PREPARE_HINT}")
            dataset_root = found
        else:
            raise DatasetError(f"{src} does not exist; {PREPARE_HINT}")
    try:
        for split in splits:
            ensure_cache(dataset_root, split, progress=progress, workers=workers)
    finally:
        release_zip_state()
    return dataset_root


def _prepare_zip(zip_path: Path, root_dir: Path, progress: Progress | None, extract_images: bool,
                 official: bool) -> Path:
    zip_path = zip_path.resolve()  # source.json must stay valid from any working directory
    index, prefix = check_zip(zip_path)
    dataset_root = root_dir / DIRNAME
    st = zip_path.stat()
    old = read_json(dataset_root / SOURCE_FILE) if (dataset_root / SOURCE_FILE).is_file() else {}
    if (old.get("zip") == str(zip_path) and old.get("size") == st.st_size
            and old.get("mtime_ns") == st.st_mtime_ns and old.get("sha256")):
        sha256, official = old["sha256"], official or bool(old.get("official"))
    else:
        hashes = _hash_file(zip_path, ("sha256", "md5"), progress)
        sha256, official = hashes["sha256"], official or hashes["md5"] == OFFICIAL_MD5
        sidecar = zip_path.with_name(zip_path.name + ".sha256")
        if sidecar.is_file():
            words = sidecar.read_text().split()
            expected = words[0].lower() if words else ""
            if expected and expected != sha256:
                raise DatasetError(f"{zip_path} does not match the checksum in {sidecar} (sha256 {sha256}, "
                                   f"expected {expected}): the copy is damaged; copy it again or "
                                   f"{PREPARE_HINT}")
    dataset_root.mkdir(parents=True, exist_ok=True)
    if extract_images:
        extract_zip(zip_path, index, prefix, dataset_root, _is_labelled_member, progress)
        (dataset_root / SOURCE_FILE).unlink(missing_ok=True)  # the folder is the source now
    else:
        extract_zip(zip_path, index, prefix, dataset_root, _is_text_member, progress)
        atomic_write_json(dataset_root / SOURCE_FILE, {
            "kind": "zip", "zip": str(zip_path), "prefix": prefix, "size": st.st_size,
            "mtime_ns": st.st_mtime_ns, "sha256": sha256, "official": official,
            "note": "images are decoded straight from this zip; see cnnviz/data/tinyimagenet.py"})
    return dataset_root
