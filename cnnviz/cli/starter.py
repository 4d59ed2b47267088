"""CLI: ``python -m cnnviz starter export RUN --name NAME`` and ``python -m cnnviz starter list``."""

from __future__ import annotations

import argparse
import json


def register(sub) -> None:
    p = sub.add_parser("starter", help="starter checkpoints shipped in checkpoints/starter")
    ssub = p.add_subparsers(dest="starter_command", metavar="ACTION", required=True)
    q = ssub.add_parser("export", help="float16 copy of a run's best checkpoint, evaluated on val")
    q.add_argument("source", help="a run folder or a checkpoint path")
    q.add_argument("--name", required=True, help="file name under checkpoints/starter/ (no extension)")
    q.add_argument("--data", default=None, help="dataset to evaluate on (default: the one it was trained on)")
    q.add_argument("--device", default="auto")
    q.set_defaults(func=_export)
    q = ssub.add_parser("list", help="the starter checkpoints and their measured accuracy")
    q.add_argument("--format", choices=("markdown", "json"), default="markdown")
    q.set_defaults(func=_list)


def _export(args: argparse.Namespace) -> int:
    from cnnviz.starter import export_starter

    r = export_starter(args.source, args.name, data=args.data, device=args.device)
    print(json.dumps(r))
    return 0


def _list(args: argparse.Namespace) -> int:
    from cnnviz.starter import list_starters, starter_table

    print(json.dumps(list_starters(), indent=2) if args.format == "json" else starter_table())
    return 0
