"""A new voice from minutes of audio: fine-tuning a base model against training from scratch.

    python -m benchmarks.finetune --base models/best.pt [--voice kal_diphone] [--minutes 2,5,10]
        [--seeds 1234,7] [--eval-at 250,500,1000,2000] [--jobs 2] [--threads 1] [--work DIR]
    python -m benchmarks.finetune --table

1. **The new voice**: the demo corpus builder (pipeline/demo/) with `--voice` and a sentence seed
   of its own, so neither the voice nor the sentences are the base's; `--utterances` of them,
   built once under --work.
2. **Held out**: the utterances the split puts in validation (`features.val_share` and
   `split_salt` of params.yaml, by id hash), the same in every size, scored by the evaluate
   stage: WER of free-running synthesis against Griffin-Lim-vocoded truth, MCD.
3. **Each size** (`--minutes`): a corpus of the held-out utterances plus the first training
   utterances (by id) up to that many minutes of audio; validate and precompute run on it once
   (the aligner trains on that voice alone), and every run of that size hard-links the result.
4. **Each run** (size x method x seed): a copy of the checkout with setup.sh's CPU_DEMO
   overrides, the base's model shape (decoder, reduction, aligned conditioning, size preset, from
   its checkpoint) and the seed. `finetune` adds `train.init_from=pretrained/base.pt` and the
   preset `FINETUNE`; `scratch` starts from random weights. Both train to each `--eval-at` step in
   turn (a larger train.max_steps resumes the finished run: "train longer"), and evaluate after
   each — the weights of that step (`models/last.pt`), not best.pt — so the curve costs one run,
   not one per point.

Per run: the points (step, train seconds, WER gap, MCD), the first step and train seconds at
which the WER gap is at most `--target` (issue 18: 0.25), and the last point. `--stop-at-target`
ends a run there: the question is how many steps each method needs, and a fine-tune that is done
at its first point would otherwise spend the scratch run's whole budget. Results in
benchmarks/results/finetune.json, written after every run; a rerun skips finished runs, except
that more `--eval-at` steps extend a run that has not reached the target: it trains on from its
last point (its folder's last.pt) and keeps the points already measured.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import soundfile as sf
import yaml

from benchmarks.decoders import cpu_demo, prepare, set_param
from pipeline.common.atomic import write_json

REPO = Path(__file__).resolve().parents[1]
METHODS = ("finetune", "scratch")
# The fine-tuning preset: what a fine-tune changes beyond init_from (docs/fine-tuning.md, "Fine-tuning a new
# voice", has the measurement). A short warm-up: the base's weights need no careful start. Scheduled
# sampling at full probability from the first step: a warm start resets the step count, so the
# ramp would start over and the base, which ended its training on its own predictions, would be
# taught teacher-forced again (exposure bias, issue 15). LR 1e-3: what it was measured at (the
# demo's LR then; the demo trains at 1.7e-3 since, unmeasured for fine-tuning).
FINETUNE = {"train.lr": "1e-3", "train.warmup_steps": "50", "train.scheduled_sampling_steps": "0"}


def build_voice(work: Path, voice: str, seed: int, utterances: int) -> Path:
    """The new voice's whole corpus (built once; reused when its corpus.json says the same)."""
    from pipeline.config import data_config, load_params
    from pipeline.demo.build import build_demo_corpus

    out = work / f"voice-{voice}-s{seed}-{utterances}"
    if (out / "corpus.json").is_file():
        return out
    demo = data_config(load_params(REPO / "params.yaml")).demo
    cfg = dataclasses.replace(demo, voice=voice, seed=seed, utterances=utterances)
    build_demo_corpus(cfg, out, workers=os.cpu_count() or 1)
    return out


