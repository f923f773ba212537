"""`hamgara doctor`: is my data right, did my run go right? A review a person can act on.

Reads what the pipeline already wrote — validate's and precompute's reports, features.zarr,
the checkpoint and the dvclive history — and turns it into checks, each with a verdict
(ok / warning / problem), the evidence and the fix. Writes reports/doctor.md and
reports/doctor.json.

The data: rejections by reason, silence and clipping, sample-rate mix, alignment-score
outliers with the ids to listen to, symbol coverage, lengths against the model's limits, mel
statistics, normalisation in the checkpoint against the store. The model (pipeline/
model_checks.py, on a batch of your training split): overfitting one batch, gradient flow per
module, each loss term's share of the gradient; the attention's alignment error over
training. The run: LR schedule as applied, skipped non-finite steps, plateau and early-stop
events, the loss slope, train/validation gap, throughput and GPU utilisation.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.common.atomic import write_json, write_text
from pipeline.common.stage import EXIT_VERDICT, run_stage
from pipeline.data.rejections import FIXES
from pipeline.evaluation.history import read_series

OK, WARNING, PROBLEM = "ok", "warning", "problem"

@dataclass
class Check:
    """One verdict of the review."""

    section: str
    name: str
    verdict: str
    evidence: str
    fix: str = ""


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def check_validation(report: dict[str, Any] | None, max_rejected_share: float = 0.05) -> list[Check]:
    """Rejections by reason, sample-rate mix, clipping warnings (reports/validation.json)."""
    if report is None:
        return [
            Check("data", "validation report", PROBLEM, "reports/validation.json is missing", "run dvc repro validate")
        ]
    checks = []
    share, reasons = report["rejected_share"], report.get("rejected_by_reason", {})
    if report["rejected"] == 0:
        checks.append(Check("data", "rejected rows", OK, f"all {report['rows']} rows accepted"))
    else:
        worst = sorted(reasons.items(), key=lambda kv: -kv[1])
        evidence = f"{report['rejected']} of {report['rows']} rows rejected ({share:.1%}): " + ", ".join(
            f"{k} {v}" for k, v in worst
        )
        fix = "; ".join(f"{k}: {FIXES.get(k, 'see reports/rejected.csv')}" for k, _ in worst)
        checks.append(
            Check(
                "data",
                "rejected rows",
                PROBLEM if share > max_rejected_share else WARNING,
                evidence + " (reports/rejected.csv lists each with its line)",
                fix,
            )
        )
    silence = {k: v for k, v in reasons.items() if k in ("silent", "excess_silence", "empty_audio")}
    clipping = reasons.get("clipped", 0) + report.get("warnings_by_kind", {}).get("some_clipping", 0)
    checks.append(
        Check(
            "data",
            "silence and clipping",
            WARNING if silence or clipping else OK,
            f"silent/mostly silent rows: {sum(silence.values())}; clipped or partly clipped: {clipping}",
            "see reports/rejected.csv and reports/warnings.csv" if silence or clipping else "",
        )
    )
    rates = report.get("sample_rates", {})
    if len(rates) > 1:
        checks.append(
            Check(
                "data",
                "sample rates",
                WARNING,
                "mixed sample rates: " + ", ".join(f"{r} Hz x{n}" for r, n in sorted(rates.items())),
                "precompute resamples them all; make sure the low-rate files are not band-limited speech "
                "that the model will learn to imitate",
            )
        )
    else:
        checks.append(Check("data", "sample rates", OK, f"one sample rate: {', '.join(rates) or '-'} Hz"))
    return checks


def check_alignment(report: dict[str, Any] | None) -> list[Check]:
    """Alignment-score outliers (reports/precompute.json `align`)."""
    if report is None:
        return [
            Check(
                "data", "precompute report", PROBLEM, "reports/precompute.json is missing", "run dvc repro precompute"
            )
        ]
    align = report.get("align", {})
    flagged = align.get("flagged_ids", [])
    if not flagged:
        return [
            Check(
                "data",
                "alignment outliers",
                OK,
                f"no utterance aligns badly (median score {align.get('score_median', float('nan')):.3f})",
            )
        ]
    share = len(flagged) / max(report["utterances"], 1)
    return [
        Check(
            "data",
            "alignment outliers",
            PROBLEM if share > 0.05 else WARNING,
            f"{len(flagged)} utterances ({share:.1%}) align far worse than the rest; listen to: {', '.join(flagged[:10])}",
            "a badly aligned utterance usually has the wrong transcript: fix or drop it (reports/align_flagged.csv)",
        )
    ]


def check_store(store_path: Path, min_symbol_count: int, max_frames: int) -> list[Check]:
    """Symbol coverage in the training split, lengths against the model's limit, mel statistics."""
    from pipeline.features.split import TRAIN
    from pipeline.features.store import FeatureStore

    if not store_path.exists():
        return [Check("data", "features", PROBLEM, f"{store_path} is missing", "run dvc repro precompute")]
    store = FeatureStore(store_path)
    symbols = store.attrs["symbols"]
    train = np.flatnonzero(store.array("split") == TRAIN)
    counts = np.zeros(len(symbols), dtype=np.int64)
    for i in train:
        counts += np.bincount(store.tokens(int(i)).astype(np.int64), minlength=len(symbols))
    rare = [(symbols[k], int(counts[k])) for k in range(1, len(symbols)) if counts[k] < min_symbol_count]
    checks = [
        Check(
            "data",
            "symbol coverage",
            WARNING if rare else OK,
            (
                f"{len(rare)} of {len(symbols) - 1} symbols occur fewer than {min_symbol_count} times in training: "
                + ", ".join(f"{s!r} x{n}" for s, n in sorted(rare, key=lambda x: x[1])[:15])
            )
            if rare
            else f"every symbol occurs at least {min_symbol_count} times in training",
            "the model will say rare symbols badly: add sentences that contain them" if rare else "",
        )
    ]
    frames = store.frames()
    longest = int(frames.max()) if len(frames) else 0
    checks.append(
        Check(
            "data",
            "utterance lengths",
            PROBLEM if longest > max_frames else OK,
            f"frames per utterance: median {int(np.median(frames))}, longest {longest}; the model's position table holds {max_frames}",
            "lower data.validate.max_duration so nothing is longer than the model can place"
            if longest > max_frames
            else "",
        )
    )
    std = np.asarray(store.attrs["mel_std"], dtype=np.float64)
    flat = np.flatnonzero(std < 1e-3)
    checks.append(
        Check(
            "data",
            "mel statistics",
            PROBLEM if len(flat) else OK,
            f"{len(flat)} constant mel channels {flat.tolist()[:10]}"
            if len(flat)
            else f"no constant mel channel (std {std.min():.3f}..{std.max():.3f})",
            "check features.fmax against the sample rate: channels above Nyquist carry nothing" if len(flat) else "",
        )
    )
    return checks


