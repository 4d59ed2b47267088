"""docs/zoo.md: the zoo's comparison table beside the published numbers, what each trick paid, and two plots.

Everything in the table comes from the result files (:mod:`cnnviz.zoo.results`) and, for parameters and
MACs, from :func:`cnnviz.summary.layer_table` of the architecture as trained. MFU (model FLOPs utilisation) is
``6 x MACs x images/s`` over the bf16 matrix-multiply rate measured on the same card by ``bench/bench_zoo.py``
(``--bench``): forward 2 FLOPs per MAC, backward twice that; element-wise work (LRN, batch norm, ReLU) is not
counted, as usual for MFU. Without a measured ceiling the MFU column says so.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from cnnviz.fsutil import atomic_write_text
from cnnviz.palette import model_colours
from cnnviz.paths import ZOO_REPORT
from cnnviz.summary import human, percent
from cnnviz.zoo.recipe import MEMBERS, member, member_order, settings_since
from cnnviz.zoo.results import TINY_IMAGENET, dataset_of, list_results, results_dir

# Published from-scratch Tiny ImageNet top-1 (val unless stated), each with its source. Only figures whose
# source we could read are listed; none exists that we found for LeNet-5, ZFNet, NiN or GoogLeNet.
PUBLISHED: dict[str, list[dict[str, Any]]] = {
    "resnet18": [
        {"top1": 60.69, "note": "3x3 stem, no max pool, 100 epochs, SGD lr 0.5",
         "source": "https://github.com/zeyuanyin/torchvision-tiny-imagenet"},
        {"top1": 64.98, "note": "3x3 stem, no max pool, 100 epochs, 90k train images; 1.6 h on one RTX 3090",
         "source": "https://github.com/cs-giung/giung2-jax/tree/main/projects/Baseline-TinyImageNet"},
    ],
    "resnet50": [
        {"top1": 69.73, "note": "3x3 stem, no max pool, 100 epochs; 5.7 h on one RTX 3090",
         "source": "https://github.com/cs-giung/giung2-jax/tree/main/projects/Baseline-TinyImageNet"},
    ],
    "vgg16": [
        {"top1": 58.74, "note": "VGG-16-BN, FC layers 512 wide (not 4096), 100 epochs",
         "source": "https://github.com/cs-giung/giung2-jax/tree/main/projects/Baseline-TinyImageNet"},
        {"top1": 53.48, "note": "VGG-16 without BN, same recipe",
         "source": "https://github.com/cs-giung/giung2-jax/tree/main/projects/Baseline-TinyImageNet"},
    ],
    "vgg11": [
        {"top1": 56.50, "note": "VGG-11-BN, FC layers 512 wide, 100 epochs",
         "source": "https://github.com/cs-giung/giung2-jax/tree/main/projects/Baseline-TinyImageNet"},
    ],
    "alexnet": [
        {"top1": 41.8, "note": "an AlexNet-like net (5 conv, 3 FC), best single model, on the test split",
         "source": "Yao & Miller, Tiny ImageNet Classification with Convolutional Neural Networks (Stanford "
                   "CS231n report, 2015)"},
    ],
}


def model_size(arch: str, model_args: dict[str, Any]) -> tuple[int | None, int | None, int]:
    """(parameters at inference, MACs per image, training-only parameters): the one count every view shows
    (:func:`cnnviz.summary.param_count`), GoogLeNet's auxiliary heads stated apart."""
    from cnnviz.compare import _model_stats

    return _model_stats(arch, json.dumps(model_args, sort_keys=True, default=str))


def _human(n: float | None) -> str:
    """Counts as the rest of cnnviz writes them (78.2K, 1.05G: Compare's table shows the same text); below a
    thousand, three significant digits ("0.5", "20"), which an axis of seconds needs."""
    if n is None:
        return "n/a"
    return human(n) if abs(n) >= 1e3 else f"{n:.3g}"


def _tflops(flops_per_s: float | None) -> str:
    return "-" if not flops_per_s else f"{flops_per_s / 1e12:.1f}"


def _extra(training_only: int | None) -> str:
    return f" (+{_human(training_only)} training-only heads)" if training_only else ""


