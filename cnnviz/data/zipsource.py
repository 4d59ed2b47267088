"""Tiny ImageNet's zip: index it once, read members straight from it (no ZipFile in worker processes), check
it (layout, zip-slip, symbolic links) and extract members safely.

The cache builder (:mod:`cnnviz.data.cache`) decodes the JPEGs straight from the zip through
:func:`read_member`, so the 110,000 images never hit the disk; :mod:`cnnviz.data.prepare` extracts only the
small text files (or everything, with ``extract_images``).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

from cnnviz.data.errors import PREPARE_HINT, DatasetError, Progress


def open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise DatasetError(f"{path} is not a readable zip ({e}); if it is a partial download, delete it "
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
