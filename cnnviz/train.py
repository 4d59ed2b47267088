"""Training: :class:`TrainConfig`, the loop, DDP, and the worker entry point ``python -m cnnviz.train``.

One process (or one per GPU under ``torchrun``) trains one run folder (see :mod:`cnnviz.runs`)::

    python -m cnnviz.train --run checkpoints/my-run                       # config.json already there
    torchrun --standalone --nproc_per_node 8 -m cnnviz.train --run-dir checkpoints/r18 --arch resnet18 --data auto

What the loop does, and why:

* batches come from :class:`cnnviz.data.BatchPipeline` (the whole uint8 split on the device, augmentation
  batched on the device), never from a per-image DataLoader;
* bf16 autocast on CUDA and on CPUs with native bf16 (no loss scaler needed, unlike fp16), channels_last,
  optional ``torch.compile``;
* SGD with (Nesterov) momentum or AdamW; no weight decay on biases and norm parameters (1-d tensors), the
  usual practice since "Bag of Tricks" (He et al., 2019); label smoothing; linear warm-up then cosine, or a
  one-cycle schedule; the learning rate is a pure function of the global step, so resuming needs only the step;
* GoogLeNet-style auxiliary heads: in training mode the model returns ``(logits, aux1, ...)`` and the loss is
  ``main + model.aux_loss_weight * sum(aux)`` (Szegedy et al., 2014, weight 0.3);
* resume state (``optim.pt``) holds the model, optimizer, step, RNG states and the partial epoch's sums as
  tensors and plain containers only, so ``torch.load(weights_only=True)`` reads it; it is written atomically
  in one file, so a kill -9 at any moment leaves either the old or the new resume point, never a mix;
* per epoch ``metrics.jsonl`` gets one line *before* the resume point is saved; on resume every line past
  the resume point's epoch is dropped, so a kill between the two never duplicates or loses a line;
* SIGTERM (and Ctrl-C in the foreground) finishes the current step, saves ``last`` and the resume point
  mid-epoch, and ends with state ``stopped``;
* errors a user will meet end the run with state ``failed``, a message for humans and a ``reason`` code:
  ``dataset``, ``oom``, ``nan``, ``disk_full``, ``read_only``, ``input_size``, ``config``, ``busy``, ``error``.

This module imports no streamlit, captum or plotly: the worker runs on machines that lack them.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import fcntl
import io
import json
import logging
import math
import os
import random
import resource
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnviz import __version__
from cnnviz.device import bf16_autocast_ok
from cnnviz.fsutil import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json
from cnnviz.models import InputSizeError, create_model, get_card, list_models, meta_model, parse_variant
from cnnviz.paths import data_dir
from cnnviz.runs import read_metrics, write_status

log = logging.getLogger("cnnviz.train")

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "onecycle")
DEVICES = ("auto", "cuda", "cpu", "mps")
AUGMENTS = ("crop_flip", "rrc", "flip", "none")  # cnnviz.data.pipeline.AUGMENTS
MAX_BATCH = 65_536
DISK_ERRNOS = {errno.ENOSPC: "disk_full", errno.EDQUOT: "disk_full", errno.EACCES: "read_only",
               errno.EROFS: "read_only", errno.EPERM: "read_only"}
_DEFAULT_LR = {"sgd": 0.1, "adamw": 2e-3}
_DEFAULT_WD = {"sgd": 5e-4, "adamw": 0.05}


# ============================================================================================ configuration
@dataclass
class TrainConfig:
    """Everything that defines a run; ``config.json`` is ``asdict(config)`` and reproduces it."""

    arch: str
    variant: dict[str, Any] = field(default_factory=dict)  # architecture options, e.g. {"stem": "tiny"}
    data: str = "auto"  # "auto" (find Tiny ImageNet), "synthetic", or a folder / zip
    epochs: int = 30
    batch_size: int = 256  # per process; under torchrun the global batch is this times the world size
    lr: float | None = None  # None: 0.1 for SGD, 2e-3 for AdamW (for batch 256)
    optimizer: str = "sgd"
    momentum: float = 0.9  # SGD momentum; AdamW's beta1
    nesterov: bool = True
    weight_decay: float | None = None  # None: 5e-4 for SGD, 0.05 for AdamW; never on biases / norm weights
    schedule: str = "cosine"
    warmup_epochs: float = 1.0  # linear warm-up (cosine); the rising phase of one-cycle (0: 30% of the run)
    label_smoothing: float = 0.1
    augment: str = "crop_flip"
    device: str = "auto"
    seed: int = 0
    amp: bool = True  # bf16 autocast for training on CUDA and on CPUs with native bf16 (device.bf16_autocast_ok)
    channels_last: bool = True
    compile: bool = False
    # Exponential moving average of the weights (0: off). Evaluation, ``last`` and ``best`` then use the averaged
    # weights; metrics.jsonl also keeps the live weights' ``val_top1_raw`` so the gain is measured, not assumed.
    ema_decay: float = 0.0
    ema_every: int = 1  # update the average every N steps (the decay is compounded to match)
    # Evaluate also with horizontal-flip test-time augmentation (mean of the two logits): ``val_top1_tta``.
    # ``val_top1`` stays the plain forward that ``cnnviz evaluate`` and Predict reproduce.
    tta_flip: bool = False
    input_size: int = 64
    keep_snapshots: bool = False  # epochs/epoch_NNN.safetensors every epoch (for "across training" views)
    save_every_min: float = 10.0  # a mid-epoch resume point at most this often (0: only at epoch ends)
    heartbeat_s: float = 2.0  # status.json refresh period
    eval_batch_size: int | None = None  # None: 2 x batch_size
    max_steps_per_epoch: int | None = None  # cut epochs short (quick demos); None: the whole split
    allow_concurrent: bool = False  # start even if another job holds this device
    name: str | None = None  # run name prefix (default: the architecture)

    def __post_init__(self) -> None:
        if self.lr is None:
            self.lr = _DEFAULT_LR.get(self.optimizer, 0.1)
        if self.weight_decay is None:
            self.weight_decay = _DEFAULT_WD.get(self.optimizer, 5e-4)
        if self.variant is None:
            self.variant = {}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Build from ``config.json``; keys this version does not know (``created`` ...) are ignored."""
        if not isinstance(d, dict) or "arch" not in d:
            raise ValueError("a training configuration needs at least an 'arch'")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> TrainConfig:
        """Raise ``ValueError`` (or :class:`InputSizeError`) with a clear message for a config that cannot
        train; returns ``self``. Checks the architecture can take ``input_size`` without building weights."""
        if self.arch not in list_models():
            raise ValueError(f"unknown architecture {self.arch!r}; choose one of {', '.join(list_models())}")
        card = get_card(self.arch)
        if not isinstance(self.variant, dict):
            raise ValueError("variant must be a mapping of option -> value")
        unknown = sorted(set(self.variant) - set(card.variants))
        if unknown:
            raise ValueError(f"{self.arch} has no option {', '.join(unknown)}; "
                             f"it takes {', '.join(card.variants) or 'none'}")
        card.check_variant(self.variant)  # each option's type and choices
        _check_int("epochs", self.epochs, 1, 100_000, "at least 1 epoch")
        _check_int("batch size", self.batch_size, 1, MAX_BATCH, "at least 1")
        if self.eval_batch_size is not None:
            _check_int("eval batch size", self.eval_batch_size, 1, MAX_BATCH, "at least 1")
        if self.max_steps_per_epoch is not None:
            _check_int("max steps per epoch", self.max_steps_per_epoch, 1, 10**9, "at least 1")
        _check_int("input size", self.input_size, 1, 4096, "a positive number of pixels")
        _check_float("learning rate", self.lr, lo=0.0, lo_open=True)
        _check_float("weight decay", self.weight_decay, lo=0.0)
        _check_float("momentum", self.momentum, lo=0.0, hi=1.0, hi_open=True)
        _check_float("label smoothing", self.label_smoothing, lo=0.0, hi=1.0, hi_open=True)
        _check_float("warm-up epochs", self.warmup_epochs, lo=0.0)
        _check_float("save interval", self.save_every_min, lo=0.0)
        _check_float("heartbeat", self.heartbeat_s, lo=0.0, lo_open=True)
        _check_float("EMA decay", self.ema_decay, lo=0.0, hi=1.0, hi_open=True)
        _check_int("EMA interval", self.ema_every, 1, 10_000, "at least 1 step")
        for name, value, allowed in (("optimizer", self.optimizer, OPTIMIZERS),
                                     ("schedule", self.schedule, SCHEDULES),
                                     ("device", self.device, DEVICES), ("augment", self.augment, AUGMENTS)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)} (got {value!r})")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"seed must be an integer (got {self.seed!r})")
        if not isinstance(self.data, str) or not self.data.strip():
            raise ValueError("data must be 'auto', 'synthetic' or a path to Tiny ImageNet")
        # Input size: build on the meta device (no memory, no compute) so an architecture that cannot take the
        # size says so now, not minutes later in the worker. Other build failures are left to the worker.
        try:
            meta_model(self.arch, num_classes=200, input_size=self.input_size, **self.variant)
        except InputSizeError:
            raise
        except (TypeError, ValueError) as e:
            raise ValueError(f"{self.arch} cannot be built with these options: {e}") from e
        except Exception:  # noqa: BLE001 - e.g. an op the meta device lacks; the worker builds it for real
            pass
        return self


