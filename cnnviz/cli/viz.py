"""CLI: ``python -m cnnviz viz filters|maps|deconv|top9|occlusion|attribution (--checkpoint PATH | --arch ARCH)
[--image PATH] [--layer NAME] [--channel K] [--data PATH] --out FILE.png [--save-array FILE.npy]``, and
``python -m cnnviz viz invariance ... --transform translate|scale|rotate --out FIG.png [--save-array FILE.npz]``.

Layer names are the dotted module paths of ``python -m cnnviz table``; attribution's ``--layer`` is Grad-CAM's
(the page's "Grad-CAM layer"). ``--save-array`` writes the numbers
behind the figure (``.npy``, no pickle): filters: the weights ``out x in x kh x kw``; maps: ``C x h x w``;
deconv: the projection in input space ``C x H x W`` (the network's input size); top9: ``C x 9 x 4``
(value, image index, y, x); occlusion: the probability map ``n_y x n_x``; attribution: ``methods x H x W``;
invariance: an ``.npz`` with the transform values, one distance array per layer and the probabilities
(:meth:`cnnviz.viz.invariance.Invariance.npz_bytes`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnnviz.cli._args import at_least, check_folder, check_output

COMMANDS = ("filters", "maps", "deconv", "top9", "occlusion", "attribution")
# The options each subcommand reads; argparse refuses the others rather than accepting and ignoring them
# (but see filters' hidden input options in register()).
# Attribution's --layer is Grad-CAM's layer (as the page's "Grad-CAM layer"), and it has no --channel; top9 scans
# the val set, so no --image.
WITH_LAYER = ("filters", "maps", "deconv", "top9", "occlusion", "attribution")
WITH_CHANNEL = ("filters", "deconv", "top9", "occlusion")
WITH_IMAGE = ("maps", "deconv", "occlusion", "attribution")
DESCRIPTION = ("Draw a network the Zeiler & Fergus way, as PNG files: filters, feature maps, deconvnet "
               "projections, top-9 patches, occlusion maps, attributions or invariance curves.")


def register(sub) -> None:
    p = sub.add_parser("viz", help="visualise a network the Zeiler & Fergus way (filters, deconvnet, ...)",
                       description=DESCRIPTION)
    vsub = p.add_subparsers(dest="viz_command", metavar="WHAT", required=True)
    helps = {"filters": "filter grid (first layer RGB, deeper layers per input channel) + statistics",
             "maps": "feature maps of a layer, strongest first",
             "deconv": "deconvnet projection of a feature map's strongest activation (ZF 2.1)",
             "top9": "the 9 strongest activations of a feature map over the val set, patches + projections",
             "occlusion": "occlusion sensitivity maps (ZF Fig. 7)",
             "attribution": "captum attributions side by side (saliency, deconvnet, guided backprop, IG, Grad-CAM)"}
    for name in COMMANDS:
        q = vsub.add_parser(name, help=helps[name], description=helps[name])
        _model_args(q)
        if name in WITH_LAYER:
            q.add_argument("--layer", metavar="NAME", help="Grad-CAM's layer (default: the last conv stage with maps "
                           "of at least 4x4)" if name == "attribution" else "layer name (the table's name column)")
        if name in WITH_CHANNEL:
            q.add_argument("--channel", type=int, metavar="K", help="feature map (default: the strongest)")
        if name in WITH_IMAGE:
            one = q.add_mutually_exclusive_group()  # with both, --index would be ignored
            one.add_argument("--image", metavar="PATH", help="input image (JPEG, PNG, ...)")
            one.add_argument("--index", type=int, help="val image used when no --image is given (default 0)")
        if name != "filters":
            q.add_argument("--data", metavar="PATH", help="Tiny ImageNet root (default: the data folder)")
        q.add_argument("--out", required=True, metavar="FILE.png", help="where to write the figure")
        q.add_argument("--save-array", metavar="FILE.npy", help="also write the numbers behind the figure")
        q.add_argument("--device", default="cpu", help="cpu (default), cuda, mps or auto")
        if name == "filters":
            # Filters come from the weights alone. These are accepted (hidden) so that one command line can
            # drive every subcommand, as tests/test_viz_cli.py does; run() notes that they are ignored.
            for option in ("--image", "--data", "--index"):
                q.add_argument(option, help=argparse.SUPPRESS)
            q.add_argument("--normalise", choices=("per_filter", "global"), default="per_filter")
            q.add_argument("--stats", metavar="FILE.csv", help="write per-filter statistics as CSV")
        if name == "deconv":
            q.add_argument("--method", choices=("auto", "autograd", "switches"), default="auto")
        if name == "top9":
            q.add_argument("--limit", type=at_least(1), metavar="N", help="scan only the first N val images")
            q.add_argument("--batch-size", type=at_least(1), default=None,
                           help="images per forward pass (default: 16 on a CPU, 256 on a GPU)")
            q.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                           help="auto (default): bf16 where the device computes it natively, else fp32")
            q.add_argument("--cache-dir", metavar="DIR", help="scan cache (default: <data>/viz_cache)")
        if name == "occlusion":
            # None (not 0) means "not given": the defaults depend on the input size.
            q.add_argument("--size", type=at_least(1), help="square side in pixels (default 8 at 64x64, scaled "
                           "with the input: 28 at 224x224)")
            q.add_argument("--stride", type=at_least(1), help="stride in pixels (default 4 at 64x64, 14 at 224x224)")
            q.add_argument("--target", type=int, help="class to map (default: the predicted class)")
        if name == "attribution":
            q.add_argument("--target", type=int, help="class to explain (default: the predicted class)")
            q.add_argument("--methods", default=",".join(("saliency", "deconvnet", "guided_backprop",
                                                          "integrated_gradients", "grad_cam")),
                           help="comma-separated subset of: saliency, deconvnet, guided_backprop, "
                                "integrated_gradients, grad_cam, guided_grad_cam")
        q.set_defaults(func=run)
    _register_invariance(vsub)


def _model_args(q) -> None:
    """The model to look at: a checkpoint, or a randomly initialised architecture."""
    src = q.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", metavar="PATH", help="a .safetensors checkpoint or a catalog name "
                     "(starter/lenet5_tinyimagenet, imagenet/vgg16)")
    src.add_argument("--arch", metavar="ARCH", help="a randomly initialised architecture (python -m cnnviz list)")
    # None when not given: a checkpoint has its own classes and input size, so giving them with --checkpoint is
    # refused (they were silently ignored); --arch takes ARCH_DEFAULTS.
    q.add_argument("--classes", type=at_least(1), help="classes of a --arch model (default 200)")
    q.add_argument("--input-size", type=at_least(1), help="input side of a --arch model (default 64)")
    q.add_argument("--seed", type=at_least(0), help="initialisation seed of a --arch model (default 0)")


def _register_invariance(vsub) -> None:
    h = "ZF Fig. 5: how far layers' feature vectors move, and p(class), as an image is shifted, scaled or rotated"
    q = vsub.add_parser("invariance", help=h, description=h)
    _model_args(q)
    one = q.add_mutually_exclusive_group()  # images or val images, not both (one would be ignored)
    one.add_argument("--image", metavar="PATH", action="append", help="input image; repeat for one line per image "
                     "(the class followed is the one predicted for the untransformed image)")
    one.add_argument("--index", type=int, action="append", help="val image(s) used when no --image is given "
                     "(default 0; the class followed is the true one); repeat for several")
    q.add_argument("--data", metavar="PATH", help="Tiny ImageNet root (default: the data folder)")
    q.add_argument("--transform", choices=("translate", "scale", "rotate"), required=True)
    q.add_argument("--values", metavar="V,V,...", help="transform values: pixels, factors or degrees "
                   "(default: shifts -12..12 step 2 at 64x64, scale 0.6..1.6, rotation 0..360 step 15); "
                   "negative first values need an equals sign: --values=-4,0,4")
    q.add_argument("--axis", choices=("both", "x", "y"), default="both",
                   help="translate: diagonal (both, default), right (x) or down (y)")
    q.add_argument("--layers", metavar="NAME,NAME", help="layers to follow (default: the first conv block and "
                   "the last hidden layer)")
    q.add_argument("--absolute", action="store_true", help="plot the raw Euclidean distance, not the distance "
                   "relative to the untransformed feature vector's norm")
    q.add_argument("--out", required=True, metavar="FIG.png", help="where to write the figure")
    q.add_argument("--save-array", metavar="ARR.npz", help="also write the numbers behind the figure (.npz)")
    q.add_argument("--device", default="cpu", help="cpu (default), cuda, mps or auto")
    q.set_defaults(func=_invariance)


def _floats(text: str | None, what: str) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what} must be numbers separated by commas, not {text!r}") from None
    if not values:
        raise ValueError(f"give at least one value in {what}")
    return values


def _invariance(args) -> int:
    import torch

    from cnnviz.fsutil import atomic_write_bytes
    from cnnviz.viz import zf_figures
    from cnnviz.viz.invariance import default_values, invariance
    from cnnviz.viz.session import class_index, mean_std, prepare

    _check_outputs(args)
    for p in args.image or ():
        _check_image(p)
    _arch_only(args)
    subject = _subject(args)
    if args.image:
        xs = [prepare(_open_image(p), subject.meta)[0] for p in args.image]
        names, targets = [Path(p).name for p in args.image], [None] * len(xs)
    else:
        _, split = _val(args)
        indices = args.index or [0]
        bad = [i for i in indices if not 0 <= i < len(split.images)]
        if bad:
            raise ValueError(f"--index must be in 0..{len(split.images) - 1}, not {bad[0]}")
        xs = [prepare(split.images[i], subject.meta)[0] for i in indices]
        truth = [int(split.labels[i]) for i in indices]
        targets = [class_index(subject.meta, split.wnids[t], t) for t in truth]
        names = [f"val {i}: {split.class_names[t]}" for i, t in zip(indices, truth, strict=True)]
    values = _floats(args.values, "--values") or list(default_values(args.transform, subject.input_size[1]))
    layers = [n.strip() for n in args.layers.split(",") if n.strip()] if args.layers else None
    x = torch.cat(xs)
    inv = invariance(subject.model, x, args.transform, values, layers, targets, axis=args.axis)
    mean, std = mean_std(subject.meta)
    strip = zf_figures.frames_image(x[0], args.transform, inv.values, mean, std, axis=args.axis)
    for name, layer in zip(inv.labels, inv.layers, strict=True):
        rel = inv.relative(layer)
        print(f"{name}: relative distance {rel.min():.3f}..{rel.max():.3f} over {inv.axis_title}")
    atomic_write_bytes(Path(args.out), zf_figures.invariance_png(inv, names, not args.absolute, strip))
    print(f"wrote {args.out}")
    if args.save_array:
        atomic_write_bytes(Path(args.save_array), inv.npz_bytes())
        print(f"wrote {args.save_array}")
    return 0


ARCH_DEFAULTS = {"classes": 200, "input_size": 64, "seed": 0}  # a randomly initialised --arch model: Tiny ImageNet's


def _arch_only(args) -> None:
    """Refuse --classes/--input-size/--seed beside --checkpoint (they shape a --arch model only)."""
    if getattr(args, "checkpoint", None):
        given = [f"--{k.replace('_', '-')}" for k in ARCH_DEFAULTS if getattr(args, k, None) is not None]
        if given:
            raise ValueError(f"{', '.join(given)} shape a randomly initialised --arch model; a checkpoint has its "
                             "own classes and input size: leave them out")


def _subject(args):
    from cnnviz.device import pick_device
    from cnnviz.viz.session import checkpoint_subject, random_subject

    if args.arch:
        arch = {k: v if (v := getattr(args, k, None)) is not None else d for k, d in ARCH_DEFAULTS.items()}
        subject = random_subject(args.arch, arch["classes"], arch["input_size"], arch["seed"])
        subject.model.to(pick_device(args.device))
        return subject
    from cnnviz.catalog import resolve_checkpoint

    path, _ = resolve_checkpoint(args.checkpoint)
    return checkpoint_subject(path, str(pick_device(args.device)))


def dataset_root(data: str | None, other: str = "") -> Path:
    """The Tiny ImageNet root that ``--data`` names (default: the data folder), or a ``FileNotFoundError``
    that says which of the two was looked in; ``other`` names another way to give the input."""
    from cnnviz.data import find_dataset
    from cnnviz.data.errors import PREPARE_HINT
    from cnnviz.paths import data_dir

    if data:
        root = find_dataset(data)
        if root is None:
            raise FileNotFoundError(f"no Tiny ImageNet dataset at {data} (--data): expected wnids.txt, train/ and "
                                    f"val/ there or in its tiny-imagenet-200 folder")
        return root
    root = find_dataset()
    if root is None:
        raise FileNotFoundError(f"no Tiny ImageNet dataset in {data_dir()}: {PREPARE_HINT}, or pass --data PATH"
                                f"{other}")
    return root


def _val(args):
    from cnnviz.data import load_split

    root = dataset_root(args.data, " or --image FILE" if hasattr(args, "image") else "")
    return root, load_split(root, "val")


def _check_outputs(args) -> None:
    """Refuse unwritable output paths before any work: a long scan must not end in a failed write, and one
    file must not be written when the next cannot be."""
    for option in ("out", "save_array", "stats"):
        check_output(getattr(args, option, None), "--" + option.replace("_", "-"))


def _check_image(path: str) -> None:
    if Path(path).is_dir():
        raise ValueError(f"--image {path!r} is a folder: give an image file (JPEG, PNG, ...)")
    if not Path(path).exists():
        raise FileNotFoundError(f"--image {path!r}: no such file")


def _open_image(path: str):
    from cnnviz.images import ImageError, open_image

    try:
        return open_image(path)
    except ImageError as e:  # its message does not say which file
        raise ImageError(f"--image {path!r}: {e}") from None


def _image(args, subject):
    from cnnviz.viz.session import prepare

    if args.image:
        return prepare(_open_image(args.image), subject.meta)
    _, split = _val(args)
    index = 0 if args.index is None else args.index
    if not 0 <= index < len(split.images):
        raise ValueError(f"--index must be in 0..{len(split.images) - 1}, not {index}")
    return prepare(split.images[index], subject.meta)


def _default_layer(subject) -> str:
    from cnnviz.viz.session import default_layer

    return default_layer(subject)


def _save(args, figure, array=None) -> None:
    import numpy as np

    from cnnviz.fsutil import atomic_write_bytes
    from cnnviz.viz.render import npy_bytes, png_bytes

    atomic_write_bytes(Path(args.out), png_bytes(figure))
    print(f"wrote {args.out}")
    if args.save_array and array is not None:
        atomic_write_bytes(Path(args.save_array), npy_bytes(np.asarray(array)))
        print(f"wrote {args.save_array} {tuple(np.asarray(array).shape)}")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from cnnviz import viz
    from cnnviz.views import visualize as vv
    from cnnviz.viz.attribution import CAM_METHODS

    cmd = args.viz_command
    _check_outputs(args)
    if cmd in WITH_IMAGE and args.image:
        _check_image(args.image)
    if cmd == "filters":
        ignored = [f"--{o}" for o in ("image", "data", "index") if getattr(args, o) is not None]
        if ignored:
            print(f"note: filters are drawn from the weights alone; {', '.join(ignored)} ignored", file=sys.stderr)
    if cmd == "top9":
        check_folder(args.cache_dir, "--cache-dir")
    methods = _methods(args.methods) if cmd == "attribution" else ()
    if cmd == "attribution" and args.layer and not CAM_METHODS & set(methods):
        raise ValueError("--layer names Grad-CAM's layer: add grad_cam or guided_grad_cam to --methods, or leave "
                       "--layer out")
    _arch_only(args)
    subject = _subject(args)
    model = subject.model
    if subject.note:
        print(f"note: {subject.note}")  # figures of untrained weights must say so (issue 11)
    if cmd == "filters":
        layer = args.layer or viz.conv_layers(model)[0]
        fig = viz.filter_grid(model, layer, args.normalise) if args.channel is None else \
            viz.filter_channels(model, layer, [args.channel], normalise=args.normalise)
        print(fig.caption)
        if args.stats:
            from cnnviz.fsutil import atomic_write_text

            atomic_write_text(Path(args.stats), viz.filter_stats(model, layer).to_csv(index=False))
        from cnnviz.viz.filters import conv_weight

        _save(args, fig.image, conv_weight(model, layer))
        return 0
    if cmd == "top9":
        return _top9(args, subject)
    x, seen = _image(args, subject)
    layer = args.layer if cmd == "attribution" else args.layer or _default_layer(subject)
    if cmd == "maps":
        fm = viz.feature_maps(model, x, layer)
        _save(args, vv.maps_figure(fm), fm.maps)
    elif cmd == "deconv":
        dc = vv.deconv_figure(subject, x, seen, layer, args.channel, method=args.method)
        print(dc.caption(subject))
        _save(args, dc.image, dc.projection.image)
    elif cmd == "occlusion":
        channel = args.channel
        if channel is None and args.layer:
            channel = viz.top_channels(model, x, layer, 1)[0][0]
        from cnnviz.viz.occlusion import slider_ranges

        grid = slider_ranges(x.shape[-1])  # (min, max, default) for this input size
        r = viz.occlusion(model, x, args.target, size=grid["square"][2] if args.size is None else args.size,
                          stride=grid["stride"][2] if args.stride is None else args.stride,
                          layer=args.layer if channel is not None else None, channel=channel)
        print(f"p({subject.class_name(r.target)}) = {r.base_prob:.3f} unoccluded, min {r.prob.min():.3f}")
        _save(args, vv.occlusion_figure(seen, r, subject), r.prob)
    elif cmd == "attribution":
        a = viz.attribute(model, x, args.target, methods, cam_layer=layer)
        cam = f"; Grad-CAM at {a.cam_layer}" if CAM_METHODS & set(methods) else ""
        print(f"explaining {subject.class_name(a.target)}{cam}")
        _save(args, vv.attribution_figure(seen, a, subject), np.stack([a.maps[m] for m in methods]))
    return 0


def _methods(text: str) -> tuple[str, ...]:
    """``--methods``, checked before the model is loaded."""
    from cnnviz.viz.attribution import METHODS

    methods = tuple(m.strip() for m in text.split(",") if m.strip())
    if not methods:
        raise ValueError(f"--methods is empty: give one or more of {', '.join(METHODS)}, separated by commas")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"--methods: unknown method {unknown[0]!r}; known: {', '.join(METHODS)}")
    return methods


def _top9(args, subject) -> int:
    import numpy as np

    from cnnviz import viz
    from cnnviz.viz.session import mean_std

    root, split = _val(args)
    layer = args.layer or _default_layer(subject)
    mean, std = mean_std(subject.meta)
    cache = Path(args.cache_dir) if args.cache_dir else Path(root) / "viz_cache"

    def progress(done, total):
        print(f"\rscanning {layer}: {done}/{total}", end="", file=sys.stderr, flush=True)

    top = viz.scan(subject.model, split.images, layer, mean=mean, std=std, input_size=subject.input_size[1],
                   batch_size=args.batch_size, precision=args.precision, progress=progress, limit=args.limit,
                   cache_dir=cache if subject.cache_key else None, model_key=subject.cache_key,
                   channels=subject.input_size[0])
    print(file=sys.stderr)
    channel = args.channel if args.channel is not None else int(np.argmax(top.values[:, 0]))
    fig = viz.patches(subject.model, split.images, top, channel, mean=mean, std=std,
                      input_size=subject.input_size[1], channels=subject.input_size[0])
    print(f"{layer}[{channel}]: images {fig.images}, activations {[round(v, 3) for v in fig.values]}")
    from cnnviz.views.projection import top9_caption

    print(top9_caption(layer, fig))
    arr = np.stack([top.values, top.index, top.ys, top.xs], axis=-1).astype(np.float64)
    _save(args, fig.image(), arr)
    return 0
