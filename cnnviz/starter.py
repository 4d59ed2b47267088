"""Starter checkpoints: the small, float16 copies of trained runs shipped in ``checkpoints/starter/``.

They let Predict and Compare work on a fresh clone. Each is made from a run's ``best`` checkpoint by
:func:`export_starter`, which writes the float16 file, then measures the *shipped* file's val top-1/top-5 with
the same code as ``python -m cnnviz evaluate`` and records them in its metadata (``metrics.val_top1``,
``metrics.val_top5``, ``metrics.val_n``, ``metrics.evaluated_with``). Heads used only in training are left out of the shipped file
(GoogLeNet's two auxiliary classifiers: 4.7M of its 10.9M parameters at 200 classes), which leaves eval-mode
outputs unchanged and keeps all starters within the 40 MB budget. The README table is generated from
that metadata by :func:`starter_table`, so the numbers shown are the numbers measured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cnnviz.checkpoint import checkpoint_paths, load_checkpoint, read_meta, save_checkpoint
from cnnviz.fsutil import atomic_write_json
from cnnviz.models import create_model
from cnnviz.paths import checkpoints_dir
from cnnviz.runs import read_metrics

STARTER_DIR_NAME = "starter"
SIZE_BUDGET_BYTES = 40 * 1024 * 1024  # all starters together (issue 5)


def starter_dir(root: str | Path | None = None) -> Path:
    return Path(root or checkpoints_dir()) / STARTER_DIR_NAME


def _source_checkpoint(source: str | Path) -> Path:
    """A run folder (its ``best``, else ``last``) or a checkpoint path."""
    p = Path(source)
    if p.is_dir():
        for stem in ("best", "last"):
            w, j = checkpoint_paths(p / stem)
            if w.exists() and j.exists():
                return w
        raise FileNotFoundError(f"{p} holds no best or last checkpoint")
    w, _ = checkpoint_paths(p)
    if not w.exists():
        raise FileNotFoundError(f"no checkpoint at {w}")
    return w


def inference_only(model: torch.nn.Module) -> tuple[torch.nn.Module, list[str]]:
    """``(model, dropped)``: the same network without heads that only training uses, and what was dropped.

    GoogLeNet's auxiliary classifiers (``aux1``, ``aux2``) only add training losses (paper, Section 5); in eval
    mode the model returns the main logits alone, so dropping them changes no prediction. Other models come
    back unchanged.
    """
    if not getattr(model, "aux_logits", False):
        return model, []
    lean = create_model(model.arch, **{**model.model_args, "aux_logits": False})
    keep = set(lean.state_dict())
    state = model.state_dict()
    dropped = sorted({k.split(".")[0] for k in state if k not in keep})
    lean.load_state_dict({k: v for k, v in state.items() if k in keep}, strict=True)
    return lean.eval(), dropped


def export_starter(source: str | Path, name: str, *, data: str | None = None, root: str | Path | None = None,
                   device: str = "auto") -> dict[str, Any]:
    """Write ``starter/<name>`` as float16 from a run or checkpoint, evaluate it, record the result.

    Returns the evaluation (``{"checkpoint", "top1", "top5", "n", "loss"}``).
    """
    from cnnviz.train import evaluate_checkpoint  # the same code path as `python -m cnnviz evaluate`

    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise ValueError(f"starter name must be a plain file name, got {name!r}")
    src = _source_checkpoint(source)
    ckpt = load_checkpoint(src, "cpu")
    model, dropped = inference_only(ckpt.model)
    meta = {**ckpt.meta, "model_args": dict(model.model_args)}
    meta["starter"] = {"name": name, "source": str(src.parent.name + "/" + src.name),
                       "train_config": meta.get("train_config", {}), "dropped_training_only_heads": dropped}
    # The run's per-epoch metrics up to the exported epoch: Compare draws a starter's training curves from it.
    last_epoch = meta.get("epoch") if isinstance(meta.get("epoch"), int) else None
    meta["history"] = [m for m in read_metrics(src.parent / "metrics.jsonl")
                       if last_epoch is None or (isinstance(m.get("epoch"), int) and m["epoch"] <= last_epoch)]
    out = starter_dir(root) / name
    save_checkpoint(out, model, meta, dtype=torch.float16)
    result = evaluate_checkpoint(out, data=data, device=device)
    meta = read_meta(out)
    meta["metrics"] = {**(meta.get("metrics") or {}), "val_top1": result["top1"], "val_top5": result["top5"],
                       "val_n": result["n"], "evaluated_with": "python -m cnnviz evaluate (float16 file)"}
    atomic_write_json(checkpoint_paths(out)[1], meta)
    return result


def list_starters(root: str | Path | None = None) -> list[dict[str, Any]]:
    """Metadata of every starter checkpoint (name, arch, epochs, measured accuracy, file size)."""
    rows = []
    for w in sorted(starter_dir(root).glob("*.safetensors")):
        try:
            meta = read_meta(w)
        except ValueError:
            continue
        m = meta.get("metrics") or {}
        rows.append({"name": w.stem, "arch": meta["arch"], "variant": {k: v for k, v in meta["model_args"].items()
                                                                      if k not in ("num_classes", "input_size")},
                     "epochs": meta.get("epoch"), "val_top1": m.get("val_top1"), "val_top5": m.get("val_top5"),
                     "val_n": m.get("val_n"), "bytes": w.stat().st_size})
    return rows


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def starter_table(root: str | Path | None = None) -> str:
    """The README's Markdown table of starter checkpoints, from their metadata."""
    lines = ["| checkpoint | architecture | epochs | val top-1 | val top-5 | size |",
             "|---|---|---|---|---|---|"]
    for r in list_starters(root):
        variant = ", ".join(f"{k}={v}" for k, v in r["variant"].items())
        lines.append(f"| `{r['name']}` | {r['arch']} ({variant}) | {r['epochs']} | {_pct(r['val_top1'])} | "
                     f"{_pct(r['val_top5'])} | {r['bytes'] / 2**20:.1f} MiB |")
    return "\n".join(lines)