def _check_int(name: str, value: Any, lo: int, hi: int, hint: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ValueError(f"{name} must be a whole number (got {value!r})")
    if value < lo:
        raise ValueError(f"{name} must be {hint} (got {value})")
    if value > hi:
        raise ValueError(f"{name} {value} is too large (at most {hi})")


def _check_float(name: str, value: Any, lo: float | None = None, hi: float | None = None,
                 lo_open: bool = False, hi_open: bool = False) -> None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number (got {value!r})") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number (got {value!r})")
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise ValueError(f"{name} must be {'greater than' if lo_open else 'at least'} {lo:g} (got {v:g})")
    if hi is not None and (v > hi or (hi_open and v == hi)):
        raise ValueError(f"{name} must be {'less than' if hi_open else 'at most'} {hi:g} (got {v:g})")


def code_version() -> dict[str, str | None]:
    """The library version and git commit (when the checkout is a git repository) for ``config.json``."""
    commit = None
    try:
        head = (Path(__file__).resolve().parent.parent / ".git" / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            ref = Path(__file__).resolve().parent.parent / ".git" / head[5:]
            commit = ref.read_text().strip() if ref.exists() else None
        else:
            commit = head
    except OSError:
        pass
    return {"cnnviz_version": __version__, "git_commit": commit}


# =================================================================================================== errors
class TrainingFailed(Exception):
    """Ends a run with state ``failed``; ``message`` is for humans, ``reason`` a stable code."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


def disk_error(e: OSError, where: Path) -> TrainingFailed | None:
    """A full disk or a read-only folder as a readable failure (None for other OS errors)."""
    reason = DISK_ERRNOS.get(e.errno or 0)
    if reason == "disk_full":
        return TrainingFailed(reason, f"the disk holding {where} is full ({e.strerror or e}); the last good "
                                      "checkpoint is kept. Free some space and press Resume.")
    if reason == "read_only":
        return TrainingFailed(reason, f"cannot write to {where} ({e.strerror or e}): the folder is read-only or "
                                      "not yours; the last good checkpoint is kept. Fix the permissions or "
                                      "choose another checkpoints folder.")
    return None


# ===================================================================================================== data
def synthetic_root() -> Path:
    """The cached synthetic dataset (generated once under ``data_dir()/synthetic``; safe against two workers
    generating it at the same time)."""
    from cnnviz import data as D

    root = data_dir() / "synthetic"
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(data_dir() / ".synthetic.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # synthetic.json is written last: without it the folder is a generation cut short; start again.
        if not (root / "synthetic.json").exists():
            if root.exists():
                shutil.rmtree(root)
            D.make_synthetic(root)
        found = D.find_dataset(root)
    if found is None:
        raise D.DatasetError(f"the synthetic dataset in {root} is incomplete; delete that folder and retry")
    return Path(found)


def resolve_data(spec: str | None) -> Path:
    """A Tiny-ImageNet-layout root for ``auto`` / ``synthetic`` / a folder or zip; :class:`DatasetError` with
    the fix otherwise."""
    from cnnviz import data as D

    spec = (spec or "auto").strip()
    if spec == "synthetic":
        return synthetic_root()
    if spec == "auto":
        root = D.find_dataset(None)
        if root is None:
            raise D.DatasetError("Tiny ImageNet was not found: run `python -m cnnviz data prepare --source "
                                 "download` (or --source PATH to a zip), or train on the synthetic set "
                                 "(--data synthetic)")
        return Path(root)
    path = Path(spec).expanduser()
    if not path.exists():
        raise D.DatasetError(f"the dataset path {path} does not exist")
    root = D.find_dataset(path)
    if root is None and path.is_file():
        root = D.prepare(path)
    if root is None:
        raise D.DatasetError(f"no Tiny ImageNet found in {path} (expected wnids.txt, train/ and val/); "
                             "run `python -m cnnviz data prepare --source PATH` first")
    return Path(root)


# ================================================================================================ schedules
def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float, schedule: str) -> float:
    """Learning rate for ``step`` (0-based) of ``total_steps``; a pure function so resuming needs only the step.

    ``cosine``: linear warm-up from ~0 to ``base_lr`` over ``warmup_steps`` then half a cosine to 0.
    ``onecycle``: linear rise from ``base_lr/25`` to ``base_lr`` over the warm-up (30% of the run when it is
    0), then cosine down to ``base_lr/1e4`` (Smith & Topin, 2018; momentum is not cycled here).
    """
    total_steps = max(1, total_steps)
    if schedule == "onecycle":
        up = warmup_steps if warmup_steps > 0 else int(0.3 * total_steps)
        start, end = base_lr / 25, base_lr / 1e4
        if step < up:
            return start + (base_lr - start) * step / max(1, up)
        t = min(1.0, (step - up) / max(1, total_steps - up))
        return end + (base_lr - end) * 0.5 * (1 + math.cos(math.pi * t))
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    t = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return base_lr * 0.5 * (1 + math.cos(math.pi * t))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on conv / linear weights only: decaying biases and norm scales only hurts (1-d tensors)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(cfg: TrainConfig, model: nn.Module, device: torch.device) -> torch.optim.Optimizer:
    groups = param_groups(model, float(cfg.weight_decay))
    fused = {"fused": True} if device.type == "cuda" else {}
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999), **fused)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum,
                           nesterov=bool(cfg.nesterov and cfg.momentum > 0), **fused)


def compute_loss(out: torch.Tensor | tuple, y: torch.Tensor, criterion: nn.Module,
                 aux_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss, main_logits)``; auxiliary heads (a tuple in training mode) add ``aux_weight`` x their losses."""
    if isinstance(out, (tuple, list)):
        main, aux = out[0], out[1:]
        loss = criterion(main.float(), y)
        if aux:
            loss = loss + aux_weight * sum(criterion(a.float(), y) for a in aux)
        return loss, main
    return criterion(out.float(), y), out


# ============================================================================================ distribution
@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_env(cls) -> Dist:
        """What ``torchrun`` sets (RANK, WORLD_SIZE, LOCAL_RANK); a plain process is rank 0 of 1."""
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)))

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            import torch.distributed as tdist

            tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
        return t


