"""Figures that popular write-ups get wrong, with our figure and why (shown on the Architectures page).

Every ``correct`` value below is re-derived from our own tables by ``tests/test_summary.py``; the text says
how it is computed, so a reader can check it by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

CS231N_VGG_URL = "https://cs231n.github.io/convolutional-networks/#case"


@dataclass(frozen=True)
class WriteupError:
    """One wrong figure in a popular write-up: what it claims, what is right, and why."""

    arch: str
    layer: str | None  # our row name, or None for a whole-network figure
    quantity: str
    source: str
    claimed: int
    correct: int
    explanation: str


KNOWN_WRITEUP_ERRORS: dict[str, tuple[WriteupError, ...]] = {
    "lenet5": (
        WriteupError(
            arch="lenet5", layer=None, quantity="C3 parameters",
            source="many LeNet-5 tutorials and blog posts",
            claimed=2_416, correct=1_516,
            explanation=(
                "2,416 = 16 x (6 x 5 x 5 + 1) assumes every C3 map sees all 6 S2 maps. In the paper (LeCun et "
                "al. 1998, Table I) C3 is only partially connected: 6 maps see 3 S2 maps, 9 see 4 and 1 sees "
                "all 6, i.e. 60 input maps in all: 60 x 25 weights + 16 biases = 1,516 parameters and "
                "10 x 10 x 1,516 = 151,600 connections (a full C3 would have 241,600)."
            ),
        ),
    ),
    "alexnet": (
        WriteupError(
            arch="alexnet", layer=None, quantity="conv1 parameters",
            source="blog posts and slides quoting AlexNet's conv1 as having '105,705,600 parameters'",
            claimed=105_705_600, correct=34_944,
            explanation=(
                "105,705,600 = 55 x 55 x 96 x (11 x 11 x 3 + 1) counts connections (every output unit times "
                "its 363 inputs plus bias), not parameters: the 96 filters share their weights across the "
                "55 x 55 positions, so conv1 has 96 x (11 x 11 x 3 + 1) = 34,944 parameters."
            ),
        ),
    ),
    "vgg16": (
        WriteupError(
            arch="vgg16", layer=None, quantity="forward activation memory per image (values)",
            source=f"CS231n notes, 'VGGNet in detail' ({CS231N_VGG_URL})",
            claimed=24_000_000, correct=15_237_608,
            explanation=(
                "The notes list every layer's activations correctly (INPUT 224x224x3 = 150K, CONV3-64 "
                "224x224x64 = 3.2M twice, POOL 800K, ... FC 4096, 4096, 1000) but give 'TOTAL memory: 24M * 4 "
                "bytes ~= 93MB'. Their own rows add up to 15,237,608 values (~15.2M, 61 MB as float32): the "
                "total is an arithmetic slip (raised in cs231n/cs231n.github.io issue #88 in 2016, unanswered). "
                "The notes count one value per conv output (ReLU applied in place) and the input; our table has "
                "a separate row for every ReLU and dropout (non-in-place modules), so its own activation total "
                "is larger: cs231n_memory(table) recomputes the notes' way of counting from our rows."
            ),
        ),
    ),
}


def writeup_errors(arch: str) -> tuple[WriteupError, ...]:
    """Known wrong figures for an architecture (``()`` when none are recorded)."""
    return KNOWN_WRITEUP_ERRORS.get(arch, ())


def cs231n_memory(table) -> int:
    """Forward activations counted the CS231n way: the input plus the output of every conv, pooling and
    fully connected layer (activation functions in place, dropout and flatten free). For VGG-16 at 224 this
    is the true sum of the notes' own rows, 15,237,608."""
    counted = ("Conv2d", "MaxPool2d", "AvgPool2d", "Linear")
    c, h, w = table.input
    return c * h * w + sum(r.activations for r in table.rows if r.type in counted and not r.train_only)
