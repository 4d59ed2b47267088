"""torchvision's ImageNet weights from torch.hub's cache into our models: strict, tensors only.

::

    ckpt = load_entry("vgg16")            # Checkpoint(model, meta, path) like cnnviz.checkpoint's
    ckpt = load_imagenet_file(path)       # the same, for a file in the cache (what the catalog lists)

The weights live where torchvision itself keeps them: ``torch.hub.get_dir()/checkpoints/<file>``
(``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/hub/checkpoints``), under torchvision's own file
names, so a file torchvision downloaded is used as it is, and one we fetch (:mod:`cnnviz.imagenet.download`)
serves torchvision too. Files are read with ``torch.load(weights_only=True)``: tensors only, never a pickle.

Loading is strict. torchvision's parameter names are mapped to ours (:data:`RENAMES`), then every name and
every shape must match our model's: nothing missing, nothing left over, no partial load. The one exception is
BatchNorm's ``num_batches_tracked`` counter, which older torchvision files lack and evaluation never reads.

The metadata (:func:`imagenet_meta`) comes from the weight enum: the 1000 class names, the preprocessing
(resize the shorter side to 256, or 232 for the IMAGENET1K_V2 ResNets, centre crop 224, ImageNet mean/std,
bilinear), and torchvision's reported accuracy. Class ids: :mod:`cnnviz.imagenet.tiny_classes`.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import torch

from cnnviz import __version__
from cnnviz.checkpoint import Checkpoint, CheckpointError, CheckpointMeta, CheckpointVersion
from cnnviz.imagenet.entries import ENTRIES, LICENSE_URL, ImageNetEntry, entry_for_file, get_entry
from cnnviz.imagenet.tiny_classes import class_ids

FORMAT = "cnnviz-imagenet/1"

# torchvision's parameter name -> ours, per family, as (regex, replacement) pairs applied in order. Empty:
# where the structure is the same our modules carry torchvision's names (VGG: features.<i>, classifier.<i>
# with the same indices; ResNet: conv1, bn1, layer<s>.<b>.conv<k>/bn<k>, downsample.0/1, fc). Our extra ReLU
# modules (relu1, relu2 ...) and torchvision's AdaptiveAvgPool2d have no parameters. The map is still applied
# and checked, so a renamed module shows up as a refused load, not as a silently skipped tensor.
RENAMES: dict[str, tuple[tuple[str, str], ...]] = {"vgg": (), "resnet": ()}
OPTIONAL_BUFFER = "num_batches_tracked"


class WeightsNotCached(CheckpointError):
    """The entry's file is not in torch.hub's cache; the message says how to get it there."""


def cache_dir() -> Path:
    """torch.hub's folder for downloaded weights (follows ``$TORCH_HOME`` at every call)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_file(entry: ImageNetEntry | str) -> Path:
    """Where torchvision keeps (or would keep) ``entry``'s weights."""
    entry = get_entry(entry) if isinstance(entry, str) else entry
    return cache_dir() / entry.file


def is_imagenet_file(path: str | Path) -> bool:
    """True for a ``.pth`` whose name is one of the entries' torchvision file names."""
    p = Path(path)
    return p.suffix == ".pth" and entry_for_file(p.name) is not None


def weights_url(entry: ImageNetEntry) -> str:
    from torchvision.models import get_weight

    return get_weight(entry.weights).url


def missing_message(entry: ImageNetEntry, reason: str = "") -> str:
    """One message: what is missing, where it goes, and how to put it there (with or without a network)."""
    target = cache_dir() / entry.file
    why = f" ({reason})" if reason else ""
    return (f"{entry.catalog_name}: torchvision's weights file `{entry.file}` is not in `{target.parent}`{why}. "
            f"With a network: `python -m cnnviz imagenet fetch {entry.name}` (or Predict's 'ImageNet networks' "
            f"panel). Without one: download it on another machine ({_url_or_hint(entry)}, {entry.mb} MB) and "
            f"copy it to `{target}`, or set TORCH_HOME to a folder whose `hub/checkpoints/` holds it.")


