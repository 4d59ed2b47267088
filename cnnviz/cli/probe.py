"""CLI: ``python -m cnnviz probe --checkpoint CK [--layers NAME,...] [--train-per-class N] [--format json]``:
a linear probe on each layer (ZF Section 5, Table 6), see :mod:`cnnviz.viz.probes` for the classifier.

``--format json`` prints ``[{"layer": NAME, "val_top1": x, ...}, ...]`` (shallow to deep; each row also has
``train_top1``, ``dim`` and the chart ``label``); ``--format text`` a table. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cnnviz.cli._args import at_least, check_folder, check_output

DESCRIPTION = ("Fit a linear classifier on each layer's features and report its accuracy, to see how "
               "discriminative each layer is (Zeiler & Fergus Section 5, Table 6).")


def register(sub) -> None:
    from cnnviz.viz.probes import DEFAULTS

    p = sub.add_parser("probe", help="how discriminative each layer is: a linear probe per layer (ZF Table 6)",
                       description=DESCRIPTION)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", metavar="PATH", help="a .safetensors checkpoint or a catalog name")
    src.add_argument("--arch", metavar="ARCH", help="a randomly initialised architecture (a baseline)")
    p.add_argument("--seed", type=int, default=0, help="initialisation seed of a --arch model, and the subset's")
    p.add_argument("--layers", metavar="NAME,NAME", help="layers to probe (default: every hidden block's output)")
    p.add_argument("--train-per-class", type=at_least(1), default=DEFAULTS["train_per_class"], metavar="N",
                   help=f"train images per class (default {DEFAULTS['train_per_class']})")
    p.add_argument("--val-per-class", type=at_least(1), default=DEFAULTS["val_per_class"], metavar="N",
                   help=f"val images per class (default {DEFAULTS['val_per_class']})")
    p.add_argument("--l2", type=at_least(0.0), default=DEFAULTS["l2"],
                   help=f"L2 penalty (default {DEFAULTS['l2']:g})")
    p.add_argument("--max-iter", type=at_least(1), default=DEFAULTS["max_iter"],
                   help=f"LBFGS iterations (default {DEFAULTS['max_iter']})")
    p.add_argument("--data", metavar="PATH", help="Tiny ImageNet root (default: the data folder)")
    p.add_argument("--cache-dir", metavar="DIR", help="probe cache (default: <data>/viz_cache)")
    p.add_argument("--format", choices=("json", "text"), default="text")
    p.add_argument("--out", metavar="FIG.png", help="also draw accuracy against depth")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, mps or auto")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cnnviz.cli.viz import _subject, dataset_root
    from cnnviz.data import load_split
    from cnnviz.viz.probes import probe
    from cnnviz.viz.session import mean_std

    check_output(args.out, "--out")  # before the probe runs, not when its figure is written
    check_folder(args.cache_dir, "--cache-dir")
    subject = _subject(argparse.Namespace(**vars(args), classes=200, input_size=64))  # --arch: Tiny ImageNet's
    root = dataset_root(args.data)
    train, val = load_split(root, "train"), load_split(root, "val")
    mean, std = mean_std(subject.meta)
    layers = [n.strip() for n in args.layers.split(",") if n.strip()] if args.layers else None
    cache = Path(args.cache_dir) if args.cache_dir else Path(root) / "viz_cache"

    def progress(fraction, message):
        print(f"\r{fraction:4.0%} {message:<48}", end="", file=sys.stderr, flush=True)

    result = probe(subject.model, train.images, train.labels, val.images, val.labels, mean=mean, std=std,
                   input_size=subject.input_size[1], channels=subject.input_size[0], layers=layers,
                   name=subject.name, train_per_class=args.train_per_class, val_per_class=args.val_per_class,
                   l2=args.l2, max_iter=args.max_iter, seed=args.seed, progress=progress,
                   cache_dir=cache if subject.cache_key else None, model_key=subject.cache_key)
    print(file=sys.stderr)
    if args.format == "json":
        print(json.dumps(result.rows()))
    else:
        # What the user typed (a run's checkpoint is "RUN/best"; its subject's name is only "best")
        shown = args.checkpoint or f"{args.arch} (random weights)"
        print(f"{shown}: {result.train_images:,} train / {result.val_images:,} val images, "
              f"{result.num_classes} classes; {result.classifier}")
        print(f"{'layer':<28} {'features':>8} {'val top-1':>9} {'train top-1':>11}")
        for r in result.rows():
            print(f"{r['layer']:<28} {r['dim']:>8} {r['val_top1']:>9.1%} {r['train_top1']:>11.1%}")
    if args.out:
        from cnnviz.fsutil import atomic_write_bytes
        from cnnviz.viz.zf_figures import probe_png

        atomic_write_bytes(Path(args.out), probe_png([result]))
        print(f"wrote {args.out}", file=sys.stderr)
    return 0