def rows_of(corpus: Path) -> list[list[str]]:
    with (corpus / "metadata.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f, delimiter="|", quoting=csv.QUOTE_NONE))


def choose(corpus: Path, minutes: float, val_share: float, salt: str) -> list[list[str]]:
    """The held-out rows plus the first training rows (by id) up to `minutes` of audio."""
    from pipeline.features.split import VAL, split_of

    rows = sorted(rows_of(corpus), key=lambda r: r[0])
    held = [r for r in rows if split_of(r[0], val_share, salt) == VAL]
    chosen, seconds = [], 0.0
    for r in rows:
        if split_of(r[0], val_share, salt) == VAL:
            continue
        length = sf.info(str(corpus / "wavs" / f"{r[0]}.wav")).duration
        if seconds + length > minutes * 60:
            break
        chosen.append(r)
        seconds += length
    if seconds < minutes * 60 * 0.9:
        raise SystemExit(
            f"{corpus}: only {seconds / 60:.1f} min of training audio for {minutes} min; raise --utterances"
        )
    return held + chosen


def subset(corpus: Path, rows: list[list[str]], out: Path) -> Path:
    """A corpus folder of those rows: metadata.csv, wavs/ and alignments/ hard-linked."""
    if out.exists():
        shutil.rmtree(out)
    (out / "wavs").mkdir(parents=True)
    (out / "alignments").mkdir()
    with (out / "metadata.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f, delimiter="|", quoting=csv.QUOTE_NONE, lineterminator="\n").writerows(rows)
    for r in rows:
        os.link(corpus / "wavs" / f"{r[0]}.wav", out / "wavs" / f"{r[0]}.wav")
        aligned = corpus / "alignments" / f"{r[0]}.json"
        if aligned.is_file():
            os.link(aligned, out / "alignments" / f"{r[0]}.json")
    return out


def base_overrides(base: Path) -> dict[str, str]:
    """The model params that give a run the base checkpoint's shape."""
    import torch

    from model.config import SIZE_KEYS, ModelConfig

    cfg = torch.load(base, map_location="cpu", weights_only=True)["model_config"]
    sizes = {k: cfg[k] for k in SIZE_KEYS}
    out = {f"model.sizes.tiny.{k}": str(v) for k, v in sizes.items()}
    out.update({"model.size": "tiny", "model.decoder": cfg["decoder"], "model.reduction": str(cfg["reduction"])})
    out["model.aligned_conditioning"] = "true" if cfg.get("aligned_conditioning") else "false"
    # A checkpoint from before the text convolutions has none: ModelConfig's defaults say so.
    defaults = {f.name: f.default for f in dataclasses.fields(ModelConfig)}
    for key in ("text_conv_layers", "text_conv_kernel"):
        out[f"model.{key}"] = str(cfg.get(key, defaults[key]))
    return out


def run_stage(folder: Path, stage: str, env: dict[str, str]) -> None:
    with (folder / "run.log").open("a") as log:
        proc = subprocess.run([sys.executable, "-m", f"pipeline.{stage}"], cwd=folder, env=env, stdout=log, stderr=log)
    if proc.returncode:
        raise RuntimeError(f"{folder}: {stage} exited {proc.returncode}; see {folder / 'run.log'}")


def prepare_size(work: Path, corpus: Path, minutes: float, threads: int) -> Path:
    """validate + precompute of one size's corpus, once; the folder whose data/ runs link."""
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    feats = params["features"]
    folder = work / f"size-{minutes:g}min"
    if (folder / "data" / "features.zarr").is_dir():
        return folder
    rows = choose(corpus, minutes, feats["val_share"], feats["split_salt"])
    sub = subset(corpus, rows, work / f"corpus-{minutes:g}min")
    prepare(folder, {"data.corpus": str(sub)}, data=None)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    for stage in ("validate", "precompute"):
        run_stage(folder, stage, env)
    return folder


def run_overrides(job: dict[str, Any]) -> dict[str, str]:
    """A new run's params: the CPU demo, the base's shape, its seed and corpus, its method."""
    overrides = {**cpu_demo(), **job["model"], "train.seed": str(job["seed"]), "data.corpus": job["corpus"]}
    # Each point scores the weights of that step: best.pt is chosen by the teacher-forced loss,
    # which scheduled sampling's ramp makes worse while free-running speech gets better (issue 15),
    # so it can stay at an early step and the curve would not say when the target was reached.
    overrides["eval.checkpoint"] = "models/last.pt"
    if job["method"] == "finetune":
        overrides.update({**FINETUNE, "train.init_from": "pretrained/base.pt"})
    overrides.update(job["sets"])
    return overrides


def one_run(job: dict[str, Any]) -> dict[str, Any]:
    """Train one (size, method, seed) to each eval point and evaluate there; its figures."""
    folder: Path = job["folder"]
    if job["prior"]:
        # Extending a finished run: its folder holds last.pt at its last point; train resumes
        # from there ("train longer") with the run's own params, and its points are kept.
        overrides, points = job["prior"]["overrides"], list(job["prior"]["points"])
        if not (folder / "models" / "last.pt").is_file():
            raise SystemExit(f"{folder}: no models/last.pt to extend; remove its entry from the results to rerun it")
    else:
        overrides, points = run_overrides(job), []
        prepare(folder, overrides, data=job["size_folder"] / "data")
        if job["method"] == "finetune":
            shutil.copy(job["base"], folder / "pretrained" / "base.pt")
    env = {**os.environ, "OMP_NUM_THREADS": str(job["threads"]), "MKL_NUM_THREADS": str(job["threads"])}
    for step in job["eval_at"]:
        if points and step <= points[-1]["step"]:
            continue
        if job["stop_at_target"] and first_reaching(points, job["target"]):
            break  # the step count to the target is known; more steps only cost time
        params = yaml.safe_load((folder / "params.yaml").read_text(encoding="utf-8"))
        set_param(params, "train.max_steps", str(step))
        (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
        run_stage(folder, "train", env)
        run_stage(folder, "evaluate", env)
        ev = json.loads((folder / "reports" / "eval.json").read_text())
        live = json.loads((folder / "dvclive" / "metrics.json").read_text())
        points.append(
            {"step": step, "train_seconds": live.get("wall_seconds"), "wer_gap": ev["wer"]["gap"], "mcd": ev["mcd"]}
        )
    reached = first_reaching(points, job["target"])
    return {
        "minutes": job["minutes"],
        "method": job["method"],
        "seed": job["seed"],
        "overrides": overrides,
        "points": points,
        "steps_to_target": reached["step"] if reached else None,
        "seconds_to_target": reached["train_seconds"] if reached else None,
        "final": points[-1],
    }


def extends(prior: dict[str, Any], eval_at: list[int], target: float, stop_at_target: bool) -> bool:
    """Whether a finished run has points still to measure: eval steps past its last one, unless
    it already reached the target and runs stop there."""
    if stop_at_target and first_reaching(prior["points"], target):
        return False
    return max(eval_at) > prior["points"][-1]["step"]


def first_reaching(points: list[dict[str, Any]], target: float) -> dict[str, Any] | None:
    """The first evaluated point whose WER gap is at most `target` (None if none is)."""
    return next((p for p in points if p["wer_gap"] is not None and p["wer_gap"] <= target), None)


def table(results: list[dict[str, Any]], target: float) -> str:
    lines = [
        f"| minutes | method | seed | steps to gap <= {target} | train s to it | gap per eval step | final MCD (dB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(results, key=lambda r: (r["minutes"], r["method"], r["seed"])):
        curve = ", ".join(f"{p['step']}: {p['wer_gap']:.2f}" for p in r["points"] if p["wer_gap"] is not None)
        mcd = r["final"]["mcd"]
        steps = r["steps_to_target"] if r["steps_to_target"] is not None else "not reached"
        seconds = f"{r['seconds_to_target']:.0f}" if r["seconds_to_target"] is not None else "–"
        lines.append(
            f"| {r['minutes']:g} | {r['method']} | {r['seed']} | {steps} | {seconds} | {curve} | "
            f"{mcd['model']:.2f} / {mcd['vocoder_ceiling']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=Path, default=REPO / "models" / "best.pt", help="the base checkpoint")
    ap.add_argument("--voice", default="kal_diphone", help="festival voice of the new speaker")
    ap.add_argument("--voice-seed", type=int, default=99, help="sentence seed of the new voice's corpus")
    ap.add_argument("--utterances", type=int, default=500, help="the new voice's corpus (held-out + training)")
    ap.add_argument("--minutes", default="2,5,10")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--seeds", default="1234,7")
    ap.add_argument("--eval-at", default="250,500,1000,2000", help="steps at which each run is evaluated")
    ap.add_argument("--target", type=float, default=0.25, help="WER gap above vocoded truth that counts as reached")
    ap.add_argument(
        "--stop-at-target",
        action="store_true",
        help="end a run at the first eval point that reaches --target (its later points are not measured)",
    )
    ap.add_argument("--set", dest="sets", action="append", default=[], help="KEY=VALUE for every run (after the rest)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", type=Path, default=Path("/tmp/hamgara-finetune"))
    ap.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results" / "finetune.json")
    ap.add_argument("--table", action="store_true", help="print the table of finished runs and exit")
    args = ap.parse_args(argv)
    results: list[dict[str, Any]] = json.loads(args.results.read_text()) if args.results.is_file() else []
    if args.table:
        print(table(results, args.target))
        return 0
    if not args.base.is_file():
        ap.error(f"{args.base}: no base checkpoint (train one: ./setup.sh repro, then pass its models/best.pt)")
    args.work.mkdir(parents=True, exist_ok=True)
    corpus = build_voice(args.work, args.voice, args.voice_seed, args.utterances)
    model = base_overrides(args.base)
    done = {(r["minutes"], r["method"], r["seed"]): r for r in results}
    eval_at = [int(step) for step in args.eval_at.split(",")]
    jobs = []
    for minutes in [float(m) for m in args.minutes.split(",")]:
        size_folder = prepare_size(args.work, corpus, minutes, args.threads * args.jobs)
        for method in args.methods.split(","):
            for seed in [int(s) for s in args.seeds.split(",")]:
                prior = done.get((minutes, method, seed))
                if prior and not extends(prior, eval_at, args.target, args.stop_at_target):
                    continue
                jobs.append(
                    {
                        "minutes": minutes,
                        "method": method,
                        "seed": seed,
                        "folder": args.work / f"{minutes:g}min-{method}-s{seed}",
                        "size_folder": size_folder,
                        "corpus": str(args.work / f"corpus-{minutes:g}min"),
                        "base": args.base,
                        "model": model,
                        "eval_at": eval_at,
                        "prior": prior,
                        "target": args.target,
                        "stop_at_target": args.stop_at_target,
                        "threads": args.threads,
                        "sets": dict(item.split("=", 1) for item in args.sets),
                    }
                )
    started = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        for result in pool.map(one_run, jobs):
            key = (result["minutes"], result["method"], result["seed"])
            results = [r for r in results if (r["minutes"], r["method"], r["seed"]) != key] + [result]
            write_json(args.results, results)
            print(table(results, args.target), flush=True)
    print(f"{len(jobs)} runs in {time.perf_counter() - started:.0f} s -> {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
