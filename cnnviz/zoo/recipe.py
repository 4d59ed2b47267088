"""The zoo's members and its one recipe: which network stands for each family, and how all of them train.

Every member trains on the same data (the Tiny ImageNet train split; the val split is only evaluated), with
the same augmentation, the same number of epochs, label smoothing, bf16 autocast, channels_last, a weight
average and a warm-up-then-cosine schedule. Only the optimizer, its learning rate and weight decay differ,
where a family needs it, and :data:`MEMBERS` says why for each (``python -m cnnviz zoo members`` prints it;
docs/zoo.md repeats it beside the results).

The per-family choices, in short:

* Networks with batch norm (VGG-16-BN, ResNet-18, and the extras ResNet-50 and VGG-11-BN) take SGD with
  Nesterov momentum at lr 0.1 per 256 images, the usual rule since Goyal et al. (2017).
* The deeper networks without batch norm (AlexNet, ZFNet, GoogLeNet, NiN) take AdamW: at lr 0.01 SGD (the
  papers' own) they need tens of epochs to leave the chance-level plateau, which a few-minute budget does not
  have. Measured here on the real data: ZFNet with AdamW at 5e-4 and He init learns 10 classes within 60 steps
  while staying at ln(200) on all 200 for the first hundred steps (the plateau), and at 1e-3 it is no faster.
* LeNet-5 takes SGD + Nesterov at 0.1 too. The first zoo gave it AdamW at 0.002 (22.2%, its conv1 still close to
  its random start); a 10-epoch sweep of both optimizers on the real data, on the CPU (docs/benchmarks.md,
  "LeNet-5's optimizer"), found that rate three times too low, AdamW at its best (0.006) tied with SGD at 0.1
  (24.7% and 24.8%), and SGD moving conv1 almost three times as far, into visible colour blobs. Not so for ZFNet
  and GoogLeNet (docs/benchmarks.md, "ZFNet's and GoogLeNet's AdamW rates"): on the real data three times ZFNet's
  rate (1.5e-3) kept it at chance for a whole epoch, where 5e-4 reached 5.8%, and three times GoogLeNet's (3e-3)
  reached 3.7% in three epochs against 10.7%; without batch norm a larger step holds them on the plateau. NiN is
  the exception (docs/benchmarks.md, "NiN's AdamW rate"): two one-epoch zoos on the CPU, ``zoo train --families nin
  --lr nin=0.003`` (:attr:`Recipe.lr_override`), put three times its rate ahead, 4.4% against 3.5%, its conv1 moving
  twice as far. NiN keeps 1e-3 here until ten epochs at 3e-3 (a GPU session's minute) beat the shipped 27.9%; the
  result file and docs/zoo.md say when a member trained at a rate other than its own.
* AlexNet and ZFNet use He ("kaiming") initialisation instead of the papers' N(0, 0.01): with N(0, 0.01) the
  signal shrinks about 100x by fc8 at 64x64 (measured at init: logits' std 6e-4 against 0.04), and the
  papers' networks needed 90 epochs to recover from that. The model cards list init as an option.
* VGG is VGG-16 *with* batch norm: the paper trained its 16-layer net by initialising it from the trained
  11-layer one (Section 3.1), a two-stage procedure a single short budget cannot repeat; without that or batch
  norm a 16-layer plain net from scratch trains slowly. It is torchvision's ``vgg16_bn`` layout, and the
  published Tiny ImageNet figure for it (58.7%, giung2) is the one to compare with.
* ResNet-18 and ResNet-50 use the 3x3/1 "tiny" stem without max pool (the paper's own CIFAR nets start like
  that, and the published Tiny ImageNet figures use it): with the paper's 7x7/2 + pool stem a 64x64 image
  reaches conv2_x at 16x16.
* NiN is the paper's CIFAR configuration (three mlpconv blocks), the one sized for small images.
* GoogLeNet is Table 1 with its two auxiliary heads in training (weight 0.3); they are dropped for export. It
  uses the small stem (conv1 at stride 1, no first max pool), so that its maps have the paper's sizes from
  conv2 on, as AlexNet's, ZFNet's and ResNet's do here. The first zoo (2026-11-28, H200) trained it with the
  paper's stem, which takes a 64x64 image down to 8x8 by stage 3 and 2x2 by stage 5 (131M MACs against the
  paper network's 1.6G); it reached 28.1%, above only NiN and LeNet-5, and its shipped starter is that network until a
  zoo with the small stem has run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from cnnviz.training.config import DEFAULT_WEIGHT_DECAY, TrainConfig, default_warmup


@dataclass(frozen=True)
class Member:
    """One family's representative and the optimizer settings it trains with (for a batch of 256)."""

    family: str  # what users type: "resnet18"
    arch: str  # the registry name: "resnet18"
    variant: dict[str, Any] = field(default_factory=dict)
    optimizer: str = "sgd"
    lr: float = 0.1  # for 256 images per step; scaled linearly with the recipe's batch size
    weight_decay: float | None = None  # None: the optimizer's default (5e-4 SGD, 0.05 AdamW)
    extra: bool = False  # trained only when asked for (or where the budget allows)
    why: str = ""


