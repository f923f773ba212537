"""The `train` stage: features.zarr + params `model`, `train` -> models/, dvclive/.

Trains the acoustic model with the documented recipe (pipeline/training/step.py, driven by
pipeline/training/loop.py), logging every loss term raw and weighted, the adaptive weights, LR,
gradient norm, frames/s and padding share to dvclive, validating every train.val_every
steps and at the last. Stop it any time (Ctrl-C, SIGTERM): models/last.pt is saved and the next run resumes
exactly, as long as the model, data and training params are unchanged.

Data parallel on N GPUs (or CPU processes): torchrun --nproc_per_node N -m pipeline.train
(train.batch_size is per process).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipeline.common.lock import folder_locks
from pipeline.common.stage import run_stage
from pipeline.config import load_params


def main(argv: list[str] | None = None) -> int:
    """Command-line entry of the train stage."""
    ap = argparse.ArgumentParser(
        prog="hamgara train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    ap.add_argument("--features", default="data/features.zarr", help="features store written by precompute")
    ap.add_argument("--models", default="models", help="checkpoint folder (last.pt, best.pt)")
    ap.add_argument("--live", default="dvclive", help="dvclive folder (metrics.json, plots)")
    args = ap.parse_args(argv)
    return run_stage("train", lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from pipeline.training.loop import fit  # torch is loaded only when training is really asked for

    params = load_params(args.params)
    if os.environ.get("RANK", "0") == "0":
        # Rank 0 alone writes models/ and dvclive/, so it alone holds them: a second run refused
        # here takes its torchrun group down with it.
        with folder_locks([Path(args.models), Path(args.live)], "train"):
            summary = fit(Path(args.features), params, Path(args.models), Path(args.live))
    else:
        summary = fit(Path(args.features), params, Path(args.models), Path(args.live))
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 alone reports
        return 0
    ranks = f", {summary['ranks']} ranks in sync" if summary["ranks"] > 1 else ""
    print(
        f"train: {summary['steps']} steps, best val_mel_loss {summary['best_val_mel_loss']:.4f}, "
        f"{summary['skipped_steps']} skipped, early stop: {summary['early_stopped']}{ranks} -> {args.models}/, {args.live}/"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
