"""The run half of `hamgara doctor`: the training history dvclive wrote.

LR schedule as applied, skipped non-finite steps, plateau and early-stop events, the loss
slope, the train/validation gap, throughput and GPU utilisation; the autoregressive
decoder's attention against the durations over training; free-running synthesis against
teacher forcing (exposure bias) and stops on time; and the configured train.lr against
the suggestion of `hamgara lr-find` (reports/lr_find.json), when one was made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.evaluation.history import read_series
from pipeline.evaluation.verdicts import OK, PROBLEM, WARNING, Check


def check_run(live_dir: Path, overfit_rise: float = 0.05, min_gpu_utilization: float = 70.0) -> list[Check]:
    """The training history: skips, LR schedule, plateau/early stop, slope, overfitting, throughput."""
    metrics = live_dir / "plots" / "metrics"
    steps, loss = read_series(metrics / "train" / "loss.tsv")
    if len(loss) == 0:
        return [Check("run", "training history", PROBLEM, f"no training history in {live_dir}", "run dvc repro train")]
    checks = [_non_finite_steps(metrics, steps), _learning_rate(metrics, steps)]
    checks += _early_stop(metrics, steps) + _slope(metrics, loss) + _gap(metrics, overfit_rise)
    return checks + _throughput(metrics, min_gpu_utilization)


def _non_finite_steps(metrics: Path, steps: np.ndarray) -> Check:
    _, skipped = read_series(metrics / "train" / "skipped_steps.tsv")
    n_skipped = int(skipped[-1]) if len(skipped) else 0
    return Check(
        "run",
        "non-finite steps",
        WARNING if n_skipped else OK,
        f"{n_skipped} of {int(steps[-1]) + 1} steps skipped for a non-finite loss or gradient",
        "lower train.lr or raise train.warmup_steps; with fp16 try bf16 or train.mixed_precision: false"
        if n_skipped
        else "",
    )


def _learning_rate(metrics: Path, steps: np.ndarray) -> Check:
    _, lr = read_series(metrics / "train" / "lr.tsv")
    _, reduced = read_series(metrics / "val" / "lr_reduced.tsv")
    events = int(reduced.sum()) if len(reduced) else 0
    too_low = bool(len(lr)) and lr.max() < 1e-5
    return Check(
        "run",
        "learning rate",
        WARNING if too_low else OK,
        f"applied LR from {lr.min():.2e} to {lr.max():.2e} (peak at step {int(steps[int(np.argmax(lr))])}); "
        f"{events} plateau reduction(s)"
        if len(lr)
        else "no LR logged",
        "the peak LR is very low: raise train.lr" if too_low else "",
    )


def _early_stop(metrics: Path, steps: np.ndarray) -> list[Check]:
    _, stop = read_series(metrics / "val" / "stop.tsv")
    if not (len(stop) and stop[-1] > 0):
        return []
    return [
        Check(
            "run", "early stopping", OK, f"stopped early at step {int(steps[-1]) + 1}: val_mel_loss stopped improving"
        )
    ]


def _slope(metrics: Path, loss: np.ndarray) -> list[Check]:
    _, slope = read_series(metrics / "train" / "loss_slope.tsv")
    if not len(slope):
        return []
    rel = slope[-1] / max(abs(float(np.median(loss[-50:]))), 1e-12)
    return [
        Check(
            "run",
            "convergence slope",
            OK if slope[-1] < 0 else WARNING,
            f"smoothed loss changes {slope[-1]:+.2e} per step ({rel:+.2e} relative) over the last window",
            ""
            if slope[-1] < 0
            else "the loss no longer falls: the LR schedule has run down or the model is at capacity",
        )
    ]


def _gap(metrics: Path, overfit_rise: float) -> list[Check]:
    vsteps, val = read_series(metrics / "val_mel_loss.tsv")
    if len(val) < 3:
        return []
    best = int(np.argmin(val))
    rise = (val[-1] - val[best]) / max(val[best], 1e-12)
    return [
        Check(
            "run",
            "train/validation gap",
            WARNING if rise > overfit_rise else OK,
            f"val_mel_loss best {val[best]:.4f} at step {int(vsteps[best])}, last {val[-1]:.4f} ({rise:+.1%})",
            "validation got worse while training went on: overfitting; use models/best.pt, more data, or more dropout"
            if rise > overfit_rise
            else "",
        )
    ]


def _throughput(metrics: Path, min_gpu_utilization: float) -> list[Check]:
    _, fps = read_series(metrics / "train" / "frames_per_s.tsv")
    _, util = read_series(metrics / "train" / "gpu_utilization.tsv")
    if len(util):
        low = float(np.median(util)) < min_gpu_utilization
        return [
            Check(
                "run",
                "GPU utilisation",
                WARNING if low else OK,
                f"median GPU utilisation {np.median(util):.0f}%, {np.median(fps):.0f} frames/s",
                "the GPU waits for data: raise train.num_workers or train.batch_size" if low else "",
            )
        ]
    if len(fps):
        return [Check("run", "throughput", OK, f"median {np.median(fps):.0f} frames/s (CPU run: no GPU utilisation)")]
    return []


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


def check_free_running(live_dir: Path, max_gap_share: float = 0.5, min_on_time: float = 0.9) -> list[Check]:
    """Free-running synthesis at validation (the `free/*` figures) against teacher forcing:
    "exposure bias" when, at the last validation, the free-running mel distance exceeds the
    teacher-forced one by more than `max_gap_share` of it (the evidence says how the gap moved
    since the first validation: grown while the teacher-forced loss fell is the classic sign);
    and how often utterances ended on time (the stop token, or for the parallel decoder the
    predicted length)."""
    metrics = live_dir / "plots" / "metrics" / "free"
    steps, gap = read_series(metrics / "exposure_gap.tsv")
    if len(gap) == 0:
        return []
    _, forced = read_series(metrics / "teacher_forced_distance.tsv")
    _, free = read_series(metrics / "mel_distance.tsv")
    _, on_time = read_series(metrics / "stop_on_time.tsv")
    _, never = read_series(metrics / "stop_never.tsv")
    drifts = gap[-1] > max_gap_share * forced[-1]
    trend = "grown from" if gap[-1] > gap[0] else "down from"
    evidence = (
        f"free-running mel distance {free[-1]:.3f} against {forced[-1]:.3f} teacher-forced at step "
        f"{int(steps[-1])} (gap {gap[-1]:+.3f}, {trend} {gap[0]:+.3f} at step {int(steps[0])})"
    )
    late = on_time[-1] < min_on_time
    return [
        Check(
            "model",
            "free-running synthesis",
            WARNING if drifts else OK,
            ("exposure bias: " if drifts else "") + evidence,
            "the decoder drifts on its own output: keep model.aligned_conditioning and "
            "train.scheduled_sampling on (both are by default); with them on, train longer or raise "
            "train.scheduled_sampling toward 1.0 (docs/measurements.md, 'Exposure bias')"
            if drifts
            else "",
        ),
        Check(
            "model",
            "utterances end on time",
            WARNING if late else OK,
            f"{on_time[-1]:.0%} of the free-running validation utterances ended on time at step {int(steps[-1])}; "
            f"the length cap was needed for {never[-1]:.0%}",
            "the stop token fires late or never: train longer, or raise train.stop_loss_weight" if late else "",
        ),
    ]


def check_unseen_words(live_dir: Path, max_ratio: float = 1.3) -> list[Check]:
    """Free-running synthesis of the unseen sentences (`free_unseen/*`, text whose words training
    never had) against the validation ones (`free/*`) at the last validation: a warning when the
    unseen sentences' mel distance is more than `max_ratio` times the in-grammar one (the bar
    issue 33 set for the WER gaps). Nothing to say of a run whose store has no unseen sentences."""
    metrics = live_dir / "plots" / "metrics"
    steps, unseen = read_series(metrics / "free_unseen" / "mel_distance.tsv")
    _, seen = read_series(metrics / "free" / "mel_distance.tsv")
    if len(unseen) == 0 or len(seen) == 0:
        return []
    ratio = float(unseen[-1] / seen[-1]) if seen[-1] > 0 else float("inf")
    worse = ratio > max_ratio
    return [
        Check(
            "model",
            "unseen words",
            WARNING if worse else OK,
            f"free-running mel distance {unseen[-1]:.3f} on the unseen sentences against {seen[-1]:.3f} on the "
            f"validation ones at step {int(steps[-1])} ({ratio:.2f}x; {max_ratio:.2f}x is the bar)",
            "the voice reads words its training text never had worse than the ones it had: broaden the recording "
            "script (hamgara doctor --text your_script.txt lists the diphones it lacks; docs/corpus.md) and read "
            "wer.unseen in reports/eval.json with its interval"
            if worse
            else "",
        )
    ]


def check_lr_find(report: dict[str, Any] | None, configured_lr: float | None, max_ratio: float = 5.0) -> list[Check]:
    """train.lr against the LR range test's suggestion: a warning when it is more than
    `max_ratio` times away either way. `configured_lr` is the params' train.lr (None: the one
    the report was made with). Without a report, an ok line saying how to get one: the sweep
    takes minutes, so doctor never runs it itself."""
    name = "learning rate range test"
    if report is None:
        return [Check("run", name, OK, "no reports/lr_find.json: run `hamgara lr-find` for a suggested train.lr")]
    suggested = float(report["suggested_lr"])
    lr = float(report["configured_lr"] if configured_lr is None else configured_lr)
    ratio = lr / suggested
    far = ratio > max_ratio or ratio < 1.0 / max_ratio
    side = f"{ratio:.2g}x above" if ratio >= 1 else f"{1 / ratio:.2g}x below"
    return [
        Check(
            "run",
            name,
            WARNING if far else OK,
            # rule_text starts with the rule's name (suggest_lr writes it so)
            f"train.lr {lr:.1e} is {side} the suggestion {suggested:.1e} of hamgara lr-find ({report['rule_text']})",
            f"dvc exp run -S train.lr={suggested:.1e}" if far else "",
        )
    ]