def about() -> str:
    """Where the weights come from, their license and where they are kept: one paragraph for the pages."""
    return (f"torchvision's ImageNet weights ({len(ENTRIES)} sets: VGG-11/13/16/19 with and without batch norm, "
            "ResNet-18/34/50/101/152, the deeper ResNets also with torchvision's IMAGENET1K_V2 recipe), loaded into "
            "our own models where the architecture is the same (the ResNet-50/101/152 entries build our "
            "stride_in='3x3' variant, torchvision's ResNet v1.5). They see 224x224 and name ImageNet's 1000 classes. "
            f"The weights carry their own license terms ({LICENSE_URL}). They are kept in torch.hub's cache, "
            f"`{cache_dir()}` (set TORCH_HOME to move it); without a network, copy the files there by hand.")


def missing_entries() -> list[ImageNetEntry]:
    """The entries whose file is not in the cache (the ones a user can fetch)."""
    return [e for e in ENTRIES if not cached_file(e).is_file()]


def _url_or_hint(entry: ImageNetEntry) -> str:
    try:
        return weights_url(entry)
    except Exception:  # torchvision missing or broken: the file name is enough to find it
        return f"https://download.pytorch.org/models/{entry.file}"


# ------------------------------------------------------------------------------------------- metadata
@functools.cache
def _meta(name: str) -> dict[str, Any]:
    from torchvision.models import get_weight

    from cnnviz.models import get_card

    entry = get_entry(name)
    weights = get_weight(entry.weights)
    t = weights.transforms()
    size = int(t.crop_size[0])
    if size != entry.model_args["input_size"]:
        raise CheckpointError(f"{entry.weights} crops {size}x{size}, the entry builds {entry.model_args['input_size']}")
    acc = weights.meta.get("_metrics", {}).get("ImageNet-1K", {})
    categories = [str(c) for c in weights.meta["categories"]]
    return {
        "format": FORMAT,
        "arch": entry.arch,
        "model_args": {**get_card(entry.arch).default_variant, **entry.model_args},
        "num_classes": len(categories),
        "input_size": size,
        "in_channels": 3,
        "classes": class_ids(len(categories)),
        "class_names": categories,
        "mean": [float(v) for v in t.mean],
        "std": [float(v) for v in t.std],
        "resize_size": int(t.resize_size[0]),  # cnnviz.preprocess: shorter side to this, then crop input_size
        "interpolation": str(t.interpolation.value),
        "dataset": "ImageNet",
        "metrics": {"val_top1": acc["acc@1"] / 100, "val_top5": acc["acc@5"] / 100} if acc else {},
        "metrics_note": "torchvision's reported accuracy for these weights (ImageNet-1K validation set, one "
                        f"{size}x{size} centre crop); not measured here",
        "source": {"library": "torchvision", "weights": entry.weights, "url": weights.url, "file": entry.file,
                   "recipe": weights.meta.get("recipe"), "license": LICENSE_URL},
        "epoch": None,
        "step": None,
        "train_config": {},
        "cnnviz_version": __version__,
    }


def imagenet_meta(entry: ImageNetEntry | str) -> dict[str, Any]:
    """Checkpoint metadata for ``entry`` (the keys of :func:`cnnviz.checkpoint.build_meta` plus
    ``dataset``, ``resize_size``, ``interpolation``, ``source``). Needs torchvision; memoised. Shared: do not
    mutate it."""
    return _meta((get_entry(entry) if isinstance(entry, str) else entry).name)


# ------------------------------------------------------------------------------------------- loading
def read_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a torchvision weights file, read with ``torch.load(weights_only=True)``."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # weights_only's refusal (an UnpicklingError), truncation, a foreign format ...
        # Not PyTorch's own text: it goes on to suggest weights_only=False, which would run the file's pickle.
        raise CheckpointError(f"{path.name} cannot be read as a tensors-only weights file ({type(e).__name__}: "
                              "truncated, corrupt, or it holds more than tensors); delete it and fetch it "
                              "again") from e
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                               for k, v in state.items()):
        raise CheckpointError(f"{path.name} is not a state dict (names -> tensors)")
    return dict(state)


