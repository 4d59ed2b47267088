"""What defines a training run: :class:`TrainConfig` (``config.json`` is its ``to_dict()``), its checks, the
command-line flags that build it (``python -m cnnviz train`` and the worker share them), and
:func:`code_version` (recorded beside the config).

A config is checked where it comes in: from a person (the Training page's form, the CLI flags) or from a file
(``config.json``, read by :meth:`TrainConfig.load`). Code that is handed a :class:`TrainConfig` trusts it.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnviz import __version__
from cnnviz.models import InputSizeError, get_card, list_models, meta_model, parse_variant

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "onecycle")
DEVICES = ("auto", "cuda", "cpu", "mps")
AUGMENTS = ("crop_flip", "rrc", "flip", "none")  # cnnviz.data.pipeline.AUGMENTS
MAX_BATCH = 65_536
_DEFAULT_LR = {"sgd": 0.1, "adamw": 2e-3}
DEFAULT_WEIGHT_DECAY = {"sgd": 5e-4, "adamw": 0.05}


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
    # Linear warm-up (cosine); the rising phase of one-cycle (0: 30% of the run). None: 10% of the run, at most
    # one epoch (the zoo's rule). A fixed one-epoch default made a one-epoch run warm up for its whole length and
    # never anneal; a warm-up as long as the run is refused for the same reason.
    warmup_epochs: float | None = None
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
            self.weight_decay = DEFAULT_WEIGHT_DECAY.get(self.optimizer, 5e-4)
        if self.variant is None:
            self.variant = {}
        if self.warmup_epochs is None:
            self.warmup_epochs = default_warmup(self.epochs)

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
        check_int("epochs", self.epochs, 1, 100_000, "at least 1 epoch")
        check_int("batch size", self.batch_size, 1, MAX_BATCH, "at least 1")
        if self.eval_batch_size is not None:
            check_int("eval batch size", self.eval_batch_size, 1, MAX_BATCH, "at least 1")
        if self.max_steps_per_epoch is not None:
            check_int("max steps per epoch", self.max_steps_per_epoch, 1, 10**9, "at least 1")
        check_int("input size", self.input_size, 1, 4096, "a positive number of pixels")
        check_float("learning rate", self.lr, lo=0.0, lo_open=True)
        check_float("weight decay", self.weight_decay, lo=0.0)
        check_float("momentum", self.momentum, lo=0.0, hi=1.0, hi_open=True)
        check_float("label smoothing", self.label_smoothing, lo=0.0, hi=1.0, hi_open=True)
        check_float("warm-up epochs", self.warmup_epochs, lo=0.0)
        if float(self.warmup_epochs) >= self.epochs:
            raise ValueError(f"a warm-up of {self.warmup_epochs:g} epochs takes the whole {self.epochs}-epoch run, so "
                             "the learning rate would never come down: use fewer warm-up epochs than epochs (or "
                             f"leave it empty: {default_warmup(self.epochs):g}, 10% of the run, at most 1)")
        check_float("save interval", self.save_every_min, lo=0.0)
        check_float("heartbeat", self.heartbeat_s, lo=0.0, lo_open=True)
        check_float("EMA decay", self.ema_decay, lo=0.0, hi=1.0, hi_open=True)
        check_int("EMA interval", self.ema_every, 1, 10_000, "at least 1 step")
        for name, value, allowed in (("optimizer", self.optimizer, OPTIMIZERS),
                                     ("schedule", self.schedule, SCHEDULES),
                                     ("device", self.device, DEVICES), ("augment", self.augment, AUGMENTS)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)} (got {value!r})")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed < 2**32:
            # numpy's and torch's generators take 0 .. 2**32-1; a negative seed failed deep inside training
            raise ValueError(f"seed must be an integer from 0 to 2**32-1 (got {self.seed!r})")
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


def default_warmup(epochs: Any, fraction: float = 0.1) -> Any:
    """The warm-up when none is given: ``fraction`` of the run (10%), at most one epoch (``epochs`` unchecked
    yet). The zoo's recipe uses the same rule with its own fraction."""
    try:
        return min(1.0, fraction * float(epochs))
    except (TypeError, ValueError):
        return 1.0  # validate() reports the bad epoch count


def check_int(name: str, value: Any, lo: int, hi: int, hint: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ValueError(f"{name} must be a whole number (got {value!r})")
    if value < lo:
        raise ValueError(f"{name} must be {hint} (got {value})")
    if value > hi:
        raise ValueError(f"{name} {value} is too large (at most {hi})")


def check_float(name: str, value: Any, lo: float | None = None, hi: float | None = None,
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


def add_config_args(p: argparse.ArgumentParser, require_arch: bool = False) -> None:
    """The training flags shared by ``python -m cnnviz train`` and ``python -m cnnviz.train``."""
    p.add_argument("--arch", required=require_arch, help="architecture (python -m cnnviz list)")
    p.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE",
                   help="architecture option, e.g. --variant stem=tiny (repeatable)")
    p.add_argument("--data", default=None, help="auto (find Tiny ImageNet), synthetic, or a folder / zip")
    d = TrainConfig(arch="")  # the defaults, for the help (TrainConfig's comments say why each is what it is)
    for flag, kind, text in (
            ("--epochs", int, f"epochs to train (default {d.epochs})"),
            ("--batch-size", int, f"images per step (default {d.batch_size})"),
            ("--lr", float, f"peak learning rate for batch {d.batch_size} (default: {_DEFAULT_LR['sgd']:g} for SGD, "
                            f"{_DEFAULT_LR['adamw']:g} for AdamW)"),
            ("--momentum", float, f"SGD momentum, AdamW's beta1 (default {d.momentum:g})"),
            ("--weight-decay", float, f"never on biases and norm weights (default: {DEFAULT_WEIGHT_DECAY['sgd']:g} "
                                      f"for SGD, {DEFAULT_WEIGHT_DECAY['adamw']:g} for AdamW)"),
            ("--label-smoothing", float, f"(default {d.label_smoothing:g})"),
            ("--seed", int, f"0 to 2**32-1 (default {d.seed})")):
        p.add_argument(flag, type=kind, help=text)  # the TrainConfig field of that name
    p.add_argument("--warmup-epochs", type=float,
                   help="linear warm-up in epochs (default: 10%% of the run, at most 1; shorter than the run)")
    for flag, choices, default in (("--optimizer", OPTIMIZERS, d.optimizer), ("--schedule", SCHEDULES, d.schedule),
                                   ("--augment", AUGMENTS, d.augment), ("--device", DEVICES, d.device)):
        p.add_argument(flag, choices=choices, help=f"(default {default})")
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    p.add_argument("--no-amp", dest="amp", action="store_false", default=None, help="no bf16 autocast (CUDA, or a CPU with native bf16)")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false", default=None)
    p.add_argument("--keep-snapshots", action="store_true", default=None,
                   help="save epochs/epoch_NNN.safetensors every epoch")
    p.add_argument("--ema-decay", type=float, help="average the weights (e.g. 0.999; 0: off): evaluated and saved")
    p.add_argument("--ema-every", type=int, help="update the weight average every N steps (default 1)")
    p.add_argument("--tta-flip", action="store_true", default=None,
                   help="also evaluate with flip test-time augmentation (val_top1_tta)")
    p.add_argument("--max-steps-per-epoch", type=int, help="cut each epoch short (a quick try; default: the whole "
                                                             "train split)")
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
