"""What the Architectures page shows: the model card, the per-layer table and its totals, sentences on where
the parameters, memory and compute go, notes on popular write-ups, and the variant options a user can set.

The page's one import: the charts (:mod:`cnnviz.views.architecture_charts`) and the block diagram
(:mod:`cnnviz.views.block_diagram`) are re-exported here. Everything takes a :class:`cnnviz.summary.LayerTable`
(or a model) and returns plain objects (plotly figures, DOT strings, pandas frames, sentences), so a notebook
can draw the same pictures as the dashboard::

    from cnnviz.summary import layer_table
    from cnnviz.views import architectures as fa
    t = layer_table("vgg16")
    fa.layer_chart(t, "params").show()
    print(fa.highlights(t))

Units (:mod:`cnnviz.views.format`): parameters and activations are counts of numbers; memory is in bytes for
the table's dtype, shown with decimal prefixes like the CLI (1 MB = 10**6 bytes); MACs are multiply-accumulates.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from cnnviz.models.meta import meta_model
from cnnviz.models.registry import ModelCard, get_card
from cnnviz.summary import cs231n_memory, param_count, writeup_errors
from cnnviz.views.architecture_charts import (
    METRICS,
    accuracy_vs_macs_chart,
    compare_frame,
    layer_chart,
    paper_accuracy_points,
    receptive_field_chart,
)
from cnnviz.views.block_diagram import block_diagram
from cnnviz.views.format import (
    COMPACT_NOTE,
    COUNT_NOTE,
    MACS_NOTE,
    UNITS_NOTE,
    human,
    human_bytes,
    pair_text,
    shape_text,
)

__all__ = [  # the charts and the diagram, re-exported: the page imports this one module
    "MACS_NOTE", "METRICS", "UNITS_NOTE", "accuracy_vs_macs_chart", "block_diagram", "compare_frame",
    "layer_chart", "paper_accuracy_points", "receptive_field_chart",
]


# ---------------------------------------------------------------- the card, the table and totals
def card_markdown(card: ModelCard, table: Any = None) -> str:
    """The model card as Markdown: paper, the paper's own figures, key ideas, deviations, 64x64 changes.

    With the page's ``table``, the card also gives our parameter count at that input and class count (the
    same :func:`cnnviz.summary.param_count` as the headline), beside the paper's own figure."""
    f = card.figures

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:g}%"

    parts = [f"**[{card.title}]({card.url})**  \n{card.authors}. *{card.venue}*, {card.year}.",
             f"**The paper's figures:** {human(f.params)} parameters, top-1 error {pct(f.top1_error)}, "
             f"top-5 error {pct(f.top5_error)}" + (f", {f.gmacs:g} GMACs" if f.gmacs else "") + "."
             + (f" _{f.note}_" if f.note else ""),
             f"**Paper's input:** {shape_text(card.paper_input)}, {card.paper_classes} classes."]
    if table is not None:
        parts.append(f"**Our count at {shape_text(table.input)}, {table.classes} classes:** "
                     f"{param_count(table).sentence(exact=True)}.")
    for title, items in (("Key ideas", card.key_ideas), ("Where our code differs from the paper", card.deviations),
                         ("What changes at 64x64 (Tiny ImageNet)", card.adaptations_64)):
        if items:
            parts.append(f"**{title}**\n" + "\n".join(f"- {i}" for i in items))
    from cnnviz.imagenet import card_note  # which torchvision ImageNet weights fit (and why not, where none)

    if (note := card_note(card.name)) is not None:
        parts.append(f"**ImageNet weights (torchvision):** {note}")
    from cnnviz.starter import starter_notes  # the shipped Tiny ImageNet checkpoint: accuracy, storage, cost

    if notes := starter_notes(card.name):
        parts.append("**Shipped starter (Tiny ImageNet, trained by this project):** " + " ".join(notes))
    return "\n\n".join(parts)


# ---------------------------------------------------------------- the table and totals
# Columns of display_frame / compare_frame by unit (the page formats counts as K/M/B or K/M/G, see below, and bytes
# as kB/MB).
COUNT_COLUMNS = ("params", "weights", "biases", "activations", "MACs", "connections", "activations / image",
                 "MACs / image", "paper params", "training-only params")
BYTE_COLUMNS = ("activation memory", "parameter memory", "activation memory / image")

