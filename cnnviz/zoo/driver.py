"""Training the zoo: calibrate, plan the epochs, and run one ordinary training run per member, K at a time.

A zoo lives in ``checkpoints/zoo/<zoo-id>/``::

    zoo.json          the manifest: recipe, members, budget, calibration, the plan, each member's run id/state
    driver.log        what the driver did, with times
    results/<family>.json   per finished member: history, per-class accuracy, confusion, timing, device
    starter/<name>.*  compressed starter checkpoints, when the zoo exports them (``--export``)

Each member trains in an ordinary run folder, ``checkpoints/<zoo-id>-<family>/`` (Training, Compare and
``python -m cnnviz runs`` see it like any other), through the same detached worker as every run
(``python -m cnnviz.train``). A killed worker resumes from its last resume point; a killed driver resumes
with ``python -m cnnviz zoo train --resume ZOO``: runs still alive are waited for, finished ones are not
trained again, the others are resumed.

Sequential or concurrent: ``concurrency`` workers share the device at once. On a GPU several small models
can fill it better than one (kernels of one process run while another is in Python); which is faster is
measured by ``bench/bench_zoo.py``, not assumed.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnnviz.fsutil import atomic_write_json, read_json
from cnnviz.paths import checkpoints_dir
from cnnviz.training.folder import RunFolder
from cnnviz.zoo.recipe import Member, Recipe, config_for, member

ZOO_ID_RE = re.compile(r"^zoo-[A-Za-z0-9._-]{1,60}$")
FORMAT = "cnnviz-zoo/1"
MAX_CONCURRENCY = 16
# Evaluation passes per epoch when the recipe has a weight average and flip TTA: the average, its flipped
# images, and the live weights. An evaluation forward costs about a third of a training step's image.
_EVAL_COST = 1 / 3


class BudgetTooSmall(ValueError):
    """A time budget in which not even one epoch of every member fits. ``reason`` is the message without the
    budget it starts with ("too small to finish ..."), for a caller that names the budget as the user gave it."""

    def __init__(self, budget_s: float, reason: str):
        super().__init__(f"a budget of {budget_s:g} s is {reason}")
        self.reason = reason


def zoo_root(root: str | Path | None = None) -> Path:
    return Path(root) if root is not None else checkpoints_dir() / "zoo"


def new_zoo_id() -> str:
    return "zoo-" + time.strftime("%Y%m%d-%H%M%S")


def resolve_zoo(spec: str | Path | None, root: str | Path | None = None) -> Path:
    """A zoo folder from its id or path; the newest zoo when ``spec`` is None."""
    base = zoo_root(root)
    if spec is None:
        zoos = sorted((p for p in base.glob("zoo-*") if (p / "zoo.json").is_file()), key=lambda p: p.name)
        if not zoos:
            raise ValueError(f"no zoo in {base}: start one with `python -m cnnviz zoo train`")
        return zoos[-1]
    p = Path(spec)
    if p.is_dir() and (p / "zoo.json").is_file():
        return p
    if not ZOO_ID_RE.match(str(spec)):
        raise ValueError(f"{spec!r} is not a zoo id (zoo-...) or a zoo folder")
    if not (base / str(spec) / "zoo.json").is_file():
        raise ValueError(f"no zoo called {spec!r} in {base}")
    return base / str(spec)


def read_manifest(zoo_dir: Path) -> dict[str, Any]:
    try:
        m = read_json(zoo_dir / "zoo.json")
    except (OSError, ValueError) as e:
        raise ValueError(f"{zoo_dir / 'zoo.json'} cannot be read ({e})") from e
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise ValueError(f"{zoo_dir / 'zoo.json'} is not a cnnviz zoo manifest")
    return m


# --------------------------------------------------------------------------------------------- the plan
def epoch_seconds(images_per_s: float, train_images: int, val_images: int, eval_passes: int) -> float:
    """Seconds for one epoch at a measured training rate: the training images plus the evaluation passes."""
    return (train_images + eval_passes * val_images * _EVAL_COST) / max(images_per_s, 1e-9)


def plan_epochs(budget_s: float, calibration: dict[str, dict[str, float]], concurrency: int = 1,
                overhead_s: float = 0.0, spent_s: float = 0.0) -> int:
    """The most epochs that every member can train within ``budget_s`` seconds of wall time, one after another
    (concurrency is not counted on: whatever it gains is margin). ``overhead_s`` is what the plan keeps aside
    (starting each worker, loading the data, the final evaluation); ``spent_s`` what the budget has already
    paid (measuring the rates). Raises :class:`BudgetTooSmall` with the numbers when not even one epoch fits."""
    del concurrency
    per_epoch = sum(c["epoch_s"] for c in calibration.values())
    usable = budget_s - spent_s - overhead_s
    epochs = math.floor(usable / per_epoch) if per_epoch > 0 else 0
    if epochs < 1:
        worst = ", ".join(f"{f} {_seconds(c['epoch_s'])} s" for f, c in
                          sorted(calibration.items(), key=lambda kv: -kv[1]["epoch_s"]))
        spent = f"measuring the training rate took {_seconds(spent_s)} s of it, and " if spent_s else ""
        several = len(calibration) > 1
        raise BudgetTooSmall(budget_s, (
            f"too small to finish one epoch of every family: {spent}one epoch of "
            f"{f'all {len(calibration)}' if several else next(iter(calibration), 'it')} takes about "
            f"{_seconds(per_epoch + overhead_s)} s on this device ({worst}, plus {_seconds(overhead_s)} s to start "
            f"and evaluate); give at least {math.ceil(spent_s + per_epoch + overhead_s)} s"
            f"{', or fewer families' if several else ''}"))
    return epochs


def _seconds(s: float) -> str:
    """``"40"``, ``"2.5"``, ``"under 0.1"``: a short time keeps a decimal (a LeNet-5 epoch of the synthetic set
    is no "0 s")."""
    return f"{s:.0f}" if s >= 10 else f"{s:.1f}" if s >= 0.1 else "under 0.1"


def calibrate(members: list[Member], recipe: Recipe, *, steps: int = 10, warmup: int = 3,
              progress: Callable[[str], None] | None = None) -> dict[str, dict[str, float]]:
    """Measure each member's training rate here: ``warmup`` untimed then ``steps`` timed steps on real
    batches of the recipe's data, with the recipe's precision and layout. Returns, per family,
    ``images_per_s``, ``epoch_s`` (train split plus the evaluation passes) and ``warmup_s`` (the untimed steps:
    cuDNN's autotuning, and compilation when the recipe compiles)."""
    import torch

    from cnnviz.data import BatchPipeline, load_split, resolve_data
    from cnnviz.device import bf16_autocast_ok, pick_device
    from cnnviz.models import create_model
    from cnnviz.training.optim import compute_loss, make_optimizer

    dev = pick_device(recipe.device)
    root = resolve_data(recipe.data)
    train, val = load_split(root, "train"), load_split(root, "val")
    fmt = torch.channels_last if recipe.channels_last else torch.contiguous_format
    amp = recipe.amp and bf16_autocast_ok(dev)
    passes = 1 + int(recipe.tta_flip) + int(recipe.ema_decay > 0)
    pipe = BatchPipeline(train.images, train.labels, recipe.batch_size, dev, train=True, augment=recipe.augment,
                         mean=train.mean, std=train.std, channels_last=recipe.channels_last, seed=recipe.seed)
    out: dict[str, dict[str, float]] = {}
    for m in members:
        cfg = config_for(m, recipe, "zoo-calibration")
        model = create_model(m.arch, num_classes=len(train.wnids), input_size=cfg.input_size, **m.variant)
        model = model.to(dev, memory_format=fmt).train()
        opt = make_optimizer(cfg, model, dev)
        step_model = torch.compile(model) if recipe.compile else model
        t_start = time.perf_counter()
        crit = torch.nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
        aux = float(getattr(model, "aux_loss_weight", 0.0) or 0.0)
        batches = iter(pipe)
        t0, warmup_s = 0.0, 0.0
        for i in range(warmup + steps):
            if i == warmup:
                _sync(dev)
                t0 = time.perf_counter()
                warmup_s = t0 - t_start
            try:
                x, y = next(batches)
            except StopIteration:
                batches = iter(pipe)
                x, y = next(batches)
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=amp):
                loss, _ = compute_loss(step_model(x), y, crit, aux)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        _sync(dev)
        ips = steps * recipe.batch_size / max(time.perf_counter() - t0, 1e-9)
        n_train = len(train.labels) if recipe.max_steps_per_epoch is None else min(
            len(train.labels), recipe.max_steps_per_epoch * recipe.batch_size)
        out[m.family] = {"images_per_s": ips, "warmup_s": warmup_s,
                         "epoch_s": epoch_seconds(ips, n_train, len(val.labels), passes)}
        if progress:
            progress(f"calibrated {m.family}: {ips:,.0f} img/s, about {out[m.family]['epoch_s']:.1f} s an epoch")
        del model, opt, step_model
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return out


