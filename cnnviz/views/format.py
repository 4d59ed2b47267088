"""How every view writes numbers: one size formatter, one unit system, one MACs note.

Sizes are decimal everywhere (1 MB = 10^6 bytes), as the layer tables, the CLI and the Architectures page
have always written them; the Training page's measured peak memory and its layer-table estimate use the same
formatter, so the two can be compared by eye. Counts use K/M/G (powers of 1000).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

# Defined once in cnnviz.summary (the CLI's text and Markdown tables use them too); views take them from here.
from cnnviz.summary import MACS_NOTE, human, human_bytes

if TYPE_CHECKING:
    import pandas as pd

UNITS_NOTE = "Memory uses decimal units (1 MB = 10^6 bytes)."
# Streamlit's "compact" number columns write billions with B where our own formatter writes G; tables say which.
COMPACT_NOTE = "K/M/B = thousand/million/billion"
COUNT_NOTE = "K/M/G = thousand/million/billion"  # cnnviz's own formatter, human()
__all__ = ["COMPACT_NOTE", "COUNT_NOTE", "MACS_NOTE", "UNITS_NOTE", "duration_text", "human", "human_bytes", "pair_text",
           "shape_text", "size_text", "to_markdown"]


def size_text(n: float | None) -> str:
    """Bytes with :func:`human_bytes` (decimal: ``"315MB"``); ``"-"`` when unknown (None, zero or negative)."""
    return human_bytes(n) if isinstance(n, (int, float)) and n > 0 else "-"


def shape_text(s: tuple[int, ...] | list[int] | None) -> str:
    """``(64, 224, 224)`` -> ``"64x224x224"`` (``"-"`` when unknown)."""
    return "x".join(str(v) for v in s) if s else "-"


def pair_text(p: tuple[int, int] | None) -> str:
    """A kernel, stride or padding: ``(3, 3)`` -> ``"3"``, ``(1, 3)`` -> ``"1x3"``, None -> ``""``."""
    if p is None:
        return ""
    return f"{p[0]}" if len(set(p)) == 1 else "x".join(str(v) for v in p)


def duration_text(seconds: float | None) -> str:
    """``"1h 05m"``, ``"4m 07s"``, ``"12s"``, ``"under 1s"`` (a synthetic epoch's estimate said "about 0s");
    ``"unknown"`` for None or a value that is not finite."""
    if seconds is None or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return "unknown"
    if 0 < seconds < 0.5:
        return "under 1s"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h {m:02d}m" if h else f"{m}m {s:02d}s" if m else f"{s}s"


def to_markdown(df: pd.DataFrame, floatfmt: str = "{:.4g}") -> str:
    """A GitHub Markdown table of ``df`` (no extra dependency): Compare's export bundle and ``python -m cnnviz
    compare --format markdown``."""
    def cell(v: Any) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        if isinstance(v, float):
            return floatfmt.format(v)
        return str(v).replace("|", "\\|").replace("\n", " ")
    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    sep = "| " + " | ".join("---" for _ in df.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body]) + "\n"