def rows(results: list[dict[str, Any]], ceiling_flops: float | None = None,
         ceiling_card: str | None = None) -> list[dict[str, Any]]:
    """One row per result: the numbers of the table, computed once (the plots use them too). MFU only where the
    ceiling was measured on the card the run trained on (``ceiling_card``, when given, names it): an H100's
    ceiling under an H200's rate would be a made-up number."""
    out = []
    for r in sorted(results, key=lambda r: member_order(r["family"])):
        params, macs, training_only = model_size(r["arch"], r.get("model_args") or {})
        ips = r.get("images_per_s")
        same_card = ceiling_card is None or ceiling_card == r.get("device_name")
        # training FLOPs per image: 2 per MAC forward, 4 backward (input and weight gradients); the inference
        # network's MACs (GoogLeNet's auxiliary heads, used only in training, add about 1% and are left out)
        flops_per_s = 6 * macs * ips if (macs and ips) else None
        mfu = (flops_per_s / ceiling_flops) if (ceiling_flops and same_card and flops_per_s) else None
        mfu_missing = ("no ceiling measured" if not ceiling_flops else
                       f"ceiling measured on {ceiling_card}" if not same_card else "")
        out.append({
            "family": r["family"], "arch": r["arch"], "top1": r["val_top1"], "top5": r.get("val_top5"),
            "top1_tta": r.get("val_top1_tta"), "top1_raw": r.get("val_top1_raw"), "params": params, "training_only": training_only,
            "macs": macs,
            "epochs": r.get("epochs"), "train_s": r.get("train_time_s"), "wall_s": r.get("wall_time_s"),
            "images_per_s": ips, "flops_per_s": flops_per_s, "mfu": mfu, "mfu_missing": mfu_missing, "device": r.get("device_name"), "config": r.get("config") or {},
            "lr_override": r.get("lr_override"),
            "dataset": dataset_of(r.get("wnids"), (r.get("config") or {}).get("data")), "val_n": r.get("val_n"),
        })
    return out


def starter_rows(root: str | Path | None = None) -> list[dict[str, Any]]:
    """The shipped starters (:func:`cnnviz.starter.list_starters`), one row each in the zoo's family order, with
    params and MACs. Until a zoo has run they are the only look at all the families on Tiny ImageNet, and they
    were not trained under one recipe: the row says how each was."""
    from cnnviz.models import get_card
    from cnnviz.starter import list_starters

    family_of = {m.arch: m.family for m in MEMBERS}
    out = []
    for r in list_starters(root):
        params, macs, _ = model_size(r["arch"], r["model_args"])
        try:  # the options that make it differ from the architecture's default build (ResNet's stem ...)
            defaults = get_card(r["arch"]).default_variant
        except KeyError:
            defaults = {}
        changed = {k: v for k, v in r["variant"].items() if k in defaults and defaults[k] != v}
        out.append({"family": family_of.get(r["arch"], r["arch"]), "name": r["name"],
                    "arch": r["arch"] + "".join(f", {k}={v}" for k, v in changed.items()),
                    "top1": r["val_top1"], "top5": r["val_top5"], "val_n": r["val_n"], "params": params,
                    "macs": macs, "epochs": r["epochs"], "config": r["train_config"], "dtype": r["dtype"],
                    "bytes": r["bytes"], "dataset": r["dataset"]})
    return sorted(out, key=lambda r: (member_order(r["family"]), r["name"]))


