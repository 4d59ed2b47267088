"""What every part of :mod:`cnnviz.data` reports in: the dataset error, the fix it names, progress callbacks."""

from __future__ import annotations

from collections.abc import Callable

#: ``progress(stage, done, total)``: stage is e.g. ``"download"`` (bytes), ``"extract"`` (files),
#: ``"decode train"`` (images); ``total`` is 0 when unknown.
Progress = Callable[[str, int, int], None]


class DatasetError(ValueError):
    """A missing, incomplete or corrupt dataset. The message says what is wrong and how to fix it."""


PREPARE_HINT = ("run `python -m cnnviz data prepare --source download` (or `--source PATH` with a local "
                "tiny-imagenet-200.zip or extracted folder)")

