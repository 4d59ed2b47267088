"""Make a dataset ready to train on: :func:`prepare` (download or a local zip or folder, then fresh caches),
and :func:`resolve_data`, which turns a training config's ``data`` spec into a dataset root."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from cnnviz import paths
from cnnviz.data.cache import ensure_cache, file_lock
from cnnviz.data.download import OFFICIAL_MD5, OFFICIAL_URL, ZIP_NAME, download, hash_file
from cnnviz.data.errors import PREPARE_HINT, DatasetError, Progress
from cnnviz.data.layout import DIRNAME, SOURCE_FILE, SPLITS, find_dataset
from cnnviz.data.synthetic import make_synthetic
from cnnviz.data.zipsource import check_zip, extract_zip, release_zip_state
from cnnviz.fsutil import atomic_write_json, read_json


def _is_text_member(rel: str) -> bool:
    """The small files a zip-backed root needs: class list, names, val labels, train boxes."""
    return rel in ("wnids.txt", "words.txt", "val/val_annotations.txt") or (
        rel.startswith("train/") and rel.endswith("_boxes.txt") and rel.count("/") == 2)


def _is_labelled_member(rel: str) -> bool:
    return not rel.startswith("test/")  # the test split has no labels


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
        hashes = hash_file(zip_path, ("sha256", "md5"), progress)
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
            "note": "images are decoded straight from this zip; see cnnviz/data/prepare.py"})
    return dataset_root


# ---------------------------------------------------------------------------------- a training config's data
def synthetic_root() -> Path:
    """The cached synthetic dataset (generated once under ``data_dir()/synthetic``; safe against two workers
    generating it at the same time)."""
    root = paths.data_dir() / "synthetic"
    with file_lock(paths.data_dir() / ".synthetic.lock"):
        # synthetic.json is written last: without it the folder is a generation cut short; start again.
        if not (root / "synthetic.json").exists():
            if root.exists():
                shutil.rmtree(root)
            make_synthetic(root)
        found = find_dataset(root)
    if found is None:
        raise DatasetError(f"the synthetic dataset in {root} is incomplete; delete that folder and retry")
    return Path(found)


def check_data(spec: str | None) -> None:
    """The cheap part of :func:`resolve_data` (no decoding, no preparing): :class:`DatasetError` when ``spec``
    names nothing on this machine, "auto" without a Tiny ImageNet or a path that does not exist. ``train`` calls
    it before a run folder exists (a run that can only fail stayed in `runs list`)."""
    spec = (spec or "auto").strip()
    if spec == "auto" and find_dataset(None) is None:
        raise DatasetError("Tiny ImageNet was not found: run `python -m cnnviz data prepare --source "
                           "download` (or --source PATH to a zip), or train on the synthetic set "
                           "(--data synthetic)")
    if spec not in ("auto", "synthetic") and not Path(spec).expanduser().exists():
        raise DatasetError(f"the dataset path {Path(spec).expanduser()} does not exist")


def resolve_data(spec: str | None) -> Path:
    """A Tiny-ImageNet-layout root for ``auto`` / ``synthetic`` / a folder or zip; :class:`DatasetError` with
    the fix otherwise."""
    check_data(spec)
    spec = (spec or "auto").strip()
    if spec == "synthetic":
        return synthetic_root()
    if spec == "auto":
        return Path(find_dataset(None))
    path = Path(spec).expanduser()
    root = find_dataset(path)
    if root is None and path.is_file():
        root = prepare(path)
    if root is None:
        raise DatasetError(f"no Tiny ImageNet found in {path} (expected wnids.txt, train/ and val/); "
                           "run `python -m cnnviz data prepare --source PATH` first")
    return Path(root)
