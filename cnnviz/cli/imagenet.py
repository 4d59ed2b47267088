"""CLI: ``python -m cnnviz imagenet list | fetch NAME``: torchvision's ImageNet weights in our models.

``list`` shows every entry (``imagenet/<name>``), the model of ours it loads into, its size and whether its
file is in torch.hub's cache; ``fetch`` downloads one with torch.hub's downloader (time-limited: an offline
machine gets one message naming the file and where to copy it, within seconds). A cached entry is a
checkpoint name wherever one is accepted: ``python -m cnnviz predict -c imagenet/vgg16 photo.jpg``,
``python -m cnnviz viz deconv --checkpoint imagenet/vgg16 ...``.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(sub) -> None:
    from cnnviz.cli._args import above

    p = sub.add_parser("imagenet", help="torchvision's ImageNet weights in our VGG and ResNet models (list, fetch)",
                       description="torchvision's ImageNet weights loaded into our own models where the architecture "
                                   "is the same. They carry their own license terms: "
                                   "https://github.com/pytorch/vision#pre-trained-model-license")
    cmds = p.add_subparsers(dest="imagenet_command", metavar="COMMAND", required=True)
    q = cmds.add_parser("list", help="every entry, its model and whether its weights are in the cache")
    q.add_argument("--format", choices=("text", "json"), default="text")
    q.set_defaults(func=cmd_list)
    q = cmds.add_parser("fetch", help="download one entry's weights into torch.hub's cache",
                        description="Download with torch.hub (its cache, its SHA-256 check) into "
                                    "$TORCH_HOME/hub/checkpoints.")
    q.add_argument("name", help="an entry, e.g. vgg16 or imagenet/resnet50 (see `imagenet list`)")
    q.add_argument("--timeout", type=above(0), default=10.0, help="seconds to wait for the server (default 10)")
    q.set_defaults(func=cmd_fetch)


def _rows() -> list[dict]:
    from cnnviz import imagenet

    rows = []
    for e in imagenet.ENTRIES:
        path = imagenet.cached_file(e)
        variant = ", ".join(f"{k}={v!r}" for k, v in e.variant.items() if k == "stride_in")
        rows.append({"name": e.catalog_name, "model": e.arch + (f" ({variant})" if variant else ""),
                     "weights": e.weights, "mb": e.mb, "cached": path.is_file(), "path": str(path)})
    return rows


def cmd_list(args: argparse.Namespace) -> int:
    from cnnviz import imagenet

    rows = _rows()
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        state = "in the cache" if r["cached"] else "not fetched"
        print(f"{r['name']:<{width}}  {r['model']:<28} {r['weights']:<32} {r['mb']:>4} MB  {state}")
    print(f"\ncache: {imagenet.cache_dir()} (set TORCH_HOME to move it; offline, copy the files there)")
    print(f"license: the weights carry their own terms, {imagenet.LICENSE_URL}")
    for arch in imagenet.NOT_MATCHING:
        print(f"{arch}: no entry. {imagenet.NOT_MATCHING[arch]}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from cnnviz import imagenet

    entry = imagenet.get_entry(args.name)  # KeyError lists the known names
    shown = {"pct": -10}

    def progress(done: int, total: int | None) -> None:
        pct = int(100 * done / total) if total else 0
        if total and pct >= shown["pct"] + 10:
            shown["pct"] = pct - pct % 10
            print(f"{entry.catalog_name}: {done / 1e6:.0f} of {total / 1e6:.0f} MB", file=sys.stderr)

    cached = imagenet.cached_file(entry)
    if cached.is_dir():
        raise ValueError(f"{entry.catalog_name}: {cached} is a folder where the weights file should be; remove it "
                         "and fetch again")
    was_there = cached.is_file() and cached.stat().st_size > 0
    if was_there and not imagenet.cached_file_ok(entry):  # a file copied in by hand, or damaged since
        raise ValueError(f"{entry.catalog_name}: {cached} is in the cache but its SHA-256 does not match the one "
                         "in its name (a damaged or different file); delete it and fetch again")
    path = imagenet.fetch(entry, connect_timeout=args.timeout, progress=progress)
    print(f"{entry.catalog_name}: {'already in the cache (SHA-256 checked)' if was_there else 'downloaded'}: {path}")
    return 0