def _sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


# ------------------------------------------------------------------------------------------ the manifest
def create_zoo(members: list[Member], recipe: Recipe, *, budget_s: float | None = None, concurrency: int = 1,
               export: bool = False, calibration: dict | None = None, overhead_s: float = 0.0,
               spent_s: float = 0.0, root: str | Path | None = None, zoo_id: str | None = None) -> Path:
    """Write a new zoo's manifest (no run starts yet). With ``budget_s``, the epochs come from ``calibration``
    (measured here by :func:`calibrate` when not given) through :func:`plan_epochs`; ``spent_s`` is what the
    budget already paid (a calibration measured by the caller)."""
    if not members:
        raise ValueError("the zoo needs at least one family")
    if not isinstance(concurrency, int) or not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ValueError(f"concurrency must be a whole number from 1 to {MAX_CONCURRENCY} (got {concurrency!r})")
    for m in members:
        config_for(m, recipe, "zoo-check")  # every config valid before anything is written
    plan: dict[str, Any] = {"epochs_from": "given"}
    if budget_s is not None:
        calibration = calibration or calibrate(members, recipe)
        missing = [m.family for m in members if m.family not in calibration]
        if missing:
            raise ValueError(f"the calibration has no measurement for {', '.join(missing)}")
        recipe.epochs = plan_epochs(budget_s, {m.family: calibration[m.family] for m in members}, concurrency,
                                    overhead_s, spent_s)
        plan = {"epochs_from": "budget", "budget_s": budget_s, "calibration_s": spent_s, "overhead_s": overhead_s,
                "estimated_s": sum(calibration[m.family]["epoch_s"] for m in members) * recipe.epochs}
    if calibration and concurrency > 1:  # longest first packs K lanes best (LPT scheduling)
        members = sorted(members, key=lambda m: -calibration.get(m.family, {}).get("epoch_s", 0))
    zoo_id = zoo_id or new_zoo_id()
    if not ZOO_ID_RE.match(zoo_id):
        raise ValueError(f"{zoo_id!r} is not a valid zoo id (zoo-...)")
    zoo_dir = zoo_root(root) / zoo_id
    zoo_dir.mkdir(parents=True, exist_ok=False)
    manifest = {"format": FORMAT, "id": zoo_id, "created": time.time(), "recipe": recipe.to_dict(),
                "families": [m.family for m in members], "concurrency": concurrency, "export": bool(export),
                "calibration": calibration or {}, "plan": plan, "runs": {}, "states": {}}
    atomic_write_json(zoo_dir / "zoo.json", manifest)
    return zoo_dir


