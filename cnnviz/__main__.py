"""The command line: ``python -m cnnviz COMMAND ...`` (``python -m cnnviz --help`` lists them).

Each command group lives in ``cnnviz/cli/<group>.py`` with a ``register(subparsers)`` function; heavy
imports happen inside the handlers so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# module -> commands it registers (see each module's register()).
_GROUPS = ("models", "data", "training", "viz", "probe", "predicting", "starter", "zoo", "imagenet")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cnnviz", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in _GROUPS:
        module = importlib.import_module(f"cnnviz.cli.{group}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, KeyError, FileNotFoundError, RuntimeError) as e:
        # User errors (unknown architecture, bad input size, missing file ...) get one clear line, no traceback.
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
