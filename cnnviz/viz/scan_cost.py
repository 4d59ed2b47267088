"""What a top-9 scan costs, said before it runs and while it runs (Visualize's Top-9 tab, issue 14).

At 64x64 a scan of the 10,000 validation images takes seconds to a minute; an ImageNet network
(:mod:`cnnviz.imagenet`) sees them resized to 224x224, where VGG-16's convolutional body alone is 15.3 GMAC an
image and a scan takes tens of minutes on a 2-core CPU (docs/benchmarks.md). :func:`scan_note` states the
work (multiply-accumulates up to the layer, from the layer table) and :func:`progress_text` the time left,
extrapolated from the images done so far.
"""

from __future__ import annotations

import functools
import json
import time


@functools.lru_cache(maxsize=64)
def _leaf_macs(arch: str, args_json: str, channels: int) -> tuple[tuple[str, int], ...]:
    from cnnviz.summary import layer_table

    args = json.loads(args_json)
    size, classes = int(args.pop("input_size")), args.pop("num_classes", None)
    args.pop("in_channels", None)
    table = layer_table(arch, input_size=(channels, size, size), num_classes=classes, **args)
    return tuple((r.name, int(r.macs)) for r in table.rows)


def macs_up_to(meta: dict, layer: str) -> int | None:
    """Multiply-accumulates per image of the forward up to and including ``layer`` (a module or a block), as
    the scan runs it; None when the architecture's table cannot be built."""
    from cnnviz.preprocess import input_channels

    try:
        rows = _leaf_macs(meta["arch"], json.dumps(meta["model_args"], sort_keys=True, default=str),
                          input_channels(meta))
    except Exception:  # the note is optional: a model the summary cannot trace gets none
        return None
    last = max((i for i, (name, _) in enumerate(rows) if name == layer or name.startswith(layer + ".")), default=None)
    return None if last is None else sum(m for _, m in rows[:last + 1])


def scan_note(meta: dict, layer: str, n_images: int, stored_size: int = 64) -> str:
    """``"10,000 images, resized from 64x64 to 224x224, through features.29: 15.3 GMAC each, 153 TMAC in
    all ..."``: the work before the button is pressed."""
    size = int(meta["input_size"])
    resized = f", resized from {stored_size}x{stored_size} to {size}x{size}," if size != stored_size else ""
    macs = macs_up_to(meta, layer)
    work = f": {macs / 1e9:.2f} GMAC each, {macs * n_images / 1e12:.1f} TMAC in all" if macs else ""
    slow = (" At this size a scan takes minutes to hours on a CPU (docs/benchmarks.md); the bar shows the time "
            "left." if size >= 128 else "")
    return f"A scan runs {n_images:,} validation images{resized} through {layer}{work}.{slow} Any click stops it."


def progress_text(done: int, total: int, started: float, now: float | None = None) -> str:
    """``"1,200/10,000 images, about 14 min left"`` (the rate so far; nothing to extrapolate from at 0)."""
    now = time.perf_counter() if now is None else now
    text = f"{done:,}/{total:,} images"
    if 0 < done < total and now > started:
        left = (total - done) * (now - started) / done
        text += f", about {left / 60:.0f} min left" if left >= 90 else f", about {left:.0f} s left"
    return text + " (any click stops the scan)"
