"""The one parameter count of a model, used by every view (Architectures headline and card, Compare
architectures, the Compare page's table, the CLI).

A model's parameters depend on the input size (a flattening classifier, e.g. AlexNet's FC6) and on the class
count (the last layer), so a count is always for one ``(input, classes)`` pair, and the views say which. Heads
used only in training (GoogLeNet's auxiliary classifiers: rows with ``train_only`` in the layer table) are
kept apart: ``inference`` is what a trained checkpoint holds and Predict runs, the number the papers quote
(GoogLeNet's "6.8M" leaves the auxiliary classifiers out); ``training_only`` is what training adds::

    pc = parameter_count("googlenet", (3, 64, 64), 200)
    pc.inference, pc.training_only, pc.total      # 6,178,552  4,739,728  10,918,280
    pc.sentence()   # "6.2M at inference; the training-only auxiliary classifiers add 4.7M (10.9M in training)"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cnnviz.summary.units import human

TRAINING_ONLY_HEADS = "the training-only auxiliary classifiers"


@dataclass(frozen=True)
class ParamCount:
    """Parameters at one input size and class count, split into inference and training-only heads."""

    inference: int
    training_only: int = 0

    @property
    def total(self) -> int:
        """What training updates: inference + training-only heads."""
        return self.inference + self.training_only

    def sentence(self, exact: bool = False) -> str:
        """The count in words, saying where training-only heads are (not) counted."""
        fmt = (lambda v: f"{v:,}") if exact else human
        if not self.training_only:
            return f"{fmt(self.inference)} parameters"
        return (f"{fmt(self.inference)} parameters at inference; {TRAINING_ONLY_HEADS} add "
                f"{fmt(self.training_only)} ({fmt(self.total)} in training)")


def param_count(table: Any) -> ParamCount:
    """The count of a :class:`cnnviz.summary.LayerTable` (every row's parameters; ``train_only`` rows apart)."""
    training_only = sum(r.params for r in table.rows if getattr(r, "train_only", False))
    return ParamCount(inference=int(table.totals["params"]) - training_only, training_only=training_only)
