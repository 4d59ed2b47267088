"""The command line: ``python -m cnnviz COMMAND ...`` (``python -m cnnviz --help`` lists them).

Each command group lives in ``cnnviz/cli/<group>.py`` with a ``register(subparsers)`` function; heavy
imports happen inside the handlers so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from cnnviz.errors import UnknownName

# module -> commands it registers (see each module's register()).
_GROUPS = ("models", "data", "training", "viz", "probe", "predicting", "starter", "zoo", "imagenet")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cnnviz",
        description="The classic CNNs on the command line: per-layer tables, Tiny ImageNet, training runs, the "
                    "Visualize page's pictures, predictions and comparisons. Every command has --help.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in _GROUPS:
        module = importlib.import_module(f"cnnviz.cli.{group}")
        module.register(sub)
    _remember_parsers(parser)
    return parser


def _remember_parsers(parser: argparse.ArgumentParser) -> None:
    """Each (sub)command's parser as a default of its own namespace, so that an option it does not know is
    reported with that command's usage (``list --fromat json`` showed the top-level usage); the deepest
    command's default wins."""
    parser.set_defaults(_parser=parser)
    for action in parser._actions:  # argparse keeps sub-parsers in this private-but-stable list
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _remember_parsers(sub)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        args._parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, UnknownName, FileNotFoundError, RuntimeError) as e:
        # User errors (unknown architecture, bad input size, missing file ...) get one clear line, no traceback.
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `... | head`: the reader has what it wanted; no message, as other tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own flush at exit must not fail
        return 141
    except OSError as e:
        # A path that is a folder, lies under a file, or cannot be written: the system's reason and the path,
        # one line (e.g. "error: Is a directory: 'out'"), not a traceback.
        where = e.filename2 if e.filename2 is not None else e.filename
        reason = e.strerror or str(e)
        print(f"error: {reason}: {str(where)!r}" if where is not None else f"error: {reason}", file=sys.stderr)
        return 2
    except KeyError:
        # A bare KeyError is a missing dict key in our code, not a name the user typed (those raise UnknownName):
        # "error: name" alone would hide the bug, so show where it happened.
        traceback.print_exc()
        print("internal error: this is a bug in cnnviz (the traceback above says where); please report it",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
