"""Decode a split once into a uint8 cache; check it is fresh; memory-map it back.

Files, in ``<dataset root>/cache/``::

    <split>_images.npy     uint8  N x 64 x 64 x 3 (RGB; grayscale and other modes converted)
    <split>_labels.npy     int64  N, index into wnids.txt
    <split>_manifest.json  format version, counts, class list, source fingerprint, pixel statistics, file sizes

The manifest is written last and atomically, and deleted first when a rebuild starts, so a cache without a
manifest is partial by definition. A cache is used only when its manifest has this module's
:data:`FORMAT_VERSION`, the same class list, the same source fingerprint (zip size + mtime, or the folder's
file count/size/newest mtime, plus the label files' hash) and array files of exactly the recorded size;
otherwise it is rebuilt (or, when the source is gone, a :class:`DatasetError` says what to do).

Decoding 110,000 small JPEGs is CPU-bound: a process pool decodes chunks (:mod:`cnnviz.data.decode`) and writes
them straight into the memory-mapped output file (no pickling of pixels), reading the JPEG bytes from the zip
or the folder. Worker processes are forked on Linux when the caller has no other threads (no torch re-import),
spawned otherwise.
The big ``.npy`` files are not fsynced: a killed process leaves no manifest, and a power cut is rare enough.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnviz.data.decode import SIZE, decode_chunk, default_workers, pool_context
from cnnviz.data.errors import PREPARE_HINT, DatasetError, Progress
from cnnviz.data.layout import (
    SPLITS,
    TINY_IMAGENET_MEAN,
    TINY_IMAGENET_STD,
    find_dataset,
    list_split,
    read_source,
    read_wnids,
    read_words,
    source_fingerprint,
)
from cnnviz.data.zipsource import release_zip_state, zip_index
from cnnviz.fsutil import atomic_write_json, read_json

FORMAT_VERSION = 1
CACHE_DIR = "cache"
POOL_THRESHOLD = 4000  # below this many images, decoding in-process beats starting workers
CHUNK = 1024


@dataclass
class Split:
    """One split, memory-mapped from the cache. ``images[i]`` is a 64 x 64 x 3 uint8 RGB image, ``labels[i]``
    its class index into ``wnids``; ``mean``/``std`` are the train split's per-channel statistics in [0, 1]."""

    images: np.ndarray
    labels: np.ndarray
    wnids: list[str]
    class_names: list[str]
    mean: tuple
    std: tuple
    class_descriptions: list[str] = field(default_factory=list)  # the full words.txt strings
    split: str = ""
    root: Path | None = None
    manifest: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(len(self.labels))

    @property
    def num_classes(self) -> int:
        return len(self.wnids)


@dataclass
class CacheStatus:
    fresh: bool
    reason: str  # why it is not fresh ("" when fresh)
    manifest: dict | None


def cache_paths(root: Path, split: str) -> tuple[Path, Path, Path]:
    d = Path(root) / CACHE_DIR
    return d / f"{split}_images.npy", d / f"{split}_labels.npy", d / f"{split}_manifest.json"


def _npy_size(shape: tuple[int, ...], dtype: str, path: Path) -> int | None:
    """Expected file size of a .npy from its header (None when the header is unreadable)."""
    try:
        with path.open("rb") as f:
            version = np.lib.format.read_magic(f)
            hdr_shape, _, hdr_dtype = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                                       else np.lib.format.read_array_header_2_0(f))
            if tuple(hdr_shape) != tuple(shape) or hdr_dtype != np.dtype(dtype):
                return None
            return f.tell() + math.prod(shape) * np.dtype(dtype).itemsize
    except (OSError, ValueError):
        return None


