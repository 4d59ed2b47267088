"""CLI: ``python -m cnnviz predict --checkpoint PATH IMAGE... [--top 5] [--format text|json]``.

JSON output (one record per image and checkpoint)::

    [{"image": "cat.jpg", "checkpoint": "resnet18",
      "predictions": [{"wnid": "n02123045", "name": "tabby, tabby cat", "prob": 0.61}, ...], "ms": 3.2}]

An image that cannot be read gets an ``"error"`` record (JSON) or a line on stderr (text); the others are
still predicted and the exit status is 1. A checkpoint that cannot be loaded is a user error (exit 2).
"""

from __future__ import annotations

import argparse
import json
import sys


def register(sub) -> None:
    from cnnviz.cli._args import at_least

    p = sub.add_parser("predict", help="top-k classes of images from one or more checkpoints",
                       description="Top-k classes of images (JPEG, PNG, WebP, BMP, GIF) from one or more checkpoints.")
    p.add_argument("--checkpoint", "-c", action="append", required=True, metavar="PATH",
                   help="a .safetensors checkpoint (its .json beside it), or a catalog name such as "
                        "starter/lenet5_tinyimagenet, RUN/best or imagenet/vgg16 (`starter list`, `runs list` "
                        "and `imagenet list` list them); repeat for several")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="JPEG, PNG, WebP, BMP or GIF files")
    p.add_argument("--top", type=at_least(1), default=5, help="how many classes to show (default 5)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, mps or auto")
    p.set_defaults(func=run)

    c = sub.add_parser("compare", help="compare runs and starter checkpoints (table, curves, export bundle)",
                       description="Compare runs and starter checkpoints: the Compare page's table, per-epoch "
                                   "curves and export bundle.")
    c.add_argument("models", nargs="*", metavar="ID", help="run ids or starter/<name> (default: all)")
    c.add_argument("--format", choices=("text", "json", "csv", "markdown"), default="text")
    c.add_argument("--curves", action="store_true", help="print the per-epoch curves instead of the table")
    c.add_argument("--export", metavar="ZIP", help="write the export bundle (CSV, Markdown, PNG, configs) here")
    c.add_argument("--evaluate", type=at_least(1), metavar="PER_CLASS", default=None,
                   help="also evaluate each checkpoint on this many val images per class (needs the dataset; "
                        "cached) and add per-class tables and confusions to the export")
    c.set_defaults(func=run_compare)


def run(args: argparse.Namespace) -> int:
    from cnnviz.catalog import resolve_checkpoint
    from cnnviz.checkpoint import CheckpointError, load_checkpoint
    from cnnviz.device import pick_device
    from cnnviz.images import ImageError, open_image, safe_display_name
    from cnnviz.predict import topk

    if args.top < 1:
        raise ValueError("--top must be at least 1")
    device = pick_device(args.device)
    models = []
    for spec in args.checkpoint:
        path, name = resolve_checkpoint(spec)
        try:
            models.append((name, load_checkpoint(path, device)))
        except CheckpointError as e:
            shown = safe_display_name(str(spec))
            raise ValueError(str(e) if str(e).startswith(shown) else f"{shown}: {e}") from e
    records: list[dict] = []
    failed = 0
    for image_path in args.images:
        shown = safe_display_name(image_path, limit=200)
        try:
            img = open_image(image_path)
        except (ImageError, OSError) as e:
            failed += 1
            msg = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            records.append({"image": shown, "error": msg})
            if args.format == "text":
                print(f"{shown}: error: {msg}", file=sys.stderr)
            continue
        for name, ckpt in models:
            result = topk(ckpt.model, img, ckpt.meta, args.top, image=shown, checkpoint=name)
            records.append(result.to_dict())
            if args.format == "text":
                print(f"{shown}  [{name}]  {result.ms:.1f} ms")
                for rank, p in enumerate(result.predictions, 1):
                    print(f"  {rank}. {p.prob * 100:6.2f}%  {p.name} ({p.wnid})")
    if args.format == "json":
        json.dump(records, sys.stdout, indent=2)
        print()
    return 1 if failed else 0


