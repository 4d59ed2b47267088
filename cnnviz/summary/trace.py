"""One cheap forward pass that records, for every layer, its output's shape and its receptive field.

A *layer* is a named module of the model (a dotted path such as ``features.conv1``, ``layer2``,
``inception4a.branch3.2``) and its output, containers included: this pass is the one place that works out
the shapes and receptive fields of a model's layers, for the tables and for the visualisations alike. The
table's *rows* are the layers it counts (:func:`row_modules`: leaves, and modules with weights of their own),
so that no parameter or MAC is counted twice.

The pass runs on a *meta* skeleton of the model (:mod:`cnnviz.summary.skeleton`: same modules, parameters
replaced by meta tensors that have shapes but no storage), so VGG-16 at 224x224 costs a few milliseconds instead of a real 15-GMAC forward.
The caller's model is never touched: no hooks are added to it, no mode or device is switched.

Receptive fields follow the real dataflow. Every tensor produced during the forward pass gets a
:class:`Geometry` (receptive field, jump and start offset per axis, relative to the input image) and the
set of leaf modules it came from. Leaf modules are handled by forward hooks (their kernel/stride/padding
give the output geometry); everything between leaves (``torch.cat`` of Inception branches, the residual
``x + identity``, ``torch.flatten`` ...) is seen by a :class:`~torch.overrides.TorchFunctionMode`, which
merges the geometries of all inputs of an op. Merging takes the *union* of the input boxes, so a residual
add or an Inception concat gets the largest field over all of its paths.

Conventions (one axis; the same holds for the other):

* ``rf``: side of the input box one unit sees, in input pixels (padding included, so it can exceed the image);
* ``jump``: distance in input pixels between two neighbouring units of the map (the effective stride);
* ``start``: input coordinate of the *top-left* pixel of the box of unit 0 (negative when the box starts in the
  zero padding). Unit ``i`` sees input pixels ``start + i * jump`` ... ``start + i * jump + rf - 1``.

For a layer with kernel ``k``, stride ``s``, padding ``p`` and dilation ``d`` applied to a map with
``(rf, jump, start)``: ``k' = d (k - 1) + 1``, ``rf_out = rf + (k' - 1) jump``, ``jump_out = jump s``,
``start_out = start - p jump``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode


class Geometry(NamedTuple):
    """Receptive field of one unit of a map w.r.t. the input image, per axis (h, w). See the module docs."""

    rf_h: int
    rf_w: int
    jump_h: int
    jump_w: int
    start_h: int
    start_w: int


INPUT_GEOMETRY = Geometry(1, 1, 1, 1, 0, 0)


class LayerOutput(NamedTuple):
    """What one layer (a row or a container) produced in the inference pass."""

    shape: tuple[int, ...]  # without the batch dimension
    geometry: Geometry | None  # its units' receptive field; None where no input reaches it


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return (int(v[0]), int(v[-1]))
    return (int(v), int(v))


def union(geos: Iterable[Geometry]) -> Geometry:
    """Geometry of a map computed elementwise from maps on the same grid (add, concat): the union of boxes.

    When the inputs' jumps differ (they should not for maps of the same size), the largest jump is kept.
    """
    geos = list(geos)
    if len(geos) == 1:
        return geos[0]
    top = min(g.start_h for g in geos)
    left = min(g.start_w for g in geos)
    bottom = max(g.start_h + g.rf_h for g in geos)
    right = max(g.start_w + g.rf_w for g in geos)
    return Geometry(bottom - top, right - left, max(g.jump_h for g in geos), max(g.jump_w for g in geos),
                    top, left)


def apply_window(g: Geometry, kernel, stride, padding=0, dilation=1) -> Geometry:
    """Geometry after a sliding window (conv or pooling) with these parameters."""
    kh, kw = _pair(kernel)
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    keh, kew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    return Geometry(g.rf_h + (keh - 1) * g.jump_h, g.rf_w + (kew - 1) * g.jump_w,
                    g.jump_h * sh, g.jump_w * sw, g.start_h - ph * g.jump_h, g.start_w - pw * g.jump_w)


def adaptive_window(n: int, o: int) -> tuple[int, int]:
    """(kernel, stride) covering an adaptive pooling from ``n`` to ``o`` positions (exact when ``o`` divides
    ``n``; otherwise the widest window PyTorch uses, ``ceil(n/o) + 1`` at most, with stride ``n // o``)."""
    if o <= 0 or n <= 0:
        return 1, 1
    stride = max(1, n // o)
    kernel = max(-(-n // o), n - (o - 1) * stride) if o > 1 else n
    return kernel, stride


def _spatial(shape: torch.Size | tuple[int, ...]) -> tuple[int, int] | None:
    """(H, W) of an N x C x H x W tensor; None for anything else (vectors after flatten, ...)."""
    return (int(shape[-2]), int(shape[-1])) if len(shape) == 4 else None


def reshape_geometry(g: Geometry, in_shape, out_shape) -> Geometry:
    """Geometry after an op whose output grid is not the input grid and that has no kernel of its own.

    Same grid -> unchanged (elementwise, channel ops); spatial map -> vector (flatten, global pooling):
    one output element depends on every position, so the box grows to cover the whole map; spatial map of
    another size (adaptive pooling) -> the equivalent window.
    """
    sin, sout = _spatial(in_shape), _spatial(out_shape)
    if sin is None or sin == sout:
        return g
    if sout is None:  # flattened / globally reduced
        return apply_window(g, sin, sin)
    (kh, sh), (kw, sw) = adaptive_window(sin[0], sout[0]), adaptive_window(sin[1], sout[1])
    return apply_window(g, (kh, kw), (sh, sw))


def module_geometry(module: nn.Module, g: Geometry, in_shape, out_shape) -> Geometry:
    """Output geometry of a leaf module from its own window parameters, or from the shapes when it has none."""
    kernel = getattr(module, "kernel_size", None)
    stride = getattr(module, "stride", None)
    if kernel is not None and _spatial(out_shape) is not None and not isinstance(
        module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
    ):
        padding = getattr(module, "padding", 0)
        if isinstance(padding, str):  # Conv2d(padding="same" | "valid")
            kh, kw = _pair(kernel)
            dh, dw = _pair(getattr(module, "dilation", 1))
            padding = (dh * (kh - 1) // 2, dw * (kw - 1) // 2) if padding == "same" else 0
        return apply_window(g, kernel, stride if stride is not None else kernel, padding,
                            getattr(module, "dilation", 1))
    return reshape_geometry(g, in_shape, out_shape)


_WINDOW_FUNCS = {"max_pool2d", "_max_pool2d", "max_pool2d_with_indices", "avg_pool2d", "lp_pool2d", "conv2d"}


def functional_window(func, args, kwargs) -> tuple | None:
    """(kernel, stride, padding, dilation) of a windowed functional call (``F.max_pool2d(x, 3, 2, 1)``,
    ``F.avg_pool2d``, ``F.conv2d``) made in a model's forward between modules; None for any other op."""
    name = getattr(func, "__name__", "")
    if name not in _WINDOW_FUNCS:
        return None
    if name == "conv2d":
        names = ("input", "weight", "bias", "stride", "padding", "dilation")
        a = {**dict(zip(names, args, strict=False)), **kwargs}
        weight = a.get("weight")
        if not isinstance(weight, torch.Tensor) or weight.dim() != 4:
            return None
        kernel = tuple(weight.shape[-2:])
        padding = a.get("padding", 0)
        if isinstance(padding, str):
            padding = tuple((k - 1) // 2 for k in kernel) if padding == "same" else 0
        return kernel, a.get("stride", 1), padding, a.get("dilation", 1)
    if name == "lp_pool2d":  # (input, norm_type, kernel_size, stride)
        names = ("input", "norm_type", "kernel_size", "stride")
    else:
        names = ("input", "kernel_size", "stride", "padding", "dilation")
    a = {**dict(zip(names, args, strict=False)), **kwargs}
    kernel = a.get("kernel_size")
    if kernel is None:
        return None
    stride = a.get("stride") or kernel  # None or () means "the kernel size"
    dilation = a.get("dilation", 1) if name != "avg_pool2d" else 1
    return kernel, stride, a.get("padding", 0), dilation


def _tensors(obj: Any) -> list[torch.Tensor]:
    """All tensors in a (nested) tuple/list/dict."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [t for o in obj for t in _tensors(o)]
    if isinstance(obj, dict):
        return [t for o in obj.values() for t in _tensors(o)]
    return []


def is_row_module(module: nn.Module) -> bool:
    """A module that gets its own row: a leaf, or a module with parameters of its own or a LeNet-style
    ``connection_mask`` (its children, if any, are then part of its row)."""
    return (
        not any(True for _ in module.children())
        or any(True for _ in module.parameters(recurse=False))
        or hasattr(module, "connection_mask")
    )


def row_modules(model: nn.Module) -> dict[str, nn.Module]:
    """name -> module for every row module, in registration order, subtrees of row modules skipped.

    A model that is itself a single leaf (no children) is one row named after its class.
    """
    if is_row_module(model) and (not any(True for _ in model.children())
                                 or any(True for _ in model.parameters(recurse=False))
                                 or hasattr(model, "connection_mask")):
        return {type(model).__name__: model}
    out: dict[str, nn.Module] = {}
    collapsed: set[str] = set()  # row modules with children: their subtree belongs to their row
    for name, module in model.named_modules():
        if not name:
            continue
        parts = name.split(".")
        if collapsed and any(".".join(parts[:i]) in collapsed for i in range(1, len(parts))):
            continue
        if is_row_module(module):
            out[name] = module
            if any(True for _ in module.children()):
                collapsed.add(name)
    return out


@dataclass
class Record:
    """What one call of a row module looked like."""

    name: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    output_numel: int  # elements of all outputs, batch included
    geometry: Geometry | None
    inputs: tuple[str, ...]  # leaf modules (or "input") whose outputs feed this one
    order: int


@dataclass
class _Info:
    tensor: torch.Tensor  # kept alive so that id() stays unique during the pass
    geometry: Geometry
    producers: frozenset[str]


class Tracer(TorchFunctionMode):
    """Records shapes, producers and geometries of every row module during one forward pass."""

    def __init__(self, names: dict[int, str], containers: dict[int, str] | None = None) -> None:
        super().__init__()
        self.names = names  # id(module) -> row name
        self.containers = containers or {}  # id(module) -> name of a layer that holds rows
        self.infos: dict[int, _Info] = {}
        self.records: dict[str, Record] = {}
        self.outputs: dict[str, LayerOutput] = {}  # every layer that returned a tensor, in the order they ended
        self._depth = 0  # > 0 while inside a row module (its own ops are not traced)
        self._pending: list = []

    # -- tensors ------------------------------------------------------------------------------------------
    def mark(self, t: torch.Tensor, geometry: Geometry, producers: frozenset[str]) -> None:
        self.infos[id(t)] = _Info(t, geometry, producers)

    def _lookup(self, tensors: list[torch.Tensor]) -> list[tuple[torch.Tensor, _Info]]:
        out = []
        for t in tensors:
            info = self.infos.get(id(t))
            if info is not None and info.tensor is t:
                out.append((t, info))
        return out

    # -- free ops between leaves ----------------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        # Only the top-level op matters: ops inside it (meta decompositions of batch_norm, relu ... are
        # Python code calling torch again) would otherwise re-enter this mode thousands of times.
        with torch._C.DisableTorchFunction():
            out = func(*args, **kwargs)
        # Fast exit for calls that return no tensor (.size(), .dim(), .shape ...).
        if self._depth == 0 and (isinstance(out, torch.Tensor) or (isinstance(out, (tuple, list)) and out)):
            known = self._lookup(_tensors(args) + _tensors(kwargs))
            if known:
                outs = [o for o in _tensors(out) if id(o) not in self.infos or self.infos[id(o)].tensor is not o]
                if outs:
                    producers = frozenset().union(*(i.producers for _, i in known))
                    window = functional_window(func, args, kwargs)
                    for o in outs:
                        if window is not None and _spatial(o.shape) is not None:
                            geos = [apply_window(known[0][1].geometry, *window)]
                        else:
                            geos = [reshape_geometry(i.geometry, t.shape, o.shape) for t, i in known]
                        self.mark(o, union(geos), producers)
        return out

    # -- leaf modules ---------------------------------------------------------------------------------------
    def pre_hook(self, module: nn.Module, args) -> None:
        self._depth += 1
        self._pending.append(args)

    def post_hook(self, module: nn.Module, args, output) -> None:
        self._depth -= 1
        args = self._pending.pop()
        name = self.names[id(module)]
        ins = _tensors(args)
        outs = _tensors(output)
        known = self._lookup(ins)
        first_in = ins[0].shape if ins else ()
        geometry = None
        producers: frozenset[str] = frozenset()
        if known:
            producers = frozenset().union(*(i.producers for _, i in known))
            geometry = union(module_geometry(module, i.geometry, t.shape, outs[0].shape if outs else ())
                             for t, i in known)
        for o in outs:
            self.mark(o, geometry or INPUT_GEOMETRY, frozenset({name}))
        if isinstance(output, torch.Tensor):
            self.outputs.setdefault(name, LayerOutput(tuple(int(v) for v in output.shape[1:]), geometry))
        if name not in self.records:  # a module called twice keeps its first call (models never reuse one)
            self.records[name] = Record(
                name=name,
                input_shape=tuple(int(s) for s in first_in[1:]),
                output_shape=tuple(int(s) for s in outs[0].shape[1:]) if outs else (),
                output_numel=sum(o.numel() for o in outs),
                geometry=geometry,
                inputs=tuple(sorted(producers)),
                order=len(self.records),
            )


    def container_hook(self, module: nn.Module, args, output) -> None:
        """A container's output: the tensor its last op produced, whose geometry the pass already knows."""
        if self._depth or not isinstance(output, torch.Tensor):
            return
        known = self._lookup([output])
        geometry = known[0][1].geometry if known else None
        self.outputs.setdefault(self.containers[id(module)],
                                LayerOutput(tuple(int(v) for v in output.shape[1:]), geometry))


def container_modules(model: nn.Module, rows: dict[str, nn.Module]) -> dict[str, nn.Module]:
    """name -> module for every named module that is not a row and not inside one (``features``, ``layer2``,
    ``inception4a``, ``inception4a.branch2``): layers whose output is their last op's."""
    inside = tuple(f"{n}." for n, m in rows.items() if any(True for _ in m.children()))
    return {n: m for n, m in model.named_modules()
            if n and n not in rows and not (inside and n.startswith(inside))}


def run_traced(model: nn.Module, x: torch.Tensor, train: bool):
    """Trace one forward pass of ``model`` (a private skeleton: its mode is switched) on ``x``.

    Returns ``(row modules by name, records by name, every layer's output by name)``.
    """
    rows = row_modules(model)
    containers = container_modules(model, rows)
    tracer = Tracer(names={id(m): n for n, m in rows.items()}, containers={id(m): n for n, m in containers.items()})
    handles = []
    try:
        for m in rows.values():
            handles.append(m.register_forward_pre_hook(tracer.pre_hook))
            handles.append(m.register_forward_hook(tracer.post_hook))
        for m in containers.values():
            handles.append(m.register_forward_hook(tracer.container_hook))
        tracer.mark(x, INPUT_GEOMETRY, frozenset({"input"}))
        model.train(train)
        with tracer, torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return rows, tracer.records, tracer.outputs