def cache_status(root: Path, split: str, check_source: bool = True) -> CacheStatus:
    """Whether the cache of ``split`` can be used as it is, and if not, why (for logs and ``data info``)."""
    root = Path(root)
    images_path, labels_path, manifest_path = cache_paths(root, split)
    if not manifest_path.is_file():
        partial = images_path.exists() or any((root / CACHE_DIR).glob(f".{split}_*.tmp*"))
        return CacheStatus(False, "partial cache (no manifest)" if partial else "not built yet", None)
    try:
        m = read_json(manifest_path)
    except (OSError, ValueError) as e:
        return CacheStatus(False, f"unreadable manifest ({e})", None)
    version = m.get("format_version") if isinstance(m, dict) else None
    if version != FORMAT_VERSION:
        return CacheStatus(False, f"cache format v{version} (this cnnviz reads v{FORMAT_VERSION})", m)
    try:
        wnids = read_wnids(root)
    except DatasetError as e:
        return CacheStatus(False, str(e), m)
    if m.get("wnids") != wnids:
        return CacheStatus(False, "the class list (wnids.txt) changed", m)
    n = int(m.get("count", -1))
    for path, shape, dtype in ((images_path, (n, SIZE, SIZE, 3), "uint8"), (labels_path, (n,), "int64")):
        expected = _npy_size(shape, dtype, path) if path.is_file() else None
        if expected is None or path.stat().st_size != expected:
            return CacheStatus(False, f"{path.name} is missing, truncated or of the wrong shape", m)
    if check_source:
        try:
            source = read_source(root)
            current = source_fingerprint(root, split, source)
        except (OSError, DatasetError) as e:
            return CacheStatus(True, f"source unavailable, cache used as it is ({e})", m)
        if current != m.get("source"):
            changed = sorted(k for k in set(current) | set(m.get("source") or {})
                             if current.get(k) != (m.get("source") or {}).get(k))
            return CacheStatus(False, f"the source changed ({', '.join(changed)})", m)
    return CacheStatus(True, "", m)


@contextlib.contextmanager
def file_lock(path: Path):
    """Hold an exclusive ``flock`` on ``path`` (created) for the block: one builder at a time, across processes
    (a page and a training worker may both ask for the same cache or the synthetic set)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with Path(path).open("a") as f:
        try:
            import fcntl  # not at the top: Windows has no fcntl, and there builds are simply not guarded
        except ImportError:
            yield
            return
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def build_cache(root: Path, split: str, progress: Progress | None = None, workers: int | None = None) -> dict:
    """Decode ``split`` of the dataset at ``root`` into the cache (unconditionally) and return its manifest."""
    root = Path(root)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    t0 = time.perf_counter()
    wnids = read_wnids(root)
    short, full = read_words(root, wnids)
    source = read_source(root)
    if source.kind == "zip":
        infos = zip_index(source.path)
        names, labels = list_split(root, split, wnids, source, zip_names=infos)
        items: list = [(rel, infos[source.prefix + rel].header_offset, infos[source.prefix + rel].compress_size,
                        infos[source.prefix + rel].compress_type, infos[source.prefix + rel].CRC) for rel in names]
    else:
        names, labels = list_split(root, split, wnids, source)
        items = names
    fingerprint = source_fingerprint(root, split, source, names)
    images_path, labels_path, manifest_path = cache_paths(root, split)
    images_path.parent.mkdir(parents=True, exist_ok=True)
    manifest_path.unlink(missing_ok=True)  # from here on the cache is partial until the new manifest lands
    tmp_images = images_path.with_name(f".{split}_images.tmp.npy")
    tmp_labels = labels_path.with_name(f".{split}_labels.tmp.npy")
    n = len(names)
    out = np.lib.format.open_memmap(tmp_images, mode="w+", dtype=np.uint8, shape=(n, SIZE, SIZE, 3))
    del out
    src_args = (source.kind, str(source.path))
    workers = default_workers() if workers is None else max(1, workers)
    chunk = max(256, min(CHUNK, math.ceil(n / (workers * 4))))
    tasks = [(*src_args, items[i:i + chunk], str(tmp_images), i) for i in range(0, n, chunk)]
    stage = f"decode {split}"
    hist = np.zeros((3, 256), dtype=np.int64)
    modes: dict[str, int] = {}
    done = 0
    if progress:
        progress(stage, 0, n)

    def _collect(r: dict) -> None:
        nonlocal done, hist
        hist += r["hist"]
        for k, v in r["modes"].items():
            modes[k] = modes.get(k, 0) + v
        done += r["n"]
        if progress:
            progress(stage, done, n)

    try:
        if workers == 1 or n < POOL_THRESHOLD:
            for t in tasks:
                _collect(decode_chunk(*t))
        else:
            with ProcessPoolExecutor(max_workers=workers, mp_context=pool_context()) as pool:
                futures = [pool.submit(decode_chunk, *t) for t in tasks]
                try:
                    for fut in as_completed(futures):
                        _collect(fut.result())
                except BaseException:
                    for fut in futures:
                        fut.cancel()
                    raise
        np.save(tmp_labels, labels)
    except BaseException:
        tmp_images.unlink(missing_ok=True)
        tmp_labels.unlink(missing_ok=True)
        raise
    os.replace(tmp_images, images_path)
    os.replace(tmp_labels, labels_path)
    values = np.arange(256, dtype=np.float64) / 255.0
    count = hist.sum(axis=1).astype(np.float64)
    mean = (hist * values).sum(axis=1) / np.maximum(count, 1)
    var = (hist * values**2).sum(axis=1) / np.maximum(count, 1) - mean**2
    std = np.sqrt(np.maximum(var, 0))
    manifest = {
        "format_version": FORMAT_VERSION,
        "split": split,
        "count": n,
        "shape": [n, SIZE, SIZE, 3],
        "num_classes": len(wnids),
        "per_class": np.bincount(labels, minlength=len(wnids)).tolist(),
        "wnids": wnids,
        "class_names": short,
        "class_descriptions": full,
        "source": fingerprint,
        "modes": modes,  # original image modes, e.g. {"RGB": 98281, "L": 1719}
        "pixel_mean": [round(float(v), 6) for v in mean],
        "pixel_std": [round(float(v), 6) for v in std],
        "images_file_bytes": images_path.stat().st_size,
        "labels_file_bytes": labels_path.stat().st_size,
        "build_seconds": round(time.perf_counter() - t0, 2),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "workers": workers if n >= POOL_THRESHOLD else 1,
    }
    atomic_write_json(manifest_path, manifest)  # last: its presence means the cache is complete
    return manifest


def ensure_cache(root: Path, split: str, progress: Progress | None = None, workers: int | None = None) -> dict:
    """The manifest of a fresh cache of ``split``, building (or rebuilding) it first when needed."""
    root = Path(root)
    status = cache_status(root, split)
    if status.fresh:
        return status.manifest
    with file_lock(Path(root) / CACHE_DIR / ".lock"):
        status = cache_status(root, split)  # another process may have built it while we waited
        if status.fresh:
            return status.manifest
        try:
            source = read_source(root)
            if source.kind == "zip" and not source.path.is_file():
                raise FileNotFoundError(source.path)
        except (DatasetError, FileNotFoundError) as e:
            raise DatasetError(f"the {split} cache in {root / CACHE_DIR} cannot be used ({status.reason}) and its "
                               f"source cannot be read ({e}); {PREPARE_HINT}") from None
        return build_cache(root, split, progress=progress, workers=workers)


def _train_stats(root: Path, wnids: list[str], this: dict) -> tuple[tuple, tuple, str]:
    """The train split's mean/std for normalising any split: from the train manifest when it is there."""
    if this.get("split") == "train":
        return tuple(this["pixel_mean"]), tuple(this["pixel_std"]), "train"
    _, _, train_manifest = cache_paths(root, "train")
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        m = read_json(train_manifest)
        if m.get("format_version") == FORMAT_VERSION and m.get("wnids") == wnids:
            return tuple(m["pixel_mean"]), tuple(m["pixel_std"]), "train"
    if len(wnids) == 200 and all(w.startswith("n") for w in wnids):
        return TINY_IMAGENET_MEAN, TINY_IMAGENET_STD, "published Tiny ImageNet train statistics"
    return tuple(this["pixel_mean"]), tuple(this["pixel_std"]), f"{this.get('split')} split (no train cache)"


