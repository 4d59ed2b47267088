"""The training loop: :class:`Trainer` trains one run folder to the end, a stop, or a failure. Read it top to
bottom: status, set-up (data, model, optimizer), save / resume, then the loop itself in :meth:`Trainer.run`.

Batches come from :class:`cnnviz.data.BatchPipeline` (the split and its augmentation on the device); bf16
autocast where the device has it, channels_last, optional ``torch.compile``; schedule, optimizer, loss and
weight average are :mod:`cnnviz.training.optim`'s. The resume point (``optim.pt``: tensors and plain
containers, so ``weights_only=True`` loads it) is written atomically in one file *after* the epoch's line in
``metrics.jsonl``, and resuming drops lines past it, so a kill -9 at any moment loses or repeats nothing. A
stop request (the worker's SIGTERM handler) saves mid-epoch and ends ``stopped``; what goes wrong raises
:class:`cnnviz.training.faults.TrainingFailed`, which the worker reports.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import random
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP

from cnnviz import checkpoint  # module attribute: tests replace checkpoint.save_checkpoint to fill the disk
from cnnviz.data import BatchPipeline, load_split, resolve_data
from cnnviz.device import bf16_autocast_ok, device_name, pick_device, process_peak_rss, process_rss
from cnnviz.fsutil import atomic_write_bytes, atomic_write_json, atomic_write_text
from cnnviz.models import InputSizeError, create_model
from cnnviz.training.config import TrainConfig
from cnnviz.training.dist import Dist, init_distributed
from cnnviz.training.evaluate import evaluate
from cnnviz.training.faults import Faults, TrainingFailed
from cnnviz.training.folder import RunFolder
from cnnviz.training.optim import WeightAverage, compute_loss, lr_at, make_optimizer
from cnnviz.training.runs import read_metrics

log = logging.getLogger("cnnviz.train")  # the run's log: the worker sends it to train.log


class Trainer:
    """Trains the run in ``run_dir`` (whose ``config.json`` it was given) to the end, a stop, or a failure."""

    def __init__(self, run_dir: Path, cfg: TrainConfig, dist: Dist | None = None):
        self.run_dir = Path(run_dir)
        self.folder = RunFolder(self.run_dir)
        self.cfg = cfg
        self.dist = dist or Dist()
        self.stop_requested = False
        self.faults = Faults(os.environ.get("CNNVIZ_FAULT"))
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
        atomic_write_json(self.folder.status, self.status)

    def _eta(self) -> float | None:
        done = self.global_step - self._session_step0
        if done <= 0:
            return None
        per_step = (time.time() - self._session_t0) / done
        remaining = self.cfg.epochs * self.steps_per_epoch - self.global_step
        return round(max(0.0, remaining * per_step), 1)

    # ---------------------------------------------------------------------------------------------- set-up
    def _setup(self) -> None:
        cfg = self.cfg
        self.device = init_distributed(self.dist, pick_device(cfg.device))
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
        atomic_write_bytes(self.folder.resume_state, buf.getvalue())

    def _meta(self, metrics: dict[str, Any] | None) -> dict[str, Any]:
        tr = self.train_split
        data = {"root": str(self.data_root), "train_images": len(tr.labels), "val_images": len(self.val_split.labels)}
        return checkpoint.build_meta(self.raw_model, classes=tr.wnids, class_names=tr.class_names, mean=tr.mean,
                                     std=tr.std, epoch=self.epoch,  # epochs completed
                                     step=self.global_step, metrics=metrics or {}, train_config=self.cfg.to_dict(),
                                     run=self.folder.id, data=data)

    @property
    def eval_model(self) -> nn.Module:
        """What is evaluated and saved: the weight average when there is one, else the live weights."""
        return self.ema.model if self.ema is not None else self.raw_model

    def _save(self, metrics: dict[str, Any] | None, *, best: bool = False, snapshot: bool = False) -> None:
        """Resume point first (what resume trusts), then ``last``, ``best`` and the snapshot."""
        if not self.dist.main:
            return
        self.faults.before_save()
        self._save_resume_point()
        meta = self._meta(metrics)
        checkpoint.save_checkpoint(self.folder.checkpoint("last"), self.eval_model, meta)
        if best:
            checkpoint.save_checkpoint(self.folder.checkpoint("best"), self.eval_model, meta)
        if snapshot:
            checkpoint.save_checkpoint(self.folder.snapshot(self.epoch), self.eval_model, meta)
        self._last_save = time.monotonic()

    def _resume(self) -> None:
        """Continue from ``optim.pt`` (or, lacking it, the ``last`` weights) and drop metric lines past it."""
        path = self.folder.resume_state
        self._metrics = read_metrics(self.folder.metrics)
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
            self.epoch, self.step_in_epoch, self.global_step = (int(state[k]) for k in
                                                                ("epoch", "step_in_epoch", "global_step"))
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
        elif self.folder.checkpoint("last").exists():
            ck = checkpoint.load_checkpoint(self.folder.checkpoint("last"), expect_arch=self.cfg.arch,
                                            expect_classes=self.num_classes)
            self.raw_model.load_state_dict(ck.model.state_dict())
            if self.ema is not None:
                self.ema.model.load_state_dict(ck.model.state_dict())
            self.epoch = ck.meta.epoch or 0
            self.global_step = self.epoch * self.steps_per_epoch
            log.warning("optim.pt missing: resuming from last.safetensors at epoch %d with a fresh optimizer",
                        self.epoch + 1)
        kept = [m for m in self._metrics if isinstance(m.get("epoch"), int) and m["epoch"] <= self.epoch]
        if self.dist.main and (len(kept) != len(self._metrics) or self.folder.metrics.exists()):
            if len(kept) != len(self._metrics):
                log.info("dropping %d metric line(s) past the resume point", len(self._metrics) - len(kept))
            atomic_write_text(self.folder.metrics, "".join(json.dumps(m) + "\n" for m in kept))
        self._metrics = kept
        vals = [m["val_top1"] for m in kept if isinstance(m.get("val_top1"), (int, float))]
        if vals:
            self.best_top1 = max(self.best_top1, max(vals))

    def _append_metrics(self, m: dict[str, Any]) -> None:
        if not self.dist.main:
            return
        with open(self.folder.metrics, "a", encoding="utf-8") as f:
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
        # Off CUDA the peak is the process's (Python, PyTorch, the data set held in memory): what is in use before
        # the first step lets the Training page show what training itself added, beside the layer-table estimate.
        base_mem = None if dev.type == "cuda" else process_rss()
        # Evaluation stays fp32 on the CPU (see evaluate): the recorded val accuracy is then the one that
        # `cnnviz evaluate` and Predict reproduce on any CPU, with or without bf16 kernels.
        amp = cfg.amp and bf16_autocast_ok(dev)
        # device_name: the card or CPU model, so Compare can say what a run's seconds and images/s were on.
        self._write_status(state="running", message="training", device=str(dev), device_name=device_name(str(dev)),
                           reason=None)
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
            peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else process_peak_rss()
            if base_mem is not None:
                extra["base_mem_bytes"] = base_mem
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
            msg = f"stopped at epoch {self.epoch + 1}, step {self.step_in_epoch}; Resume (or `runs resume`) continues"
            self._write_status(state="stopped", message=msg, reason="stopped", eta_s=None)
            log.info(msg)
            return "stopped"
        best = f"; best val top-1 {self.best_top1:.1%}" if self.best_top1 >= 0 else ""
        self._write_status(state="done", message=f"finished {cfg.epochs} epochs{best}", reason=None, eta_s=0,
                           finished=time.time())
        log.info("done%s", best)
        return "done"
