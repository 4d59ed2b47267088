"""Map sizes before a model exists: the one place where a family works out, from its layers' windows, how
large each map will be (to size a flattening classifier, or to refuse an input with a message that names the
layer with no room for its window).

Once a model is built, its shapes come from one meta-device trace (:mod:`cnnviz.summary.trace`), and
``tests/test_models.py`` checks that both agree with a real forward pass for every family.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnviz.models.registry import InputSizeError

# (name, kernel, stride, padding, ceil_mode) of one sliding window (a convolution or a pooling layer)
Window = tuple[str, int, int, int, bool]


def out_size(size: int, kernel: int, stride: int = 1, padding: int = 0, ceil_mode: bool = False) -> int:
    """Output side of a conv/pool window on a ``size``-wide map, as torch computes it; 0 where torch refuses.

    Floor rounding needs the (padded) map to hold one window. Ceil rounding (pooling) may start a last window
    that hangs over the map's end, as long as it starts inside the map or its left padding: a 3x3/2 ceil pool
    turns a 2x2 map into 1x1, a 1x1 map into nothing.
    """
    span = size + 2 * padding - kernel
    if not ceil_mode:
        return span // stride + 1 if span >= 0 else 0
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + padding:  # torch drops a last window that starts in the right padding
        out -= 1
    return max(out, 0)


def stack_windows(stack: nn.Module) -> list[Window]:
    """The windows of a chain of layers (no branches), in order, named by module path: read from the modules
    themselves (every module with a ``kernel_size``: convolutions, pooling, LeNet-5's layers), so a family
    declares each window once, in its modules."""

    def side(v) -> int:
        return int(v[0] if isinstance(v, tuple | list) else v)

    return [(name, side(m.kernel_size), side(m.stride), side(getattr(m, "padding", 0)),
             bool(getattr(m, "ceil_mode", False)))
            for name, m in stack.named_modules() if name and getattr(m, "kernel_size", None) is not None]


def map_sizes(input_size: int, windows: list[Window]) -> dict[str, int]:
    """Side of the map after each window of ``windows`` (applied in order); 0 from the first that does not fit."""
    sizes: dict[str, int] = {}
    side = input_size
    for name, kernel, stride, padding, ceil in windows:
        side = out_size(side, kernel, stride, padding, ceil) if side else 0
        sizes[name] = side
    return sizes


def trace_sizes(input_size: int, windows: list[Window], arch: str) -> dict[str, int]:
    """:func:`map_sizes`, raising :class:`InputSizeError` that names the first window with no room."""
    side = input_size
    for name, kernel, stride, padding, ceil in windows:
        if out_size(side, kernel, stride, padding, ceil) < 1:
            raise InputSizeError(
                f"{arch} cannot take {input_size}x{input_size} inputs: {name} ({kernel}x{kernel}, stride {stride}, "
                f"padding {padding}) gets a {side}x{side} map and has no room for its window"
            )
        side = out_size(side, kernel, stride, padding, ceil)
    return map_sizes(input_size, windows)


def smallest_input(windows: list[Window]) -> int:
    """The smallest square input side for which every window fits."""
    for side in range(1, 4096):
        if min(map_sizes(side, windows).values()) >= 1:
            return side
    raise ValueError("no input size fits these layers")


def check_input(x: torch.Tensor, arch: str, channels: int, min_side: int) -> None:
    """Raise :class:`InputSizeError` with a readable message for a batch the model cannot take."""
    if x.dim() != 4 or x.shape[1] != channels:
        raise InputSizeError(f"{arch} takes batches of shape N x {channels} x H x W, got {tuple(x.shape)}")
    if min(x.shape[-2:]) < min_side:
        raise InputSizeError(
            f"{arch} needs images of at least {min_side}x{min_side} pixels, got {x.shape[-2]}x{x.shape[-1]}"
        )
