"""What the Training page shows, computed here so the page stays thin (and so a notebook can show it too):
dataset choices, the config from the form, progress text with ETA, live curves (plotly), and the
measured peak memory beside the layer-table estimate.

No streamlit here; plotly is fine (the training worker never imports this module).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cnnviz.runs import RunInfo
from cnnviz.train import TrainConfig

SYNTHETIC_LABEL = "Synthetic demo set (NOT Tiny ImageNet: a few classes of generated patterns)"


@dataclass(frozen=True)
class DataChoice:
    label: str
    spec: str  # TrainConfig.data
    synthetic: bool


def dataset_choices() -> list[DataChoice]:
    """Tiny ImageNet when it is prepared on this machine, and always the synthetic set (labelled as such)."""
    from cnnviz.data import find_dataset

    out = []
    try:
        root = find_dataset(None)
    except OSError:
        root = None
    if root is not None:
        out.append(DataChoice(f"Tiny ImageNet ({root})", "auto", False))
    out.append(DataChoice(SYNTHETIC_LABEL, "synthetic", True))
    return out


def config_from_form(values: dict[str, Any]) -> TrainConfig:
    """A validated :class:`TrainConfig` from the page's form values (``ValueError`` with a message if not)."""
    fields = dict(values)
    variant = {k: v for k, v in (fields.pop("variant", None) or {}).items() if v is not None}
    return TrainConfig(variant=variant, **fields).validate()


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return "unknown"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h {m:02d}m" if h else f"{m}m {s:02d}s" if m else f"{s}s"


def fmt_bytes(n: float | None) -> str:
    if not isinstance(n, (int, float)) or n <= 0:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


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
        text += f" ({st.get('message', '')}), ETA {fmt_duration(st.get('eta_s'))}"
    return frac, text


def curves_figure(metrics: list[dict[str, Any]], height: int = 520) -> go.Figure:
    """Four panels by epoch: loss (train, val), accuracy (train, val top-1, val top-5), learning rate,
    images per second."""
    fig = make_subplots(rows=2, cols=2, subplot_titles=("loss", "accuracy", "learning rate", "images / s"),
                        vertical_spacing=0.16, horizontal_spacing=0.08)
    epochs = [m.get("epoch") for m in metrics]

    def line(key: str, name: str, row: int, col: int, pct: bool = False) -> None:
        ys = [m.get(key) for m in metrics]
        if not any(isinstance(y, (int, float)) for y in ys):
            return
        ys = [100 * y if pct and isinstance(y, (int, float)) else y for y in ys]
        fig.add_trace(go.Scatter(x=epochs, y=ys, mode="lines+markers", name=name, legendgroup=f"{row}{col}"),
                      row=row, col=col)

    line("train_loss", "train loss", 1, 1)
    line("val_loss", "val loss", 1, 1)
    line("train_acc", "train acc (%)", 1, 2, pct=True)
    line("val_top1", "val top-1 (%)", 1, 2, pct=True)
    line("val_top5", "val top-5 (%)", 1, 2, pct=True)
    line("lr", "learning rate", 2, 1)
    line("images_per_s", "images/s", 2, 2)
    fig.update_xaxes(title_text="epoch", dtick=1 if len(metrics) <= 20 else None)
    fig.update_yaxes(range=[0, 100], row=1, col=2)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.12))
    return fig


def memory_comparison(info: RunInfo) -> dict[str, Any]:
    """Measured peak memory (last epoch) beside the layer-table estimate for the run's model and batch.

    ``{"measured", "measured_kind", "estimate", "estimate_parts", "note"}``; figures are bytes or None.
    """
    cfg = info.config
    out: dict[str, Any] = {"measured": None, "measured_kind": None, "estimate": None, "estimate_parts": {},
                           "note": ""}
    if info.metrics:
        out["measured"] = info.metrics[-1].get("peak_mem_bytes")
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
