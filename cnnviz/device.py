"""Which device to compute on, and how to describe it to a user."""

from __future__ import annotations

import functools
import os
import platform
import re
import resource
import sys
from pathlib import Path

import torch


def pick_device(requested: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; ``cuda``/``mps``/``cpu`` are taken as asked.

    Asking for a device that is not there raises ``RuntimeError`` with a message saying what is.
    """
    requested = (requested or "auto").lower()
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", requested):
        raise ValueError(f"unknown device {requested!r}: use auto, cpu, cuda, cuda:N or mps")
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


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU computes bf16 natively: x86 ``avx512_bf16`` or ``amx_bf16``, Arm ``bf16``.

    Read from ``/proc/cpuinfo`` (or the text given). oneDNN's own ``_is_mkldnn_bf16_supported`` is not enough:
    it also says yes for any AVX512-BW CPU (Skylake), where bf16 is emulated and slower than fp32. Where there is
    no ``/proc/cpuinfo`` (macOS, Windows) that check is the best available and is used.
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            try:
                return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
            except (AttributeError, RuntimeError):  # a build without oneDNN
                return False
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def bf16_autocast_ok(device: torch.device) -> bool:
    """Whether bf16 autocast speeds training up on ``device``: always on CUDA; on the CPU only where it computes
    bf16 natively (:func:`cpu_has_native_bf16`). Elsewhere CPU autocast emulates bf16 and runs slower than fp32.

    Measured on the 2-core AMD EPYC (AVX512-BF16) dev machine, one training step at 64x64, batch 128: ResNet-18
    198 -> 309 img/s, GoogLeNet 155 -> 216, NiN (cifar) 19 -> 44.
    """
    if device.type == "cuda":
        return True
    return device.type == "cpu" and _native_bf16_here()


@functools.cache
def _native_bf16_here() -> bool:
    return cpu_has_native_bf16()


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


def device_name(device: str | None) -> str:
    """The card or CPU a run trained on, for humans: ``NVIDIA H100 80GB HBM3``, ``AMD EPYC 9554 (2 cores)``."""
    if device and device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    if device and device.startswith("mps"):
        return "Apple GPU (MPS)"  # torch names no model; the CPU's name would say the run was on the CPU
    return f"{cpu_model()} ({os.cpu_count()} cores)"


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; elsewhere what ``platform`` knows): the benchmarks' stamps and
    the runs' ``device_name`` both name the machine with it."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"


def process_peak_rss() -> int:
    """The process's peak resident memory so far: ``ru_maxrss`` is KiB on Linux, bytes on macOS."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def process_rss() -> int:
    """The resident memory in use now (Linux: ``/proc/self/statm``), else the peak so far. Not the peak on
    Linux: setting up (imports, reading the data) peaks above what stays in use, and training fits in that."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return process_peak_rss()