# The compare table (compare_frame: a row per architecture, a handful) writes its counts with cnnviz's formatter
# through pandas' Styler: 6.18M and 15.5G, as the metric cards and the accuracy-vs-MACs axis under it, where
# Streamlit's compact format wrote "6.4M" and "15B" (the Styler took about 4 ms for all 18 architectures on the
# 2-core dev CPU). The per-layer table keeps Streamlit's format (the page's docstring says why); its help says K/M/B.

COLUMN_HELP = {
    "params": "weights + biases (comparing architectures: at inference, without training-only heads)",
    "training-only params": "heads used only in training (GoogLeNet's auxiliary classifiers), not in params",
    "parameter memory": "bytes of params (at inference) in the chosen dtype",
    "activations": "output elements per image",
    "activation memory": "per image, in the chosen dtype",
    "MACs": f"multiply-accumulates per image (1 MAC = 2 FLOPs); {COMPACT_NOTE}",
    "MACs / image": f"multiply-accumulates per image at this input ({COUNT_NOTE})",
    "connections": "LeNet-style connections: one per input feeding a unit, the bias counted as one",
    "receptive field": "pixels of the input that can affect one unit (largest over all paths)",
    "jump": "distance in input pixels between neighbouring units (effective stride)",
}


def _paper_figure(x: float | None) -> str:
    return "-" if x is None or x != x else f"{x:g}"  # 40.7, 22.85: as the paper wrote it; "-" where it has none


def compare_formats(frame: pd.DataFrame) -> dict[str, Any]:
    """The display formatter of each count and paper-error column ``frame`` has, for pandas' ``Styler.format``
    (a column a Styler does not format shows its default, six decimals or "nan")."""
    errors = {c: _paper_figure for c in frame if c.startswith("paper ") and c.endswith(" error %")}
    return {c: human for c in COUNT_COLUMNS if c in frame} | errors


def display_frame(table: Any) -> pd.DataFrame:
    """One row per layer, numbers kept as numbers (the page formats them), shapes as '64x224x224'."""
    records = []
    for r in table.rows:
        records.append({
            "layer": r.name,
            "type": r.type,
            "input": shape_text(r.input_shape),
            "output": shape_text(r.output_shape),
            "kernel": pair_text(r.kernel),
            "stride": pair_text(r.stride),
            "padding": pair_text(r.padding),
            "activation": r.activation or "",
            "params": r.params,
            "weights": r.weight_params,
            "biases": r.bias_params,
            "activations": r.activations,
            "activation memory": r.activation_bytes,
            "MACs": r.macs,
            "connections": r.connections,
            "receptive field": r.rf,
            "jump": r.jump,
        })
    frame = pd.DataFrame.from_records(records)
    train_only = [bool(getattr(r, "train_only", False)) for r in table.rows]
    if any(train_only):  # GoogLeNet's auxiliary classifiers: in the table, not in the per-image totals
        frame.insert(2, "training only", train_only)
    return frame


_MEMORY_PARTS = ("weights", "grads", "optim", "activations")  # byte keys of LayerTable.training_memory


def totals(table: Any, batch_size: int = 1, optimizer: str = "sgd") -> dict[str, tuple[str, str]]:
    """Headline figures for the page: label -> (short value, exact value with units)."""
    t = table.totals
    count = param_count(table)
    mem = table.training_memory(batch_size, optimizer)
    parts = ", ".join(f"{k} {human_bytes(mem[k])}" for k in _MEMORY_PARTS)
    return {
        "Parameters": (human(count.inference), count.sentence(exact=True)),
        "Parameter memory": _param_memory(table, count),
        "Activations / image": (human(t["activations"]), f"{t['activations']:,} output elements per image"),
        "Activation memory": (human_bytes(t["activation_bytes"]), f"{t['activation_bytes']:,} bytes per image"),
        "MACs / image": (human(t["macs"]), f"{t['macs']:,} multiply-accumulates per image"),
        f"Training, batch {batch_size}": (human_bytes(mem["total"]), f"{optimizer}: {parts}"),
    }


def _param_memory(table: Any, count: Any) -> tuple[str, str]:
    """Bytes of the parameters the headline counts (at inference); training-only heads said apart."""
    size = table.totals["param_bytes"] // max(1, count.total)
    exact = f"{count.inference * size:,} bytes in {table.dtype}"
    if count.training_only:
        exact += f" at inference; {table.totals['param_bytes']:,} in training (auxiliary classifiers included)"
    return human_bytes(count.inference * size), exact


