"""Tiny ImageNet for cnnviz: locate / download / verify / extract, a uint8 cache, and a batched GPU pipeline.

    root = prepare("download")                      # or prepare("/path/tiny-imagenet-200.zip"), or a folder
    train = load_split(root, "train")               # Split: memory-mapped uint8 N x 64 x 64 x 3 + labels
    batches = BatchPipeline.from_split(train, 256, "cuda", augment="crop_flip")
    for epoch in range(epochs):
        batches.set_epoch(epoch)
        for x, y in batches: ...

``make_synthetic(folder)`` writes a small dataset in the same layout for tests and CPU demos. See
``tinyimagenet.py`` (layout, sources), ``cache.py`` (cache format) and ``pipeline.py`` (augmentation, DDP).
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
from cnnviz.data.pipeline import BatchPipeline
from cnnviz.data.synthetic import make_synthetic, synthetic_classes
from cnnviz.data.layout import (
    DIRNAME,
    OFFICIAL_MD5,
    OFFICIAL_URL,
    DatasetError,
    Progress,
    download,
    find_dataset,
    is_dataset_root,
    prepare,
    read_source,
)

__all__ = [
    "DIRNAME", "FORMAT_VERSION", "OFFICIAL_MD5", "OFFICIAL_URL", "BatchPipeline", "CacheStatus", "DatasetError",
    "Progress", "Split", "build_cache", "cache_status", "download", "ensure_cache", "find_dataset",
    "is_dataset_root", "load_split", "make_synthetic", "prepare", "read_source", "synthetic_classes",
]