def starter_lines(table: list[dict[str, Any]]) -> list[str]:
    """The starters' table for docs/zoo.md, with what keeps it from being a comparison of architectures."""
    if not table:
        return []
    lines = ["## Until then: the shipped starters", "",
             "These are the checkpoints in `checkpoints/starter/`, trained on this project's 2-core CPU before any "
             "GPU was lent. They are **not one recipe**: epochs, optimizers and batch sizes differ (the columns "
             "say how), and a family with more epochs is ahead for that reason alone. Read them as how far each "
             "network got, not as a ranking of architectures. A zoo run replaces them.", "",
             "| family | checkpoint | top-1 | top-5 | params | MACs | epochs | training | stored as |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in table:
        c = r["config"]
        how = (f"{c.get('optimizer', '?')} lr {c.get('lr', float('nan')):g}, batch {c.get('batch_size', '?')}, "
               f"{c.get('schedule', '?')}, warm-up {c.get('warmup_epochs', float('nan')):g} ep") if c else "n/a"
        lines.append(f"| {r['family']} ({r['arch']}) | `{r['name']}` | {_top1(r)} | {percent(r['top5'])} | "
                     f"{_human(r['params'])} | {_human(r['macs'])} | {r['epochs']} | {how} | "
                     f"{r['dtype']}, {r['bytes'] / 2**20:.1f} MiB |")
    lines += ["", f"Top-1 and top-5 were measured from each shipped (compressed) file on {_val_images(table)} "
              "when it was exported; the README's starter section says how long each took and what compression "
              "cost."] + _other_data_lines(table)
    missing = [m.family for m in MEMBERS if not m.extra and m.family not in {r["family"] for r in table}]
    if missing:
        lines += ["", f"No starter yet: {', '.join(missing)}."]
    return lines


def _top1(row: dict[str, Any]) -> str:
    """The top-1 cell, with the data named when it is not Tiny ImageNet: such a row is no Tiny ImageNet figure."""
    other = row.get("dataset", TINY_IMAGENET) != TINY_IMAGENET
    return percent(row["top1"]) + (f" ({row['dataset']})" if other else "")


def _val_images(table: list[dict[str, Any]]) -> str:
    """``"10,000 val images"``: the Tiny ImageNet rows' counts where there are such rows (the others' are named by
    :func:`_other_data_lines`), else every row's; ``"the val images"`` when none was recorded."""
    tiny = [r for r in table if r.get("dataset", TINY_IMAGENET) == TINY_IMAGENET]
    n = sorted({int(r["val_n"]) for r in tiny or table if r.get("val_n")})
    return f"{'/'.join(f'{k:,}' for k in n)} val images" if n else "the val images"


def _other_data_lines(table: list[dict[str, Any]], how: str = "") -> list[str]:
    """A warning naming every row not trained on Tiny ImageNet; ``how`` says how it got here."""
    other = []
    for r in table:
        if r.get("dataset", TINY_IMAGENET) != TINY_IMAGENET:
            n = f"; {int(r['val_n']):,} val images" if r.get("val_n") else ""
            label = f"`{r['name']}`" if r.get("name") else r["family"]  # a starter by its name
            other.append(f"{label} ({r['dataset']}{n})")
    if not other:
        return []
    return ["", f"**Not Tiny ImageNet:** {', '.join(other)}.{how} These numbers say nothing about Tiny ImageNet "
                "and compare with no other row or published figure."]


def recipe_lines(table: list[dict[str, Any]]) -> list[str]:
    """The shared recipe (what every row has in common) and where the members differ."""
    if not table:
        return []
    shared_keys = ("epochs", "batch_size", "augment", "label_smoothing", "schedule", "warmup_epochs",
                   "ema_decay", "ema_every", "tta_flip", "amp", "channels_last", "compile", "data")
    lines = ["| setting | value |", "| --- | --- |"]
    for k in shared_keys:
        values = {json.dumps(row["config"].get(k)) for row in table}
        lines.append(f"| {k} | {values.pop() if len(values) == 1 else 'differs: ' + ', '.join(sorted(values))} |")
    lines += ["", "Per family (the only settings that differ; the reason is in the last column):", "",
              "| family | architecture | variant | optimizer | lr | weight decay | why |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in table:
        c, m = row["config"], member(row["family"])
        variant = ", ".join(f"{k}={v}" for k, v in (c.get("variant") or {}).items()) or "-"
        why, override = m.why, row.get("lr_override")
        if isinstance(override, (int, float)) and abs(override - m.lr) > 1e-9 * max(1.0, m.lr):  # a sweep's other rate
            why += (f" **Trained at an lr other than the member's:** {override:g} for 256 images (`zoo train --lr "
                    f"{row['family']}={override:g}`), where the member's own is {m.lr:g}.")
            m = dataclasses.replace(m, lr=float(override))  # what else changed, against the rate it was given
        if changed := settings_since(m, c):  # the member has changed since this result was trained
            why += f" **This result predates that:** it trained with {changed[0]}; the zoo now trains {changed[1]}."
        lr, wd = (format(c[k], "g") if isinstance(c.get(k), (int, float)) else "-" for k in ("lr", "weight_decay"))
        lines.append(f"| {row['family']} | {row['arch']} | {variant} | {c.get('optimizer') or '-'} | {lr} | {wd} | "
                     f"{why} |")
    lines += ["", "To train one member under this recipe from the dashboard (or to change one setting and see what it "
              "does): the Training page's *Fill in the zoo's recipe* button puts the member's current settings in "
              "the form."]
    return lines


def published_lines() -> list[str]:
    """The published from-scratch Tiny ImageNet figures, one bullet each with its source."""
    lines = [f"- {fam} [{i + 1}]: {p['top1']:.2f}% top-1, {p['note']}. Source: {p['source']}"
             for fam, pubs in PUBLISHED.items() for i, p in enumerate(pubs)]
    return lines + ["- LeNet-5, ZFNet, NiN, GoogLeNet: no from-scratch Tiny ImageNet figure whose source we could read."]


def recipe_markdown(results: list[dict[str, Any]] | None = None) -> str:
    """What Compare shows under the zoo (docs/zoo.md's own sections, from the same functions): the shared recipe,
    where the members differ and why, and the published numbers for scale, for ``results`` (default: the result
    files in ``checkpoints/results/``). Reads only their configurations, so it costs no model builds (the MACs
    of :func:`rows` take seconds)."""
    ordered = sorted(list_results(results_dir()) if results is None else results,
                     key=lambda r: member_order(r["family"]))
    epochs = "/".join(str(e) for e in sorted({r.get("epochs") for r in ordered if r.get("epochs")})) or "?"
    return "\n".join(recipe_lines(ordered) + ["", f"**Published from-scratch Tiny ImageNet top-1**, for scale (most "
                                               f"trained 100 epochs; these members trained {epochs}):", ""] + published_lines())


def _minor_label(value: float, few_decades: bool) -> str:
    """A log axis' minor tick label: 2, 3 and 5 of each decade in plain numbers ("20", "300", "5M") when the
    axis spans few decades, else none."""
    if not few_decades or value <= 0:
        return ""
    return _human(value) if round(value / 10 ** math.floor(math.log10(value))) in (2, 3, 5) else ""


def averaging_lines(results: list[dict[str, Any]]) -> list[str]:
    """What the weight average (EMA) and flip test-time augmentation paid, from each run's own evaluations:
    every epoch is evaluated with the average and without it (and with the flip), so the gain is measured on
    the same weights at the same moment, not across two runs."""
    rows = []
    for r in sorted(results, key=lambda r: member_order(r["family"])):
        history = [e for e in r.get("history") or [] if e.get("val_top1") is not None]
        ema = [(e["epoch"], e["val_top1"] - e["val_top1_raw"]) for e in history if e.get("val_top1_raw") is not None]
        tta = [e["val_top1_tta"] - e["val_top1"] for e in history if e.get("val_top1_tta") is not None]
        if not ema and not tta:
            continue
        peak = max(ema, key=lambda p: p[1]) if ema else None
        rows.append(f"| {r['family']} | {_points(ema[-1][1]) if ema else '-'} | "
                    f"{f'{_points(peak[1])} (epoch {peak[0]})' if peak else '-'} | "
                    f"{_points(tta[-1]) if tta else '-'} |")
    if not rows:
        return []
    return ["", "## What the weight average and the flip paid", "",
            "Each epoch is evaluated with the weight average (EMA) and without it, and with the mirrored image "
            "averaged in (flip TTA), so each gain below compares the same weights at the same moment, in "
            "points of val top-1. Under a schedule that takes the learning rate to zero the raw weights stop "
            "moving at the end, and the average has little left to smooth: the gain in the last epoch against "
            "the largest along the way says what the average is worth to a run stopped early, or to a "
            "checkpoint taken mid-run.", "",
            "| family | EMA, last epoch | EMA, largest (epoch) | flip TTA, last epoch |", "| --- | --- | --- | --- |",
            *rows]


def _points(delta: float) -> str:
    value = round(100 * delta, 1)
    return "0.0" if value == 0 else f"{value:+.1f}"  # never "-0.0"


UNKNOWN_DEVICE = "unknown device"


def device_markers(table: list[dict[str, Any]]) -> dict[str, str]:
    """A matplotlib marker per training device, the most common device first ("o"): a member trained on another
    machine (LeNet-5 on the dev CPU) must not read as a time on the others' card."""
    devices = [r.get("device") or UNKNOWN_DEVICE for r in table]
    ordered = sorted(set(devices), key=lambda d: (-devices.count(d), d))
    shapes = "os^Dv<>pXh"
    return {d: shapes[i % len(shapes)] for i, d in enumerate(ordered)}


def write_plots(table: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """``zoo_acc_vs_macs.png`` and ``zoo_acc_vs_time.png`` (log x axes, every family labelled)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    # Compare's colours: the zoo opens there with every family selected, in the zoo's order (rows()' order too).
    colours = model_colours([r["family"] for r in table])
    paths = []
    for key, xlabel, name in (("macs", "MACs per 64x64 image (log scale)", "zoo_acc_vs_macs.png"),
                              ("train_s", "training time, seconds (log scale)", "zoo_acc_vs_time.png")):
        pts = [r for r in table if r.get(key)]
        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
        markers = device_markers(pts)
        devices = list(markers)
        for r in pts:
            ax.scatter(r[key], 100 * r["top1"], s=40, color=colours[r["family"]],
                       marker=markers[r.get("device") or UNKNOWN_DEVICE])
            other = r.get("dataset", TINY_IMAGENET) != TINY_IMAGENET  # no Tiny ImageNet point: say so by it
            ax.annotate(r["family"] + (f" ({r['dataset'].split(',')[0]})" if other else ""),
                        (r[key], 100 * r["top1"]), textcoords="offset points", xytext=(5, 4), fontsize=9)
        if len(devices) > 1:
            for d in devices:
                ax.scatter([], [], marker=markers[d], color="grey", s=40, label=f"trained on {d}")
            # below the axes, where no point or label can sit under it
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=len(devices), fontsize=8, frameon=False)
        ax.margins(x=0.1)  # room for the rightmost point's label
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _human(v)))
        # Under two decades (the training times: 19 s to 128 s) the minor ticks carry the labels, which
        # matplotlib writes "2 x 10^1": name 2, 3 and 5 of each decade as plain numbers instead.
        values = [r[key] for r in pts]
        few_decades = bool(values) and max(values) / min(values) < 100
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _, few=few_decades: _minor_label(v, few)))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("val top-1 (%)")
        named = [d for d in devices if d != UNKNOWN_DEVICE]
        data = "Tiny ImageNet" if all(r.get("dataset", TINY_IMAGENET) == TINY_IMAGENET for r in pts) else \
            "not all on Tiny ImageNet"
        ax.set_title(f"{data}, one recipe{' on ' + ', '.join(named) if len(named) == 1 else ''}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        path = out_dir / name
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths


def read_bench(path: str | Path) -> dict[str, Any]:
    """A ``bench/bench_zoo.py device`` file, checked: ``ValueError`` naming the file and what was expected."""
    expected = "the JSON object `bench/bench_zoo.py device --out` writes"
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ValueError(f"the bench file {str(path)!r} cannot be read ({e.strerror or e})") from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"the bench file {str(path)!r} is not valid JSON ({e}): expected {expected}") from e
    if not isinstance(data, dict):
        raise ValueError(f"the bench file {str(path)!r} holds a JSON {type(data).__name__}: expected {expected}")
    ceiling, tricks = data.get("bf16_matmul_flops"), data.get("tricks", [])
    if ceiling is not None and (type(ceiling) not in (int, float) or ceiling <= 0):  # bool is no number here
        raise ValueError(f"the bench file {str(path)!r}: bf16_matmul_flops is {ceiling!r}, not a positive number")
    if not isinstance(tricks, list) or not all(
            isinstance(t, dict) and {"family", "setting"} <= set(t) and ("error" in t or "images_per_s" in t)
            for t in tricks):
        raise ValueError(f"the bench file {str(path)!r}: its tricks are not a list of {{family, setting, "
                         "images_per_s or error} entries")
    return data


def write_report(results: str | Path | None = None, out: str | Path = ZOO_REPORT,
                 bench: str | Path | None = None, starters: str | Path | None = None) -> Path:
    """Write the report (and its plots beside it) from the result files; returns its path. ``out`` defaults to
    the repository's ``docs/zoo.md`` (:data:`cnnviz.paths.ZOO_REPORT`), from whatever folder it runs. ``starters``: the
    checkpoints folder whose shipped starters the report lists while no zoo has run (default: the usual one).
    A row not trained on Tiny ImageNet (imported with ``--allow-synthetic``) is marked as such."""
    bench_data = read_bench(bench) if bench else {}  # a bad file is refused before anything is written
    ceiling = bench_data.get("bf16_matmul_flops")
    found = list_results(results or results_dir())
    table = rows(found, ceiling, bench_data.get("device_name") if ceiling else None)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    on_tiny = all(r["dataset"] == TINY_IMAGENET for r in table)
    lines = [f"# The zoo: every family{' on Tiny ImageNet' if on_tiny else ''} under one recipe", "",
             "Generated by `python -m cnnviz zoo report` from the result files in `checkpoints/results/`; "
             "do not edit by hand.", ""]
    if not table:
        lines += ["No zoo has been trained yet. `python -m cnnviz zoo train` trains one (see "
                  "`scripts/gpu_zoo.sh` for the one-GPU-session plan), `python -m cnnviz zoo import` brings its "
                  "results here.", ""] + starter_lines(starter_rows(starters))
    else:
        lines += ["| family | top-1 | top-5 | top-1 flip TTA | top-1 without EMA | params | MACs | epochs | "
                  "train s | img/s | TFLOP/s | MFU | device | published top-1 |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in table:
            pub = "; ".join(f"{p['top1']:.1f}% [{i + 1}]" for i, p in enumerate(PUBLISHED.get(r["family"], [])))
            if r["dataset"] != TINY_IMAGENET:  # the published figures are Tiny ImageNet's
                pub = "- (not Tiny ImageNet)"
            mfu = f"n/a ({r['mfu_missing'] or 'no MACs or rate'})" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
            lines.append(
                f"| {r['family']} ({r['arch']}) | {_top1(r)} | {percent(r['top5'])} | {percent(r['top1_tta'])} | "
                f"{percent(r['top1_raw'])} | {_human(r['params'])}{_extra(r['training_only'])} | {_human(r['macs'])} | "
                f"{r['epochs']} | "
                f"{r['train_s']:.0f} | {r['images_per_s']:,.0f} | {_tflops(r['flops_per_s'])} | {mfu} | "
                f"{r['device']} | {pub or '-'} |")
        lines += _other_data_lines(table, " Imported with `zoo import --allow-synthetic`.")
        lines += ["", f"Top-1 and top-5 are measured on all {_val_images(table)} from the "
                  "best epoch's checkpoint (with the weight average) by the same code as Compare's evaluation; "
                  "the flip-TTA and no-EMA columns are the training run's own evaluation of that epoch. "
                  "TFLOP/s is the model's useful work per second in training: 6 FLOPs per MAC (2 forward, 4 "
                  "backward) x MACs x img/s; MFU divides it by the bf16 matmul ceiling measured on the same card. "
                  "img/s (and what is computed from it) is each run's own training rate, with the zoo's other members "
                  "sharing the card when it trained several at once; each member's rate alone, the bf16 ceiling and the trick ladder "
                  "are in docs/benchmarks.md (\"The zoo on\" the card, once a GPU session has measured them).", "",
                  "![accuracy vs MACs](zoo_acc_vs_macs.png) ![accuracy vs training time](zoo_acc_vs_time.png)",
                  "", "## The recipe", ""] + recipe_lines(table) + averaging_lines(found)
        write_plots(table, out.parent)
    lines += ["", "## Published numbers", ""] + published_lines()
    if bench_data.get("tricks"):  # bench/bench_zoo.py's trick ladder: each trick added in turn, same member
        card = bench_data.get("device_name", "?")
        lines += ["", "## What each trick paid", "", f"Measured on {card} (`bench/bench_zoo.py`).", "",
                  "| member | setting | img/s | gain over the row before |", "| --- | --- | --- | --- |"]
        lines += [f"| {t['family']} | {t['setting']} | failed: {t['error'][:120]} | |" if "error" in t else
                  f"| {t['family']} | {t['setting']} | {t['images_per_s']:,.0f} | "
                  f"{'-' if t.get('gain') is None else format(t['gain'], '.2f') + 'x'} |" for t in bench_data["tricks"]]
    atomic_write_text(out, "\n".join(lines) + "\n")
    return out