def exact_totals(table: Any) -> str:
    """One sentence with the exact totals (the metrics above it are rounded); training-only heads are named."""
    t = table.totals
    count = param_count(table)
    heads = (f" at inference (the training-only auxiliary classifiers add {count.training_only:,}: "
             f"{count.total:,} in training)" if count.training_only else "")
    return (f"Exactly {count.inference:,} parameters{heads}, {t['activations']:,} activations and {t['macs']:,} "
            f"MACs per {'x'.join(map(str, table.input))} image.")


def training_memory_frame(table: Any, batch_size: int, optimizer: str = "sgd") -> pd.DataFrame:
    """The training-memory estimate split into its parts (bytes and readable)."""
    mem = table.training_memory(batch_size, optimizer)
    return pd.DataFrame(
        [{"part": k, "bytes": int(mem[k]), "readable": human_bytes(mem[k])} for k in (*_MEMORY_PARTS, "total")]
    )


def highlights(table: Any) -> list[str]:
    """Sentences answering 'where do the parameters live?' and 'where does the memory / compute go?'."""
    out = []
    for key, noun in (("params", "Parameters"), ("activation_bytes", "Activation memory"), ("macs", "MACs")):
        # Per-image activations and MACs are those of inference, like the totals: auxiliary heads left out.
        rows = table.rows if key == "params" else [r for r in table.rows if not getattr(r, "train_only", False)]
        total = sum(getattr(r, key) for r in rows)
        if total <= 0:
            continue
        top = max(rows, key=lambda r: getattr(r, key))
        share = getattr(top, key) / total
        value = human_bytes(getattr(top, key)) if key == "activation_bytes" else human(getattr(top, key))
        aux = ", auxiliary classifier used in training only" if getattr(top, "train_only", False) else ""
        whole = " (training-only heads included)" if key == "params" and any(
            getattr(r, "train_only", False) for r in rows) else ""
        sentence = f"**{noun}:** `{top.name}` ({top.type}{aux}, output {shape_text(top.output_shape)}) " \
                   f"holds {value}, {share:.0%} of the total{whole}"
        if key == "activation_bytes":
            first = [r for r in rows if r.activation_bytes][: max(1, len(rows) // 5)]
            part = sum(r.activation_bytes for r in first) / total
            sentence += f"; the first {len(first)} of {len(rows)} layers take {part:.0%}"
        out.append(sentence + ".")
    return out


def input_shape(arch: str, side: int | None = None, num_classes: int | None = None,
                **variant: Any) -> tuple[int, int, int]:
    """(C, H, W) an architecture takes at a square side (the paper's when None).

    The channel count comes from the model itself (LeNet-5 takes 1 channel at 32x32 and 3 elsewhere); the
    model is built on the ``meta`` device, so this costs no memory. Raises InputSizeError like create_model.
    """
    card = get_card(arch)
    side = card.paper_input[-1] if side is None else int(side)
    model = meta_model(arch, num_classes=num_classes, input_size=side, **variant)
    channels = getattr(model, "in_channels", None)
    if not isinstance(channels, int):
        first = next((m for m in model.modules() if isinstance(getattr(m, "in_channels", None), int)), None)
        channels = first.in_channels if first is not None else card.paper_input[0]
    return (channels, side, side)


# ---------------------------------------------------------------- notes on popular write-ups
def writeup_notes(arch: str, table: Any) -> list[str]:
    """Markdown notes where a popular write-up disagrees with our figures for this architecture.

    The figures come from :mod:`cnnviz.summary.notes`; for VGG-16 the CS231n-style activation count is
    recomputed from this very table (it is only the notes' 15.2M at 224x224).
    """
    notes = []
    for e in writeup_errors(arch):
        text = (f"**A popular figure that is wrong: {e.quantity}.** {e.source} says **{e.claimed:,}**; "
                f"the right figure is **{e.correct:,}**. {e.explanation}")
        if arch == "vgg16":
            text += (f" Counted the notes' way, this table ({'x'.join(map(str, table.input))}) has "
                     f"**{cs231n_memory(table):,}** values; our own total, one row per module, is "
                     f"{table.totals['activations']:,}.")
        notes.append(text)
    return notes
