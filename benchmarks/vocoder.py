"""Vocoder quality against training time: what more minutes (or a GPU) buy.

    python -m benchmarks.vocoder [--checkpoints 500,1000,2000,3000,6000] [--seeds 1234,7]
                                 [--utterances 12] [--device cpu] [--out benchmarks/results/vocoder.json]

For each seed, trains the vocoder stage's generator (the `vocoder` params, max_steps = the last
checkpoint, so the points are along one run's schedule: an earlier point's learning rate has
not yet decayed, and a run stopped there on purpose scores a little higher) on a finished
features store, and at each checkpoint scores copy synthesis of the first `--utterances`
validation recordings: PESQ-WB, ESTOI and MCD-DTW against the recording, as evaluate does
(pipeline/evaluation/vocoder_comparison.py). Griffin-Lim (eval.griffin_lim_iters) is scored on
the same recordings once. The training seconds exclude the scoring. Also the real-time factor
of both on one CPU thread. Prints a table; writes JSON.

    python -m benchmarks.vocoder --ceiling [--out benchmarks/results/vocoder_ceiling.json]

The design's ceiling instead of a training run: the generator's phase reconstruction (fast
Griffin-Lim from zero phase) on each recording's *true* STFT magnitude, at several iteration
counts. It is what a perfect magnitude network would score, and why the network predicts the
magnitude rather than the phase (docs/vocoder.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.vocoder import GriffinLimVocoder, TrainedVocoder, Vocoder
from model.vocoder_generator import stft
from pipeline.common.atomic import write_json
from pipeline.config import eval_config, load_params, vocoder_config
from pipeline.evaluation.mcd import mcd_dtw, mel_cepstrum, trim_silence
from pipeline.evaluation.quality import estoi, pesq_wb
from pipeline.evaluation.vocoder_comparison import overlap, vocode_on_one_thread
from pipeline.vocoding.data import Utterance
from pipeline.vocoding.loop import VocoderRun

REPO = Path(__file__).resolve().parents[1]


def score(vocoder: Vocoder, utterances: list[Utterance], cepstrum: Any) -> dict[str, float]:
    """Mean copy-synthesis PESQ-WB, ESTOI and MCD-DTW, and the RTF on one thread."""
    pesq, stoi, mcd, seconds, samples = [], [], [], 0.0, 0
    for u in utterances:
        wave, spent = vocode_on_one_thread(vocoder, u.mel)
        seconds += spent
        samples += len(wave)
        ref, deg = overlap(u.wave, wave)
        pesq.append(pesq_wb(ref, deg, vocoder.sample_rate))
        stoi.append(estoi(ref, deg, vocoder.sample_rate))
        mcd.append(mcd_dtw(cepstrum(u.wave), cepstrum(wave)))
    return {
        "pesq_wb": float(np.mean(pesq)),
        "estoi": float(np.mean(stoi)),
        "mcd": float(np.mean(mcd)),
        "rtf_one_thread": seconds / (samples / vocoder.sample_rate),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default=str(REPO / "data/features.zarr"))
    ap.add_argument("--manifest", default=str(REPO / "data/manifest.parquet"))
    ap.add_argument("--params", default=str(REPO / "params.yaml"))
    ap.add_argument("--checkpoints", default="500,1000,2000,3000,6000")
    ap.add_argument("--seeds", default="1234,7")
    ap.add_argument("--utterances", type=int, default=12, help="validation recordings scored at each checkpoint")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--ceiling", action="store_true", help="score phase reconstruction on true magnitudes instead")
    ap.add_argument("--iterations", default="8,16,32,60", help="--ceiling: the iteration counts")
    ap.add_argument("--out", default=None, help="default benchmarks/results/vocoder.json (or vocoder_ceiling.json)")
    args = ap.parse_args(argv)
    if args.out is None:
        args.out = str(REPO / "benchmarks/results" / ("vocoder_ceiling.json" if args.ceiling else "vocoder.json"))
    checkpoints = sorted(int(c) for c in args.checkpoints.split(","))
    params = load_params(args.params)
    ecfg = eval_config(params)

    def cepstrum(wave: np.ndarray) -> np.ndarray:
        return mel_cepstrum(trim_silence(wave, ecfg.mcd_trim_top_db), ecfg.mcd_order, ecfg.mcd_alpha, ecfg.mcd_floor_db)

    if args.ceiling:
        return ceiling(args, params, cepstrum, argv)
    rows: list[dict[str, Any]] = []
    baseline: dict[str, float] | None = None
    for seed in (int(s) for s in args.seeds.split(",")):
        cfg = dataclasses.replace(
            vocoder_config(params), seed=seed, max_steps=checkpoints[-1], device=args.device, init_from=None
        )
        with tempfile.TemporaryDirectory() as tmp:
            run = VocoderRun(Path(args.store), Path(args.manifest), cfg, Path(tmp), Path(tmp) / "live", False, None)
            run.setup()
            utterances = run.val_set[: args.utterances]
            if baseline is None:
                baseline = score(GriffinLimVocoder(run.settings, ecfg.griffin_lim_iters), utterances, cepstrum)
                print(f"griffin_lim ({ecfg.griffin_lim_iters} iterations): {baseline}", flush=True)
            trained_seconds = 0.0
            for target in checkpoints:
                start = time.perf_counter()
                while run.step < target:
                    run.train_step()
                if run.device.type == "cuda":
                    torch.cuda.synchronize()
                trained_seconds += time.perf_counter() - start
                figures = score(TrainedVocoder(run.generator, "cpu"), utterances, cepstrum)
                run.generator.to(run.device)
                row = {"seed": seed, "step": target, "train_seconds": round(trained_seconds, 1), **figures}
                rows.append(row)
                print(row, flush=True)
    write_json(
        Path(args.out),
        {
            "what": "copy synthesis of validation recordings by the trained vocoder along one run, and Griffin-Lim",
            "command": "python -m benchmarks.vocoder " + " ".join(argv if argv is not None else sys.argv[1:]),
            "device": args.device,
            "torch_threads": torch.get_num_threads(),
            "utterances": args.utterances,
            "vocoder_params": dataclasses.asdict(vocoder_config(params)),
            "griffin_lim": baseline,
            "rows": rows,
        },
    )
    print(f"-> {args.out}")
    return 0


class TrueMagnitude:
    """A 'vocoder' that knows each recording: the generator's phase reconstruction on the
    recording's own STFT magnitude (looked up by the mel it is given)."""

    def __init__(self, run: VocoderRun, utterances: list[Utterance], iterations: int) -> None:
        self.generator = run.generator.cpu()
        self.generator.phase_iters = iterations
        self.sample_rate = run.settings.sample_rate
        self.magnitudes = {
            u.mel.tobytes(): stft(torch.from_numpy(u.wave)[None], run.settings).abs() for u in utterances
        }

    @torch.no_grad()
    def __call__(self, log_mel: torch.Tensor) -> torch.Tensor:
        return self.generator.phase_from_magnitude(self.magnitudes[log_mel.numpy().tobytes()])[0]