def map_keys(entry: ImageNetEntry, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision's names -> ours (:data:`RENAMES`); two names mapping to one is an error."""
    rules = RENAMES[re.sub(r"\d.*$", "", entry.arch)]
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = key
        for pattern, repl in rules:
            new = re.sub(pattern, repl, new)
        if new in out:
            raise CheckpointError(f"{entry.file}: two tensors map to {new}")
        out[new] = value
    return out


def fit_state(entry: ImageNetEntry, state: dict[str, torch.Tensor],
              expected: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` (our names) checked against our model's ``expected`` state: the same names and shapes, or a
    :class:`CheckpointError` that lists what differs. Absent ``num_batches_tracked`` counters are taken from
    ``expected``; tensors are cast to our dtypes."""
    missing = sorted(k for k in set(expected) - set(state) if not k.endswith(OPTIONAL_BUFFER))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{entry.file} does not fit our {entry.arch} {entry.variant or ''}: {len(missing)} missing "
            f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}); nothing was loaded")
    out = {}
    for key, target in expected.items():
        value = state.get(key, target)
        if tuple(value.shape) != tuple(target.shape):
            raise CheckpointError(f"{entry.file}: {key} has shape {tuple(value.shape)}, our {entry.arch} needs "
                                  f"{tuple(target.shape)}; nothing was loaded")
        out[key] = value.to(target.dtype)
    return out


def load_entry(entry: ImageNetEntry | str, device: str | torch.device = "cpu", *,
               path: str | Path | None = None) -> Checkpoint:
    """Our model with ``entry``'s torchvision weights, in eval mode, with :func:`imagenet_meta`. Reads
    ``path`` (default: the cached file); :class:`WeightsNotCached` when the file is not there."""
    from cnnviz.models import create_model

    entry = get_entry(entry) if isinstance(entry, str) else entry
    path = Path(path) if path is not None else cached_file(entry)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder where the weights file should be: remove it and fetch again")
    if not path.is_file():
        raise WeightsNotCached(missing_message(entry))
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (an interrupted copy?): delete it and fetch it again")
    state = map_keys(entry, read_state(path))
    model = create_model(entry.arch, **entry.model_args)
    model.load_state_dict(fit_state(entry, state, model.state_dict()), strict=True)
    # Channels-last weights: oneDNN's fast path for these 224x224 networks on a CPU (VGG-16's forward about 1.3x
    # faster on the 2-core dev machine, bench/bench_imagenet.py); the values are the same tensors.
    model.eval().to(device=device, memory_format=torch.channels_last)
    return Checkpoint(model=model, meta=CheckpointMeta.of(imagenet_meta(entry)), path=path,
                      version=CheckpointVersion(str(path.resolve()), path.stat().st_mtime))


def load_imagenet_file(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """:func:`load_entry` for a file named like one of the entries' (what :func:`cached_infos` lists)."""
    entry = entry_for_file(Path(path).name)
    if entry is None:
        raise CheckpointError(f"{Path(path).name} is not one of torchvision's ImageNet files that cnnviz knows")
    return load_entry(entry, device, path=path)


def cached_infos() -> list:
    """A :class:`cnnviz.catalog.CheckpointInfo` (kind ``"imagenet"``) per entry whose file is in the cache, in
    :data:`ENTRIES` order. Without any cached file, torchvision is not even imported."""
    from cnnviz.catalog import CheckpointInfo

    out = []
    for entry in ENTRIES:
        path = cached_file(entry)
        try:
            st = path.stat()
        except OSError:
            continue
        info = CheckpointInfo(name=entry.catalog_name, arch=entry.arch, path=path, kind="imagenet", tag=entry.name,
                              mtime=st.st_mtime, size=st.st_size)
        try:
            info.meta = CheckpointMeta.of(imagenet_meta(entry))  # the record: cnnviz.checkpoint
        except Exception as e:  # torchvision missing or broken: listed as unusable, never raised
            info.error = f"torchvision cannot describe {entry.weights}: {e}"
        if info.error is None and st.st_size == 0:
            info.error = f"{path.name} is empty (an interrupted copy?)"
        out.append(info)
    return out
