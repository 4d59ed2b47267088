"""CLI commands: ``data prepare``, ``data info``, ``data synthetic`` (Tiny ImageNet and its cache)."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path


def register(sub) -> None:
    from cnnviz.cli._args import at_least

    p = sub.add_parser("data", help="prepare Tiny ImageNet (download/zip/folder -> cache), show what is there")
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    prep = dsub.add_parser("prepare", help="download or unpack Tiny ImageNet and build its uint8 cache",
                           description="Make Tiny ImageNet ready: --source download fetches the official zip "
                                       "(resumable, md5-verified); --source PATH takes a local zip or an "
                                       "extracted folder. Then decodes train and val once into the cache.")
    prep.add_argument("--source", required=True, help="'download', a path to tiny-imagenet-200.zip, or a folder")
    prep.add_argument("--root", default=None, help="where the dataset goes (default: $CNNVIZ_DATA, else data/ in the "
                                                           "repository, whatever the working folder)")
    prep.add_argument("--splits", default="train,val", help="which caches to build (default: train,val)")
    prep.add_argument("--extract-images", action="store_true",
                      help="extract every JPEG from the zip too (by default they are read from the zip)")
    prep.add_argument("--workers", type=at_least(1), default=None, help="decoding processes (default: the CPU count)")
    prep.add_argument("--url", default=None, help="download from this URL instead of the official one")
    prep.add_argument("--quiet", action="store_true", help="no progress bar")
    prep.set_defaults(func=_prepare)

    info = dsub.add_parser("info", help="where the dataset is, its classes and the state of its caches")
    info.add_argument("--root", default=None, help="a dataset root or the folder holding one (default: data dir)")
    info.add_argument("--format", choices=("text", "json"), default="text")
    info.set_defaults(func=_info)

    syn = dsub.add_parser("synthetic", help="write a small synthetic dataset in the Tiny ImageNet layout")
    syn.add_argument("--root", required=True, help="the folder to write (becomes the dataset root)")
    syn.add_argument("--classes", type=at_least(1), default=10, help="1 to 18 (default 10): 9 shape families, "
                     "each also in a small or coarse version")
    syn.add_argument("--train-per-class", type=at_least(1), default=100, help="(default 100)")
    syn.add_argument("--val-per-class", type=at_least(1), default=20, help="(default 20)")
    syn.add_argument("--seed", type=at_least(0), default=0, help="(default 0)")
    syn.add_argument("--no-cache", action="store_true", help="only write the images, do not build the cache")
    syn.set_defaults(func=_synthetic)


class ProgressBar:
    """A one-line text progress bar on stderr: ``decode train [#####     ] 52% 52,000/100,000 12.3 s``."""

    def __init__(self, stream=None, width: int = 30):
        self.stream, self.width = stream or sys.stderr, width
        self.stage, self.t0, self.last = None, 0.0, 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if stage != self.stage:
            if self.stage is not None:
                self.stream.write("\n")
            self.stage, self.t0, self.last = stage, now, 0.0
        final = bool(total) and done >= total
        if not final and now - self.last < 0.2:
            return
        self.last = now
        unit_bytes = stage in ("download", "verify")
        fmt = (lambda v: f"{v / 1e6:,.1f} MB") if unit_bytes else (lambda v: f"{v:,}")
        if total:
            frac = min(done / total, 1.0)
            bar = "#" * int(frac * self.width)
            text = f"{stage:<13} [{bar:<{self.width}}] {frac:4.0%} {fmt(done)}/{fmt(total)}"
        else:
            text = f"{stage:<13} {fmt(done)}"
        self.stream.write(f"\r{text} {now - self.t0:6.1f} s")
        if final:
            self.stream.write("\n")
            self.stage = None
        self.stream.flush()


def _prepare(args) -> int:
    from cnnviz.data import OFFICIAL_URL, find_dataset, load_split, prepare
    from cnnviz.data.layout import DIRNAME
    from cnnviz.paths import data_dir

    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    if not splits:
        raise ValueError("--splits names no split: give train, val or train,val")
    if args.root and args.source != "download" and Path(args.source).expanduser().is_dir():
        print(f"note: --source {args.source} is an extracted folder, used where it is (its cache goes inside "
              "it); --root is not used", file=sys.stderr)
    t0 = time.perf_counter()
    root = prepare(args.source, args.root, progress=None if args.quiet else ProgressBar(), splits=splits,
                   extract_images=args.extract_images, url=args.url or OFFICIAL_URL, workers=args.workers)
    for split in splits:
        s = load_split(root, split)
        print(f"{split}: {len(s):,} images, {s.num_classes} classes, cache {root / 'cache'}")
    print(f"ready in {time.perf_counter() - t0:.1f} s: {root}")
    if find_dataset(None) != Path(root).resolve():  # the pages read only the data folder ($CNNVIZ_DATA)
        folder = shlex.quote(str(root.parent if root.name == DIRNAME else root))
        print(f"The dashboard (and `train --data auto`) look in {data_dir()}, not here: start it with "
              f"CNNVIZ_DATA={folder} make run, or train from the command line with --data {folder}")
    return 0


def dataset_info(root=None) -> dict:
    """What ``data info`` prints, as a dict (also handy in a notebook)."""
    from cnnviz.data import cache_status, find_dataset, read_source, read_wnids
    from cnnviz.data.job import preparing
    from cnnviz.paths import data_dir, shared_zip

    found = find_dataset(root)
    out: dict = {"root": str(found) if found else None, "searched": str(root or data_dir())}
    job = preparing() if root is None else None  # the pages prepare into the default data folder
    if job is not None:  # started from the Training page: its caches are not complete yet
        out["preparing"] = {"source": job.source, "stage": job.stage, "done": job.done, "total": job.total,
                            "pid": job.pid}
    if found is None:
        sz = shared_zip()
        out["hint"] = ("no dataset found; run `python -m cnnviz data prepare --source "
                       + (f"{sz}`" if sz.is_file() else "download`"))
        return out
    source = read_source(found)
    out["source"] = {"kind": source.kind, "path": str(source.path), "official": source.official,
                     "sha256": source.sha256}
    out["synthetic"] = (found / "synthetic.json").is_file()
    out["classes"] = len(read_wnids(found))
    out["splits"] = {}
    for split in ("train", "val"):
        st = cache_status(found, split)
        entry: dict = {"fresh": st.fresh, "reason": st.reason}
        if st.manifest:
            m = st.manifest
            entry.update(count=m.get("count"), modes=m.get("modes"), pixel_mean=m.get("pixel_mean"),
                         pixel_std=m.get("pixel_std"), built_at=m.get("built_at"),
                         build_seconds=m.get("build_seconds"), format_version=m.get("format_version"))
        out["splits"][split] = entry
    return out


def _info(args) -> int:
    info = dataset_info(args.root)
    if args.format == "json":
        print(json.dumps(info, indent=2))
        return 0 if info["root"] else 1
    if p := info.get("preparing"):
        print(f"a background preparation is running (pid {p['pid']}, from {p['source']}): {p['stage']} "
              f"{p['done']:,} / {p['total']:,}; the dataset is ready when it ends")
    if not info["root"]:
        print(f"no Tiny ImageNet found under {info['searched']}\n{info['hint']}")
        return 1
    src = info["source"]
    kind = "synthetic dataset" if info["synthetic"] else "Tiny ImageNet"
    print(f"{kind} at {info['root']}")
    official = " (official md5)" if src["official"] else ""
    print(f"  images from: {src['kind']} {src['path']}{official}")
    print(f"  classes: {info['classes']}")
    for split, e in info["splits"].items():
        if e["fresh"] and e.get("count") is not None:
            modes = ", ".join(f"{k} {v:,}" for k, v in (e.get("modes") or {}).items())
            note = f" [{e['reason']}]" if e["reason"] else ""
            print(f"  {split}: {e['count']:,} images cached ({modes}); mean {e['pixel_mean']} std "
                  f"{e['pixel_std']}{note}")
        else:
            print(f"  {split}: no usable cache ({e['reason']}); it is built on first use or by `data prepare`")
    return 0


def _synthetic(args) -> int:
    from cnnviz.data import load_split, make_synthetic

    root = make_synthetic(args.root, num_classes=args.classes, train_per_class=args.train_per_class,
                          val_per_class=args.val_per_class, seed=args.seed)
    if not args.no_cache:
        for split in ("train", "val"):
            load_split(root, split)
    print(root)
    return 0
