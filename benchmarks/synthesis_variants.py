"""Does a synthesis-time setting move the WER gap? A finished run's validation set re-scored
under another way of synthesizing, nothing retrained.

    python -m benchmarks.synthesis_variants --run DIR --variant VARIANT [--out FILE]

DIR is a folder where `./setup.sh repro` finished (its params.yaml, data/, models/). The
validation utterances are synthesized, vocoded and heard exactly as the evaluate stage does it,
in the same order (pocketsphinx adapts from one utterance to the next, so the order is part of
the WER). `--variant base` gives back the run's own `wer` of reports/eval.json, to the digit;
each other variant changes one thing:

- `window=N`: the cross-attention window at synthesis (`model.attention_window`) is N tokens;
- `prenet_dropout=P`: the prenet keeps dropout P on at synthesis, as Tacotron 2 does (seeded);
- `gv=B`: a global-variance postfilter on the synthesized log-mel. Each channel's spread over
  time is scaled towards its mean spread in the training recordings, by that ratio to the power B
  (1 = matched, 0 = unchanged). It is the remedy for over-smoothed output that statistical
  parametric synthesis uses.

Each run adds its row (run, revision, seed, variant, the `wer` block) to `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.layers import Prenet
from pipeline.common.atomic import write_json
from pipeline.config import eval_config, load_params
from pipeline.features.split import TRAIN
from pipeline.features.store import FeatureStore
from pipeline.vocoding.checkpoint import beside

RESULTS = Path(__file__).resolve().parent / "results" / "synthesis_variants.json"


def global_variance(mels: list[np.ndarray]) -> np.ndarray:
    """The mean over utterances of each channel's variance over time [n_mels]."""
    return np.mean([m.var(axis=0) for m in mels], axis=0)


def gv_postfilter(mel: np.ndarray, target: np.ndarray, strength: float) -> np.ndarray:
    """`mel` [frames, n_mels] with each channel's deviation from its mean scaled by
    (target variance / its variance) ** (strength / 2)."""
    mean = mel.mean(axis=0, keepdims=True)
    scale = (target / np.maximum(mel.var(axis=0), 1e-8)) ** (strength / 2)
    return (mean + (mel - mean) * scale[None, :]).astype(np.float32)


def keep_prenet_dropout(prenet: Prenet, p: float) -> None:
    """Leave `prenet`'s dropout on (at `p`) while the rest of the model synthesizes in eval
    mode: its dropout is the only part of it that eval mode changes."""
    prenet.p = p
    prenet.train()


def apply_variant(evaluation: Any, variant: str) -> None:
    """Change the Evaluation's synthesis as `variant` says (see the module's docstring)."""
    kind, _, value = variant.partition("=")
    decoder = evaluation.synth.model.decoder
    if kind == "base":
        return
    if kind == "window":
        decoder.window = int(value)
    elif kind == "prenet_dropout":
        keep_prenet_dropout(decoder.prenet, float(value))
        torch.manual_seed(0)
    elif kind == "gv":
        store: FeatureStore = evaluation.store
        target = global_variance([store.mel(int(i)) for i in np.flatnonzero(store.array("split") == TRAIN)])
        strength = float(value)
        mels = evaluation.synth.mels

        def filtered(*args: Any, **kwargs: Any) -> list[tuple[np.ndarray, bool | None, np.ndarray]]:
            return [(gv_postfilter(m, target, strength), fired, d) for m, fired, d in mels(*args, **kwargs)]

        evaluation.synth.mels = filtered
    else:
        raise SystemExit(f"--variant {variant!r}: expected base, window=N, prenet_dropout=P or gv=B")


def score(run: Path, variant: str, vocoder_path: Path | None = None) -> dict[str, Any]:
    """The validation set's `wer` block of `run` synthesized under `variant`, through
    `vocoder_path` (default: the run's own vocoder.pt beside its checkpoint)."""
    from pipeline.evaluation.scoring import Evaluation

    os.chdir(run)  # the run's params.yaml names its paths relative to it, as dvc runs it
    params = load_params("params.yaml")
    cfg = eval_config(params)
    evaluation = Evaluation(
        Path("data/features.zarr"),
        Path("data/manifest.parquet"),
        Path("dvclive"),
        cfg,
        params,
        False,
        vocoder_path=vocoder_path or beside(cfg.checkpoint, None),
    )
    apply_variant(evaluation, variant)
    t0 = time.perf_counter()
    evaluation.synthesize_and_score()
    return {
        "utterances": len(evaluation.rows),
        "seconds": round(time.perf_counter() - t0, 1),
        "wer": evaluation.word_error_rates(),
    }


def revision_of(run: Path) -> str:
    """The short git revision a run's folder is at ('' outside git)."""
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=run, capture_output=True, text=True, check=False
    ).stdout.strip()


def append_row(out: Path, row: dict[str, Any]) -> None:
    """Add `row` to the `rows` of the results file `out` (written atomically)."""
    results = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else {}
    results["rows"] = [*results.get("rows", []), row]
    write_json(out, results)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, type=Path, help="a folder where ./setup.sh repro finished")
    ap.add_argument("--variant", default="base", help="base | window=N | prenet_dropout=P | gv=B")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    run, out = args.run.resolve(), args.out.resolve()
    seed = int(load_params(run / "params.yaml")["train"]["seed"])
    row = {
        "run": str(run),
        "revision": revision_of(run),
        "seed": seed,
        "variant": args.variant,
        **score(run, args.variant),
    }
    wer = row["wer"]
    print(
        f"{run} seed {seed} {args.variant}: gap {wer['gap']:.3f} "
        f"({wer['gap_ci95_low']:.3f}-{wer['gap_ci95_high']:.3f}) over {row['utterances']} utterances"
    )
    append_row(out, row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
