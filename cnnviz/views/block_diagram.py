"""The Architectures page's block diagram: a Graphviz DOT string of a network's blocks, read from the model's
structure (containers opened, custom blocks one node each) and the layer table (shapes and order)."""

from __future__ import annotations

import re
from typing import Any

import torch.nn as nn

from cnnviz.models.meta import meta_model
from cnnviz.views.format import human, shape_text

_ABSORBED = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.ELU, nn.LeakyReLU, nn.Softmax, nn.Dropout, nn.Flatten,
             nn.modules.batchnorm._BatchNorm, nn.Identity)
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def _leaf_label(m: nn.Module) -> str:
    def kk(v: Any) -> str:
        v = v if isinstance(v, tuple) else (v, v)
        return f"{v[0]}x{v[1]}" if v[0] != v[1] else f"{v[0]}x{v[0]}"

    def ss(v: Any) -> Any:
        return v[0] if isinstance(v, tuple) else v

    if isinstance(m, nn.Conv2d):
        g = f", groups {m.groups}" if m.groups > 1 else ""
        return f"conv {kk(m.kernel_size)}/{ss(m.stride)}, {m.out_channels}{g}"
    if isinstance(m, nn.Linear):
        return f"fc {m.out_features}"
    if isinstance(m, nn.MaxPool2d):
        return f"max pool {kk(m.kernel_size)}/{ss(m.stride)}"
    if isinstance(m, nn.AvgPool2d):
        return f"avg pool {kk(m.kernel_size)}/{ss(m.stride)}"
    if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        kind = "avg" if isinstance(m, nn.AdaptiveAvgPool2d) else "max"
        return f"global {kind} pool" if m.output_size in (1, (1, 1)) else f"adaptive {kind} pool {m.output_size}"
    if isinstance(m, nn.LocalResponseNorm):
        return f"LRN (size {m.size})"
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        return "BN"
    if isinstance(m, nn.Dropout):
        return f"dropout {m.p:g}"
    if isinstance(m, nn.Flatten):
        return "flatten"
    name = type(m).__name__
    k = getattr(m, "kernel_size", None)
    label = f"{name} {kk(k)}" if k is not None else name
    if isinstance(getattr(m, "stride", None), (int, tuple)) and k is not None:
        label += f"/{ss(m.stride)}"
    if isinstance(getattr(m, "out_channels", None), int):
        label += f", {m.out_channels}"
    return label


def _absorbed(m: nn.Module) -> bool:
    """Activations, batch norm, dropout and flatten are folded into the node of the layer before them."""
    if isinstance(m, _ABSORBED):
        return True
    return (not list(m.children()) and not list(m.parameters(recurse=False))
            and bool(re.search(r"relu|tanh|sigmoid|swish|gelu|activation", type(m).__name__, re.I)))


def _node_kind(m: nn.Module) -> str:
    if isinstance(m, nn.Conv2d) or "conv" in type(m).__name__.lower():
        return "conv"
    if isinstance(m, nn.Linear):
        return "linear"
    if "pool" in type(m).__name__.lower() or "subsampl" in type(m).__name__.lower():
        return "pool"
    if isinstance(m, nn.LocalResponseNorm) or "norm" in type(m).__name__.lower():
        return "norm"
    if any(not isinstance(c, _CONTAINERS) for c in m.children()) or list(m.children()):
        return "block"
    return "other"


_STYLE = {
    "conv": 'shape=box, style="rounded,filled", fillcolor="#dbe9f6"',
    "linear": 'shape=box, style="filled", fillcolor="#d9f0d3"',
    "pool": 'shape=box, style="filled", fillcolor="#fde0c5"',
    "norm": 'shape=ellipse, style="filled", fillcolor="#e8e0f0"',
    "block": 'shape=record, style="rounded,filled", fillcolor="#f3e6f7"',
    "other": 'shape=box, style="filled", fillcolor="#eeeeee"',
    "input": 'shape=parallelogram, style="filled", fillcolor="#ffffff"',
}


