"""Tiny ImageNet for cnnviz: locate / download / verify / extract, a uint8 cache, and a batched GPU pipeline.

    root = prepare("download")                      # or prepare("/path/tiny-imagenet-200.zip"), or a folder
    train = load_split(root, "train")               # Split: memory-mapped uint8 N x 64 x 64 x 3 + labels
    batches = BatchPipeline.from_split(train, 256, "cuda", augment="crop_flip")
    for epoch in range(epochs):
        batches.set_epoch(epoch)
        for x, y in batches: ...

``make_synthetic(folder)`` writes a small dataset in the same layout for tests and CPU demos;
``resolve_data(spec)`` turns a training config's ``data`` ("auto", "synthetic", a folder or zip) into a root.

Modules, each importing only those above it: ``errors.py`` (DatasetError, the fix it names), ``zipsource.py``
(read and extract the zip), ``layout.py`` (find a dataset root, read its labels, list a split),
``download.py`` (the official zip), ``cache.py`` (the uint8 cache), ``synthetic.py``, ``prepare.py`` (make a
dataset ready; resolve a config's data spec), ``job.py`` (``prepare`` as a detached background process, for
the pages) and ``pipeline.py`` (batches, augmentation, DDP).
"""

from cnnviz.data.cache import (
    FORMAT_VERSION,
    CacheStatus,
    Split,
    build_cache,
    cache_status,
    ensure_cache,
    load_split,
)
from cnnviz.data.download import OFFICIAL_MD5, OFFICIAL_URL, download
from cnnviz.data.errors import DatasetError, Progress
from cnnviz.data.layout import DIRNAME, find_dataset, is_dataset_root, read_source, read_wnids
from cnnviz.data.pipeline import BatchPipeline
from cnnviz.data.prepare import check_data, prepare, resolve_data, synthetic_root
from cnnviz.data.synthetic import make_synthetic, synthetic_classes

__all__ = [
    "DIRNAME", "FORMAT_VERSION", "OFFICIAL_MD5", "OFFICIAL_URL", "BatchPipeline", "CacheStatus", "DatasetError",
    "Progress", "check_data", "Split", "build_cache", "cache_status", "download", "ensure_cache", "find_dataset",
    "is_dataset_root", "load_split", "make_synthetic", "prepare", "read_source", "read_wnids", "resolve_data",
    "synthetic_classes", "synthetic_root",
]