def load_split(root: str | Path, split: str = "train", progress: Progress | None = None,
               workers: int | None = None) -> Split:
    """The cached ``split`` of the dataset at ``root`` (a dataset root or a folder holding one), memory-mapped.

    Builds the cache first when it is missing, partial, stale or of an older format (``progress`` then gets
    ``("decode <split>", done, total)``). Raises :class:`DatasetError` when there is no usable dataset.
    """
    given = Path(root).expanduser()
    found = find_dataset(given)
    if found is None:
        raise DatasetError(f"no Tiny ImageNet dataset at {given} (expected wnids.txt, words.txt, train/ and "
                           f"val/val_annotations.txt there or in {given / 'tiny-imagenet-200'}); {PREPARE_HINT}")
    try:
        manifest = ensure_cache(found, split, progress=progress, workers=workers)
    finally:
        release_zip_state()
    images_path, labels_path, _ = cache_paths(found, split)
    try:
        images = np.load(images_path, mmap_mode="r")
        labels = np.load(labels_path, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise DatasetError(f"the {split} cache in {found / CACHE_DIR} cannot be read ({e}); delete that folder "
                           f"and {PREPARE_HINT}") from None
    mean, std, stats_from = _train_stats(found, manifest["wnids"], manifest)
    manifest = {**manifest, "stats_from": stats_from}
    return Split(images=images, labels=labels, wnids=list(manifest["wnids"]),
                 class_names=list(manifest["class_names"]), mean=tuple(mean), std=tuple(std),
                 class_descriptions=list(manifest.get("class_descriptions", [])), split=split, root=found,
                 manifest=manifest)
