"""Does a vocoder that has also learned the acoustic model's own mels lower the WER gap? A
finished run's vocoder fine-tuned on them, its validation set re-scored, nothing else retrained.

    python -m benchmarks.vocoder_on_model_mels --run DIR [--steps 1000] [--lr 5e-4] [--out FILE]

DIR is a folder where `./setup.sh repro` finished. Tacotron 2 trains its vocoder on the acoustic
model's ground-truth-aligned predictions, so that it learns to make clean audio from the
smoother mels synthesis gives it. Here:

1. the acoustic model (`eval.checkpoint`) predicts every training utterance's mel as it was
   trained to (the true frames fed in, with `train.scheduled_sampling`'s second pass over its
   own), so each predicted frame sits over the recording's samples;
2. the run's models/vocoder.pt is fine-tuned for `--steps` steps (warm-up, then cosine decay from
   `--lr`) on the recordings' mels and those predictions together, each excerpt drawn from one
   of the two with equal chance, the vocoder stage's loss and batches otherwise;
3. the validation set is synthesized, vocoded and heard as the evaluate stage does it, with the
   fine-tuned vocoder for the synthesis and for the vocoded recordings alike (benchmarks/
   synthesis_variants.py's scoring).

Each run adds its row (run, revision, seed, steps, lr, the vocoder's validation loss on the
recordings before and after, and both `wer` blocks) to `--out`. The fine-tuned vocoder is left
in `<run>/benchmark_vocoder/`, not in models/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from benchmarks.synthesis_variants import append_row, revision_of, score
from pipeline.config import PRETRAINED, eval_config, load_params, vocoder_config
from pipeline.evaluation.synthesizer import Synthesizer
from pipeline.features.split import TRAIN
from pipeline.features.store import FeatureStore
from pipeline.training.dataset import FeatureDataset, collate
from pipeline.vocoding.data import Utterance
from pipeline.vocoding.loop import BEST, VocoderRun

RESULTS = Path(__file__).resolve().parent / "results" / "vocoder_on_model_mels.json"


@torch.no_grad()
def model_mels(synth: Synthesizer, store_path: Path, sampling: float, batch_size: int = 8) -> dict[str, np.ndarray]:
    """id -> the acoustic model's log-mel [frames, n_mels] of each training utterance, frame for
    frame over its recording: the true frames fed in, `sampling` the share of steps fed the
    model's own first-pass prediction instead (scheduled sampling, as in training)."""
    dataset = FeatureDataset(store_path, [TRAIN])
    ids = FeatureStore(store_path).ids
    model = synth.model.eval()
    out: dict[str, np.ndarray] = {}
    for start in tqdm(range(0, len(dataset), batch_size), desc="model mels", unit="batch"):
        items = [dataset[k] for k in range(start, min(start + batch_size, len(dataset)))]
        batch = collate(items)[0].to(synth.device)
        mel = model(batch, sampling=sampling).mel_post.float().cpu() * synth.std + synth.mean
        for b, item in enumerate(items):
            frames = int(item["mel"].shape[0])
            out[ids[item["index"]]] = mel[b, :frames].numpy().astype(np.float32)
    return out


def with_model_mels(recorded: list[Utterance], predicted: dict[str, np.ndarray]) -> list[Utterance]:
    """The recordings' utterances followed by the same recordings under the model's mels: a
    batch then draws from either with equal chance (draws are in proportion to frames)."""
    missing = [u.id for u in recorded if u.id not in predicted]
    if missing:
        raise ValueError(f"no model mel for {len(missing)} training utterance(s), the first {missing[0]!r}")
    return [*recorded, *(Utterance(u.id, predicted[u.id], u.wave) for u in recorded)]


def fine_tune(run: Path, predicted: dict[str, np.ndarray], steps: int, lr: float, work: Path) -> dict[str, Any]:
    """`run`'s models/vocoder.pt fine-tuned on its recordings and `predicted` into
    `work`/models/vocoder.pt; -> the run's summary."""
    params = load_params(run / "params.yaml")
    shutil.rmtree(work, ignore_errors=True)
    (work / PRETRAINED).mkdir(parents=True)
    shutil.copyfile(run / "models" / BEST, work / PRETRAINED / BEST)
    # The manifest names the recordings relative to the run (data/corpus/...), init_from must be
    # under the working folder's pretrained/: a folder with the run's data/ linked in has both,
    # and the run's own pretrained/ (a dependency DVC tracks) is left alone.
    (work / "data").symlink_to(run / "data", target_is_directory=True)
    cfg = dataclasses.replace(
        vocoder_config(params),
        init_from=f"{PRETRAINED}/{BEST}",
        max_steps=steps,
        lr=lr,
        warmup_steps=min(50, steps // 4),
        val_every=steps,
        checkpoint_every=steps,
        samples=0,
    )
    here = Path.cwd()
    os.chdir(work)
    try:
        vocoder = VocoderRun(
            Path("data/features.zarr"), Path("data/manifest.parquet"), cfg, Path("models"), Path("live"), True, None
        )
        vocoder.setup()
        vocoder.train_set = with_model_mels(vocoder.train_set, predicted)
        return vocoder.train()
    finally:
        os.chdir(here)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, type=Path, help="a folder where ./setup.sh repro finished")
    ap.add_argument("--steps", type=int, default=1000, help="fine-tuning steps (default 1000)")
    ap.add_argument("--lr", type=float, default=5e-4, help="their peak learning rate (default 5e-4)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    run, out = args.run.resolve(), args.out.resolve()
    params = load_params(run / "params.yaml")
    t0 = time.perf_counter()
    synth = Synthesizer.from_file(run / eval_config(params).checkpoint)
    predicted = model_mels(synth, run / "data/features.zarr", float(params["train"]["scheduled_sampling"]))
    work = run / "benchmark_vocoder"
    summary = fine_tune(run, predicted, args.steps, args.lr, work)
    tuned_seconds = round(time.perf_counter() - t0, 1)
    base_live = json.loads((run / "dvclive_vocoder" / "metrics.json").read_text(encoding="utf-8"))
    eval_json = json.loads((run / "reports" / "eval.json").read_text(encoding="utf-8"))
    scored = score(run, "base", vocoder_path=work / "models" / BEST)
    row = {
        "run": str(run),
        "revision": revision_of(run),
        "seed": int(params["train"]["seed"]),
        "steps": args.steps,
        "lr": args.lr,
        "fine_tune_seconds": tuned_seconds,
        "vocoder_val_loss": {"base": base_live.get("best_val_loss"), "fine_tuned": summary["best_val_loss"]},
        "utterances": scored["utterances"],
        "wer_base": {k: v for k, v in eval_json["wer"].items() if k != "unseen"},
        "wer_fine_tuned": scored["wer"],
    }
    base, tuned = row["wer_base"], row["wer_fine_tuned"]
    print(
        f"{run} seed {row['seed']}: synthesized {base['synthesized']:.3f} -> {tuned['synthesized']:.3f}, "
        f"vocoded truth {base['vocoded_truth']:.3f} -> {tuned['vocoded_truth']:.3f}, "
        f"gap {base['gap']:.3f} -> {tuned['gap']:.3f} ({tuned['gap_ci95_low']:.3f}-{tuned['gap_ci95_high']:.3f})"
    )
    append_row(out, row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