def _units(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The diagram's units: containers are opened; leaves and custom blocks (their own forward) are kept."""
    out: list[tuple[str, nn.Module]] = []

    def walk(mod: nn.Module, prefix: str) -> None:
        for name, child in mod.named_children():
            full = f"{prefix}.{name}" if prefix else name
            if isinstance(child, _CONTAINERS):
                walk(child, full)
            else:
                out.append((full, child))

    walk(model, "")
    return out


def _escape(s: str) -> str:
    return re.sub(r'([{}|<>"\\])', r"\\\1", s)


def _block_label(name: str, m: nn.Module) -> str:
    """A record label for a custom block: parallel branches side by side, else the chain of its leaves."""
    children = list(m.named_children())
    branches = [(n, c) for n, c in children if isinstance(c, _CONTAINERS) or list(c.children())]
    shortcut = [n for n, _ in children if re.search(r"short|downsample|proj", n)]
    title = f"{_escape(name)}: {type(m).__name__}"
    if len(branches) >= 2 and not shortcut:
        cols = []
        for _, b in branches:
            leaves = [re.sub(r"/1(?=,|$)", "", _leaf_label(x))  # stride 1 goes without saying in a branch
                      for x in b.modules() if not list(x.children()) and not _absorbed(x)]
            # One step per line: four branches side by side stay narrow enough to read.
            cols.append("\\n".join(_escape(t) for t in leaves) or _escape(type(b).__name__))
        return "{" + title + "|{" + "|".join(cols) + "}}"
    main = [x for n, x in children if n not in shortcut]
    leaves = []
    for x in main:
        leaves += [_leaf_label(y) for y in ([x] + list(x.modules())[1:])
                   if not list(y.children()) and not _absorbed(y)]
    body = _escape(" → ".join(leaves) or type(m).__name__)
    if shortcut:
        body += "\\n+ shortcut (" + _escape(", ".join(_leaf_label(y) for y in getattr(m, shortcut[0]).modules()
                                                      if not list(y.children()) and not _absorbed(y))
                                        or "identity") + ")"
    elif re.search(r"block|bottleneck|residual", type(m).__name__, re.I):
        body += "\\n+ identity shortcut"
    return "{" + title + "|" + body + "}"


def _unit_shapes(table: Any, units: list[tuple[str, nn.Module]]) -> tuple[list[str], dict[str, tuple], set[str]]:
    """Execution order, output shape and training-only flag of each unit, read from the layer table.

    A unit's rows are its own row or its descendants' rows. A block's output (after its free residual add or
    concatenation, which have no row) is the input of the first row outside it that reads one of its rows.
    """
    index = {r.name: i for i, r in enumerate(table.rows)}
    owned: dict[str, list[int]] = {}
    for name, _ in units:
        owned[name] = [i for n, i in index.items() if n == name or n.startswith(name + ".")]
    present = [(min(ix), name) for name, ix in owned.items() if ix]
    order = [name for _, name in sorted(present)]
    shapes: dict[str, tuple] = {}
    train_only = set()
    for name in order:
        ix = set(owned[name])
        rows = [table.rows[i] for i in sorted(ix)]
        if all(getattr(r, "train_only", False) for r in rows):
            train_only.add(name)
        mine = {r.name for r in rows}
        consumer = next((r for i, r in enumerate(table.rows)
                         if i not in ix and mine.intersection(getattr(r, "inputs", ()) or ())), None)
        shapes[name] = tuple(consumer.input_shape) if consumer is not None and len(rows) > 1 \
            else tuple(rows[-1].output_shape)
    return order, shapes, train_only


def block_diagram(table: Any, **variant: Any) -> str:
    """A Graphviz DOT string of the network's blocks (rendered in the browser by ``st.graphviz_chart``).

    ``table`` is the architecture's :class:`~cnnviz.summary.LayerTable` (shapes and order come from it) and
    ``variant`` the options it was built with. Containers (``nn.Sequential``) are opened, custom blocks
    (Inception modules, residual blocks) are one node each with their branches or shortcut spelled out;
    activations, batch norm and dropout are folded into the layer before them; stacks of identical
    convolutions and runs of identical residual blocks are collapsed (``x 3``). The model is built on
    PyTorch's ``meta`` device when it allows (no memory) and only its structure is read.
    """
    model = meta_model(table.arch, num_classes=table.classes, input_size=table.input[-1], **variant)
    units = _units(model)
    order, shapes, train_only = _unit_shapes(table, units)
    input_size = table.input
    modules = dict(units)
    # Fold activations/BN/dropout into the unit before them; collapse repeated residual blocks.
    nodes: list[dict[str, Any]] = []
    for name in order:
        m = modules[name]
        aux = name in train_only or bool(re.search(r"(^|\.)aux", name))
        if _absorbed(m) and nodes and nodes[-1]["aux"] == aux:
            nodes[-1]["extra"].append(_leaf_label(m))
            nodes[-1]["shape"] = shapes[name]
            continue
        kind = _node_kind(m)
        label = _block_label(name, m) if kind == "block" else _leaf_label(m)
        params = sum(p.numel() for p in m.parameters())
        prev = nodes[-1] if nodes else None
        if (prev and kind == "conv" and prev["kind"] == "conv" and prev["label"] == label
                and prev["shape"] == shapes[name] and not aux and not prev["aux"]):
            # A stack of identical convolutions (VGG's 3x3 stages): one node, "x 3".
            prev["repeat"] += 1
            prev["params"] += params
            prev["last"] = name
            continue
        if (prev and kind == "block" and prev["kind"] == "block" and type(prev["module"]) is type(m)
                and prev["shape"] == shapes[name] and name.rsplit(".", 1)[0] == prev["name"].rsplit(".", 1)[0]
                and prev["label"].split("|", 1)[1] == label.split("|", 1)[1] and not aux):
            prev["repeat"] += 1
            prev["params"] += params
            prev["last"] = name
            continue
        nodes.append({"name": name, "last": name, "module": m, "kind": kind, "label": label, "extra": [],
                      "shape": shapes[name], "params": params, "repeat": 1, "aux": aux})
    lines = ["digraph G {", '  graph [rankdir=TB, nodesep=0.25, ranksep=0.22, fontname="Helvetica"];',
             '  node [fontname="Helvetica", fontsize=11, margin="0.12,0.05"];',
             '  edge [color="#666666", arrowsize=0.6];',
             f'  n_in [label="input {shape_text(input_size)}", {_STYLE["input"]}];']
    last_main = "n_in"
    prev_aux: tuple[str, str] | None = None  # (aux prefix, node id) of the previous auxiliary node
    for i, n in enumerate(nodes):
        nid = f"n{i}"
        shape_txt = f"→ {shape_text(n['shape'])}"
        p_txt = f"{human(n['params'])} params" if n["params"] else ""
        extra = (" + " + " + ".join(dict.fromkeys(n["extra"]))) if n["extra"] else ""
        if n["kind"] == "block":
            title, body = n["label"][1:-1].split("|", 1)
            if n["repeat"] > 1:
                title = f"{_escape(n['name'])} … {_escape(n['last'])}: {type(n['module']).__name__} × {n['repeat']}"
            info = _escape(f"{shape_txt}   {p_txt}".strip())
            label = "{" + title + "|" + body + "|" + info + "}"
            lines.append(f'  {nid} [label="{label}", {_STYLE["block"]}];')
        else:
            title = n["name"] if n["repeat"] == 1 else f"{n['name']} … {n['last']} (× {n['repeat']})"
            text = f"{_escape(title)}\\n{_escape(n['label'] + extra)}\\n{_escape(shape_txt)}"
            if p_txt:
                text += f"   {p_txt}"
            lines.append(f'  {nid} [label="{text}", {_STYLE[n["kind"]]}];')
        if n["aux"]:
            prefix = re.match(r"(.*?aux[^.]*)", n["name"], re.I).group(1)
            lines[-1] = lines[-1][:-2] + ', color="#999999", fontcolor="#555555"];'
            if prev_aux and prev_aux[0] == prefix:
                lines.append(f"  {prev_aux[1]} -> {nid} [style=dashed];")
            else:
                lines.append(f'  {last_main} -> {nid} [style=dashed, label=" training only", fontsize=9];')
            prev_aux = (prefix, nid)
        else:
            lines.append(f"  {last_main} -> {nid} [weight=10];")  # keeps the main path straight
            last_main, prev_aux = nid, None
    lines.append("}")
    return "\n".join(lines)