def check_checkpoint(checkpoint: Path, store_path: Path) -> list[Check]:
    """The checkpoint normalizes and reads text the way the features were made."""
    if not checkpoint.is_file() or not store_path.exists():
        return [
            Check(
                "data",
                "checkpoint vs features",
                WARNING,
                f"{checkpoint} or {store_path} is missing: not compared",
                "train first (dvc repro train)",
            )
        ]
    import torch

    from pipeline.features.store import FeatureStore

    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    attrs = FeatureStore(store_path).attrs
    diffs = [k for k in ("mel_mean", "mel_std") if not np.allclose(ckpt[k], attrs[k])]
    diffs += [k for k in ("symbols", "mel", "frontend") if ckpt[k] != attrs[k]]
    return [
        Check(
            "data",
            "checkpoint vs features",
            PROBLEM if diffs else OK,
            f"{checkpoint} differs from {store_path} in: {', '.join(diffs)}"
            if diffs
            else f"{checkpoint} normalizes mels and reads text exactly as the features were made",
            "the features changed after training: retrain (dvc repro train)" if diffs else "",
        )
    ]


def check_run(live_dir: Path, overfit_rise: float = 0.05, min_gpu_utilization: float = 70.0) -> list[Check]:
    """The training history: skips, LR schedule, plateau/early stop, slope, overfitting, throughput."""
    metrics = live_dir / "plots" / "metrics"
    steps, loss = read_series(metrics / "train" / "loss.tsv")
    if len(loss) == 0:
        return [Check("run", "training history", PROBLEM, f"no training history in {live_dir}", "run dvc repro train")]
    checks = []
    _, skipped = read_series(metrics / "train" / "skipped_steps.tsv")
    n_skipped = int(skipped[-1]) if len(skipped) else 0
    checks.append(
        Check(
            "run",
            "non-finite steps",
            WARNING if n_skipped else OK,
            f"{n_skipped} of {int(steps[-1]) + 1} steps skipped for a non-finite loss or gradient",
            "lower train.lr or raise train.warmup_steps; with fp16 try bf16 or train.mixed_precision: false"
            if n_skipped
            else "",
        )
    )
    _, lr = read_series(metrics / "train" / "lr.tsv")
    _, reduced = read_series(metrics / "val" / "lr_reduced.tsv")
    events = int(reduced.sum()) if len(reduced) else 0
    checks.append(
        Check(
            "run",
            "learning rate",
            WARNING if len(lr) and lr.max() < 1e-5 else OK,
            f"applied LR from {lr.min():.2e} to {lr.max():.2e} (peak at step {int(steps[int(np.argmax(lr))])}); "
            f"{events} plateau reduction(s)"
            if len(lr)
            else "no LR logged",
            "the peak LR is very low: raise train.lr" if len(lr) and lr.max() < 1e-5 else "",
        )
    )
    _, stop = read_series(metrics / "val" / "stop.tsv")
    if len(stop) and stop[-1] > 0:
        checks.append(
            Check(
                "run",
                "early stopping",
                OK,
                f"stopped early at step {int(steps[-1]) + 1}: val_mel_loss stopped improving",
            )
        )
    _, slope = read_series(metrics / "train" / "loss_slope.tsv")
    if len(slope):
        rel = slope[-1] / max(abs(float(np.median(loss[-50:]))), 1e-12)
        checks.append(
            Check(
                "run",
                "convergence slope",
                OK if slope[-1] < 0 else WARNING,
                f"smoothed loss changes {slope[-1]:+.2e} per step ({rel:+.2e} relative) over the last window",
                ""
                if slope[-1] < 0
                else "the loss no longer falls: the LR schedule has run down or the model is at capacity",
            )
        )
    vsteps, val = read_series(metrics / "val_mel_loss.tsv")
    if len(val) >= 3:
        best = int(np.argmin(val))
        rise = (val[-1] - val[best]) / max(val[best], 1e-12)
        checks.append(
            Check(
                "run",
                "train/validation gap",
                WARNING if rise > overfit_rise else OK,
                f"val_mel_loss best {val[best]:.4f} at step {int(vsteps[best])}, last {val[-1]:.4f} ({rise:+.1%})",
                "validation got worse while training went on: overfitting; use models/best.pt, more data, or more dropout"
                if rise > overfit_rise
                else "",
            )
        )
    _, fps = read_series(metrics / "train" / "frames_per_s.tsv")
    _, util = read_series(metrics / "train" / "gpu_utilization.tsv")
    if len(util):
        low = float(np.median(util)) < min_gpu_utilization
        checks.append(
            Check(
                "run",
                "GPU utilisation",
                WARNING if low else OK,
                f"median GPU utilisation {np.median(util):.0f}%, {np.median(fps):.0f} frames/s",
                "the GPU waits for data: raise train.num_workers or train.batch_size" if low else "",
            )
        )
    elif len(fps):
        checks.append(
            Check("run", "throughput", OK, f"median {np.median(fps):.0f} frames/s (CPU run: no GPU utilisation)")
        )
    return checks


