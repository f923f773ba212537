"""The `vocoder` stage: features.zarr + the recordings + params `vocoder` -> models/vocoder.pt.

Trains the mel -> waveform generator on the corpus's own training recordings (the accepted
rows, loaded as precompute loads them, at the features' sample rate; the mels precompute
stored), validating every vocoder.val_every steps on the validation split and writing a few
held-back utterances as audio to <live>/samples/. Stop it any time (Ctrl-C, SIGTERM, even
kill -9): models/vocoder_last.pt is saved every vocoder.checkpoint_every steps and on a signal,
and the next run resumes exactly. evaluate (eval.vocoder: trained), synth (--vocoder auto, its
default) and doctor use the vocoder.pt beside the acoustic model's checkpoint (docs/vocoder.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.common.lock import folder_locks
from pipeline.common.stage import run_stage
from pipeline.config import load_params


def main(argv: list[str] | None = None) -> int:
    """Command-line entry of the vocoder stage."""
    ap = argparse.ArgumentParser(
        prog="hamgara vocoder", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    ap.add_argument("--features", default="data/features.zarr", help="features store written by precompute")
    ap.add_argument("--manifest", default="data/manifest.parquet", help="manifest written by validate (audio paths)")
    ap.add_argument("--models", default="models", help="folder of vocoder.pt and vocoder_last.pt")
    ap.add_argument("--live", default="dvclive_vocoder", help="dvclive folder of the vocoder (metrics, samples/)")
    args = ap.parse_args(argv)
    return run_stage("vocoder", lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from pipeline.vocoding.loop import BEST, fit_vocoder  # torch is loaded only when training is really asked for

    params = load_params(args.params)
    models = Path(args.models)
    with folder_locks([models / BEST, Path(args.live)], "vocoder"):
        summary = fit_vocoder(Path(args.features), Path(args.manifest), params, models, Path(args.live))
    best = summary["best_val_loss"]
    print(
        f"vocoder: {summary['steps']} steps, best val_loss {best:.4f}, {summary['skipped_steps']} skipped "
        f"-> {models / BEST}, {args.live}/"
        if best is not None
        else f"vocoder: {summary['steps']} steps -> {models / BEST}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