def ceiling(args: argparse.Namespace, params: dict[str, Any], cepstrum: Any, argv: list[str] | None) -> int:
    """Scores of phase reconstruction from the true magnitudes, and of Griffin-Lim on the mel."""
    ecfg = eval_config(params)
    cfg = dataclasses.replace(vocoder_config(params), device="cpu", init_from=None)
    with tempfile.TemporaryDirectory() as tmp:
        run = VocoderRun(Path(args.store), Path(args.manifest), cfg, Path(tmp), Path(tmp) / "live", False, None)
        run.setup()
        utterances = run.val_set[: args.utterances]
        rows = [
            {
                "vocoder": f"griffin_lim on the mel, {ecfg.griffin_lim_iters} iterations",
                **score(GriffinLimVocoder(run.settings, ecfg.griffin_lim_iters), utterances, cepstrum),
            }
        ]
        print(rows[-1], flush=True)
        for iterations in (int(i) for i in args.iterations.split(",")):
            vocoder = TrueMagnitude(run, utterances, iterations)
            rows.append({"vocoder": f"true magnitude, {iterations} iterations", **score(vocoder, utterances, cepstrum)})
            print(rows[-1], flush=True)
    write_json(
        Path(args.out),
        {
            "what": "copy synthesis of validation recordings: the generator's phase reconstruction on the true STFT magnitude",
            "command": "python -m benchmarks.vocoder " + " ".join(argv if argv is not None else sys.argv[1:]),
            "utterances": args.utterances,
            "momentum": cfg.momentum,
            "rows": rows,
        },
    )
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
