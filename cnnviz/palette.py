"""One colour per compared model, the same everywhere a model is drawn: Compare's charts (curves, accuracy vs
cost, per class), the PNGs of its export bundle, and docs/zoo.md's plots. No plotting library here, so the
matplotlib writers (the zoo report runs where plotly is not installed: the GPU machine) and the plotly
charts share it.

Okabe & Ito's colour-blind-safe qualitative set, yellow last (faint on white), then Tableau's. Streamlit's own
sequence pairs each dark hue with a pale one (blue, pale blue, red, pink, ...): seven models drew as three pairs
that looked related, and the pale lines (ResNet-18's, the best) were the hardest to see.
"""

from __future__ import annotations

from collections.abc import Sequence

MODEL_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442",
                 "#9D755D", "#B279A2", "#72B7B2", "#FF9DA6")


def model_colours(models: Sequence[str]) -> dict[str, str]:
    """``{model: colour}`` in the order given (duplicates ignored); past twelve models the colours repeat."""
    return {m: MODEL_COLOURS[i % len(MODEL_COLOURS)] for i, m in enumerate(dict.fromkeys(models))}
