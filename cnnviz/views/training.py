"""What the Training page shows, computed here so the page stays thin (and so a notebook can show it too):
dataset choices and the form defaults that follow them, the config from the form, an estimated time per
epoch before Start, progress text with ETA, live curves (plotly), and the measured peak memory beside the
layer-table estimate.

No streamlit here; plotly is fine (the training worker never imports this module).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from cnnviz.training.config import TrainConfig
from cnnviz.training.runs import RunInfo
from cnnviz.views.charts import Panel, curves_figure, metrics_frame
from cnnviz.views.format import duration_text, human, size_text

SYNTHETIC_LABEL = "Synthetic demo set (NOT Tiny ImageNet: a few classes of generated patterns)"


@dataclass(frozen=True)
class DataChoice:
    label: str
    spec: str  # TrainConfig.data
    synthetic: bool


def dataset_choices() -> list[DataChoice]:
    """Tiny ImageNet when it is prepared on this machine, and always the synthetic set (labelled as such).
    Not while a background preparation runs: its labels are there from the first seconds, its images only at
    the end (the page shows that preparation's progress instead)."""
    from cnnviz.data import find_dataset
    from cnnviz.data.job import preparing

    out = []
    try:
        root = None if preparing() is not None else find_dataset(None)
    except OSError:
        root = None
    if root is not None:
        out.append(DataChoice(f"Tiny ImageNet ({root})", "auto", False))
    out.append(DataChoice(SYNTHETIC_LABEL, "synthetic", True))
    return out


PREPARE_STAGES = {"starting": "starting", "download": "downloading the official zip",
                  "verify": "checking the zip's checksum", "extract": "extracting the zip"}


def prepare_progress(job) -> tuple[float, str]:
    """A background preparation's status (:class:`cnnviz.data.job.PrepareJob`) as a progress bar's
    ``(fraction, text)``: "downloading the official zip: 120.5 / 248.1 MB (1m 12s)", "decode train: 52,000 /
    100,000 images (14s)". The time is how long the preparation has run."""
    stage, done, total = job.stage or "starting", job.done, job.total
    frac = min(max(done / total, 0.0), 1.0) if total else 0.0
    name = PREPARE_STAGES.get(stage, stage)
    if stage in ("download", "verify"):
        amount = f": {done / 1e6:,.1f} / {total / 1e6:,.1f} MB" if total else f": {done / 1e6:,.1f} MB"
    elif stage == "starting":
        amount = ""
    else:
        unit = "files" if stage == "extract" else "images"
        amount = f": {done:,} / {total:,} {unit}" if total else f": {done:,} {unit}"
    elapsed = f" ({duration_text(time.time() - job.started)})" if isinstance(job.started, (int, float)) else ""
    return frac, f"{name}{amount}{elapsed}"


PREPARE_HELP = ("Tiny ImageNet (200 classes, 100,000 training and 10,000 validation images of 64x64) is decoded "
                "once into a uint8 cache of about 1.3 GB under the data folder; training, Top-9, the layer probes "
                "and Compare's evaluation read it from there. The official download is about 250 MB "
                "(md5-checked, resumed if interrupted); a zip you already have is used in place. It runs in the "
                "background: you can leave this page (or close the tab) and come back.")


# The synthetic demo's defaults, and why (measured on the project's 2-core CPU, shared with other jobs, by
# training in-process on the 1,000-image synthetic set; val top-1 per epoch):
# - the old defaults (SGD lr 0.1, batch 64, 2 epochs) did not learn: ResNet-18 10% then 12% (chance is 10%),
#   LeNet-5's paper variant 18% then 14%; over 10 epochs the paper variant stayed at 9-20%;
# - AdamW (lr 0.002), batch 32, 5 epochs: LeNet-5 modern 44 71 80 88 86% (14 s), ResNet-18 52 72 87 94 94%;
#   LeNet-5's paper variant reaches only 28-36% (34% after 5 epochs, about 40% after 10-20: scaled tanh,
#   trainable subsampling and the fixed RBF output learn this set slowly), so the demo defaults LeNet-5 to its
#   modern variant.
SYNTHETIC_DEFAULTS = {"epochs": 5, "batch_size": 32, "optimizer": "adamw"}
TINY_IMAGENET_DEFAULTS = {"epochs": 30, "batch_size": 256, "optimizer": "sgd"}
DEMO_VARIANTS = {"lenet5": {"variant": "modern"}}
DEMO_HELP = ("The synthetic demo set has 10 classes of generated patterns and 1,000 training images, so a run "
             "takes seconds to minutes on a CPU. Its defaults are 5 epochs, batch 32 and AdamW (lr 0.002), and "
             "LeNet-5's modern variant: with the old defaults (SGD, lr 0.1, batch 64, 2 epochs) nothing learned "
             "(ResNet-18 12%, LeNet-5 14%, chance 10%); now LeNet-5 modern reaches about 86% and ResNet-18 94% "
             "in 5 epochs. "
             "LeNet-5's paper variant (scaled tanh, RBF output) learns this set slowly: about 34% after 5 epochs.")


def dataset_help() -> str:
    """The Dataset box's help: where Tiny ImageNet is looked for (a copy prepared with ``data prepare --root``
    elsewhere is not searched for: the pages read one data folder, the one training and evaluation use), then
    what the synthetic set is."""
    from cnnviz.paths import data_dir

    return (f"Tiny ImageNet is listed when it is prepared in `{data_dir()}` (set `CNNVIZ_DATA` before `make run` to "
            "use another folder, e.g. one prepared with `python -m cnnviz data prepare --root`). " + DEMO_HELP)


def form_defaults(arch: str, synthetic: bool, prefix: str = "train") -> dict[str, Any]:
    """The form's defaults for a dataset, by widget key: epochs, batch size, optimizer, and the architecture's
    variant options where the demo needs another one (keys ``{prefix}_{arch}_{option}``, as
    ``app_pages._shared.variant_widgets`` names them). They follow the dataset: a page applies them when the
    dataset (or, for the variant, the architecture) changes."""
    from cnnviz.models import get_card

    base = SYNTHETIC_DEFAULTS if synthetic else TINY_IMAGENET_DEFAULTS
    out: dict[str, Any] = {f"{prefix}_epochs": base["epochs"], f"{prefix}_batch": base["batch_size"],
                           f"{prefix}_opt": base["optimizer"]}
    if arch in DEMO_VARIANTS:
        card = get_card(arch)
        for option, demo in DEMO_VARIANTS[arch].items():
            out[f"{prefix}_{arch}_{option}"] = demo if synthetic else card.default_variant.get(option)
    return out


# The form's weight average is updated every this many steps (the zoo's ema_every): its decay field is per update.
FORM_EMA_EVERY = 5
EMA_HELP = (f"An exponential moving average of the weights, updated every {FORM_EMA_EVERY} steps; it is what is "
            "evaluated and saved (the zoo: 0.998)")
FORCE_HELP = ("Start even while another training job uses this device (one job at a time is the default); both "
              "then run slower.")
TTA_HELP = "Also report val top-1 averaged over the image and its mirror (val_top1_tta)"


def zoo_recipe_form(arch: str, prefix: str = "train") -> tuple[dict[str, Any], str] | None:
    """The zoo's recipe (:mod:`cnnviz.zoo.recipe`) for ``arch`` as the Training form's values, by widget key,
    and a sentence saying what they are; None when no zoo member is this architecture.

    A user who trains a zoo family from the form with these values trains what the zoo trains today (its
    variant, optimizer, learning rate, weight decay, epochs, batch, warm-up, label smoothing, weight average and
    flip TTA; the augmentation, bf16 and channels_last are the form's defaults anyway). That is the shipped
    starter's recipe except where a member changed after its starter was trained (GoogLeNet's small stem; docs/zoo.md
    marks such rows). Options the member leaves alone take the card's defaults, so nothing from an earlier choice
    stays behind.
    """
    from cnnviz.models import get_card
    from cnnviz.training.config import default_warmup
    from cnnviz.zoo.recipe import Recipe, member_for_arch

    member = member_for_arch(arch)
    if member is None:
        return None
    recipe, card = Recipe(), get_card(arch)
    assert recipe.ema_every == FORM_EMA_EVERY, "the form's EMA field is per FORM_EMA_EVERY steps"
    values: dict[str, Any] = {f"{prefix}_{arch}_{o.name}": member.variant.get(o.name, o.default)
                              for o in card.form_options}
    lr = member.lr * recipe.batch_size / 256
    warmup = default_warmup(recipe.epochs, recipe.warmup_fraction)
    values.update({f"{prefix}_epochs": recipe.epochs, f"{prefix}_batch": recipe.batch_size,
                   f"{prefix}_opt": member.optimizer, f"{prefix}_lr": lr, f"{prefix}_sched": recipe.schedule,
                   f"{prefix}_warmup": warmup, f"{prefix}_ls": recipe.label_smoothing,
                   f"{prefix}_wd": member.weight_decay, f"{prefix}_ema": recipe.ema_decay,
                   f"{prefix}_tta": recipe.tta_flip})
    variant = ", ".join(f"{k}={v}" for k, v in member.variant.items()) or "the card's defaults"
    text = (f"The zoo's recipe for {card.display_name} ({variant}): {member.optimizer} at lr {lr:g}, "
            f"{recipe.epochs} epochs of batch {recipe.batch_size}, {warmup:g} warm-up epoch, {recipe.schedule} "
            f"schedule, label smoothing {recipe.label_smoothing:g}, weight average {recipe.ema_decay:g} every "
            f"{recipe.ema_every} steps, flip TTA. {member.why} (docs/zoo.md)")
    return values, text


def config_from_form(values: dict[str, Any]) -> TrainConfig:
    """A validated :class:`TrainConfig` from the page's form values (``ValueError`` with a message if not)."""
    fields = dict(values)
    variant = {k: v for k, v in (fields.pop("variant", None) or {}).items() if v is not None}
    if fields.get("ema_decay"):  # the form's decay is per FORM_EMA_EVERY steps, as the zoo's
        fields.setdefault("ema_every", FORM_EMA_EVERY)
    return TrainConfig(variant=variant, **fields).validate()


def starting_run(device: str, runs: list[RunInfo], root: str | Path | None = None) -> str | None:
    """The run whose job holds ``device``'s lock while its folder is not among ``runs`` yet: a run being
    created (the first of two quick Start clicks, or one just started from the CLI). None when the device is
    free or its job's run is listed. :func:`cnnviz.training.jobs.start` names the run in the lock before it
    makes the folder; a lock from an older version names none ("unknown")."""
    from cnnviz.training.jobs import device_busy

    try:
        holder = device_busy(device, root)
    except (OSError, RuntimeError, ValueError):  # an unusable device choice: the form's Start says why
        return None
    if holder is None:
        return None
    run = str(holder.get("run") or "unknown")
    return None if run in {r.id for r in runs} else run


def progress(info: RunInfo) -> tuple[float, str]:
    """``(fraction, text)`` for a progress bar: epoch/step, and the ETA while running."""
    st = info.status
    frac = info.progress
    if info.state == "done":
        return 1.0, f"done: {len(info.metrics)} epochs"
    spe = st.get("steps_per_epoch")
    if not spe:
        return frac, st.get("message") or info.state
    text = f"epoch {info.epoch}/{info.total_epochs}, step {st.get('step', 0)}/{spe}"
    if info.state in ("running", "stopping"):
        text += f" ({st.get('message', '')}), ETA {duration_text(st.get('eta_s'))}"
    return frac, text


TRAINING_PANELS = (Panel(("train_loss", "val_loss"), "loss"),
                   Panel(("train_acc", "val_top1", "val_top5"), "accuracy", percent=True),
                   Panel(("lr",), "learning rate"), Panel(("images_per_s",), "images / s"))


def run_curves_figure(metrics: list[dict[str, Any]], height: int = 520) -> go.Figure:
    """One run's curves by epoch (:func:`cnnviz.views.charts.curves_figure`): loss (train, val), accuracy
    (train, val top-1, val top-5), learning rate, images per second."""
    return curves_figure(metrics_frame(metrics), TRAINING_PANELS, height=height)


def memory_comparison(info: RunInfo) -> dict[str, Any]:
    """Measured peak memory (last epoch) beside the layer-table estimate for the run's model and batch.

    ``{"measured", "measured_kind", "base", "estimate", "estimate_parts", "note"}``; figures are bytes or
    None. ``base`` (runs off CUDA, recorded since 2026-12-07): the process's resident memory just before its
    first training step, so that ``measured - base`` is about what training added, the part the table
    estimates.
    """
    cfg = info.config
    out: dict[str, Any] = {"measured": None, "measured_kind": None, "base": None, "estimate": None,
                           "estimate_parts": {}, "note": ""}
    if info.metrics:
        out["measured"] = info.metrics[-1].get("peak_mem_bytes")
        out["base"] = info.metrics[-1].get("base_mem_bytes")  # off CUDA: the process before its first step
        dev = str(info.status.get("device") or "")
        out["measured_kind"] = ("peak CUDA memory allocated" if dev.startswith("cuda")
                                else "peak process memory (RSS, includes the data set and Python)")
    try:
        from cnnviz.summary import layer_table

        side = int(cfg.get("input_size") or 64)
        classes = int(info.status.get("num_classes") or cfg.get("num_classes") or 200)
        table = layer_table(cfg["arch"], input_size=(3, side, side), num_classes=classes,
                            **(cfg.get("variant") or {}))
        opt = "adamw" if cfg.get("optimizer") == "adamw" else "sgd"
        mem = table.training_memory(int(cfg.get("batch_size") or 1), opt)
        out["estimate"] = mem.get("total")
        out["estimate_parts"] = {k: v for k, v in mem.items() if k != "total"}
        out["note"] = "estimate: float32 weights, gradients, optimizer state and every layer's output"
    except Exception as e:  # noqa: BLE001 - the estimate is a nicety; never break the page for it
        out["note"] = f"no estimate ({type(e).__name__}: {e})"
    return out


def memory_texts(mem: dict[str, Any]) -> tuple[str, str, str]:
    """``(value, help, caption)`` of the page's peak-memory metric from :func:`memory_comparison`: the measured
    peak and the table estimate, both in the one unit system (:func:`cnnviz.views.format.size_text`)."""
    measured, estimate = size_text(mem["measured"]), size_text(mem["estimate"])
    help_text = f"{mem['measured_kind']}; table estimate {estimate} ({mem['note']})"
    base = mem.get("base")
    if base is None or mem["measured"] is None:
        return measured, help_text, f"Memory: measured {measured} ({mem['measured_kind']}) vs. table estimate {estimate}."
    # A CPU run's peak is mostly PyTorch, Python and the data set in memory: without the part that was there
    # before the first step, a 1 GB peak beside a 13 MB estimate read like a bug.
    added = int(mem["measured"]) - int(base)
    network = (f"the layer table estimates {estimate} for the network itself (float32 weights, gradients, "
               "optimizer state and every layer's output)")
    if added > 0:
        share = (f"so training used up to {size_text(added)} more. Of that, {network}; the rest is PyTorch's "
                 "working memory (kernel workspaces, its allocator's caches, the batches being prepared).")
    else:
        share = (f"and the peak came while setting up (imports, reading the data), not from training: "
                 f"{network}.")
    return (measured, help_text, f"Memory: the process peaked at {measured}; {size_text(base)} was in use "
                                 f"before the first step (Python, PyTorch, the data set in memory), {share}")


# ------------------------------------------------------------------------------------ time per epoch
@dataclass(frozen=True)
class EpochEstimate:
    seconds: float | None  # None: no estimate (``source`` says why)
    source: str  # where the number comes from, for the page

    @property
    def text(self) -> str:
        if self.seconds is None:
            return f"No time estimate yet: {self.source}."
        d = duration_text(self.seconds)
        return f"Estimated time per epoch: {d if d.startswith('under') else 'about ' + d} ({self.source})."


def dataset_size(choice: DataChoice) -> tuple[int, int]:
    """``(train, val)`` image counts of a dataset choice, without decoding it: its cache manifest when built,
    else its files (in the folder, or in the zip a prepared root reads its images from); the synthetic set's generator defaults before its first run generates it."""
    import inspect

    from cnnviz.data import DatasetError, cache_status, find_dataset, make_synthetic, read_wnids
    from cnnviz.data.layout import list_split
    from cnnviz.paths import data_dir

    root = find_dataset(data_dir() / "synthetic") if choice.synthetic else find_dataset(None)
    if root is None:
        params = inspect.signature(make_synthetic).parameters
        classes = params["num_classes"].default
        return classes * params["train_per_class"].default, classes * params["val_per_class"].default
    counts = []
    for split in ("train", "val"):
        manifest = cache_status(Path(root), split, check_source=False).manifest or {}
        if not manifest.get("count"):  # no cache yet: list the split's files (in its folder or its zip)
            try:
                manifest = {"count": len(list_split(Path(root), split, read_wnids(Path(root)))[0])}
            except (DatasetError, OSError):
                manifest = {"count": 0}
        counts.append(int(manifest["count"]))
    return counts[0], counts[1]


def estimate_from_runs(runs: list[RunInfo], arch: str, data: str, batch_size: int,
                       n_train: int) -> EpochEstimate | None:
    """From the newest earlier run of the same architecture on the same dataset (same batch size preferred):
    its measured images per second, scaled to this dataset's size. None when there is none."""
    same = [r for r in runs if r.config.get("arch") == arch and r.config.get("data") == data
            and any(isinstance(m.get("images_per_s"), (int, float)) and m["images_per_s"] > 0 for m in r.metrics)]
    if not same:
        return None
    run = next((r for r in same if r.config.get("batch_size") == batch_size), same[0])
    rates = [m["images_per_s"] for m in run.metrics if isinstance(m.get("images_per_s"), (int, float))]
    rate = sorted(rates)[len(rates) // 2]
    device = run.status.get("device_name") or run.status.get("device") or run.config.get("device") or "?"
    return EpochEstimate(n_train / rate, f"from the earlier run {run.id}: {rate:.0f} images/s at batch "
                                         f"{run.config.get('batch_size')} on {device}, x {n_train:,} images")


def measure_train_step(arch: str, variant: dict[str, Any], batch_size: int = 16, device: str = "auto",
                       input_size: int = 64, num_classes: int = 200, steps: int = 2) -> dict[str, Any]:
    """Seconds per training image on this machine: one untimed and ``steps`` timed SGD steps of a fresh model
    on random ``batch_size x 3 x input_size^2`` input, with the training loop's bf16 autocast and
    channels_last. ``{"s_per_image", "batch_size", "device", "amp", "macs"}`` (MACs per image from the layer
    table, for context)."""
    import torch

    from cnnviz.device import bf16_autocast_ok, pick_device
    from cnnviz.models import create_model
    from cnnviz.summary import layer_table
    from cnnviz.training.config import TrainConfig
    from cnnviz.training.optim import compute_loss, make_optimizer

    dev = pick_device(device)
    model = create_model(arch, num_classes=num_classes, input_size=input_size, **variant).to(dev)
    model = model.to(memory_format=torch.channels_last).train()
    channels = int(getattr(model, "in_channels", 3) or 3)
    x = torch.randn(batch_size, channels, input_size, input_size, device=dev).to(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (batch_size,), device=dev)
    # The training loop's own optimizer (fused where torch has it): a different one would time another step.
    opt = make_optimizer(TrainConfig(arch=arch, optimizer="sgd", lr=1e-3, weight_decay=0.0), model, dev)
    criterion = torch.nn.CrossEntropyLoss()
    amp = bf16_autocast_ok(dev)
    aux = float(getattr(model, "aux_loss_weight", 0.3))

    def step() -> None:
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=amp):
            loss, _ = compute_loss(model(x), y, criterion, aux)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - t0) / (steps * batch_size)
    macs = layer_table(arch, input_size=(channels, input_size, input_size), num_classes=num_classes,
                       **variant).totals["macs"]
    return {"s_per_image": seconds, "batch_size": batch_size, "device": str(dev), "amp": amp, "macs": macs}


