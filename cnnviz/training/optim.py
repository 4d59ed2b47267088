"""How the weights move: the learning-rate schedule, parameter groups, the optimizer, the loss (with auxiliary
heads) and the weight average (EMA)."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn as nn

from cnnviz.training.config import TrainConfig


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


FUSED_DEVICES = ("cuda", "cpu")  # where torch.optim's AdamW and SGD have fused kernels


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on conv / linear weights only: decaying biases and norm scales only hurts (1-d tensors)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(cfg: TrainConfig, model: nn.Module, device: torch.device) -> torch.optim.Optimizer:
    groups = param_groups(model, float(cfg.weight_decay))
    # The fused kernels (one pass over each tensor) on the CPU too: the optimizer step for AlexNet's 58M
    # parameters took about 80 ms instead of 500 on the dev CPU (docs/benchmarks.md, "One training step,
    # taken apart"), with the same update (tests/test_train.py compares them).
    fused = {"fused": True} if device.type in FUSED_DEVICES else {}
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


class WeightAverage:
    """An exponential moving average of a model's weights (Polyak averaging; "EMA" in airbench and timm).

    ``model`` is a frozen copy in eval mode: floating parameters and buffers are averaged, integer buffers
    (BatchNorm's ``num_batches_tracked``) copied. Early on the decay is ``min(decay, (1 + n) / (10 + n))`` for
    the ``n``-th update, as in timm's ModelEmaV2 warm-up, so the average does not start as the random init.
    Updating every ``every`` steps with the decay raised to that power gives nearly the same average at a
    fraction of the cost (airbench updates every 5 steps).
    """

    def __init__(self, model: nn.Module, decay: float, every: int = 1):
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
