"""`hamgara lr-find`: which train.lr suits my data and my model? An LR range test, in minutes.

The configured model (params `model`) and trainer (params `train`: batch size, accumulation,
clipping, loss weights) take a short run on your features.zarr's training split with the
learning rate swept exponentially from lr_find.start_lr to lr_find.end_lr, one optimizer step
each, and the sweep ends early once the smoothed loss diverges (lr_find.divergence_factor x its
minimum) — a diverging end is expected, not an error. The suggested train.lr follows
lr_find.rule, said plainly in the output: min_over (the LR of the smoothed loss's minimum,
divided by lr_find.min_divisor) or steepest (the LR where the smoothed loss falls fastest, before its minimum);
both are written. Writes reports/lr_find.json (the curve, both candidates, the suggestion, the
configured train.lr and their ratio) and reports/figures/lr_find.png, and prints the override
to train with. `hamgara doctor` reads the JSON and warns when train.lr is more than 5x away.
Nothing of a training run is touched (models/, dvclive/).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from pipeline.common.stage import run_stage


def main(argv: list[str] | None = None) -> int:
    """Command-line entry of `hamgara lr-find`."""
    ap = argparse.ArgumentParser(
        prog="hamgara lr-find", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    ap.add_argument("--features", default="data/features.zarr", help="features store written by precompute")
    ap.add_argument("--out", default="reports/lr_find.json", help="the JSON report")
    ap.add_argument("--figure", default="reports/figures/lr_find.png", help="smoothed loss against LR")
    ap.add_argument("--steps", type=int, default=None, help="steps of the sweep (default: lr_find.steps)")
    ap.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (default: train.device)")
    args = ap.parse_args(argv)
    return run_stage("lr-find", lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from pipeline.common.atomic import write_json
    from pipeline.common.figures import lr_find_figure
    from pipeline.config import load_params, lr_find_config, params_from, train_config
    from pipeline.training.lr_range import lr_find  # torch is loaded only when the sweep is asked for

    params = load_params(args.params)
    if args.device is not None:
        # Through the typed config, so a bad --device is refused like a bad train.device.
        params = {**params, "train": {**params["train"], "device": args.device}}
        with params_from("--device"):
            train_config(params)
    cfg = lr_find_config(params)
    if args.steps is not None:
        with params_from("--steps"):
            cfg = dataclasses.replace(cfg, steps=args.steps)  # checked again: --steps 1 is refused
    features = Path(args.features)
    if not features.exists():
        raise FileNotFoundError(f"{features}: no features store; run `dvc repro precompute` first")
    report = lr_find(params, features, cfg)
    write_json(Path(args.out), report)
    marks = {f"suggested {report['suggested_lr']:.1e} ({cfg.rule})": report["suggested_lr"]}
    for name, lr in report["candidates"].items():
        if lr is not None and name != cfg.rule and name != "min_loss_lr":
            marks[f"{name} {lr:.1e}"] = lr
    title = f"LR range test: {report['decoder']} decoder, batch {report['batch_size']}, {report['steps_run']} steps"
    lr_find_figure(Path(args.figure), report["lrs"], report["losses"], report["smoothed"], marks, title)
    _print(report, args)
    return 0


def _print(report: dict, args: argparse.Namespace) -> None:
    """The suggestion, the rule, how the sweep ended, and the override to train with."""
    c = report["candidates"]
    steepest = f"{c['steepest']:.1e}" if c["steepest"] is not None else "none"
    print(
        f"lr-find: {report['steps_run']} steps in {report['seconds']:.0f} s, LR {report['lrs'][0]:.1e} -> "
        f"{report['lrs'][-1]:.1e} ({report['stopped']['reason']}); smoothed loss lowest at {c['min_loss_lr']:.1e}"
    )
    print(f"lr-find: candidates: min_over {c['min_over']:.1e}, steepest {steepest}")
    print(f"lr-find: suggested train.lr = {report['suggested_lr']:.1e} — {report['rule_text']}")
    if report["note"]:
        print(f"lr-find: note: {report['note']}")
    print(
        f"lr-find: configured train.lr = {report['configured_lr']:.1e} "
        f"({report['configured_over_suggested']:.2g}x the suggestion) -> {args.out}, {args.figure}"
    )
    print(f"lr-find: to train with it: {report['override']}")


if __name__ == "__main__":
    sys.exit(main())
