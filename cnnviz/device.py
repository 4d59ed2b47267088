"""Which device to compute on, and how to describe it to a user."""

from __future__ import annotations

import torch


def pick_device(requested: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; ``cuda``/``mps``/``cpu`` are taken as asked.

    Asking for a device that is not there raises ``RuntimeError`` with a message saying what is.
    """
    requested = (requested or "auto").lower()
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if has_mps else torch.device("cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("CUDA was requested but no CUDA GPU is visible to PyTorch; use --device cpu or auto")
    if requested == "mps" and not has_mps:
        raise RuntimeError("MPS was requested but Apple's Metal backend is not available; use cpu or auto")
    return torch.device(requested)


def describe_device(device: torch.device | None = None) -> str:
    """A one-line human description, e.g. ``CUDA: NVIDIA H100 (79.1 GiB)`` or ``CPU (2 threads)``."""
    device = device or pick_device("auto")
    if device.type == "cuda":
        idx = device.index or 0
        props = torch.cuda.get_device_properties(idx)
        n = torch.cuda.device_count()
        extra = f", {n} GPUs" if n > 1 else ""
        return f"CUDA: {props.name} ({props.total_memory / 2**30:.1f} GiB{extra})"
    if device.type == "mps":
        return "MPS: Apple GPU"
    return f"CPU ({torch.get_num_threads()} threads)"