def _init_distributed(dist: Dist, device: torch.device) -> torch.device:
    """NCCL on CUDA (one GPU per local rank), gloo on the CPU."""
    if not dist.enabled:
        return device
    import torch.distributed as tdist

    if device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not tdist.is_initialized():
        tdist.init_process_group(backend=backend, timeout=timedelta(minutes=30))
    return device


# ============================================================================================ test faults
class _Faults:
    """Fault injection for tests, from ``$CNNVIZ_FAULT`` (comma separated; never set in normal use):
    ``oom@N`` (CUDA out-of-memory at global step N), ``nan@N`` (loss NaN from step N), ``sleep=S`` (seconds per
    step, to make a tiny run slow enough to kill), ``save=ENOSPC|EACCES`` (checkpoint saves fail)."""

    def __init__(self, spec: str | None):
        self.oom = self.nan = None
        self.sleep = 0.0
        self.save_errno: int | None = None
        for part in filter(None, (spec or "").split(",")):
            key, _, val = part.partition("@") if "@" in part else part.partition("=")
            if key == "oom":
                self.oom = int(val)
            elif key == "nan":
                self.nan = int(val)
            elif key == "sleep":
                self.sleep = float(val)
            elif key == "save":
                self.save_errno = getattr(errno, val)

    def step(self, global_step: int, loss: torch.Tensor) -> torch.Tensor:
        if self.sleep:
            time.sleep(self.sleep)
        if self.oom is not None and global_step >= self.oom:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        if self.nan is not None and global_step >= self.nan:
            loss = loss * float("nan")
        return loss

    def before_save(self) -> None:
        if self.save_errno is not None:
            raise OSError(self.save_errno, os.strerror(self.save_errno))