def _readable(df) -> str:
    """The table for a terminal: the columns a reader compares, in the units docs/zoo.md writes (25.10%, 57.7M,
    1.05G, 1m 33s); every column, unformatted, is in --format csv, json or markdown."""
    from cnnviz.summary import human, percent
    from cnnviz.views.format import duration_text

    def number(v, fmt):
        return "-" if v is None or v != v else fmt(v)

    shown = [("model", "model", str), ("dataset", "dataset", str), ("epochs", "epochs", lambda v: f"{int(v)}"),
             ("best_val_top1", "top-1", percent), ("best_val_top5", "top-5", percent),
             ("shipped_top1", "shipped file top-1", percent), ("params", "params", human),
             ("macs", "MACs", human), ("train_time_s", "train time", duration_text),
             ("images_per_s", "img/s", lambda v: f"{v:,.0f}"), ("device", "device", str)]
    cols = [(key, title, fmt) for key, title, fmt in shown if key in df.columns]
    rows = [[title for _, title, _ in cols]]
    rows += [[number(r[key], fmt) for key, _, fmt in cols] for _, r in df.iterrows()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(cols))]
    left = {"model", "dataset", "device"}
    return "\n".join("  ".join(c.ljust(w) if key in left else c.rjust(w)
                                for c, w, (key, _, _) in zip(row, widths, cols, strict=True)).rstrip()
                     for row in rows)


def run_compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cnnviz.cli._args import check_output

    check_output(args.export, "--export")

    from cnnviz import compare as cmp
    from cnnviz.errors import UnknownName
    from cnnviz.fsutil import atomic_write_bytes

    entries = cmp.list_entries()
    if args.models:
        known = {e.id: e for e in entries}
        missing = [m for m in args.models if m not in known]
        if missing:
            raise UnknownName(f"unknown model(s) {', '.join(missing)}; known: {', '.join(known) or 'none'}")
        entries = [known[m] for m in args.models]
    if not entries:
        raise FileNotFoundError("nothing to compare: no runs or starter checkpoints in the checkpoints folder")
    evals = {}
    if args.evaluate:
        from cnnviz.data import load_split
        from cnnviz.views.compare import evaluation_plan

        # The page's plan: models of one set of classes, each evaluated on the val split of the dataset it was
        # trained on (a synthetic run on the synthetic set; the CLI looked only for Tiny ImageNet).
        plan = evaluation_plan(entries)
        if plan.refusal:
            raise ValueError(plan.refusal)
        evals.update(cmp.stored_evaluations(entries))  # zoo results: measured on the whole val split already
        if plan.root is None and plan.entries:
            raise FileNotFoundError(plan.missing)
        split = load_split(plan.root, "val") if plan.entries else None
        idx = cmp.subset_indices(split.labels, args.evaluate) if split is not None else None
        for e in plan.entries:
            evals[e.id] = cmp.cached_evaluation(e.checkpoint, split.images[idx], split.labels[idx],
                                                split.wnids, split.class_names)
    df = cmp.curves_frame(entries) if args.curves else cmp.compare_table(entries).frame
    if args.format == "json":
        print(df.to_json(orient="records", indent=2))
    elif args.format == "csv":
        sys.stdout.write(df.to_csv(index=False))
    elif args.format == "markdown":
        from cnnviz.views.format import to_markdown

        sys.stdout.write(to_markdown(df))
    elif args.curves:
        print(df.to_string(index=False))
    else:
        print(_readable(df))
    for name, ev in evals.items():
        print(f"{name}: top-1 {ev.top1:.4f}, top-5 {ev.top5:.4f} on {ev.n} val images", file=sys.stderr)
    if args.export:
        from cnnviz.views.compare import export_bundle  # plotly and matplotlib: only for an export

        atomic_write_bytes(Path(args.export), export_bundle(entries, evals))
        print(f"wrote {args.export}", file=sys.stderr)
    return 0