def check_model(
    params: dict[str, Any],
    store_path: Path,
    overfit_steps: int,
    overfit_lr: float,
    checkpoint: Path | None = None,
    batch_size: int = 8,
    overfit_ratio: float = 0.5,
    dominant_share: float = 0.9,
    vanishing_share: float = 0.01,
) -> list[Check]:
    """Overfit one batch of the training split and gradient flow per module (a fresh model
    built from params.yaml `model` and the store); the gradient share per loss term on the
    trained weights of `checkpoint` when it fits, else at initialisation (where KL has no
    gradient yet, so it is not judged). A healthy tiny model on the demo reaches x0.36 in 150
    steps; a broken mask or broken durations leave it near x1."""
    import torch

    from model.tts import HamgaraTTS
    from pipeline.config import store_model_config, train_config
    from pipeline.evaluation.model_checks import gradient_flow, gradient_shares, overfit_one_batch
    from pipeline.features.split import TRAIN
    from pipeline.features.store import FeatureStore
    from pipeline.training.checkpoint import model_state
    from pipeline.training.dataset import FeatureDataset, collate

    if not store_path.exists():
        return [Check("model", "model checks", PROBLEM, f"{store_path} is missing", "run dvc repro precompute")]
    cfg = store_model_config(params, FeatureStore(store_path).attrs)
    tcfg = train_config(params)
    settings, weights = tcfg.loss_settings(cfg.reduction), tcfg.loss_weights()
    dataset = FeatureDataset(store_path, [TRAIN])
    items = [dataset[k] for k in range(min(batch_size, len(dataset)))]
    batch, _ = collate(items)
    lengths = torch.tensor([it["mel"].shape[0] for it in items])
    true_frames = torch.arange(batch.mels.size(1))[None, :] < lengths[:, None]
    checks = []

    torch.manual_seed(0)
    shared, where = HamgaraTTS(cfg), "at initialisation"
    if checkpoint is not None and checkpoint.is_file():
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
        try:
            shared.load_state_dict(model_state(ckpt))
            where = f"on {checkpoint}"
        except RuntimeError:  # trained with other model params: judge the fresh model instead
            pass
    shares = gradient_shares(shared, batch, settings, weights)
    top = max(shares, key=shares.get)
    weak = [k for k, v in shares.items() if v < vanishing_share and not (k == "kl" and where == "at initialisation")]
    verdict = WARNING if shares[top] > dominant_share or weak else OK
    fix = []
    if shares[top] > dominant_share:
        fix.append(f"{top} drowns the other terms: lower train.{top}_loss_weight (or keep adaptive_loss_weights on)")
    for k in weak:
        if k == "kl":
            fix.append(
                "kl has no gradient: the style latent has collapsed to its prior and carries no style "
                "(harmless for one voice; for style control lower train.kl_loss_weight or lengthen kl_warmup_steps)"
            )
        else:
            fix.append(f"{k} barely trains: raise train.{k}_loss_weight")
    checks.append(
        Check(
            "model",
            "loss-term gradient shares",
            verdict,
            f"share of the gradient {where}: "
            + ", ".join(f"{k} {v:.0%}" for k, v in sorted(shares.items(), key=lambda kv: -kv[1])),
            "; ".join(fix),
        )
    )

    torch.manual_seed(0)
    norms = gradient_flow(HamgaraTTS(cfg), batch, settings, weights)
    dead = [k for k, v in norms.items() if v == 0.0]
    exploding = [k for k, v in norms.items() if not np.isfinite(v) or v > 1e4]
    checks.append(
        Check(
            "model",
            "gradient flow",
            PROBLEM if dead or exploding else OK,
            "gradient norm per module: " + ", ".join(f"{k} {v:.2e}" for k, v in norms.items()),
            (f"no gradient reaches {', '.join(dead)}: it is disconnected or masked away. " if dead else "")
            + (f"{', '.join(exploding)} explode: lower train.lr, check the input scale" if exploding else ""),
        )
    )

    torch.manual_seed(0)
    result = overfit_one_batch(HamgaraTTS(cfg), batch, settings, weights, overfit_steps, overfit_lr, true_frames)
    checks.append(
        Check(
            "model",
            "overfit one batch",
            OK if result.ratio <= overfit_ratio else PROBLEM,
            f"mel L1 on {batch.tokens.size(0)} training utterances: {result.initial:.3f} -> {result.final:.3f} "
            f"in {result.steps} steps (x{result.ratio:.2f}; needs x{overfit_ratio} or less)",
            ""
            if result.ratio <= overfit_ratio
            else "the model cannot memorise one batch: check the masks and that durations sum to the frames "
            "(a model bug or broken data, not a slow recipe)",
        )
    )
    return checks