def _update(zoo_dir: Path, **changes: Any) -> dict[str, Any]:
    m = read_manifest(zoo_dir)
    for k, v in changes.items():
        if isinstance(v, dict) and isinstance(m.get(k), dict):
            m[k] = {**m[k], **v}
        else:
            m[k] = v
    atomic_write_json(zoo_dir / "zoo.json", m)
    return m


def _log(zoo_dir: Path, text: str, echo: Callable[[str], None] | None) -> None:
    line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}"
    with open(zoo_dir / "driver.log", "a", encoding="utf-8") as f:
        f.write(line + "\n")
    if echo:
        echo(line)


# ------------------------------------------------------------------------------------------------ running
def run_zoo(zoo_dir: str | Path, *, poll_s: float = 2.0, echo: Callable[[str], None] | None = print,
            root: str | Path | None = None) -> dict[str, str]:
    """Train every member of the zoo to the end, ``concurrency`` at a time; collect each one's results (and
    export its starter when the zoo asks) as it finishes. Returns ``{family: final state}``."""
    from cnnviz.training import jobs
    from cnnviz.training.runs import FINAL_STATES, read_run

    zoo_dir = Path(zoo_dir)
    manifest = read_manifest(zoo_dir)
    recipe = Recipe.from_dict(manifest["recipe"])
    runs_root = Path(root) if root is not None else zoo_dir.parent.parent
    pending = [f for f in manifest["families"] if not (zoo_dir / "results" / f"{f}.json").is_file()]
    done_before = [f for f in manifest["families"] if f not in pending]
    if done_before:
        _log(zoo_dir, f"already finished: {', '.join(done_before)}", echo)
    active: dict[str, Path] = {}
    states = {f: "done" for f in done_before}
    t0 = time.time()
    finished: list[tuple[str, Path]] = []
    while pending or active or finished:
        # Free slots are filled before results are collected: the next member trains while the driver
        # evaluates and exports the one that just finished.
        while pending and len(active) < int(manifest["concurrency"]):
            fam = pending.pop(0)
            run_dir = _ensure_running(zoo_dir, manifest, member(fam), recipe, runs_root, jobs, echo)
            if run_dir is not None:
                active[fam] = run_dir
            manifest = read_manifest(zoo_dir)
        for fam, run_dir in finished:
            states[fam] = _collect(zoo_dir, manifest, fam, run_dir, echo)
        finished = []
        if active:
            time.sleep(poll_s)
        for fam, run_dir in list(active.items()):
            info = read_run(run_dir)
            if info.state not in FINAL_STATES or info.alive:
                continue
            del active[fam]
            states[fam] = info.state
            _update(zoo_dir, states={fam: info.state})
            if info.state != "done":
                _log(zoo_dir, f"{fam}: {info.state}: {info.message}", echo)
                continue
            best = max((m.get("val_top1", 0) for m in info.metrics), default=0)
            n = len(info.metrics)
            _log(zoo_dir, f"{fam}: done, {n} epoch{'s' if n != 1 else ''}, best val top-1 {best:.2%}", echo)
            finished.append((fam, run_dir))
    _update(zoo_dir, finished=time.time(), wall_s=time.time() - t0)
    _log(zoo_dir, "zoo finished: " + ", ".join(f"{f} {s}" for f, s in states.items()), echo)
    return states


