"""Readable numbers for the tables: counts with K/M/G/T and bytes with decimal units."""

from __future__ import annotations


def human(n: int | float | None) -> str:
    """1234567 -> '1.23M' (K/M/G/T, powers of 1000); '-' when unknown (None or NaN: a missing table cell)."""
    if n is None or n != n:
        return "-"
    n = float(n)
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}" if abs(n) / scale < 100 else f"{n / scale:.0f}{unit}"
    return f"{int(n)}"


def percent(x: float | None, missing: str = "n/a") -> str:
    """A fraction as a percentage with two decimals, as docs/zoo.md and the model cards write accuracies:
    0.251 -> '25.10%'; ``missing`` when unknown (None or NaN)."""
    return missing if x is None or x != x else f"{100 * x:.2f}%"


def human_bytes(n: int | float) -> str:
    """Bytes with decimal units (1 MB = 10^6 bytes)."""
    s = human(n)
    return s + "B" if s[-1].isalpha() else s + " B"

