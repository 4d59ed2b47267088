"""Decode Tiny ImageNet's JPEGs into 64 x 64 RGB uint8 rows of the cache, in worker processes.

Decoding 110,000 small JPEGs is CPU-bound: :mod:`cnnviz.data.cache` hands chunks to a process pool and each
:func:`decode_chunk` writes straight into the memory-mapped output file (no pickling of pixels), reading the
JPEG bytes from the zip (:func:`cnnviz.data.zipsource.read_member`) or the folder, and returns per-channel
histograms from which the cache computes exact pixel statistics.
"""

from __future__ import annotations

import io
import multiprocessing as mp
import os
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from cnnviz.data.errors import PREPARE_HINT, DatasetError
from cnnviz.data.zipsource import read_member
from cnnviz.images import to_rgb

SIZE = 64


def decode_image(data: bytes, name: str = "image") -> tuple[np.ndarray, str]:
    """JPEG/PNG bytes -> (64 x 64 x 3 uint8 RGB, original mode) with Pillow. Grayscale (``L``) and every other
    mode become RGB; another size is resized (Tiny ImageNet is 64 x 64 throughout: only for other data)."""
    try:
        img = Image.open(io.BytesIO(data), formats=["JPEG", "PNG"])
        img.draft("RGB", (SIZE, SIZE))  # lets libjpeg scale down big JPEGs while decoding; no-op at 64x64
        mode = img.mode
        img.load()
    except Exception as e:  # noqa: BLE001 - any decoder failure means a damaged file
        raise DatasetError(f"{name} cannot be decoded ({type(e).__name__}: {e}); the dataset is damaged: "
                           f"{PREPARE_HINT}") from None
    if img.mode != "RGB":
        img = to_rgb(img)  # as an upload is seen: 16-bit grey scaled (not clipped), transparency over white
    if img.size != (SIZE, SIZE):
        img = img.resize((SIZE, SIZE), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(img, dtype=np.uint8), mode


def _decode_batch(blobs: list[bytes], names: list[str]) -> list[tuple[np.ndarray, str]]:
    """Decode many JPEGs: torchvision's batched libjpeg-turbo decoder (measured ~2x less CPU than Pillow per
    64x64 image: no per-image Python plugin machinery), Pillow for anything else (PNG, CMYK, odd sizes,
    failures, where it also names the damaged file). Both give identical pixels on Tiny ImageNet."""
    try:
        with warnings.catch_warnings():
            # torchvision 0.29 deprecates its decoders in favour of TorchCodec; Pillow takes over once they go
            warnings.simplefilter("ignore", DeprecationWarning)
            import torch  # here: torchvision is optional (Pillow decodes everything without it)
            from torchvision.io import ImageReadMode, decode_jpeg

            tensors = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]
            decoded = decode_jpeg(tensors, mode=ImageReadMode.UNCHANGED)
    except Exception:  # noqa: BLE001 - no torchvision, or one bad/odd file: take the careful path
        decoded = [None] * len(blobs)
    out = []
    for data, name, t in zip(blobs, names, decoded, strict=True):
        if t is not None and tuple(t.shape[1:]) == (SIZE, SIZE) and t.shape[0] in (1, 3):
            a = t.numpy().transpose(1, 2, 0)
            out.append((np.repeat(a, 3, axis=2), "L") if a.shape[2] == 1 else (a, "RGB"))
        else:
            out.append(decode_image(data, name))
    return out


def decode_chunk(kind: str, path: str, items: list, out_path: str, start: int) -> dict:
    """Decode ``items`` into rows ``start...`` of the .npy at ``out_path``; return counts and histograms.

    ``items``: relative file names (folder) or ``(name, offset, compressed size, method, crc)`` (zip)."""
    if kind == "zip":
        names = [it[0] for it in items]
        blobs = [read_member(path, *it[1:], it[0]) for it in items]
    else:
        names = list(items)
        try:
            blobs = [(Path(path) / rel).read_bytes() for rel in names]
        except OSError as e:
            raise DatasetError(f"{e.filename} cannot be read ({e.strerror}); {PREPARE_HINT}") from None
    out = np.load(out_path, mmap_mode="r+")
    modes: dict[str, int] = {}
    try:
        for i, (arr, mode) in enumerate(_decode_batch(blobs, names)):
            out[start + i] = arr
            modes[mode] = modes.get(mode, 0) + 1
        block = out[start:start + len(names)]
        # Per-channel histograms give exact sums and sums of squares for the mean/std, cheaply.
        hist = np.stack([np.bincount(block[..., c].ravel(), minlength=256) for c in range(3)])
        out.flush()
    finally:
        del out
    return {"start": start, "n": len(names), "modes": modes, "hist": hist}


def pool_context() -> mp.context.BaseContext:
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return mp.get_context("fork")
    return mp.get_context("spawn")


def default_workers() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    return max(1, min(n, 8))