def _collect(zoo_dir: Path, manifest: dict, fam: str, run_dir: Path, echo) -> str:
    """Export the member's starter when the zoo asks, then write its result file (last, so that a result file
    on disk means the member is complete: scripts/gpu_zoo.sh sends a member once its result file exists)."""
    from cnnviz.zoo.results import collect_result, export_member

    starter, state = None, "done"
    if manifest.get("export"):
        try:
            starter = export_member(run_dir, fam, zoo_dir)
            _log(zoo_dir, f"{fam}: starter exported ({starter['bytes'] / 2**20:.1f} MiB, val top-1 "
                          f"{starter['top1']:.2%} from the shipped file)", echo)
        except Exception as e:  # noqa: BLE001 - a failed export must not lose the member's results
            state = "failed"
            _update(zoo_dir, states={fam: f"export failed: {e}"})
            _log(zoo_dir, f"{fam}: exporting its starter failed: {type(e).__name__}: {e}", echo)
    try:
        override = (manifest["recipe"].get("lr_override") or {}).get(fam)  # a sweep's rate, said in the result
        collect_result(run_dir, fam, zoo_dir / "results", zoo_id=manifest["id"], starter=starter,
                       lr_override=override)
        _log(zoo_dir, f"{fam}: results written", echo)
        return state
    except Exception as e:  # noqa: BLE001 - one member's failure must not stop the others
        _update(zoo_dir, states={fam: f"results failed: {e}"})
        _log(zoo_dir, f"{fam}: collecting results failed: {type(e).__name__}: {e}", echo)
        return "failed"