def estimate_from_step(step: dict[str, Any], n_train: int, n_val: int) -> EpochEstimate:
    """Time per epoch from :func:`measure_train_step`: every training image, plus the validation pass (a
    forward pass, about a third of a training step per image)."""
    per_image = step["s_per_image"]
    seconds = n_train * per_image + n_val * per_image / 3
    rate = 3 * step["macs"] / per_image  # a training step is about 3 forward passes of MACs
    return EpochEstimate(seconds, f"measured now: 2 training steps of batch {step['batch_size']} on "
                                  f"{step['device']}{' (bf16)' if step['amp'] else ''}, {1 / per_image:.0f} "
                                  f"images/s; {human(step['macs'])} MACs per image, about {human(rate)} MAC/s "
                                  f"for training; x {n_train:,} images. Larger batches usually run a little faster")


def epoch_estimate(arch: str, variant: dict[str, Any], choice: DataChoice, batch_size: int, device: str,
                   runs: list[RunInfo], measure=measure_train_step) -> EpochEstimate:
    """The time per epoch a user should expect before pressing Start: from the newest earlier run of the same
    architecture on the same dataset when there is one (its measured speed), else from a short training step
    measured now (``measure``, e.g. a cached :func:`measure_train_step`). Not measured while a training job
    runs: it would slow that job and be slowed by it, so the number would be wrong."""
    try:
        n_train, n_val = dataset_size(choice)
    except OSError as e:
        return EpochEstimate(None, f"the dataset cannot be read ({e})")
    earlier = estimate_from_runs(runs, arch, choice.spec, batch_size, n_train)
    if earlier is not None:
        return earlier
    busy = [r.id for r in runs if r.active]
    if busy:
        return EpochEstimate(None, f"a training job is running ({busy[0]}); a step measured now would be slowed by "
                                   "it (and slow it), so the estimate appears once it has finished")
    try:
        return estimate_from_step(measure(arch, variant, min(int(batch_size), 16), device), n_train, n_val)
    except Exception as e:  # noqa: BLE001 - an estimate must never break the form; the worker reports real errors
        return EpochEstimate(None, f"the measurement failed ({type(e).__name__}: {str(e)[:200]})")
