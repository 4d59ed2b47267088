"""CLI: ``python -m cnnviz zoo members|train|status|import|report``: one model per family under one recipe.

    python -m cnnviz zoo members                                  # who stands for each family, and why
    python -m cnnviz zoo train --epochs 10                        # the core seven, one after another
    python -m cnnviz zoo train --budget-s 420 --concurrency 2 --export --detach   # fit a time budget
    python -m cnnviz zoo train --data synthetic --epochs 1 --max-steps-per-epoch 2   # a CPU smoke run
    python -m cnnviz zoo status [ZOO]                             # progress of each member
    python -m cnnviz zoo train --resume ZOO                       # after a kill: continue where it stopped
    python -m cnnviz zoo import DIR                               # results + starters into checkpoints/
    python -m cnnviz zoo report                                   # docs/zoo.md and its plots
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from cnnviz.cli._args import above, at_least, check_output, typed_options
from cnnviz.paths import ZOO_REPORT

# Seconds a member costs beyond its epochs: starting the worker (imports, the split onto the device, cuDNN's
# autotuning), collecting its results and exporting its starter. A planning margin, not a measurement: the
# driver log and the runs' metrics show what it really was.
OVERHEAD_PER_MEMBER_S = 20.0


def register(sub) -> None:
    p = sub.add_parser("zoo", help="train, follow, import and report one model per family (the zoo)")
    zsub = p.add_subparsers(dest="zoo_command", metavar="ACTION", required=True)

    q = zsub.add_parser("members", help="the zoo's members and their per-family settings")
    q.add_argument("--format", choices=("text", "json"), default="text")
    q.set_defaults(func=_members)

    q = zsub.add_parser("train", help="train the zoo (prints the zoo id on the first line)")
    q.add_argument("--families", default="core", help="core (default: the seven), all, or a list: resnet18,nin")
    g = q.add_mutually_exclusive_group()
    g.add_argument("--epochs", type=at_least(1), help="epochs for every member (default 10)")
    g.add_argument("--budget-s", type=above(0), help="seconds for the whole zoo, measuring the training rates "
                                                      "included: the epochs are planned from each member's rate")
    q.add_argument("--overhead-s", type=at_least(0.0), default=None,
                   help="seconds of the budget kept for starting workers, evaluating and exporting "
                        "(default 20 per member, divided by the concurrency)")
    q.add_argument("--concurrency", type=at_least(1), default=1, help="members training at once on the device")
    q.add_argument("--batch-size", type=at_least(1))
    q.add_argument("--lr", metavar="FAMILY=LR[,...]",
                   help="a member's learning rate for 256 images instead of its own (a sweep: one zoo per rate); "
                        "its result and docs/zoo.md say so")
    q.add_argument("--data", default=None, help="auto (Tiny ImageNet), synthetic, or a folder / zip")
    q.add_argument("--device", default=None, choices=("auto", "cuda", "cpu", "mps"))
    q.add_argument("--compile", action="store_true", default=None, help="torch.compile every member")
    q.add_argument("--no-ema", action="store_true", help="no weight average")
    q.add_argument("--no-tta", action="store_true", help="no flip test-time evaluation")
    q.add_argument("--max-steps-per-epoch", type=at_least(1), help="cut epochs short (smoke tests)")
    q.add_argument("--seed", type=int)
    q.add_argument("--keep-snapshots", action="store_true", default=None,
                   help="also keep every epoch's weights in each run folder (Visualize's 'across training')")
    q.add_argument("--export", action="store_true", help="export each finished member as a compressed starter")
    q.add_argument("--detach", action="store_true", help="run the driver in the background and return")
    q.add_argument("--resume", metavar="ZOO", help="continue a zoo (its own recipe) after a kill")
    q.set_defaults(func=_train)

    q = zsub.add_parser("status", help="each member's state, epoch, accuracy and speed")
    q.add_argument("zoo", nargs="?", help="zoo id or folder (default: the newest)")
    q.add_argument("--format", choices=("text", "json"), default="text")
    q.set_defaults(func=_status)

    q = zsub.add_parser("import", help="copy a zoo's results and starters into checkpoints/ (checked first)")
    q.add_argument("source", help="a zoo id or folder, or a folder of fetched files")
    q.add_argument("--allow-synthetic", action="store_true",
                   help="also import results and starters not trained on Tiny ImageNet (refused without it: "
                        "they would replace the Tiny ImageNet zoo's files of the same family)")
    q.set_defaults(func=_import)

    q = zsub.add_parser("report", help="write docs/zoo.md and its plots from checkpoints/results/")
    q.add_argument("--results", default=None, help="folder of result files (default: checkpoints/results)")
    q.add_argument("--out", default=str(ZOO_REPORT),
                   help="the report; its plots go beside it (default: %(default)s, the repository's docs/zoo.md "
                        "wherever the command runs from)")
    q.add_argument("--bench", default=None, help="bench_zoo JSON with the card's matmul ceiling (for MFU)")
    q.set_defaults(func=_report)


def _members(args: argparse.Namespace) -> int:
    from cnnviz.zoo.recipe import MEMBERS

    rows = [{"family": m.family, "arch": m.arch, "variant": m.variant, "optimizer": m.optimizer, "lr": m.lr,
             "weight_decay": m.weight_decay, "extra": m.extra, "why": m.why} for m in MEMBERS]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    variants = [", ".join(f"{k}={v}" for k, v in r["variant"].items()) or "-" for r in rows]
    width = max(map(len, variants))  # the widest (GoogLeNet's) sets the column, so that the others line up
    for r, variant in zip(rows, variants, strict=True):
        extra = " (extra)" if r["extra"] else ""
        print(f"{r['family']:<10} {r['arch']:<10} {variant:<{width}} {r['optimizer']:<5} lr {r['lr']:<6g}"
              f"{extra}")
        print(f"{'':<10} {r['why']}")
    return 0


def _recipe(args: argparse.Namespace):
    from cnnviz.zoo.recipe import Recipe

    r = Recipe()
    for flag, field in (("epochs", "epochs"), ("batch_size", "batch_size"), ("data", "data"),
                        ("device", "device"), ("compile", "compile"), ("seed", "seed"),
                        ("max_steps_per_epoch", "max_steps_per_epoch"), ("keep_snapshots", "keep_snapshots")):
        v = getattr(args, flag, None)
        if v is not None:
            setattr(r, field, v)
    if args.no_ema:
        r.ema_decay = 0.0
    if args.no_tta:
        r.tta_flip = False
    return r


def _train(args: argparse.Namespace) -> int:
    from cnnviz.zoo import driver
    from cnnviz.zoo.recipe import parse_families, parse_lr_override

    if args.resume:
        ignored = typed_options(args, keep=("resume", "detach"))
        if ignored:  # a zoo resumes with its own recipe and members (zoo.json)
            print(f"note: a resumed zoo keeps its own recipe and members; ignored {', '.join(ignored)}",
                  file=sys.stderr)
        zoo_dir = driver.resolve_zoo(args.resume)
    else:
        try:
            members = parse_families(args.families)
        except ValueError as e:
            raise ValueError(f"--families {args.families!r}: {e}") from None
        recipe = _recipe(args)
        try:
            recipe.lr_override = parse_lr_override(args.lr, members)
        except ValueError as e:
            raise ValueError(f"--lr {args.lr!r}: {e}") from None
        if args.concurrency > driver.MAX_CONCURRENCY:  # create_zoo refuses it too, but after the calibration
            raise ValueError(f"--concurrency {args.concurrency}: at most {driver.MAX_CONCURRENCY} members train at "
                             "once")
        budget, calibration, spent = args.budget_s, None, 0.0
        overhead = args.overhead_s
        if budget is not None:
            if overhead is None:  # per member: start a worker, load the data, evaluate, export
                overhead = OVERHEAD_PER_MEMBER_S * len(members) / max(1, args.concurrency)
            n = len(members)
            print(f"measuring the training rate of {n} member{'s' if n != 1 else ''}...", file=sys.stderr)
            t = time.monotonic()
            calibration = driver.calibrate(members, recipe, progress=lambda s: print(s, file=sys.stderr))
            spent = time.monotonic() - t  # the measurement is spent from the same budget
        try:
            zoo_dir = driver.create_zoo(members, recipe, budget_s=budget, concurrency=args.concurrency,
                                        export=args.export, calibration=calibration, overhead_s=overhead or 0.0,
                                        spent_s=spent)
        except driver.BudgetTooSmall as e:  # the budget as the user typed it, then the numbers
            raise ValueError(f"--budget-s {args.budget_s:g} is {e.reason}") from None
    print(zoo_dir.name, flush=True)
    if args.detach:
        with open(zoo_dir / "driver.out", "ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "cnnviz", "zoo", "train", "--resume", str(zoo_dir)],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        (zoo_dir / "driver.pid").write_text(str(proc.pid))
        print(f"driver running in the background (pid {proc.pid}); follow it with "
              f"`python -m cnnviz zoo status {zoo_dir.name}`", file=sys.stderr)
        return 0
    states = driver.run_zoo(zoo_dir, echo=lambda s: print(s, file=sys.stderr, flush=True))
    return 0 if all(s == "done" for s in states.values()) else 1


def _status(args: argparse.Namespace) -> int:
    from cnnviz.zoo import driver

    zoo_dir = driver.resolve_zoo(args.zoo)
    rows = driver.zoo_status(zoo_dir)
    if args.format == "json":
        print(json.dumps({"zoo": zoo_dir.name, "members": rows}, indent=2))
        return 0
    print(f"{zoo_dir.name}")
    for r in rows:
        top1 = "-" if r["val_top1"] is None else f"{r['val_top1']:.2%}"
        ips = "-" if r["images_per_s"] is None else f"{r['images_per_s']:,.0f} img/s"
        eta = "" if not r["eta_s"] else f", {r['eta_s']:.0f} s left"
        print(f"  {r['family']:<10} {r['state']:<9} epoch {r['epoch']}/{r['epochs']}  top-1 {top1:<7} "
              f"{ips}{eta}{'  (results written)' if r['results'] else ''}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cnnviz.zoo import driver
    from cnnviz.zoo.results import import_zoo

    src = Path(args.source)
    if not src.is_dir():
        src = driver.resolve_zoo(args.source)
    done = import_zoo(src, allow_synthetic=args.allow_synthetic)
    print(json.dumps(done))
    return 0


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cnnviz.zoo.report import write_report

    # The library reads a missing folder as "no zoo yet" (a fresh clone); a folder the user named must be there.
    if args.results is not None and not Path(args.results).is_dir():
        what = "is not a folder" if Path(args.results).exists() else "does not exist"
        raise ValueError(f"--results {args.results!r} {what}: give the folder of result files (default: "
                         "checkpoints/results)")
    check_output(args.out, "--out")
    out = write_report(results=args.results, out=args.out, bench=args.bench)
    print(out)
    return 0
