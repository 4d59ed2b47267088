"""CLI commands ``list`` (registered architectures) and ``table`` (one architecture's per-layer table)."""

from __future__ import annotations

import argparse
import json

from cnnviz.models.registry import ModelCard, parse_variant

__all__ = ["cmd_list", "cmd_table", "parse_input", "parse_variant", "register"]

FORMATS = ("text", "csv", "markdown", "json")


def register(sub) -> None:
    p = sub.add_parser("list", help="list the registered architectures")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "table",
        help="per-layer table of an architecture (shapes, params, activations, MACs, receptive fields)",
        description="Per-layer table of a registered architecture. MACs are multiply-accumulates, not FLOPs.",
    )
    p.add_argument("arch", help="architecture name (see `python -m cnnviz list`)")
    p.add_argument("--input", default=None, metavar="CxHxW",
                   help="input size, e.g. 3x224x224 or 224 (default: the paper's input)")
    p.add_argument("--classes", type=int, default=None, help="number of classes (default: the paper's)")
    p.add_argument("--dtype", default="float32", help="dtype for memory figures (float32, float16, bfloat16 ...)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="also estimate training memory at this batch size (text/markdown; adds "
                        "'training_memory' to the JSON)")
    p.add_argument("--optimizer", default="sgd", help="optimizer for the training memory estimate "
                   "(sgd = with momentum, sgd_plain, adam, adamw, rmsprop)")
    p.add_argument("--format", choices=FORMATS, default="text")
    p.add_argument("--variant", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="architecture variant options, e.g. --variant groups=1 stem=paper (repeatable)")
    p.set_defaults(func=cmd_table)


def parse_input(text: str | None, default: tuple[int, int, int]) -> tuple[int, int, int]:
    """``"3x224x224"`` -> (3, 224, 224); ``"224"`` -> (default channels, 224, 224)."""
    if text is None:
        return tuple(default)  # type: ignore[return-value]
    parts = text.lower().replace("*", "x").replace(",", "x").split("x")
    try:
        nums = [int(p) for p in parts if p.strip()]
    except ValueError:
        raise ValueError(f"--input must look like 3x224x224 or 224, got {text!r}") from None
    if len(nums) == 1:
        nums = [default[0], nums[0], nums[0]]
    elif len(nums) == 2:
        nums = [default[0], *nums]
    if len(nums) != 3 or min(nums) < 1:
        raise ValueError(f"--input must look like 3x224x224 or 224 with positive sizes, got {text!r}")
    return tuple(nums)  # type: ignore[return-value]


def cmd_list(args: argparse.Namespace) -> int:
    from cnnviz.models.registry import get_card, list_models

    cards = [get_card(n) for n in list_models()]
    if args.format == "json":
        print(json.dumps([{"name": c.name, "display_name": c.display_name, "family": c.family, "year": c.year,
                           "paper_input": list(c.paper_input), "paper_classes": c.paper_classes,
                           "paper_params": c.figures.params, "variants": c.variants,
                           "options": [o.to_dict() for o in c.options]} for c in cards], indent=2))
        return 0
    if not cards:
        print("no architectures registered")
        return 0
    w = max(len(c.name) for c in cards)
    d = max(len(c.display_name) for c in cards)
    for c in cards:
        inp = "x".join(str(v) for v in c.paper_input)
        print(f"{c.name.ljust(w)}  {c.display_name.ljust(d)}  {c.year}  input {inp}, {c.paper_classes} classes"
              + (f"; --variant {options_text(c)}" if c.options else ""))
    return 0


def options_text(card: ModelCard) -> str:
    """``groups=2 (a whole number) stem=auto|paper|small ...``: each option's default, then its other choices
    (or, for a number, what it takes)."""
    words = []
    for o in card.options:
        if o.type is bool:
            values = [o.default, not o.default]
        elif o.choices:
            values = [o.default, *(c for c in o.choices if c != o.default)]
        else:
            values = [o.default]
        shown = "|".join("none" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for v in values)
        words.append(f"{o.name}={shown}" + ("" if o.choices or o.type is bool else f" ({o.takes()})"))
    return " ".join(words)


def cmd_table(args: argparse.Namespace) -> int:
    from cnnviz.models.registry import InputSizeError, get_card
    from cnnviz.summary import layer_table

    card = get_card(args.arch)
    size = parse_input(args.input, card.paper_input)
    variant = parse_variant(args.variant, args.arch)
    if args.classes is not None and args.classes < 1:
        raise ValueError(f"--classes must be at least 1, got {args.classes}")
    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    try:
        table = layer_table(args.arch, size, dtype=args.dtype, num_classes=args.classes, **variant)
    except TypeError as e:  # unknown variant option: the registry's message says which ones exist
        raise ValueError(str(e)) from None
    except InputSizeError as e:
        raise ValueError(str(e)) from None
    if args.format == "json":
        d = table.to_dict()
        if args.batch_size:
            d["training_memory"] = table.training_memory(args.batch_size, args.optimizer)
        print(json.dumps(d, indent=2))
    elif args.format == "csv":
        print(table.to_csv(), end="")
    elif args.format == "markdown":
        text = table.to_markdown()
        if args.batch_size:
            m = table.training_memory(args.batch_size, args.optimizer)
            text += f"\nTraining memory estimate at batch {args.batch_size} ({m['optimizer']}): {m['total']:,} bytes\n"
        print(text, end="")
    else:
        print(table.to_text(batch_size=args.batch_size, optimizer=args.optimizer), end="")
    return 0