# ================================================================================================== trainer
@torch.no_grad()
def evaluate(model: nn.Module, batches, device: torch.device, amp: bool = True,
             dist: Dist | None = None, tta_flip: bool = False) -> dict[str, float]:
    """Loss, top-1 and top-5 (fractions) over ``batches`` of ``(x, y)``; summed over ranks under DDP.

    ``tta_flip`` adds ``top1_tta``/``top5_tta``: the mean of the logits of each image and its mirror image
    (the flip test-time augmentation of fast CIFAR recipes such as airbench). The plain numbers are unchanged.
    """
    was_training = model.training
    model.eval()
    sums = torch.zeros(6, dtype=torch.float64, device=device)  # loss, top1, top5, n, top1 tta, top5 tta

    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
            out = model(x)
        return (out[0] if isinstance(out, (tuple, list)) else out).float()

    def hits(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hit = top == y[:, None]
        return hit[:, 0].sum(), hit.any(dim=1).sum()

    try:
        for x, y in batches:
            logits = forward(x)
            sums[0] += F.cross_entropy(logits, y, reduction="sum").double()
            c1, c5 = hits(logits, y)
            sums[1] += c1
            sums[2] += c5
            sums[3] += y.numel()
            if tta_flip:
                c1, c5 = hits(logits + forward(x.flip(3)), y)
                sums[4] += c1
                sums[5] += c5
    finally:
        model.train(was_training)
    if dist is not None:
        dist.all_sum(sums)
    loss, c1, c5, n, t1, t5 = sums.tolist()
    n = max(n, 1.0)
    result = {"loss": loss / n, "top1": c1 / n, "top5": c5 / n, "n": int(sums[3].item())}
    if tta_flip:
        result.update(top1_tta=t1 / n, top5_tta=t5 / n)
    return result


class WeightAverage:
    """An exponential moving average of a model's weights (Polyak averaging; "EMA" in airbench and timm).

    ``model`` is a frozen copy in eval mode: floating parameters and buffers are averaged, integer buffers
    (BatchNorm's ``num_batches_tracked``) copied. Early on the decay is ``min(decay, (1 + n) / (10 + n))`` for
    the ``n``-th update, as in timm's ModelEmaV2 warm-up, so the average does not start as the random init.
    Updating every ``every`` steps with the decay raised to that power gives nearly the same average at a
    fraction of the cost (airbench updates every 5 steps).
    """

    def __init__(self, model: nn.Module, decay: float, every: int = 1):
        import copy

        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.every, self.updates = float(decay), int(every), 0

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        if (step + 1) % self.every:
            return
        d = min(self.decay, (1 + self.updates) / (10 + self.updates)) ** self.every
        self.updates += 1
        mine = [t for t in self._tensors(self.model)]
        live = [t.detach() for t in self._tensors(model)]
        floats = [(a, b) for a, b in zip(mine, live, strict=True) if a.is_floating_point()]
        if floats:
            torch._foreach_lerp_([a for a, _ in floats], [b for _, b in floats], 1.0 - d)
        for a, b in zip(mine, live, strict=True):
            if not a.is_floating_point():
                a.copy_(b)

    @staticmethod
    def _tensors(model: nn.Module) -> list[torch.Tensor]:
        return [*model.parameters(), *model.buffers()]

    def state_dict(self) -> dict[str, Any]:
        return {"model": {k: v.detach().to("cpu").clone() for k, v in self.model.state_dict().items()},
                "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])


def evaluate_checkpoint(path: str | Path, data: str | None = None, device: str = "auto",
                        batch_size: int = 256) -> dict[str, Any]:
    """Val top-1/top-5 of a checkpoint: ``{"checkpoint", "top1", "top5", "n", "loss"}`` (fractions).

    ``data`` defaults to the dataset the checkpoint was trained on (its ``train_config``), else ``auto``.
    Refuses a dataset whose classes differ from the checkpoint's (the accuracy would be meaningless).
    """
    from cnnviz.checkpoint import load_checkpoint
    from cnnviz.data import BatchPipeline, DatasetError, load_split
    from cnnviz.device import pick_device

    _check_int("batch size", batch_size, 1, MAX_BATCH, "at least 1")
    dev = pick_device(device)
    ckpt = load_checkpoint(path, dev)
    meta = ckpt.meta
    spec = data or (meta.get("train_config") or {}).get("data") or "auto"
    val = load_split(resolve_data(spec), "val")
    classes = meta.get("classes")
    if classes and list(classes) != list(val.wnids):
        raise DatasetError(f"the checkpoint was trained on {len(classes)} classes that differ from the "
                           f"dataset's {len(val.wnids)} classes; evaluate it on the data it was trained on")
    if int(meta["num_classes"]) != len(val.wnids):
        raise DatasetError(f"the checkpoint has {meta['num_classes']} outputs but the dataset has "
                           f"{len(val.wnids)} classes")
    mean = meta.get("mean") or val.mean
    std = meta.get("std") or val.std
    pipe = BatchPipeline(val.images, val.labels, batch_size, dev, train=False, augment="none", mean=mean,
                         std=std, drop_last=False, size=int(meta["input_size"]))
    r = evaluate(ckpt.model, pipe, dev, amp=True)
    return {"checkpoint": str(ckpt.path), "top1": r["top1"], "top5": r["top5"], "n": r["n"], "loss": r["loss"]}


class Trainer:
    """Trains the run in ``run_dir`` (whose ``config.json`` it was given) to the end, a stop, or a failure."""

    def __init__(self, run_dir: Path, cfg: TrainConfig, dist: Dist | None = None):
        self.run_dir = Path(run_dir)
        self.cfg = cfg
        self.dist = dist or Dist()
        self.stop_requested = False
        self.faults = _Faults(os.environ.get("CNNVIZ_FAULT"))
        self.started = time.time()
        self.status: dict[str, Any] = {}
        self._last_status = 0.0
        self._last_save = time.monotonic()
        self.epoch = 0  # 0-based epoch being trained
        self.step_in_epoch = 0
        self.global_step = 0
        self.steps_per_epoch = 0
        self.elapsed_before = 0.0  # training seconds of earlier sessions (resume)
        self.best_top1 = -1.0

    # ----------------------------------------------------------------------------------------------- status
    def _write_status(self, force: bool = True, **fields: Any) -> None:
        if not self.dist.main:
            return
        now = time.time()
        if not force and now - self._last_status < self.cfg.heartbeat_s:
            return
        self._last_status = now
        self.status.update(fields)
        finished = self.epoch >= self.cfg.epochs
        self.status.update(epoch=min(self.epoch + 1, self.cfg.epochs),
                           step=self.steps_per_epoch if finished else self.step_in_epoch,
                           steps_per_epoch=self.steps_per_epoch, global_step=self.global_step,
                           total_epochs=self.cfg.epochs, heartbeat=now)
        atomic_write_json(self.run_dir / "status.json", self.status)

    def _eta(self) -> float | None:
        done = self.global_step - self._session_step0
        if done <= 0:
            return None
        per_step = (time.time() - self._session_t0) / done
        remaining = self.cfg.epochs * self.steps_per_epoch - self.global_step
        return round(max(0.0, remaining * per_step), 1)

    # ---------------------------------------------------------------------------------------------- set-up
    def _setup(self) -> None:
        from cnnviz.data import BatchPipeline, load_split

        cfg = self.cfg
        from cnnviz.device import pick_device

        self.device = _init_distributed(self.dist, pick_device(cfg.device))
        dev = self.device
        seed = cfg.seed + self.dist.rank
        random.seed(seed)
        torch.manual_seed(cfg.seed)  # same initial weights on every rank (DDP also broadcasts them)
        if dev.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.set_float32_matmul_precision("high")  # TF32 for what runs outside bf16 autocast
        self._write_status(state="running", message="loading the dataset")
        self.data_root = resolve_data(cfg.data)
        train = load_split(self.data_root, "train")
        val = load_split(self.data_root, "val")
        self.train_split, self.val_split = train, val
        n_train = len(train.labels)
        if cfg.batch_size * self.dist.world_size > n_train:
            raise TrainingFailed("config", f"batch size {cfg.batch_size} is larger than the training set "
                                           f"({n_train} images); choose at most {n_train // self.dist.world_size}")
        self.num_classes = len(train.wnids)
        self.status.update(num_classes=self.num_classes, data_root=str(self.data_root))
        log.info("data: %s (%d train, %d val images, %d classes)", self.data_root, n_train, len(val.labels),
                 self.num_classes)
        try:
            model = create_model(cfg.arch, num_classes=self.num_classes, input_size=cfg.input_size, **cfg.variant)
        except InputSizeError as e:
            raise TrainingFailed("input_size", str(e)) from e
        fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.raw_model = model.to(dev, memory_format=fmt)
        self.aux_weight = float(getattr(model, "aux_loss_weight", 0.0) or 0.0)
        self.model = self.raw_model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.model = DDP(self.raw_model, device_ids=[dev.index] if dev.type == "cuda" else None)
        if cfg.compile:
            self.model = torch.compile(self.model)
        self.optimizer = make_optimizer(cfg, self.raw_model, dev)
        self.ema = WeightAverage(self.raw_model, cfg.ema_decay, cfg.ema_every) if cfg.ema_decay > 0 else None
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        common = {"mean": train.mean, "std": train.std, "rank": self.dist.rank, "world_size": self.dist.world_size,
                  "channels_last": cfg.channels_last, "size": cfg.input_size}
        self.train_pipe = BatchPipeline(train.images, train.labels, cfg.batch_size, dev, train=True,
                                        augment=cfg.augment, seed=cfg.seed, drop_last=True, **common)
        self.val_pipe = BatchPipeline(val.images, val.labels, cfg.eval_batch_size or 2 * cfg.batch_size, dev,
                                      train=False, augment="none", seed=cfg.seed, drop_last=False, **common)
        self.steps_per_epoch = len(self.train_pipe)
        if cfg.max_steps_per_epoch:
            self.steps_per_epoch = min(self.steps_per_epoch, cfg.max_steps_per_epoch)
        if self.steps_per_epoch < 1:
            raise TrainingFailed("config", "the training set gives no full batch per process; lower the batch size")
        self.total_steps = cfg.epochs * self.steps_per_epoch
        self.warmup_steps = int(round(cfg.warmup_epochs * self.steps_per_epoch))
        self._partial = torch.zeros(3, dtype=torch.float64, device=dev)  # loss sum, correct, seen (this epoch)
        self._resume()
        if self.dist.enabled:
            # Same initial weights on every rank (seeded above; DDP broadcasts rank 0's anyway), but each
            # rank its own dropout masks from here on: identical masks would waste the extra ranks.
            torch.manual_seed(cfg.seed + 7919 * self.dist.rank + self.global_step)

    # ---------------------------------------------------------------------------------------- save / resume
    def _resume_state(self) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "format": "cnnviz-resume/1",
            "model": {k: v.detach().to("cpu").clone() for k, v in self.raw_model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,  # 0-based epoch to continue (== epochs completed when step_in_epoch == 0)
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "best_top1": float(self.best_top1),
            "elapsed_s": float(self._elapsed()),
            "partial": self._partial.detach().to("cpu").clone(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": rng,
            "scheduler": {"kind": self.cfg.schedule, "total_steps": self.total_steps,
                          "warmup_steps": self.warmup_steps, "base_lr": float(self.cfg.lr)},
        }

    def _save_resume_point(self) -> None:
        buf = io.BytesIO()
        torch.save(self._resume_state(), buf)
        atomic_write_bytes(self.run_dir / "optim.pt", buf.getvalue())

    def _meta(self, metrics: dict[str, Any] | None) -> dict[str, Any]:
        from cnnviz.checkpoint import build_meta

        tr = self.train_split
        return build_meta(self.raw_model, classes=tr.wnids, class_names=tr.class_names, mean=tr.mean, std=tr.std,
                          epoch=self.epoch,  # epochs completed
                          step=self.global_step, metrics=metrics or {}, train_config=self.cfg.to_dict(),
                          run=self.run_dir.name, data={"root": str(self.data_root),
                                                      "train_images": len(tr.labels),
                                                      "val_images": len(self.val_split.labels)})

    @property
    def eval_model(self) -> nn.Module:
        """What is evaluated and saved: the weight average when there is one, else the live weights."""
        return self.ema.model if self.ema is not None else self.raw_model

    def _save(self, metrics: dict[str, Any] | None, *, best: bool = False, snapshot: bool = False) -> None:
        """Resume point first (what resume trusts), then ``last``, ``best`` and the snapshot."""
        from cnnviz.checkpoint import save_checkpoint

        if not self.dist.main:
            return
        self.faults.before_save()
        self._save_resume_point()
        meta = self._meta(metrics)
        save_checkpoint(self.run_dir / "last", self.eval_model, meta)
        if best:
            save_checkpoint(self.run_dir / "best", self.eval_model, meta)
        if snapshot:
            save_checkpoint(self.run_dir / "epochs" / f"epoch_{self.epoch:03d}", self.eval_model, meta)
        self._last_save = time.monotonic()

    def _resume(self) -> None:
        """Continue from ``optim.pt`` (or, lacking it, the ``last`` weights) and drop metric lines past it."""
        path = self.run_dir / "optim.pt"
        self._metrics = read_metrics(self.run_dir / "metrics.jsonl")
        if path.exists():
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
                self.raw_model.load_state_dict(state["model"])
                self.optimizer.load_state_dict(state["optimizer"])
                if self.ema is not None and state.get("ema"):
                    self.ema.load_state_dict(state["ema"])
                elif self.ema is not None:  # a run resumed with EMA newly on: start the average here
                    self.ema.model.load_state_dict(self.raw_model.state_dict())
            except Exception as e:  # noqa: BLE001 - any unreadable resume file gets the same clear message
                raise TrainingFailed("resume", f"cannot resume: optim.pt is damaged or from another model ({e}); "
                                               "start a new run") from e
            self.epoch = int(state["epoch"])
            self.step_in_epoch = int(state["step_in_epoch"])
            self.global_step = int(state["global_step"])
            self.best_top1 = float(state["best_top1"])
            self.elapsed_before = float(state["elapsed_s"])
            self._partial = state["partial"].to(self.device, torch.float64)
            torch.set_rng_state(state["rng"]["torch"])
            if self.device.type == "cuda" and "cuda" in state["rng"]:
                torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
            if self.step_in_epoch >= self.steps_per_epoch:  # the epoch's length changed (max_steps_per_epoch)
                self.step_in_epoch = self.steps_per_epoch
            log.info("resuming at epoch %d step %d (global step %d)", self.epoch + 1, self.step_in_epoch,
                     self.global_step)
        elif (self.run_dir / "last.safetensors").exists():
            from cnnviz.checkpoint import load_checkpoint

            ck = load_checkpoint(self.run_dir / "last.safetensors", expect_arch=self.cfg.arch,
                                 expect_classes=self.num_classes)
            self.raw_model.load_state_dict(ck.model.state_dict())
            if self.ema is not None:
                self.ema.model.load_state_dict(ck.model.state_dict())
            self.epoch = int(ck.meta.get("epoch") or 0)
            self.global_step = self.epoch * self.steps_per_epoch
            log.warning("optim.pt missing: resuming from last.safetensors at epoch %d with a fresh optimizer",
                        self.epoch + 1)
        kept = [m for m in self._metrics if isinstance(m.get("epoch"), int) and m["epoch"] <= self.epoch]
        if self.dist.main and (len(kept) != len(self._metrics) or (self.run_dir / "metrics.jsonl").exists()):
            if len(kept) != len(self._metrics):
                log.info("dropping %d metric line(s) past the resume point", len(self._metrics) - len(kept))
            atomic_write_text(self.run_dir / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in kept))
        self._metrics = kept
        vals = [m["val_top1"] for m in kept if isinstance(m.get("val_top1"), (int, float))]
        if vals:
            self.best_top1 = max(self.best_top1, max(vals))

    def _append_metrics(self, m: dict[str, Any]) -> None:
        if not self.dist.main:
            return
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(m) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self._metrics.append(m)

    def _elapsed(self) -> float:
        return self.elapsed_before + (time.time() - self._session_t0)

    # ------------------------------------------------------------------------------------------------ loop
    def _set_lr(self) -> float:
        lr = lr_at(self.global_step, self.total_steps, self.warmup_steps, float(self.cfg.lr), self.cfg.schedule)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        return lr

    def _check(self, force: bool = False) -> None:
        """Stop requests and a NaN loss; under DDP every rank decides at the same steps (every 10th)."""
        if self.dist.enabled:
            if not force and self.global_step % 10:
                return
            flags = torch.stack([torch.tensor(float(self.stop_requested), device=self.device),
                                 (~torch.isfinite(self._partial[0])).float()])
            self.dist.all_sum(flags)
            self.stop_requested = bool(flags[0].item() > 0)
            nan = bool(flags[1].item() > 0)
        else:
            if not force and time.time() - self._last_status < self.cfg.heartbeat_s:
                return  # the NaN test syncs with the GPU: only as often as the heartbeat
            nan = not bool(torch.isfinite(self._partial[0]).item())
        if nan:
            lr = float(self.cfg.lr)
            raise TrainingFailed("nan", f"the loss became NaN at epoch {self.epoch + 1}, step {self.step_in_epoch}; "
                                        f"training stopped and no NaN weights were saved. Lower the learning "
                                        f"rate (try {lr / 10:g} instead of {lr:g}) or the warm-up longer.")

    def run(self) -> str:
        cfg = self.cfg
        self._session_t0 = time.time()
        self._session_step0 = 0
        self._setup()
        self._session_step0 = self.global_step
        self._session_t0 = time.time()
        dev = self.device
        # Evaluation stays fp32 on the CPU (see evaluate): the recorded val accuracy is then the one that
        # `cnnviz evaluate` and Predict reproduce on any CPU, with or without bf16 kernels.
        amp = cfg.amp and bf16_autocast_ok(dev)
        self._write_status(state="running", message="training", device=str(dev), reason=None)
        log.info("training %s on %s: %d epochs x %d steps, batch %d x %d", cfg.arch, dev, cfg.epochs,
                 self.steps_per_epoch, cfg.batch_size, self.dist.world_size)
        while self.epoch < cfg.epochs:
            if self.stop_requested:
                break
            t_epoch = time.time()
            self.train_pipe.set_epoch(self.epoch)
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            self.model.train()
            batches = iter(self.train_pipe)
            for _ in range(self.step_in_epoch):  # resuming mid-epoch: same order, skip what was done
                next(batches)
            session_images = 0
            t_train = time.time()
            lr = self._set_lr()
            while self.step_in_epoch < self.steps_per_epoch:
                x, y = next(batches)
                lr = self._set_lr()
                with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=amp):
                    out = self.model(x)
                loss, logits = compute_loss(out, y, self.criterion, self.aux_weight)
                loss = self.faults.step(self.global_step, loss)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                if self.ema is not None:
                    self.ema.update(self.raw_model, self.global_step)
                with torch.no_grad():  # running sums stay on the device: no GPU sync per step
                    n = y.numel()
                    self._partial[0] += loss.detach().double() * n
                    self._partial[1] += (logits.argmax(1) == y).sum()
                    self._partial[2] += n
                session_images += y.numel()
                self.global_step += 1
                self.step_in_epoch += 1
                self._check()
                if self.stop_requested:
                    break
                if self.dist.main and time.time() - self._last_status >= cfg.heartbeat_s:
                    loss_now = self._partial[0].item() / max(1.0, self._partial[2].item())
                    self._write_status(state="running", message="training", lr=lr, loss=round(loss_now, 4),
                                       eta_s=self._eta())
                    log.info("epoch %d/%d step %d/%d loss %.4f lr %.4g", self.epoch + 1, cfg.epochs,
                             self.step_in_epoch, self.steps_per_epoch, loss_now, lr)
                if (cfg.save_every_min and self.dist.main
                        and time.monotonic() - self._last_save > 60 * cfg.save_every_min):
                    self._check(force=True)
                    self._save(self._metrics[-1] if self._metrics else None)
                    log.info("mid-epoch resume point saved at step %d", self.step_in_epoch)
            if self.stop_requested and self.step_in_epoch < self.steps_per_epoch:
                self._check(force=True)
                self._write_status(state="stopping", message="saving a checkpoint before stopping")
                self._save(self._metrics[-1] if self._metrics else None)
                break
            # -------------------------------------------------------------------------- end of the epoch
            self._check(force=True)
            train_time = time.time() - t_train
            sums = self.dist.all_sum(self._partial.clone())
            images = self.dist.all_sum(torch.tensor([float(session_images)], device=dev)).item()
            self._write_status(state="running", message="evaluating", eta_s=self._eta())
            ev = evaluate(self.eval_model, self.val_pipe, dev, amp=cfg.amp, dist=self.dist, tta_flip=cfg.tta_flip)
            extra = {}
            if cfg.tta_flip:
                extra.update(val_top1_tta=ev["top1_tta"], val_top5_tta=ev["top5_tta"])
            if self.ema is not None:  # the live weights too: what the average gained, measured every epoch
                extra["val_top1_raw"] = evaluate(self.raw_model, self.val_pipe, dev, amp=cfg.amp, dist=self.dist)["top1"]
            if not math.isfinite(ev["loss"]):
                self._check(force=True)
                raise TrainingFailed("nan", "the validation loss is NaN or infinite; lower the learning rate")
            seen = max(1.0, sums[2].item())
            peak = (torch.cuda.max_memory_allocated(dev) if dev.type == "cuda"
                    else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
            self.epoch += 1
            self.step_in_epoch = 0
            self._partial.zero_()
            m = {"epoch": self.epoch, "train_loss": sums[0].item() / seen, "train_acc": sums[1].item() / seen,
                 "val_loss": ev["loss"], "val_top1": ev["top1"], "val_top5": ev["top5"], "lr": lr,
                 "images_per_s": images / max(train_time, 1e-9), "epoch_time_s": time.time() - t_epoch,
                 "elapsed_s": self._elapsed(), "peak_mem_bytes": int(peak), "step": self.global_step,
                 "train_time_s": train_time, **extra}
            self._append_metrics(m)
            best = ev["top1"] > self.best_top1
            self.best_top1 = max(self.best_top1, ev["top1"])
            self._save(m, best=best, snapshot=cfg.keep_snapshots)
            log.info("epoch %d/%d: train loss %.4f acc %.3f | val loss %.4f top-1 %.3f top-5 %.3f | "
                     "%.0f img/s, %.1f s", self.epoch, cfg.epochs, m["train_loss"], m["train_acc"], m["val_loss"],
                     m["val_top1"], m["val_top5"], m["images_per_s"], m["epoch_time_s"])
            self._write_status(state="running", message=f"finished epoch {self.epoch}", eta_s=self._eta())
        if self.stop_requested and self.epoch < cfg.epochs:
            msg = f"stopped at epoch {self.epoch + 1}, step {self.step_in_epoch}; press Resume to continue"
            self._write_status(state="stopped", message=msg, reason="stopped", eta_s=None)
            log.info(msg)
            return "stopped"
        best = f"; best val top-1 {self.best_top1:.1%}" if self.best_top1 >= 0 else ""
        self._write_status(state="done", message=f"finished {cfg.epochs} epochs{best}", reason=None, eta_s=0,
                           finished=time.time())
        log.info("done%s", best)
        return "done"


# ============================================================================================ entry points
def _setup_logging(run_dir: Path, main: bool, to_stderr: bool) -> None:
    log.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()
    if main:
        fh = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
        fh.setFormatter(fmt)
        log.addHandler(fh)
    if to_stderr or not main:
        sh = logging.StreamHandler(sys.stderr)
        sh.setFormatter(fmt)
        log.addHandler(sh)
    log.propagate = False


def run_training(run_dir: str | Path, cfg: TrainConfig | None = None, *, to_stderr: bool = True,
                 take_locks: bool = True) -> str:
    """Train the run folder in this process to the end; returns the final state (done|stopped|failed).

    Installs SIGTERM/SIGINT handlers (graceful stop). Failures are written to ``status.json`` and returned as
    ``"failed"``, never raised (except a busy run lock: another worker owns this folder, nothing is written).
    """
    from cnnviz import jobs

    run_dir = Path(run_dir).resolve()
    dist = Dist.from_env()
    cfg = cfg or TrainConfig.from_dict(read_json(run_dir / "config.json"))
    held: list[int] = []
    trainer = Trainer(run_dir, cfg, dist)
    _setup_logging(run_dir, dist.main, to_stderr)
    if dist.main and take_locks:
        fd = jobs.try_lock(run_dir / ".lock", {"run": run_dir.name})
        if fd is None:
            raise jobs.JobBusy(f"another worker is already training {run_dir.name}")
        held.append(fd)
    previous = {}

    def on_signal(signum, frame):  # noqa: ARG001
        if trainer.stop_requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        trainer.stop_requested = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(ValueError):  # not the main thread (tests): no handler
            previous[sig] = signal.signal(sig, on_signal)
    trainer.status = {"state": "running", "pid": os.getpid(), "pid_start": _pid_start(), "host": socket.gethostname(),
                      "created": _created(run_dir), "started": time.time(), "message": "starting", "reason": None,
                      "world_size": dist.world_size, "eta_s": None}
    try:
        if dist.main and take_locks and not cfg.allow_concurrent:
            key = jobs.device_key(cfg.device)
            fd = jobs.try_lock(jobs.device_lock_path(key, run_dir.parent), {"run": run_dir.name, "pid": os.getpid()})
            if fd is None:
                holder = jobs.lock_holder(jobs.device_lock_path(key, run_dir.parent))
                raise TrainingFailed("busy", f"another training job ({holder.get('run', 'unknown')}) is running "
                                             f"on {key}; wait for it, stop it, or allow a second job")
            held.append(fd)
        cfg.validate()
        trainer._write_status(state="running", message="starting")
        if dist.main:
            _reserve_space(run_dir)
        return trainer.run()
    except BaseException as e:  # noqa: BLE001 - every failure ends in status.json, with a message
        failure = _as_failure(e, cfg, run_dir)
        if failure is None:
            raise
        if failure.reason == "error":
            log.exception("training failed")
        else:
            log.error("%s", failure.message)
        if failure.reason == "disk_full":
            _release_space(run_dir)  # room for the status.json that tells the user
        try:
            trainer._write_status(state="failed", message=failure.message, reason=failure.reason, eta_s=None)
        except OSError as e2:
            print(f"cnnviz.train: could not write status.json ({e2}); the run failed: {failure.message}",
                  file=sys.stderr)
        return "failed"
    finally:
        if dist.main:  # rank 0 owns the reserve
            _release_space(run_dir)
        for sig, h in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, h)
        for fd in held:
            with contextlib.suppress(OSError):
                os.close(fd)
        if dist.enabled:
            import torch.distributed as tdist

            if tdist.is_initialized():
                with contextlib.suppress(Exception):
                    tdist.destroy_process_group()
        for h in list(log.handlers):
            log.removeHandler(h)
            h.close()


RESERVE_NAME, RESERVE_BYTES = ".space-reserve", 256 * 1024


def _reserve_space(run_dir: Path) -> None:
    """Hold a little disk space for the last word of a worker that meets a full disk.

    On a really full disk (tests/test_faults_disk.py fills a tmpfs) the failed save cannot be reported either:
    status.json is written atomically, through a new file. Without room the page could only say that the worker
    "stopped unexpectedly". Deleting this reserve just before writing the "disk full" status makes that
    write succeed. It is written with real zeros, not as a sparse file, so the space is truly held.
    """
    with open(run_dir / RESERVE_NAME, "wb") as f:
        f.write(b"\0" * RESERVE_BYTES)


def _release_space(run_dir: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(run_dir / RESERVE_NAME)


def _as_failure(e: BaseException, cfg: TrainConfig, run_dir: Path) -> TrainingFailed | None:
    """The user-facing failure for an exception (None: let it propagate, e.g. KeyboardInterrupt)."""
    from cnnviz.data import DatasetError

    if isinstance(e, TrainingFailed):
        return e
    if isinstance(e, torch.cuda.OutOfMemoryError):
        half = max(1, cfg.batch_size // 2)
        return TrainingFailed("oom", f"the GPU ran out of memory at batch size {cfg.batch_size} ({cfg.arch}); "
                                     f"try --batch-size {half} (or a smaller model)")
    if isinstance(e, DatasetError):
        return TrainingFailed("dataset", str(e))
    if isinstance(e, InputSizeError):
        return TrainingFailed("input_size", str(e))
    if isinstance(e, OSError):
        return disk_error(e, run_dir) or TrainingFailed("error", f"{type(e).__name__}: {e}")
    if isinstance(e, ValueError):
        return TrainingFailed("config", str(e))
    if isinstance(e, Exception):
        return TrainingFailed("error", f"training crashed: {type(e).__name__}: {e} (details in train.log)")
    return None


def _pid_start() -> int | None:
    from cnnviz.runs import process_start_time

    return process_start_time(os.getpid())


def _created(run_dir: Path) -> float:
    try:
        return float(json.loads((run_dir / "status.json").read_text()).get("created") or time.time())
    except (OSError, ValueError, AttributeError):
        return time.time()


# ------------------------------------------------------------------------------------ shared CLI arguments
def add_config_args(p: argparse.ArgumentParser, require_arch: bool = False) -> None:
    """The training flags shared by ``python -m cnnviz train`` and ``python -m cnnviz.train``."""
    p.add_argument("--arch", required=require_arch, help="architecture (python -m cnnviz list)")
    p.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE",
                   help="architecture option, e.g. --variant stem=tiny (repeatable)")
    p.add_argument("--data", default=None, help="auto (find Tiny ImageNet), synthetic, or a folder / zip")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer", choices=OPTIMIZERS)
    p.add_argument("--momentum", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--schedule", choices=SCHEDULES)
    p.add_argument("--warmup-epochs", type=float)
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--augment", choices=AUGMENTS)
    p.add_argument("--device", choices=DEVICES)
    p.add_argument("--seed", type=int)
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    p.add_argument("--no-amp", dest="amp", action="store_false", default=None, help="no bf16 autocast (CUDA, or a CPU with native bf16)")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false", default=None)
    p.add_argument("--keep-snapshots", action="store_true", default=None,
                   help="save epochs/epoch_NNN.safetensors every epoch")
    p.add_argument("--ema-decay", type=float, help="average the weights (e.g. 0.999; 0: off): evaluated and saved")
    p.add_argument("--ema-every", type=int, help="update the weight average every N steps (default 1)")
    p.add_argument("--tta-flip", action="store_true", default=None,
                   help="also evaluate with flip test-time augmentation (val_top1_tta)")
    p.add_argument("--max-steps-per-epoch", type=int)
    p.add_argument("--input-size", type=int, help="input side in pixels (default 64; the data is resized)")
    p.add_argument("--name", help="run name prefix (default: the architecture)")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A TrainConfig from parsed :func:`add_config_args` flags (flags not given keep the defaults)."""
    if not args.arch:
        raise ValueError("--arch is required (python -m cnnviz list shows the architectures)")
    variant = parse_variant(args.variant or [], args.arch if args.arch in list_models() else None)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    kw = {k: v for k, v in vars(args).items() if k in fields and v is not None and k not in ("arch", "variant")}
    return TrainConfig(arch=args.arch, variant=variant, **kw)


def main(argv: list[str] | None = None) -> int:
    """The worker: ``python -m cnnviz.train --run DIR`` (config from DIR/config.json, or from the flags when
    DIR has none yet, e.g. under torchrun); exit status 0 done/stopped, 1 failed, 3 run busy."""
    p = argparse.ArgumentParser(prog="python -m cnnviz.train", description=main.__doc__)
    # --run-dir: the same, for torchrun, whose own parser takes "--run" for an abbreviation of its --run-path.
    p.add_argument("--run", "--run-dir", dest="run", required=True, help="run folder")
    p.add_argument("--lock-fd", type=int, action="append", default=[], help=argparse.SUPPRESS)
    p.add_argument("--detached", action="store_true", help=argparse.SUPPRESS)
    add_config_args(p)
    args = p.parse_args(argv)
    from cnnviz.jobs import JobBusy

    run_dir = Path(args.run).resolve()
    dist = Dist.from_env()
    cfg_path = run_dir / "config.json"
    try:
        if cfg_path.exists():
            cfg = TrainConfig.from_dict(read_json(cfg_path))
        else:
            cfg = config_from_args(args).validate()
            if dist.main:
                run_dir.mkdir(parents=True, exist_ok=True)
                atomic_write_json(cfg_path, {**cfg.to_dict(), **code_version(), "created": time.time()})
                write_status(run_dir, state="queued", message="starting", created=time.time())
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    # Locks handed over by jobs.start (pass_fds) stay open for the life of this process: the kernel
    # releases them when it exits, however it exits.
    take_locks = not args.lock_fd
    try:
        state = run_training(run_dir, cfg, to_stderr=not args.detached, take_locks=take_locks)
    except JobBusy as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    return 0 if state in ("done", "stopped") else 1


if __name__ == "__main__":
    sys.exit(main())
