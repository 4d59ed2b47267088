"""Argument types and checks the commands share, so that a bad value is refused where it is typed.

* ``type=at_least(1)`` on an integer option: argparse's own one-line error (``argument --epochs: must be at
  least 1, not 0``) instead of a zero read as "not given" or a negative slice. ``at_least(0.0)`` for floats.
* :func:`check_output` before any work: an output path that is a folder, or lies under a file, is refused
  before a long probe or scan runs, not by a traceback from the final atomic rename; :func:`check_folder` the
  same for a cache folder.
* :func:`typed_options`: what the user gave beyond the defaults, for a command that then ignores it (a resumed
  run or zoo keeps its own settings) to name.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def at_least(low: int | float):
    """An argparse ``type`` for numbers ``>= low`` (an int when ``low`` is an int, else a float)."""
    kind = int if isinstance(low, int) else float

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {'an integer' if kind is int else 'a number'}: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, not {text}")
        return value

    parse.__name__ = f"{kind.__name__} >= {low}"  # what argparse names in "invalid ... value"
    return parse


def above(low: float):
    """An argparse ``type`` for floats ``> low`` (a timeout, a budget in seconds)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > low:
            raise argparse.ArgumentTypeError(f"must be more than {low:g}, not {text}")
        return value

    return parse


def check_output(path: str | Path | None, option: str = "--out") -> None:
    """``ValueError`` (one line for the user) when ``path`` cannot be written as a file: it is a folder, or a
    file stands where one of its folders should be. Missing folders are fine (the writers create them)."""
    if path is None:
        return
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{option} {str(path)!r} is a folder: give a file name in it")
    for parent in p.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{option} {str(path)!r}: {str(parent)!r} is a file, not a folder")
            break


def check_folder(path: str | None, option: str) -> None:
    """``ValueError`` when a cache folder (created on first use) is a file or lies under one."""
    if path is None or Path(path).is_dir():
        return
    if Path(path).exists():
        raise ValueError(f"{option} {path!r} is a file, not a folder")
    check_output(path, option)  # a file where one of its parent folders should be


def typed_options(args: argparse.Namespace, keep: tuple[str, ...] = ()) -> list[str]:
    """The options given a value other than their default, as ``--name``, leaving out ``keep`` (the ones the
    command uses). The defaults come from the parser cnnviz.__main__ records in ``args._parser``; without it
    (a handler called directly) nothing is named."""
    parser = getattr(args, "_parser", None)
    if parser is None:
        return []
    return [f"--{k.replace('_', '-')}" for k, v in vars(args).items()
            if not k.startswith("_") and not k.endswith("command") and k not in ("func", *keep)
            and v != parser.get_default(k)]
