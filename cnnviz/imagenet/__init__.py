"""Real ImageNet networks: torchvision's ImageNet weights in *our* models, where the architecture is the same.

::

    from cnnviz import imagenet
    imagenet.ENTRIES                       # what matches: VGG-11..19 (+BN), ResNet-18..152 (+ V2 weights)
    imagenet.fetch("vgg16")                # torch.hub's download into torch.hub's cache (time-limited)
    ckpt = imagenet.load_entry("vgg16")    # a cnnviz Checkpoint: our VGG-16, torchvision's weights
    imagenet.cached_infos()                # catalog entries ("imagenet/vgg16") for the files in the cache

Modules: :mod:`~cnnviz.imagenet.entries` (the catalog and why AlexNet and GoogLeNet are not in it),
:mod:`~cnnviz.imagenet.weights` (cache, strict loading, metadata), :mod:`~cnnviz.imagenet.download` (fetch
with time limits), :mod:`~cnnviz.imagenet.tiny_classes` (WordNet ids of the outputs Tiny ImageNet shares).
The weights are torchvision's and carry their own license terms (:data:`LICENSE_URL`).
"""

from cnnviz.imagenet.download import FetchError, cached_file_ok, fetch
from cnnviz.imagenet.entries import (
    ENTRIES,
    LICENSE_URL,
    NOT_MATCHING,
    PREFIX,
    ImageNetEntry,
    card_note,
    entry_for_file,
    get_entry,
)
from cnnviz.imagenet.weights import (
    WeightsNotCached,
    about,
    cache_dir,
    cached_file,
    cached_infos,
    imagenet_meta,
    is_imagenet_file,
    load_entry,
    load_imagenet_file,
    missing_entries,
    missing_message,
)

__all__ = ["ENTRIES", "LICENSE_URL", "NOT_MATCHING", "PREFIX", "FetchError", "cached_file_ok", "ImageNetEntry", "WeightsNotCached",
           "about", "cache_dir", "cached_file", "cached_infos", "card_note", "entry_for_file", "fetch", "get_entry",
           "imagenet_meta", "is_imagenet_file", "load_entry", "load_imagenet_file", "missing_entries", "missing_message"]
