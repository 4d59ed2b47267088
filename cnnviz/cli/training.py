"""CLI commands ``train``, ``runs`` (list / show / stop / resume / delete) and ``evaluate``.

    python -m cnnviz train --arch resnet18 --variant stem=tiny --data auto --epochs 30 --detach
    python -m cnnviz runs list
    python -m cnnviz runs stop resnet18-20261123-230000-ab12
    python -m cnnviz evaluate --checkpoint checkpoints/<run>/best.safetensors --format json

``train`` prints the run folder on the first line of stdout (then, in the foreground, trains with the log on
stderr; Ctrl-C stops gracefully after the current step). Several GPUs: ``torchrun --nproc_per_node N -m
cnnviz.train --run-dir checkpoints/NAME --arch ...`` (the same flags).
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def register(sub) -> None:
    from cnnviz.cli._args import at_least
    from cnnviz.training.config import add_config_args

    p = sub.add_parser("train", help="train an architecture (prints the run folder)",
                       description="Train an architecture on Tiny ImageNet (or the synthetic set) at 64x64.")
    add_config_args(p)
    p.add_argument("--out", default=None, help="checkpoints folder (default: $CNNVIZ_CHECKPOINTS or checkpoints/)")
    p.add_argument("--resume", metavar="RUN", help="continue a run (its own config) from its last saved step")
    p.add_argument("--detach", action="store_true", help="start a background job and return at once")
    p.add_argument("--force", action="store_true", help="start even if another job uses this device")
    p.set_defaults(func=cmd_train)

    runs = sub.add_parser("runs", help="training runs: list, show, stop, resume, delete")
    rsub = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    q = rsub.add_parser("list", help="every run, newest first")
    q.add_argument("--out", default=None, help="checkpoints folder")
    q.add_argument("--format", choices=("text", "json"), default="text")
    q.set_defaults(func=cmd_runs_list)
    q = rsub.add_parser("show", help="one run: status, progress and per-epoch metrics")
    q.add_argument("run", help="run name (or folder)")
    q.add_argument("--out", default=None)
    q.add_argument("--format", choices=("text", "json"), default="text")
    q.add_argument("--log", type=at_least(0), default=0, metavar="N", help="also print the last N lines of train.log")
    q.set_defaults(func=cmd_runs_show)
    q = rsub.add_parser("stop", help="stop a running job gracefully (it saves first)")
    q.add_argument("run")
    q.add_argument("--out", default=None)
    q.add_argument("--kill", action="store_true", help="kill at once (a hung worker; the last save survives)")
    q.add_argument("--wait", type=at_least(0.0), default=0.0, metavar="S", help="wait up to S seconds for it to exit")
    q.set_defaults(func=cmd_runs_stop)
    q = rsub.add_parser("resume", help="continue a stopped or failed run in the background")
    q.add_argument("run")
    q.add_argument("--out", default=None)
    q.add_argument("--epochs", type=at_least(1), default=None, help="new total number of epochs")
    q.add_argument("--force", action="store_true", help="start even if another job uses this device")
    q.set_defaults(func=cmd_runs_resume)
    q = rsub.add_parser("delete", help="delete a run folder")
    q.add_argument("run")
    q.add_argument("--out", default=None)
    q.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    q.add_argument("--force", action="store_true", help="kill a running job first")
    q.set_defaults(func=cmd_runs_delete)

    p = sub.add_parser("evaluate", help="val top-1 / top-5 of a checkpoint",
                       description="Val top-1 and top-5 of a checkpoint on the validation split it was trained for.")
    p.add_argument("--checkpoint", required=True, help="a .safetensors checkpoint (with its .json) or a catalog "
                   "name (starter/..., imagenet/...)")
    p.add_argument("--data", default=None, help="dataset (default: the one the checkpoint was trained on)")
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu", "mps"))
    p.add_argument("--batch-size", type=at_least(1), default=256, help="images per forward pass (default 256)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_evaluate)


def _root(args: argparse.Namespace):
    from pathlib import Path

    from cnnviz.paths import checkpoints_dir

    return Path(args.out).expanduser().resolve() if getattr(args, "out", None) else checkpoints_dir()


def cmd_train(args: argparse.Namespace) -> int:
    from cnnviz.cli._args import typed_options
    from cnnviz.data import check_data
    from cnnviz.training import jobs
    from cnnviz.training.config import TrainConfig, code_version, config_from_args
    from cnnviz.training.folder import RunFolder
    from cnnviz.training.runs import create_run, read_run, resolve_run
    from cnnviz.training.worker import run_training

    root = _root(args)
    if args.resume:
        run_dir = resolve_run(args.resume, root)
        if args.detach:
            jobs.resume(run_dir, force=args.force, epochs=args.epochs)
            print(run_dir)
            return 0
        from cnnviz.fsutil import atomic_write_json, read_json

        cfg = None  # run_training reads config.json and checks it
        ignored = typed_options(args, keep=("epochs", "resume", "out", "force", "detach"))
        if ignored:  # a run resumes with its own config.json; only --epochs changes it
            print(f"note: a resumed run keeps its own settings; ignored {', '.join(ignored)}", file=sys.stderr)
        if args.epochs is not None:
            config = RunFolder(run_dir).config
            raw = read_json(config)
            if not isinstance(raw, dict):
                raise ValueError(f"{config} does not hold a training configuration (a JSON object); the run "
                                 "cannot be resumed")
            cfg = TrainConfig.from_dict({**raw, "epochs": args.epochs}).validate()
            atomic_write_json(config, {**raw, "epochs": cfg.epochs})  # config.json stays the truth
    else:
        cfg = config_from_args(args)
        if args.force:
            cfg.allow_concurrent = True
        cfg.validate()
        check_data(cfg.data)  # before a run folder exists: a run that can only fail stayed in `runs list`
        if args.detach:
            try:
                print(jobs.start(cfg, root=root, force=args.force))
            except OSError as e:
                raise RuntimeError(str(e)) from e
            return 0
        holder = None if cfg.allow_concurrent else jobs.device_busy(cfg.device, root)
        if holder:
            raise jobs.JobBusy(f"another training job ({holder.get('run')}) is running on "
                               f"{jobs.device_key(cfg.device)}; wait, stop it, or pass --force")
        try:
            run_dir = create_run({**cfg.to_dict(), **code_version()}, root)
        except OSError as e:
            raise RuntimeError(str(e)) from e
    print(run_dir, flush=True)
    state = run_training(run_dir, cfg, to_stderr=True)
    info = read_run(run_dir)
    if state == "failed":
        print(f"error: {info.message}", file=sys.stderr)
        return 1
    print(f"{state}: {info.message}", file=sys.stderr)
    return 0


def _fmt_pct(x) -> str:
    return f"{100 * x:.1f}%" if isinstance(x, (int, float)) else "-"


def cmd_runs_list(args: argparse.Namespace) -> int:
    from cnnviz.training.runs import list_runs

    runs = list_runs(_root(args))
    if args.format == "json":
        print(json.dumps([r.summary() for r in runs], indent=2, default=str))
        return 0
    if not runs:
        print(f"no runs in {_root(args)}")
        return 0
    print(f"{'run':<44} {'arch':<12} {'state':<9} {'epoch':>7} {'best top-1':>10}  message")
    for r in runs:
        ep = f"{len(r.metrics)}/{r.total_epochs}"
        print(f"{r.id:<44} {str(r.arch):<12} {r.state:<9} {ep:>7} {_fmt_pct(r.best_top1):>10}  {r.message[:70]}")
    return 0


def cmd_runs_show(args: argparse.Namespace) -> int:
    from cnnviz.training.runs import read_run, resolve_run

    info = read_run(resolve_run(args.run, _root(args)))
    if args.format == "json":
        out = {**info.summary(), "metrics": info.metrics}
        if args.log:
            out["log"] = info.log_tail(args.log)
        print(json.dumps(out, indent=2, default=str))
        return 0
    st = info.status
    print(f"run      {info.id}  ({info.path})")
    print(f"arch     {info.arch}  variant {info.config.get('variant') or {}}  data {info.config.get('data')}")
    print(f"state    {info.state}{' (no heartbeat for a while)' if info.stale else ''}: {info.message}")
    if info.state in ("running", "stopping", "queued"):
        eta = st.get("eta_s")
        eta_txt = f", ETA {time.strftime('%H:%M:%S', time.gmtime(eta))}" if isinstance(eta, (int, float)) else ""
        print(f"progress epoch {info.epoch}/{info.total_epochs}, step {st.get('step')}/{st.get('steps_per_epoch')}"
              f" ({100 * info.progress:.0f}%){eta_txt}")
    for p in info.problems:
        print(f"warning  {p}")
    if info.metrics:
        print(f"\n{'epoch':>5} {'train loss':>10} {'train acc':>9} {'val loss':>9} {'top-1':>7} {'top-5':>7} "
              f"{'lr':>9} {'img/s':>8} {'time s':>7}")
        for m in info.metrics:
            print(f"{m.get('epoch', '?'):>5} {m.get('train_loss', float('nan')):>10.4f} "
                  f"{_fmt_pct(m.get('train_acc')):>9} {m.get('val_loss', float('nan')):>9.4f} "
                  f"{_fmt_pct(m.get('val_top1')):>7} {_fmt_pct(m.get('val_top5')):>7} {m.get('lr', 0):>9.3g} "
                  f"{m.get('images_per_s', 0):>8.0f} {m.get('epoch_time_s', 0):>7.1f}")
    if args.log:
        print("\n" + info.log_tail(args.log))
    return 0


def cmd_runs_stop(args: argparse.Namespace) -> int:
    from cnnviz.training import jobs
    from cnnviz.training.runs import resolve_run

    run_dir = resolve_run(args.run, _root(args))
    if jobs.stop(run_dir, kill=args.kill, wait=args.wait):
        print(f"{'killed' if args.kill else 'asked to stop'}: {run_dir.name}")
        return 0
    print(f"{run_dir.name} is not running")
    return 0


def cmd_runs_resume(args: argparse.Namespace) -> int:
    from cnnviz.training import jobs
    from cnnviz.training.runs import resolve_run

    print(jobs.resume(resolve_run(args.run, _root(args)), force=args.force, epochs=args.epochs))
    return 0


def cmd_runs_delete(args: argparse.Namespace) -> int:
    from cnnviz.training import jobs
    from cnnviz.training.runs import resolve_run

    root = _root(args)
    run_dir = resolve_run(args.run, root)
    if not args.yes:
        if not sys.stdin.isatty():
            raise ValueError("refusing to delete without confirmation: pass --yes")
        if input(f"delete {run_dir}? [y/N] ").strip().lower() not in ("y", "yes"):
            print("kept")
            return 0
    jobs.delete(run_dir, root=root, force=args.force)
    print(f"deleted {run_dir.name}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from cnnviz.catalog import resolve_checkpoint  # a path or a catalog name (starter/..., imagenet/...)
    from cnnviz.training.evaluate import evaluate_checkpoint

    r = evaluate_checkpoint(resolve_checkpoint(args.checkpoint)[0], data=args.data, device=args.device,
                            batch_size=args.batch_size)
    if args.format == "json":
        print(json.dumps({k: r[k] for k in ("checkpoint", "top1", "top5", "n")}))
    else:
        print(f"top-1 {100 * r['top1']:.2f}%  top-5 {100 * r['top5']:.2f}%  (n={r['n']})  {r['checkpoint']}")
    return 0
