"""CLI: ``python -m cnnviz starter export RUN --name NAME [--compress MODE] [--svd-rank KEY=RANK ...]
[--force]``, ``python -m cnnviz starter snapshots RUN --name NAME --epochs 1,2,5`` and ``python -m cnnviz starter
list``."""

from __future__ import annotations

import argparse
import json


def register(sub) -> None:
    p = sub.add_parser("starter", help="starter checkpoints shipped in checkpoints/starter")
    ssub = p.add_subparsers(dest="starter_command", metavar="ACTION", required=True)
    q = ssub.add_parser("export", help="compressed copy of a run's best checkpoint, evaluated on val")
    q.add_argument("source", help="a run folder, a run id (a folder in the checkpoints folder) or a checkpoint "
                                   "path")
    q.add_argument("--name", required=True, help="file name under checkpoints/starter/ (no extension)")
    q.add_argument("--force", action="store_true",
                   help="replace a starter of that name (refused without it: a shipped starter would be lost)")
    q.add_argument("--compress", choices=("auto", "none", "int8", "svd-int8"), default="auto",
                   help="auto (default): the family's plan (int8; + SVD of fc6/fc7 for AlexNet, ZFNet, VGG; "
                        "LeNet-5 float16); none: float16; int8: int8 per output channel; svd-int8: int8 + SVD")
    q.add_argument("--svd-rank", action="append", type=_svd_rank, metavar="KEY=RANK", default=[],
                   help="rank of a Linear weight's truncated SVD, e.g. classifier.fc6.weight=256 (repeatable)")
    q.add_argument("--data", default=None, help="dataset to evaluate on (default: the one it was trained on)")
    q.add_argument("--device", default="auto")
    q.set_defaults(func=_export)
    q = ssub.add_parser("snapshots", help="ship some of a run's per-epoch snapshots with its starter")
    q.add_argument("source", help="the run folder (or run id) the starter was exported from (trained with "
                                   "--keep-snapshots)")
    q.add_argument("--name", required=True, help="the starter's name under checkpoints/starter/")
    q.add_argument("--epochs", required=True, type=_epochs, help="comma-separated epochs, e.g. 1,2,5")
    # No svd-int8: there is no --svd-rank here, and auto already applies the family's SVD.
    q.add_argument("--compress", choices=("auto", "none", "int8"), default="auto",
                   help="auto (default): the family's plan, as `starter export`; none: float16; int8")
    q.set_defaults(func=_snapshots)
    q = ssub.add_parser("list", help="the starter checkpoints and their measured accuracy")
    q.add_argument("--format", choices=("markdown", "json"), default="markdown")
    q.set_defaults(func=_list)


def _svd_rank(item: str) -> tuple[str, int]:
    from cnnviz.compress import parse_svd_rank

    try:
        return parse_svd_rank(item)
    except ValueError as e:  # argparse prints usage and this message, and exits 2
        raise argparse.ArgumentTypeError(str(e).removeprefix(f"--svd-rank {item!r}: ")) from None


def _export(args: argparse.Namespace) -> int:
    from cnnviz.starter import export_starter, starter_paths

    weights, meta = starter_paths(args.name)
    if not args.force and (weights.exists() or meta.exists()):
        raise ValueError(f"a starter called {args.name!r} already exists in {weights.parent}: give another "
                         "--name, or --force to replace it")
    r = export_starter(args.source, args.name, compress=args.compress, svd_ranks=dict(args.svd_rank) or None,
                       data=args.data, device=args.device)
    print(json.dumps(r))
    return 0


def _epochs(text: str) -> list[int]:
    try:
        epochs = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of epochs such as 1,2,5") from None
    if not epochs or min(epochs) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give epochs from 1 up, such as 1,2,5")
    return epochs


def _snapshots(args: argparse.Namespace) -> int:
    from cnnviz.starter import ship_snapshots

    for path in ship_snapshots(args.source, args.name, args.epochs, compress=args.compress):
        print(path)
    return 0


def _list(args: argparse.Namespace) -> int:
    from cnnviz.starter import list_starters, starter_table

    print(json.dumps(list_starters(), indent=2) if args.format == "json" else starter_table())
    return 0
