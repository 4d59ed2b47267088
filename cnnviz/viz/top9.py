"""Top-9 activations per feature map over a dataset, their patches and deconvnet projections (ZF Fig. 2).

:func:`scan` runs the validation images through the network in batches, *only up to the chosen layer* (the
forward is cut with :class:`StopForward`), and keeps, per channel, the ``k`` strongest activations as
``(value, image index, y, x)``: each image counts once per channel, at its strongest unit (as in ZF's figure,
nine different images). Long scans report progress and can be cancelled; finished scans are cached on disk as
``.npz`` (no pickle), keyed by the checkpoint file (path, size, mtime), the layer and the dataset.

:func:`patches` cuts each hit's receptive field out of its image and projects the hit with the deconvnet.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import cnnviz.viz.render as render  # the module itself, not the package (whose __init__ imports this file)
from cnnviz.checkpoint import checkpoint_version
from cnnviz.viz.hooks import capture, forward_quietly, private_view

CACHE_VERSION = 1


class ScanCancelled(RuntimeError):
    """The scan was cancelled by the caller (progress callback returned False, or the event was set)."""


@dataclass
class TopK:
    """Per channel, the ``k`` strongest activations of ``layer`` over a dataset, strongest first."""

    layer: str
    values: np.ndarray  # C x k float32
    index: np.ndarray  # C x k int64, image index in the dataset (-1 where fewer than k images were seen)
    ys: np.ndarray  # C x k int64, unit row in the layer's map
    xs: np.ndarray  # C x k int64, unit column
    map_size: tuple[int, int]  # (h, w) of the layer's map
    images_seen: int

    @property
    def channels(self) -> int:
        return self.values.shape[0]

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, version=np.array(CACHE_VERSION), layer=np.array(self.layer), values=self.values,
                 index=self.index, ys=self.ys, xs=self.xs, map_size=np.array(self.map_size),
                 images_seen=np.array(self.images_seen))
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> TopK:
        with np.load(path, allow_pickle=False) as z:
            if int(z["version"]) != CACHE_VERSION:
                raise ValueError("cache written by another version")
            return cls(str(z["layer"]), z["values"], z["index"], z["ys"], z["xs"],
                       tuple(int(v) for v in z["map_size"]), int(z["images_seen"]))

    def to_csv(self) -> str:
        """``channel,rank,value,image,y,x`` rows."""
        lines = ["channel,rank,value,image,y,x"]
        for c in range(self.channels):
            for r in range(self.values.shape[1]):
                lines.append(f"{c},{r},{self.values[c, r]:.6g},{self.index[c, r]},{self.ys[c, r]},{self.xs[c, r]}")
        return "\n".join(lines) + "\n"


def preprocess_batch(images: np.ndarray, mean, std, size: int, device, channels: int = 3) -> torch.Tensor:
    """uint8 ``N x H x W x 3`` -> normalised float ``N x channels x size x size`` on ``device`` (bilinear,
    antialiased resize only when the stored size differs from the network's input). ``channels=1``: ITU-R
    601 luma, as ``cnnviz.preprocess.to_tensor_for`` does for a grayscale (paper LeNet-5) checkpoint."""
    x = torch.from_numpy(np.array(images, copy=True)).to(device).permute(0, 3, 1, 2).float().div_(255)
    if x.shape[2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    if channels == 1:
        x = (x * torch.tensor([0.299, 0.587, 0.114], device=device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    m = torch.tensor(list(mean)[:channels], dtype=x.dtype, device=device).view(1, channels, 1, 1)
    s = torch.tensor(list(std)[:channels], dtype=x.dtype, device=device).view(1, channels, 1, 1)
    return (x - m) / s


def dataset_fingerprint(images: np.ndarray) -> str:
    """A short hash of a dataset's shape and a sample of its pixels (cheap on a memory-mapped array)."""
    h = hashlib.sha256(repr((images.shape, str(images.dtype))).encode())
    step = max(1, len(images) // 64)
    h.update(np.ascontiguousarray(images[::step]).tobytes())
    return h.hexdigest()[:16]


def checkpoint_fingerprint(path: str | Path) -> str:
    """The checkpoint version's digest (:func:`cnnviz.checkpoint.checkpoint_version`: the one cache key of a
    checkpoint; it changes when a run rewrites ``best``)."""
    return checkpoint_version(path).digest


def cache_file(cache_dir: str | Path, model_key: str, layer: str, data_key: str, k: int,
               precision: str = "fp32") -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in layer)
    tag = "" if precision == "fp32" else f"_{precision}"
    return Path(cache_dir) / f"top{k}_{model_key}_{data_key}_{safe}{tag}.npz"


def _cancelled(cancel) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


def scan_copy(model: nn.Module, dtype: torch.dtype = torch.float32) -> nn.Module:
    """A private eval-mode view of ``model`` for scans: conv weights in channels-last layout, and with
    ``dtype=torch.bfloat16`` every floating-point parameter and buffer in bf16.

    The view gets its own copies of the tensors it changes (the others stay shared and are only read), so a
    model that Streamlit's cache shares between sessions is never touched. Channels-last weights spare oneDNN
    a reorder of every conv's weights on every batch; a bf16 copy spares autocast a cast of every weight on
    every batch (AlexNet's relu5 scan on the dev CPU: 65 s with autocast, 50 s with the bf16 copy).
    """
    view = private_view(model)
    for m in view.modules():
        for name, p in list(m.named_parameters(recurse=False)):
            if p.dim() != 4 and p.dtype == dtype:
                continue  # shared, read-only
            q = p.detach().to(dtype)
            if q.dim() == 4:
                q = q.contiguous(memory_format=torch.channels_last)
            setattr(m, name, nn.Parameter(q, requires_grad=False))
        for name, b in list(m.named_buffers(recurse=False)):
            if b is not None and b.is_floating_point() and b.dtype != dtype:
                setattr(m, name, b.to(dtype))
    return view


def scan(model: nn.Module, images: np.ndarray, layer: str, *, mean, std, input_size: int | None = None,
         k: int = 9, batch_size: int | None = None, precision: str = "auto",
         progress: Callable[[int, int], object] | None = None,
         cancel: threading.Event | Callable[[], bool] | None = None, cache_dir: str | Path | None = None,
         model_key: str | None = None, limit: int | None = None, channels: int = 3) -> TopK:
    """The ``k`` strongest activations per channel of ``layer`` over ``images`` (uint8 ``N x H x W x 3``).

    ``mean``/``std``/``input_size`` are the checkpoint's preprocessing (its metadata). ``progress(done,
    total)`` is called after every batch; returning ``False`` cancels, as does setting ``cancel`` (an
    Event) or ``cancel()`` returning True: :class:`ScanCancelled` is raised and nothing is cached.
    With ``cache_dir`` and ``model_key`` (e.g. :func:`checkpoint_fingerprint`) a finished scan is saved and
    reused. ``limit`` scans only the first ``limit`` images; ``channels=1`` feeds grayscale (1-channel models).

    Speed (the goal is one layer over 10,000 images in under a minute on a 2-core CPU): batches are fed in
    channels-last layout (oneDNN's fast path, and max pooling there is vectorised across channels), and
    ``batch_size=None`` picks 16 on a CPU, where AlexNet's 56x56x96 maps then stay in cache (200 ran 1.5x
    slower), and 256 on a GPU. ``precision="auto"`` runs a bf16 copy of the model (:func:`scan_copy`) where
    :func:`cnnviz.device.bf16_autocast_ok` says the device computes bf16 natively, else float32;
    ``"fp32"`` forces float32. bf16 keeps about three significant digits: activations that tie to that
    precision may swap ranks, which a top-9 figure does not show. The cache key includes the precision.
    """
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', not {precision!r}")
    if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 N x H x W x 3, got {images.dtype} {images.shape}")
    for what, value in (("limit", limit), ("batch_size", batch_size)):
        if value is not None and value < 1:  # a negative limit would slice from the end, 0 never advance
            raise ValueError(f"{what} must be at least 1, not {value}")
    if limit is not None:
        images = images[:limit]
    n = len(images)
    if n == 0:
        raise ValueError("no images to scan")
    size = int(input_size or images.shape[1])
    p = next(iter(model.parameters()), None)
    device = p.device if p is not None else torch.device("cpu")
    if precision == "auto":
        from cnnviz.device import bf16_autocast_ok

        precision = "bf16" if bf16_autocast_ok(device) else "fp32"
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    if batch_size is None:
        batch_size = 256 if device.type == "cuda" else 16
    path = None
    if cache_dir is not None and model_key is not None:
        path = cache_file(cache_dir, model_key, layer, dataset_fingerprint(images), k, precision)
        if path.exists():
            try:
                hit = TopK.load(path)
                if hit.layer == layer and hit.images_seen == n:
                    if progress is not None:
                        progress(n, n)
                    return hit
            except (OSError, ValueError, KeyError):
                pass  # unreadable or stale cache: scan again and overwrite it
    view = scan_copy(model, dtype)
    best_v = best_i = best_pos = None
    map_size = None
    with torch.inference_mode(), capture(view, [layer], stop_after=layer) as store:
        for start in range(0, n, batch_size):
            if _cancelled(cancel):
                raise ScanCancelled(f"scan of {layer} cancelled after {start} of {n} images")
            x = preprocess_batch(images[start:start + batch_size], mean, std, size, device, channels)
            forward_quietly(view, x.to(dtype).contiguous(memory_format=torch.channels_last))
            fmap = store.pop(layer, None)
            if fmap is None:
                raise RuntimeError(f"layer {layer!r} was not reached in the forward pass")
            if fmap.dim() != 4:
                raise ValueError(f"{layer!r} outputs {tuple(fmap.shape[1:])}, not feature maps")
            b, c, h, w = fmap.shape
            map_size = (h, w)
            v, pos = fmap.float().flatten(2).max(dim=2)  # B x C: each image's strongest unit per channel
            idx = torch.arange(start, start + b, device=device).view(b, 1).expand(b, c)
            if best_v is None:
                best_v, best_i, best_pos = v, idx, pos
            else:
                best_v = torch.cat([best_v, v])
                best_i = torch.cat([best_i, idx])
                best_pos = torch.cat([best_pos, pos])
            kk = min(k, best_v.shape[0])
            best_v, order = best_v.topk(kk, dim=0)  # kk x C, strongest first
            best_i = best_i.gather(0, order)
            best_pos = best_pos.gather(0, order)
            done = start + b
            if progress is not None and progress(done, n) is False:
                raise ScanCancelled(f"scan of {layer} cancelled after {done} of {n} images")
    c = best_v.shape[1]
    values = np.full((c, k), -np.inf, np.float32)
    index = np.full((c, k), -1, np.int64)
    ys = np.zeros((c, k), np.int64)
    xs = np.zeros((c, k), np.int64)
    kk = best_v.shape[0]
    values[:, :kk] = best_v.T.cpu().numpy()
    index[:, :kk] = best_i.T.cpu().numpy()
    pos = best_pos.T.cpu().numpy()
    ys[:, :kk], xs[:, :kk] = pos // map_size[1], pos % map_size[1]
    result = TopK(layer, values, index, ys, xs, map_size, n)
    if path is not None:
        result.save(path)
    return result


@dataclass
class Top9Figure:
    channel: int
    patches: list[np.ndarray]  # uint8 crops of the receptive field, strongest first
    projections: list[np.ndarray]  # uint8 deconvnet projections, cropped the same way
    boxes: list[tuple[int, int, int, int]]  # (top, left, bottom, right) in input pixels
    values: list[float]
    images: list[int]
    # Measured on the first hit (cnnviz.viz.deconv.is_same_for_every_image): True when the deconvnet projects
    # this unit to one picture whatever the image, so nine of them would show the unit nine times, not the
    # images; the projections are then guided backprop's. None: not projected.
    same_for_every_image: bool | None = None

    @property
    def projected_by(self) -> str:
        """Which method drew the projections: "guided backprop" where the deconvnet's would be fixed."""
        return "guided backprop" if self.same_for_every_image else "deconvnet"

    def image(self, cell: int = 64) -> np.ndarray:
        """ZF Fig. 2: projections (left 3x3) beside the image patches (right 3x3)."""
        left = render.grid(self.projections, ncols=3, cell=cell, pad=2)
        right = render.grid(self.patches, ncols=3, cell=cell, pad=2)
        gap = np.full((left.shape[0], 8, 3), 255, np.uint8)
        return np.concatenate([left, gap, right], axis=1)


def patches(model: nn.Module, images: np.ndarray, top: TopK, channel: int, *, mean, std,
            input_size: int | None = None, project: bool = True, channels: int = 3) -> Top9Figure:
    """The receptive-field patches of ``channel``'s top hits and their deconvnet projections (ZF Fig. 2).

    Each projection is contrast-normalised on its own (0 = grey), as ZF display them. Where the deconvnet's
    projection of this unit is the same for every image (no max-pooling below the layer: tiny-stem ResNet-18),
    the projections are guided backprop's instead (``projected_by`` says which), which depends on the image.
    """
    from cnnviz.preprocess import to_image
    from cnnviz.viz.deconv import deconvnet, guided_backprop, is_same_for_every_image
    from cnnviz.viz.maps import unit_region

    if not 0 <= channel < top.channels:
        raise ValueError(f"channel {channel} does not exist: {top.layer} has {top.channels} feature maps")
    size = int(input_size or images.shape[1])
    out = Top9Figure(channel, [], [], [], [], [])
    p = next(iter(model.parameters()), None)
    device = p.device if p is not None else torch.device("cpu")
    for r in range(top.values.shape[1]):
        i = int(top.index[channel, r])
        if i < 0:
            continue
        y, x = int(top.ys[channel, r]), int(top.xs[channel, r])
        box = unit_region(model, top.layer, y, x, (channels, size, size))
        t, left, b, rgt = box
        xin = preprocess_batch(images[i:i + 1], mean, std, size, device, channels)
        shown = np.asarray(to_image(xin.cpu(), mean, std))  # what the network saw
        out.patches.append(shown[t:b, left:rgt])
        if project:
            proj = deconvnet(model, xin, top.layer, channel, position=(y, x))
            if out.same_for_every_image is None:
                out.same_for_every_image = is_same_for_every_image(model, xin, proj)
            if out.same_for_every_image:
                proj = guided_backprop(model, xin, top.layer, channel, position=(y, x))
            out.projections.append(render.to_uint8(proj.image[:, t:b, left:rgt], "symmetric"))
        out.boxes.append(box)
        out.values.append(float(top.values[channel, r]))
        out.images.append(i)
    return out


def default_cache_dir() -> Path:
    """Where scans are cached by default: ``<data dir>/viz_cache``."""
    from cnnviz.paths import data_dir

    return data_dir() / "viz_cache"