def check_attention(live_dir: Path, max_error: float = 1.0) -> list[Check]:
    """The autoregressive decoder's attention follows the durations by the end of training."""
    steps, err = read_series(live_dir / "plots" / "metrics" / "val" / "alignment_error.tsv")
    if len(err) == 0:
        return []
    good = err[-1] <= max_error and err[-1] <= err[0]
    return [
        Check(
            "model",
            "attention alignment",
            OK if good else WARNING,
            f"attention vs durations: {err[0]:.2f} tokens at step {int(steps[0])}, {err[-1]:.2f} at step {int(steps[-1])}",
            "" if good else "the attention drifts from the durations: raise train.attention_loss_weight",
        )
    ]


def review(
    reports: Path,
    store_path: Path,
    checkpoint: Path,
    live_dir: Path,
    params: dict[str, Any] | None = None,
    min_symbol_count: int = 20,
    max_frames: int = 8192,
    overfit_steps: int = 150,
    overfit_lr: float = 1e-3,
) -> list[Check]:
    """Every check: the data, the model (when params are given), then the run."""
    checks = (
        check_validation(_read_json(reports / "validation.json"))
        + check_alignment(_read_json(reports / "precompute.json"))
        + check_store(store_path, min_symbol_count, max_frames)
        + check_checkpoint(checkpoint, store_path)
    )
    if params is not None:
        checks += check_model(params, store_path, overfit_steps, overfit_lr, checkpoint)
    return checks + check_attention(live_dir) + check_run(live_dir)


