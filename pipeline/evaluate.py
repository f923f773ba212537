"""The `evaluate` stage: does the output meet the target?

Free-running synthesis (no teacher forcing) of the validation utterances from the trained
checkpoint, scored against the recordings, plus the training history turned into
convergence figures:

- `val_mel_loss` (teacher-forced, as in training) and the attention's alignment error;
- MCD-DTW of the synthesized audio against the recording, and of Griffin-Lim applied to the
  recording's own mel (the vocoder ceiling): the difference is the acoustic model's share;
- length ratio error, stop-token behaviour (autoregressive decoder), duration error;
- word error rate of an offline recognizer on synthesized, vocoded-truth and true audio (and
  on the held-back sentences of `eval.sentences`);
- real-time factor of synthesis; steps_to_target, the validation curve's area, wall time;
- Griffin-Lim and the trained vocoder side by side (`vocoder.<name>.*`): copy synthesis of the
  recordings' mels scored by PESQ-WB, ESTOI, MCD, WER and RTF on one thread, and the acoustic
  model's WER gap heard through each (pipeline/evaluation/vocoder_comparison.py).

Writes reports/eval.json (DVC metrics), reports/eval_utterances.csv (per utterance),
reports/samples/*.wav, reports/figures/eval/*.png, reports/summary.md and reports/index.html (the
scores, figures and samples on one page, to open in a browser). The work is done in
pipeline/evaluation/scoring.py, the writing in pipeline/evaluation/report.py and report_page.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.common.lock import folder_lock
from pipeline.common.stage import run_stage
from pipeline.config import eval_config, load_params
from pipeline.evaluation.scoring import evaluate


def main(argv: list[str] | None = None) -> int:
    """Command-line entry of the evaluate stage."""
    ap = argparse.ArgumentParser(
        prog="hamgara evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    ap.add_argument("--features", default="data/features.zarr", help="features store written by precompute")
    ap.add_argument("--manifest", default="data/manifest.parquet", help="manifest written by validate (audio paths)")
    ap.add_argument("--live", default="dvclive", help="the training's dvclive folder (history)")
    ap.add_argument(
        "--vocoder-checkpoint",
        help="the vocoder stage's generator (default: vocoder.pt beside eval.checkpoint): used when eval.vocoder "
        "is trained, compared with Griffin-Lim either way",
    )
    ap.add_argument(
        "--reports", default="reports", help="where eval.json, samples/, figures/eval/, summary.md and index.html go"
    )
    args = ap.parse_args(argv)
    return run_stage("evaluate", lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from pipeline.vocoding.checkpoint import beside

    params = load_params(args.params)
    cfg = eval_config(params)
    with folder_lock(Path(args.reports), "evaluate"):
        metrics = evaluate(
            Path(args.features),
            Path(args.manifest),
            Path(args.live),
            cfg,
            params,
            Path(args.reports),
            vocoder_path=beside(cfg.checkpoint, args.vocoder_checkpoint),
        )
    wer = metrics.get("wer", {})
    unseen = wer.get("unseen")
    print(
        f"evaluate: {metrics['utterances']} utterances; MCD {metrics['mcd']['model']:.2f} dB "
        f"(vocoder ceiling {metrics['mcd']['vocoder_ceiling']:.2f}); "
        + (f"WER {wer['synthesized']:.3f} (vocoded truth {wer['vocoded_truth']:.3f}); " if wer else "")
        + (
            f"unseen sentences ({metrics['unseen']['utterances']}): WER {unseen['synthesized']:.3f} "
            f"(vocoded truth {unseen['vocoded_truth']:.3f}); "
            if unseen
            else ""
        )
        + f"RTF {metrics['rtf']['total']:.3f} -> {args.reports}/eval.json, {args.reports}/summary.md, "
        f"{args.reports}/index.html"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
