"""Compressed weights: weight-only int8 per output channel, and truncated SVD of big fully connected layers.

The starters of all seven families must fit together in 48 MiB (issue 10: the tracked tree travels with
every GPU call, which carries 64 MiB, and a call brings back files of at most 16 MiB each). In float16,
AlexNet and ZFNet take about 110 MiB each at 200 classes, almost all of it in fc6 and fc7. Two classic tools
shrink them without changing the network that is loaded:

* **int8** (``CompressionPlan.int8``): every conv kernel and linear matrix (a ``*.weight`` of 2 to 5 dims
  with at least ``INT8_MIN_NUMEL`` elements) is stored as int8 with one float32 scale per output channel
  (row 0 of the tensor): ``w ~= q * scale``, ``scale = max|w_row| / 127``, ``q = round(w / scale)``. The
  error of each element is at most ``scale / 2 = max|w_row| / 254``. Biases, norm parameters and buffers,
  and tiny tensors stay float16; integer buffers (``num_batches_tracked``) are stored as they are.
* **SVD** (``CompressionPlan.svd_ranks``): a Linear weight ``W`` (out x in) becomes the rank-r product
  ``W ~= L @ R`` with ``L = U_r S_r^1/2`` (out x r) and ``R = S_r^1/2 V_r^T`` (r x in), as Fast R-CNN
  (Girshick, ICCV 2015, Section 3.1) did for its fc6/fc7. Splitting ``S`` evenly gives both factors the same
  scale. With int8 on, both factors are int8 with one scale per row.

Loading (:func:`decompress_state_dict`) rebuilds dense float32 tensors with exactly the model's keys and
shapes: the loaded model is the ordinary architecture, so tables, hooks and visualisations are unchanged.
It is the cost of a starter's smaller file that is measured (``compression.measured`` in its metadata,
written by ``cnnviz.starter.export_starter``), not assumed.

Tolerance (``tests/test_compress.py`` asserts it for every registered architecture on random input at
initialisation): the logits of the decompressed int8 model stay within ``ROUNDTRIP_LOGIT_RTOL`` (5%)
relative L2 error of the float32 model's, ``||z_c - z|| / ||z||``. SVD's error depends on the trained
spectrum and is measured on val images at export, not bounded here.

Sizes under :func:`default_plan` at 200 classes, 64x64 (:func:`compressed_bytes`, exact: a file's size
depends only on the shapes), against float16:

    family                      float16    default plan                            compressed
    LeNet-5 (modern)             0.15 MiB  float16 (0.08M weights)                   0.15 MiB
    AlexNet                    110.03 MiB  int8 + SVD fc6 r=160, fc7 r=128           6.10 MiB
    ZFNet                      112.69 MiB  int8 + SVD fc6 r=160, fc7 r=128           7.42 MiB
    VGG-16-BN                   77.68 MiB  int8 + SVD fc6 r=64, fc7 r=64            15.80 MiB
    GoogLeNet (no aux heads)    11.80 MiB  int8                                      5.95 MiB
    ResNet-18                   21.54 MiB  int8                                     10.82 MiB
    NiN (CIFAR config)           1.92 MiB  int8                                      0.97 MiB
    seven families together    335.81 MiB                                           47.20 MiB  (budget 48)
    (others: VGG-16 15.76, VGG-11-BN 10.54, ResNet-50 23.10, NiN ImageNet config 6.49 MiB)

``python -m cnnviz.compress`` prints this table. Measured costs (``bench/bench_compress.py``, results in
docs/benchmarks.md): int8 alone changed val top-1 by -0.11 to +0.05 pp on the four trained starters (logits
0.7-1.3% off on average). For SVD, on a trained 4096 x 4096 fc7 (an AlexNet-style head trained on ResNet-18
features; no AlexNet, ZFNet or VGG was trained yet), rank 128 cost -0.36 pp top-1, rank 64 -0.94 pp, rank
256 -0.02 pp; a rank-50/100 fc8 cost -1.5/-0.7 pp for little space, so fc8 stays full rank. The ranks are the
budget's: 47.2 MiB for the seven leaves 0.8 MiB in hand, and VGG-16-BN must stay under 16 MiB per file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn as nn

FORMAT_VERSION = "cnnviz-compression/1"
INT8_MIN_NUMEL = 4096  # below this a weight stays float16: the saving is a few kB and its scales cost bytes
ROUNDTRIP_LOGIT_RTOL = 0.05  # relative L2 logit error of the int8 round trip on random input (tests assert it)
KINDS = ("float16", "int8", "svd_float16", "svd_int8", "exact")

# Suffixes of the stored tensors beside a state-dict key. State-dict keys never contain ':', so a stored name
# cannot collide with a real key, and a plain loader that ignores the compression entry fails loudly
# (missing keys) instead of loading int8 codes as weights.
_Q, _SCALE, _LEFT, _LEFT_SCALE, _RIGHT, _RIGHT_SCALE = (":int8", ":scale", ":left", ":left_scale", ":right",
                                                        ":right_scale")


class CompressionError(ValueError):
    """Compressed weights that cannot be rebuilt; the message says which tensor and what is wrong."""


@dataclass(frozen=True)
class CompressionPlan:
    """What a checkpoint stores: int8 conv/linear weights, and SVD ranks for big Linear weights."""

    name: str  # short, for the card and the CLI: "float16", "int8", "svd-int8", "svd-float16"
    int8: bool = True
    svd_ranks: dict[str, int] = field(default_factory=dict)  # state-dict key of a Linear weight -> rank
    description: str = ""  # one sentence for the model card

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "int8": self.int8, "svd_ranks": dict(self.svd_ranks),
                "description": self.description or describe(self)}


def describe(plan: CompressionPlan) -> str:
    """``"int8 per output channel + SVD classifier.fc6.weight r=256"``: what was done, in words."""
    parts = ["int8 weights, one scale per output channel" if plan.int8 else "float16 weights"]
    if plan.svd_ranks:
        parts.append("truncated SVD of " + ", ".join(f"{k.removesuffix('.weight')} (rank {r})"
                                                     for k, r in plan.svd_ranks.items()))
    return " + ".join(parts)


def make_plan(int8: bool, svd_ranks: dict[str, int] | None = None) -> CompressionPlan:
    """A plan named after what it does: ``float16``, ``int8``, ``svd-int8`` or ``svd-float16``."""
    ranks = dict(svd_ranks or {})
    plan = CompressionPlan(name=("svd-" if ranks else "") + ("int8" if int8 else "float16"), int8=int8,
                           svd_ranks=ranks)
    return replace(plan, description=describe(plan))


# Ranks (fc6, fc7) by family, set by the size budget and the measured costs above: fc7 keeps 128 in AlexNet and
# ZFNet (cheaper per rank than fc6's 9216 inputs, and where rank mattered most), fc6 160; VGG gets 64/64
# because VGG-16-BN's 14.7M conv weights alone take 14 MiB in int8 and one file must stay under 16 MiB.
# fc8 (200 outputs, 0.8M weights) stays int8 at full rank: it maps straight to the logits, and its
# truncation cost the most accuracy per byte saved. A trained checkpoint's export re-measures all this.
_FC_RANKS = {"alexnet": (160, 128), "zfnet": (160, 128), "vgg": (64, 64)}


def default_plan(arch: str, model: nn.Module) -> CompressionPlan:
    """What a starter of ``arch`` ships as (see the module docstring's size table)."""
    if arch.startswith("lenet"):
        return make_plan(int8=False)
    family = "vgg" if arch.startswith("vgg") else arch
    if family not in _FC_RANKS:
        return make_plan(int8=True)
    linears = [(f"{name}.weight", m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    ranks = {}
    for (key, m), r in zip(linears[:2], _FC_RANKS[family], strict=False):  # fc6, fc7 (fc8 stays int8)
        r = min(r, m.in_features, m.out_features)
        if r * (m.in_features + m.out_features) < m.in_features * m.out_features:
            ranks[key] = r
    return make_plan(int8=True, svd_ranks=ranks)


def plan_for(mode: str, arch: str, model: nn.Module, svd_ranks: dict[str, int] | None = None) -> CompressionPlan:
    """The plan for ``--compress MODE`` (``auto`` | ``none`` | ``int8`` | ``svd-int8``), checked against the
    model; ``svd_ranks`` replaces (``svd-int8``) or updates (``auto``) the default ranks."""
    if mode == "auto":
        base = default_plan(arch, model)
        plan = make_plan(base.int8, {**base.svd_ranks, **(svd_ranks or {})})
    elif mode == "none":
        plan = make_plan(int8=False, svd_ranks=svd_ranks)
    elif mode == "int8":
        if svd_ranks:
            raise ValueError("--svd-rank needs --compress svd-int8 or auto (int8 alone keeps every layer full rank)")
        plan = make_plan(int8=True)
    elif mode == "svd-int8":
        plan = make_plan(int8=True, svd_ranks=svd_ranks or default_plan(arch, model).svd_ranks)
        if not plan.svd_ranks:
            raise ValueError(f"{arch} has no fully connected layer big enough for SVD; give --svd-rank KEY=RANK "
                             "or use --compress int8")
    else:
        raise ValueError(f"unknown compression {mode!r}: use auto, none, int8 or svd-int8")
    check_plan(plan, model)
    return plan


def parse_svd_rank(item: str) -> tuple[str, int]:
    """``"classifier.fc6.weight=256"`` -> ``("classifier.fc6.weight", 256)``; ValueError saying what is valid."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--svd-rank {item!r}: expected KEY=RANK, e.g. classifier.fc6.weight=256")
    try:
        rank = int(value)
    except ValueError:
        raise ValueError(f"--svd-rank {item!r}: the rank must be a whole number, got {value!r}") from None
    if rank < 1:
        raise ValueError(f"--svd-rank {item!r}: the rank must be at least 1")
    return key.strip(), rank


def parse_svd_ranks(items: list[str] | None) -> dict[str, int]:
    """Several ``KEY=RANK`` items as a dict (a key given twice keeps its last rank)."""
    return dict(parse_svd_rank(item) for item in items or [])


def check_plan(plan: CompressionPlan, model: nn.Module) -> None:
    """Every SVD key is a Linear weight of ``model`` and its rank fits; ValueError naming the valid keys."""
    linears = {f"{name}.weight": m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    for key, rank in plan.svd_ranks.items():
        if key not in linears:
            raise ValueError(f"{key!r} is not the weight of a Linear layer of this model; SVD applies to: "
                             f"{', '.join(linears) or 'none (no Linear layers)'}")
        m = linears[key]
        if not 1 <= rank <= min(m.in_features, m.out_features):
            raise ValueError(f"rank {rank} does not fit {key} ({m.out_features} x {m.in_features}): use 1 to "
                             f"{min(m.in_features, m.out_features)}")


# ---------------------------------------------------------------------------------------------- int8 / SVD
def quantize_rows(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 with one float32 scale per row (dim 0): ``w ~= q * scale[:, None, ...]``."""
    w = w.detach().float()
    rows = w.reshape(w.shape[0], -1)
    scale = rows.abs().amax(dim=1) / 127.0
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero row: codes 0, scale 0
    q = torch.round(rows / safe[:, None]).clamp_(-127, 127).to(torch.int8)
    return q.reshape(w.shape), scale


def dequantize_rows(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return (q.float().reshape(q.shape[0], -1) * scale.float()[:, None]).reshape(q.shape)


def svd_factors(w: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(L, R)`` on the CPU, ``L @ R`` the best rank-``rank`` approximation of ``w`` (Eckart-Young), S split
    evenly. The full SVD runs on the GPU where there is one: a 4096 x 9216 fc6 takes seconds there and minutes
    on a busy 2-core CPU."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    u, s, vh = torch.linalg.svd(w.detach().to(device, torch.float32), full_matrices=False)
    root = s[:rank].sqrt()
    return (u[:, :rank] * root).contiguous().cpu(), (root[:, None] * vh[:rank]).contiguous().cpu()


def _int8_eligible(key: str, v: torch.Tensor) -> bool:
    # Conv kernels (4 dims) and linear matrices (2 dims) are named *.weight in every registered model; norm
    # weights are 1-dim, LeNet's RBF centres are not named weight and stay float16.
    return key.endswith("weight") and v.ndim in (2, 3, 4, 5) and v.numel() >= INT8_MIN_NUMEL


def compress_state_dict(state: dict[str, torch.Tensor], plan: CompressionPlan
                        ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(tensors, spec)``: the tensors to store and the JSON-able description that rebuilds ``state``."""
    unknown = sorted(set(plan.svd_ranks) - set(state))
    if unknown:
        raise ValueError(f"SVD ranks name keys that are not in the state dict: {unknown}")
    tensors: dict[str, torch.Tensor] = {}
    entries: dict[str, dict[str, Any]] = {}
    for key, v in state.items():
        v = v.detach().to("cpu")
        entry: dict[str, Any] = {"shape": list(v.shape)}
        if not v.is_floating_point():
            entry["kind"] = "exact"
            tensors[key] = v.contiguous().clone()
        elif key in plan.svd_ranks:
            rank = int(plan.svd_ranks[key])
            if v.ndim != 2 or not 1 <= rank <= min(v.shape):
                raise ValueError(f"rank {rank} does not fit {key} of shape {tuple(v.shape)}")
            left, right = svd_factors(v, rank)
            entry.update(kind="svd_int8" if plan.int8 else "svd_float16", rank=rank)
            if plan.int8:
                tensors[key + _LEFT], tensors[key + _LEFT_SCALE] = quantize_rows(left)
                tensors[key + _RIGHT], tensors[key + _RIGHT_SCALE] = quantize_rows(right)
            else:
                tensors[key + _LEFT], tensors[key + _RIGHT] = left.half(), right.half()
        elif plan.int8 and _int8_eligible(key, v):
            entry["kind"] = "int8"
            tensors[key + _Q], tensors[key + _SCALE] = quantize_rows(v)
        else:
            entry["kind"] = "float16"
            tensors[key] = v.to(torch.float16).contiguous().clone()  # clone: safetensors refuses shared storage
        entries[key] = entry
    spec = {"format": FORMAT_VERSION, "plan": plan.to_json(), "tensors": entries}
    return tensors, spec


# ------------------------------------------------------------------------------------------------ rebuild
def _need(tensors: dict[str, torch.Tensor], name: str, key: str, what: str, dtype: torch.dtype,
          shape: tuple[int, ...]) -> torch.Tensor:
    t = tensors.get(name)
    if t is None:
        raise CompressionError(f"{key}: its {what} ({name}) is missing from the weights file; the file is "
                               "damaged or was not written by cnnviz")
    if t.dtype != dtype or tuple(t.shape) != tuple(shape):
        raise CompressionError(f"{key}: its {what} ({name}) is {str(t.dtype).replace('torch.', '')} "
                               f"{tuple(t.shape)}, expected {str(dtype).replace('torch.', '')} {tuple(shape)}")
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise CompressionError(f"{key}: its {what} ({name}) holds NaN or infinite values; the file is damaged")
    return t


def _entry_shape(key: str, entry: Any) -> tuple[int, ...]:
    if not isinstance(entry, dict) or entry.get("kind") not in KINDS:
        kind = entry.get("kind") if isinstance(entry, dict) else entry
        raise CompressionError(f"{key}: unknown storage kind {kind!r} (this cnnviz reads {', '.join(KINDS)})")
    shape = entry.get("shape")
    if not isinstance(shape, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                              for n in shape):
        raise CompressionError(f"{key}: its recorded shape {shape!r} is not a list of sizes")
    return tuple(shape)


def _check_architecture(entries: dict[str, Any], expected_shapes: dict[str, tuple[int, ...]]) -> None:
    missing = sorted(set(expected_shapes) - set(entries))
    unexpected = sorted(set(entries) - set(expected_shapes))
    if missing or unexpected:
        raise CompressionError(f"its tensors do not match the architecture: {len(missing)} missing (e.g. "
                               f"{missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    for key, entry in entries.items():
        shape = _entry_shape(key, entry)
        if shape != tuple(expected_shapes[key]):
            raise CompressionError(f"{key} is recorded as {shape}, the architecture needs "
                                   f"{tuple(expected_shapes[key])}")


def decompress_state_dict(tensors: dict[str, torch.Tensor], spec: dict[str, Any], *,
                          expected_shapes: dict[str, tuple[int, ...]] | None = None) -> dict[str, torch.Tensor]:
    """Dense tensors (float32 for floating ones) for every key of ``spec``; :class:`CompressionError` on a
    version, tensor, factor or scale that does not fit (nothing is returned half-built).

    ``expected_shapes`` (the architecture's state-dict shapes) is checked first, before any tensor is
    rebuilt: a damaged entry cannot make it multiply out a matrix of a size the model never had.
    """
    if not isinstance(spec, dict) or spec.get("format") != FORMAT_VERSION:
        version = spec.get("format") if isinstance(spec, dict) else spec
        raise CompressionError(f"compression format {version!r} is not one this cnnviz reads ({FORMAT_VERSION}); "
                               "update cnnviz, or export the checkpoint again")
    entries = spec.get("tensors")
    if not isinstance(entries, dict) or not entries:
        raise CompressionError("the compression entry lists no tensors")
    if expected_shapes is not None:
        _check_architecture(entries, expected_shapes)
    state: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for key, entry in entries.items():
        shape = _entry_shape(key, entry)
        kind = entry["kind"]
        if kind in ("float16", "exact"):
            t = tensors.get(key)
            if t is None:
                raise CompressionError(f"{key} is missing from the weights file; the file is damaged")
            if tuple(t.shape) != shape or (kind == "float16") != t.is_floating_point():
                raise CompressionError(f"{key} is stored as {str(t.dtype).replace('torch.', '')} "
                                       f"{tuple(t.shape)}, the compression entry says {kind} {shape}")
            state[key], names = (t.float() if kind == "float16" else t), [key]
        elif kind == "int8":
            if len(shape) < 2:
                raise CompressionError(f"{key}: int8 storage needs a weight of 2 or more dims, not {shape}")
            q = _need(tensors, key + _Q, key, "int8 codes", torch.int8, shape)
            scale = _need(tensors, key + _SCALE, key, "per-channel scales", torch.float32, shape[:1])
            state[key], names = dequantize_rows(q, scale), [key + _Q, key + _SCALE]
        else:  # svd_int8 / svd_float16
            rank = entry.get("rank")
            if len(shape) != 2 or not isinstance(rank, int) or not 1 <= rank <= min(shape):
                raise CompressionError(f"{key}: rank {rank!r} does not fit a {shape} matrix (1 to "
                                       f"{min(shape) if len(shape) == 2 else '?'})")
            out_f, in_f = shape
            names = [key + _LEFT, key + _RIGHT]
            if kind == "svd_int8":
                left = dequantize_rows(_need(tensors, key + _LEFT, key, "left SVD factor", torch.int8, (out_f, rank)),
                                       _need(tensors, key + _LEFT_SCALE, key, "left factor's scales", torch.float32,
                                             (out_f,)))
                right = dequantize_rows(_need(tensors, key + _RIGHT, key, "right SVD factor", torch.int8,
                                              (rank, in_f)),
                                        _need(tensors, key + _RIGHT_SCALE, key, "right factor's scales",
                                              torch.float32, (rank,)))
                names += [key + _LEFT_SCALE, key + _RIGHT_SCALE]
            else:
                left = _need(tensors, key + _LEFT, key, "left SVD factor", torch.float16, (out_f, rank)).float()
                right = _need(tensors, key + _RIGHT, key, "right SVD factor", torch.float16, (rank, in_f)).float()
            state[key] = left @ right
        used.update(names)
    extra = sorted(set(tensors) - used)
    if extra:
        raise CompressionError(f"the weights file holds {len(extra)} tensors the compression entry does not "
                               f"describe (e.g. {extra[:3]}); it does not belong to this metadata")
    return state


# ------------------------------------------------------------------------------------------------- sizes
def stored_layout(state: dict[str, torch.Tensor], plan: CompressionPlan) -> dict[str, tuple[torch.dtype, tuple]]:
    """``{stored name: (dtype, shape)}`` that :func:`compress_state_dict` writes for ``state``, without doing the
    work (no SVD): sizes for planning a budget. A test checks it against real files."""
    layout: dict[str, tuple[torch.dtype, tuple]] = {}
    for key, v in state.items():
        shape = tuple(v.shape)
        if not v.is_floating_point():
            layout[key] = (v.dtype, shape)
        elif key in plan.svd_ranks:
            (out_f, in_f), rank = shape, int(plan.svd_ranks[key])
            code = torch.int8 if plan.int8 else torch.float16
            layout[key + _LEFT], layout[key + _RIGHT] = (code, (out_f, rank)), (code, (rank, in_f))
            if plan.int8:
                layout[key + _LEFT_SCALE], layout[key + _RIGHT_SCALE] = (torch.float32, (out_f,)), (torch.float32, (rank,))
        elif plan.int8 and _int8_eligible(key, v):
            layout[key + _Q], layout[key + _SCALE] = (torch.int8, shape), (torch.float32, shape[:1])
        else:
            layout[key] = (torch.float16, shape)
    return layout


def compressed_bytes(model: nn.Module, plan: CompressionPlan) -> int:
    """Size of the safetensors file that ``plan`` writes for ``model``: exact but for the few bytes of header
    metadata (format, arch) that ``save_checkpoint`` adds. Uninitialised stand-ins, no SVD: it is instant."""
    from safetensors.torch import save as st_save

    layout = stored_layout(model.state_dict(), plan)
    return len(st_save({k: torch.empty(shape, dtype=dtype) for k, (dtype, shape) in layout.items()}))


def _size_table() -> str:  # python -m cnnviz.compress: the module docstring's table, computed
    from cnnviz.models import create_model

    seven = [("lenet5", {"variant": "modern"}), ("alexnet", {}), ("zfnet", {}), ("vgg16_bn", {}),
             ("googlenet", {"aux_logits": False}), ("resnet18", {}), ("nin", {"config": "cifar"})]
    others = [("vgg16", {}), ("vgg11_bn", {}), ("resnet50", {}), ("nin", {})]
    lines, totals = [], [0, 0]
    for arch, variant in seven + others:
        model = create_model(arch, num_classes=200, input_size=64, **variant)
        plan = default_plan(arch, model)
        half, packed = compressed_bytes(model, make_plan(int8=False)), compressed_bytes(model, plan)
        if (arch, variant) in seven:
            totals = [totals[0] + half, totals[1] + packed]
        lines.append(f"{arch:10s} {str(variant or ''):24s} float16 {half / 2**20:7.2f} MiB  {plan.name:9s} "
                     f"{packed / 2**20:6.2f} MiB  {plan.description}")
    lines.insert(len(seven), f"{'seven families':35s} {totals[0] / 2**20:7.2f} MiB  {'':9s} "
                             f"{totals[1] / 2**20:6.2f} MiB  (budget 48 MiB)")
    return "\n".join(lines)


if __name__ == "__main__":
    print(_size_table())