MEMBERS: tuple[Member, ...] = (
    Member("lenet5", "lenet5", {"variant": "modern"}, "sgd", 0.1,
           why="LeNet-5, modern variant (ReLU, max pooling, full C3, RGB): the paper's scaled tanh and RBF "
               "output do not learn 200 classes. SGD + Nesterov at the batch-norm networks' lr 0.1: in a sweep "
               "on the real data (10 epochs, docs/benchmarks.md) it tied AdamW's best (24.8% against 24.7% at "
               "lr 0.006; the first zoo's AdamW at 0.002 gave 22.0%), and its first-layer filters moved further "
               "from their random start than under any AdamW rate tried (2.0 times their initial norm, against "
               "0.75 at AdamW's best)."),
    Member("alexnet", "alexnet", {"init": "kaiming"}, "adamw", 5e-4,
           why="AlexNet as published (two-tower grouping, LRN, 64x64 small stem) with He init; no batch norm, "
               "so AdamW."),
    Member("zfnet", "zfnet", {"init": "kaiming"}, "adamw", 5e-4,
           why="ZFNet as in Fig. 3 (64x64 small stem) with He init; no batch norm, so AdamW."),
    Member("vgg16", "vgg16_bn", {}, "sgd", 0.1,
           why="VGG-16 with batch norm: the paper trained config D from config A's weights, which one short "
               "budget cannot repeat; SGD + Nesterov."),
    Member("googlenet", "googlenet", {"aux_logits": True, "stem": "small"}, "adamw", 1e-3,
           why="GoogLeNet as in Table 1 (5x5 branches, LRN, no batch norm) with its two aux heads in "
               "training, and the small stem (conv1 at stride 1, no first pool: the paper's map sizes from "
               "conv2 on, as the other families' small stems keep theirs); AdamW."),
    Member("resnet18", "resnet18", {"stem": "tiny"}, "sgd", 0.1,
           why="ResNet-18 with the 3x3/1 stem and no max pool (as the published Tiny ImageNet results); SGD + "
               "Nesterov."),
    Member("nin", "nin", {"config": "cifar"}, "adamw", 1e-3,
           why="Network-in-Network, the paper's CIFAR configuration (3 mlpconv blocks + global average "
               "pooling); no batch norm, so AdamW."),
    Member("resnet50", "resnet50", {"stem": "tiny"}, "sgd", 0.1, extra=True,
           why="ResNet-50 (bottlenecks, the paper's stride in the 1x1) with the 3x3/1 stem; SGD + Nesterov."),
    Member("vgg11", "vgg11_bn", {}, "sgd", 0.1, extra=True,
           why="VGG-11 (config A) with batch norm; SGD + Nesterov."),
)
CORE_FAMILIES = tuple(m.family for m in MEMBERS if not m.extra)
ALL_FAMILIES = tuple(m.family for m in MEMBERS)


def member(family: str) -> Member:
    """The member for ``family``; ``ValueError`` naming the families for anything else."""
    for m in MEMBERS:
        if m.family == family:
            return m
    raise ValueError(f"unknown family {family!r}: the zoo has {', '.join(ALL_FAMILIES)}")


def member_for_arch(arch: str) -> Member | None:
    """The member that trains the registry architecture ``arch`` ("resnet18"), or None when the zoo has none."""
    return next((m for m in MEMBERS if m.arch == arch), None)


def settings_since(m: Member, config: dict[str, Any]) -> tuple[str, str] | None:
    """``(then, now)`` when a result trained under ``config`` (its run's configuration) used other settings than
    member ``m`` has today (variant, optimizer, learning rate for the run's batch size, weight decay), each as
    text; None when they agree. docs/zoo.md's "why" column describes the member as it is now, so a result that
    predates a change must say what it trained with."""
    variant = dict(config.get("variant") or {})
    scale = (config.get("batch_size") or 256) / 256
    now_lr = m.lr * scale
    now_wd = m.weight_decay if m.weight_decay is not None else DEFAULT_WEIGHT_DECAY.get(m.optimizer, 5e-4)
    lr, wd = config.get("lr"), config.get("weight_decay")
    optimizer_changed = (config.get("optimizer") != m.optimizer
                         or not (isinstance(lr, (int, float)) and abs(lr - now_lr) <= 1e-9 * max(1.0, now_lr))
                         or not (isinstance(wd, (int, float)) and abs(wd - now_wd) <= 1e-12))
    variant_changed = variant != m.variant
    if not (variant_changed or optimizer_changed):
        return None

    def text(variant: dict[str, Any], optimizer: Any, lr: Any, wd: Any) -> str:
        lr_s, wd_s = (format(v, "g") if isinstance(v, (int, float)) else "?" for v in (lr, wd))
        parts = ([", ".join(f"{k}={v}" for k, v in variant.items()) or "-"] if variant_changed else []) + \
                ([f"{optimizer} lr {lr_s}, weight decay {wd_s}"] if optimizer_changed else [])
        return "; ".join(parts)

    return text(variant, config.get("optimizer"), lr, wd), text(m.variant, m.optimizer, now_lr, now_wd)