def render_markdown(checks: list[Check]) -> str:
    """reports/doctor.md: problems first, each with its evidence and fix."""
    order = {PROBLEM: 0, WARNING: 1, OK: 2}
    counts = {v: sum(c.verdict == v for c in checks) for v in (PROBLEM, WARNING, OK)}
    lines = [
        "# Hamgara doctor",
        "",
        f"{counts[PROBLEM]} problem(s), {counts[WARNING]} warning(s), {counts[OK]} ok.",
        "",
        "| | section | check | evidence | fix |",
        "|---|---|---|---|---|",
    ]
    mark = {PROBLEM: "PROBLEM", WARNING: "warning", OK: "ok"}
    for c in sorted(checks, key=lambda c: order[c.verdict]):
        lines.append(f"| {mark[c.verdict]} | {c.section} | {c.name} | {c.evidence} | {c.fix} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry of `hamgara doctor`."""
    ap = argparse.ArgumentParser(
        prog="hamgara doctor", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--reports", default="reports", help="validate/precompute reports; doctor.md and doctor.json go here"
    )
    ap.add_argument("--features", default="data/features.zarr")
    ap.add_argument("--checkpoint", default="models/best.pt")
    ap.add_argument("--run", default="dvclive", help="the training run's dvclive folder")
    ap.add_argument("--params", default="params.yaml", help="params file (the model checks build the model from it)")
    ap.add_argument("--min-symbol-count", type=int, default=20, help="symbols rarer than this in training are flagged")
    ap.add_argument(
        "--overfit-steps", type=int, default=150, help="steps of the overfit-one-batch check; 0 skips the model checks"
    )
    ap.add_argument("--overfit-lr", type=float, default=1e-3, help="learning rate of the overfit-one-batch check")
    args = ap.parse_args(argv)
    return run_stage("doctor", lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from pipeline.config import load_params

    params = load_params(args.params) if args.overfit_steps > 0 else None
    checks = review(
        Path(args.reports),
        Path(args.features),
        Path(args.checkpoint),
        Path(args.run),
        params,
        args.min_symbol_count,
        overfit_steps=args.overfit_steps,
        overfit_lr=args.overfit_lr,
    )
    write_json(Path(args.reports) / "doctor.json", {"checks": [asdict(c) for c in checks]})
    write_text(Path(args.reports) / "doctor.md", render_markdown(checks))
    problems = [c for c in checks if c.verdict == PROBLEM]
    for c in checks:
        if c.verdict != OK:
            print(f"{c.verdict}: {c.section}/{c.name}: {c.evidence}" + (f" -> {c.fix}" if c.fix else ""))
    print(
        f"doctor: {len(problems)} problem(s), {sum(c.verdict == WARNING for c in checks)} warning(s) -> "
        f"{args.reports}/doctor.md, {args.reports}/doctor.json"
    )
    return EXIT_VERDICT if problems else 0


if __name__ == "__main__":
    sys.exit(main())