def _ensure_running(zoo_dir: Path, manifest: dict, m: Member, recipe: Recipe, runs_root: Path, jobs,
                    echo) -> Path | None:
    """Start, resume or attach to the member's run; None when it cannot be started (logged)."""
    from cnnviz.training.runs import read_run

    run_id = manifest["runs"].get(m.family)
    run_dir = runs_root / run_id if run_id else None
    try:
        if run_dir is not None and RunFolder(run_dir).config.is_file():
            info = read_run(run_dir)
            if info.alive:
                _log(zoo_dir, f"{m.family}: waiting for its running worker ({run_id})", echo)
            elif info.state == "done":
                pass  # finished while the driver was away: collected in the loop
            else:
                jobs.resume(run_dir)
                _log(zoo_dir, f"{m.family}: resumed {run_id} from its last resume point", echo)
            return run_dir
        cfg = config_for(m, recipe, manifest["id"])
        run_id = f"{manifest['id']}-{m.family}"
        run_dir = jobs.start(cfg, root=runs_root, run_id=run_id,
                             extra={"zoo": manifest["id"], "zoo_family": m.family})
        _update(zoo_dir, runs={m.family: run_id})
        _log(zoo_dir, f"{m.family}: started {run_id} ({m.arch}, {cfg.optimizer} lr {cfg.lr:g}, "
                      f"{cfg.epochs} epoch{'s' if cfg.epochs != 1 else ''})", echo)
        return run_dir
    except (ValueError, OSError, RuntimeError) as e:
        _update(zoo_dir, states={m.family: f"not started: {e}"})
        _log(zoo_dir, f"{m.family}: could not start: {e}", echo)
        return None


def zoo_status(zoo_dir: str | Path, root: str | Path | None = None) -> list[dict[str, Any]]:
    """One row per member: state, epoch, best val top-1, training rate, estimated time left."""
    from cnnviz.training.runs import read_run

    zoo_dir = Path(zoo_dir)
    manifest = read_manifest(zoo_dir)
    runs_root = Path(root) if root is not None else zoo_dir.parent.parent
    rows = []
    for fam in manifest["families"]:
        row: dict[str, Any] = {"family": fam, "run": manifest["runs"].get(fam), "state": "waiting",
                               "epoch": 0, "epochs": manifest["recipe"]["epochs"], "val_top1": None,
                               "images_per_s": None, "eta_s": None,
                               "results": (zoo_dir / "results" / f"{fam}.json").is_file()}
        if row["run"] and RunFolder(runs_root / row["run"]).config.is_file():
            info = read_run(runs_root / row["run"])
            tops = [m["val_top1"] for m in info.metrics if isinstance(m.get("val_top1"), (int, float))]
            rates = [m["images_per_s"] for m in info.metrics if isinstance(m.get("images_per_s"), (int, float))]
            row.update(state=info.state, epoch=len(info.metrics), val_top1=max(tops) if tops else None,
                       images_per_s=rates[-1] if rates else None, eta_s=info.status.get("eta_s"))
        elif str(manifest["states"].get(fam, "")).startswith("not started"):
            row["state"] = manifest["states"][fam]
        rows.append(row)
    return rows


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)