def member_order(family: str) -> int:
    """Where ``family`` sits in the zoo's table (MEMBERS' order); anything else sorts after every member."""
    return next((i for i, m in enumerate(MEMBERS) if m.family == family), len(MEMBERS))


def parse_families(text: str | None) -> list[Member]:
    """``"core"`` (``None``: the default), ``"all"``, or a comma-separated list of families, in the table's order.
    An empty text is refused, not read as the default: ``--families ''`` trained all seven for minutes."""
    text = "core" if text is None else text.strip().lower()
    if text == "core":
        return [m for m in MEMBERS if not m.extra]
    if text == "all":
        return list(MEMBERS)
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ValueError("no family given: use core, all, or a list such as resnet18,alexnet")
    chosen = {member(n).family for n in names}  # raises for an unknown one
    return [m for m in MEMBERS if m.family in chosen]


@dataclass
class Recipe:
    """What every member shares. ``python -m cnnviz zoo train`` flags map one to one onto these fields."""

    epochs: int = 10
    batch_size: int = 256
    augment: str = "crop_flip"  # random 64x64 crop of the 4-px reflect-padded image + horizontal flip
    label_smoothing: float = 0.1
    schedule: str = "cosine"
    warmup_fraction: float = 0.1  # of the run, at most one epoch
    ema_decay: float = 0.998  # weight average, updated every ema_every steps (evaluated and saved)
    ema_every: int = 5
    tta_flip: bool = True  # val_top1_tta beside the plain val_top1
    amp: bool = True
    channels_last: bool = True
    compile: bool = False
    data: str = "auto"
    device: str = "auto"
    seed: int = 0
    max_steps_per_epoch: int | None = None  # a smoke test's cut; None for real runs
    eval_batch_size: int | None = None
    # Not a training setting: every member also keeps each epoch's weights (epochs/epoch_NNN), for Visualize's
    # "across training" view and for a starter that ships some of them (cnnviz.starter).
    keep_snapshots: bool = False
    # A member's learning rate (for 256 images) instead of its own, by family: a sweep's setting
    # (``--lr nin=0.003``). Its result file records it (``lr_override``) and docs/zoo.md says so on its row.
    lr_override: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Recipe:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def parse_lr_override(text: str | None, members: list[Member]) -> dict[str, float]:
    """``"nin=0.003,zfnet=1e-3"`` -> ``{"nin": 0.003, "zfnet": 0.001}`` (for 256 images), for families among
    ``members``; ``ValueError`` naming what is wrong (the CLI prefixes ``--lr``)."""
    if text is None:
        return {}
    out: dict[str, float] = {}
    chosen = [m.family for m in members]
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        family, eq, value = (part.strip() for part in item.partition("="))
        if not eq or not family or not value:
            raise ValueError(f"{item!r} is not FAMILY=LR (for example nin=0.003)")
        family = member(family.lower()).family  # an unknown family names the zoo's
        if family not in chosen:
            raise ValueError(f"{family} is not among the families being trained ({', '.join(chosen)})")
        try:
            lr = float(value)
        except ValueError:
            raise ValueError(f"{family}'s rate {value!r} is not a number") from None
        if not (lr > 0 and lr < float("inf")):
            raise ValueError(f"{family}'s rate must be more than 0, not {value}")
        out[family] = lr
    if not out:
        raise ValueError("no FAMILY=LR given (for example nin=0.003)")
    return out


def member_lr(m: Member, recipe: Recipe) -> float:
    """The learning rate ``m`` trains at under ``recipe``, for 256 images: its own, or the recipe's override."""
    return float((recipe.lr_override or {}).get(m.family, m.lr))


def config_for(m: Member, recipe: Recipe, zoo_id: str) -> TrainConfig:
    """The run configuration of one member under ``recipe`` (validated)."""
    cfg = TrainConfig(
        arch=m.arch, variant=dict(m.variant), data=recipe.data, epochs=int(recipe.epochs),
        batch_size=int(recipe.batch_size), lr=member_lr(m, recipe) * recipe.batch_size / 256, optimizer=m.optimizer,
        weight_decay=m.weight_decay, schedule=recipe.schedule,
        warmup_epochs=default_warmup(recipe.epochs, recipe.warmup_fraction), label_smoothing=recipe.label_smoothing,
        augment=recipe.augment, device=recipe.device, seed=recipe.seed, amp=recipe.amp,
        channels_last=recipe.channels_last, compile=recipe.compile, ema_decay=recipe.ema_decay,
        ema_every=recipe.ema_every, tta_flip=recipe.tta_flip, max_steps_per_epoch=recipe.max_steps_per_epoch,
        eval_batch_size=recipe.eval_batch_size, allow_concurrent=True, name=f"{zoo_id}-{m.family}",
        save_every_min=2.0, keep_snapshots=recipe.keep_snapshots)
    return cfg.validate()
