"""Figures a person can check by eye."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on training machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from model.config import WORD_SEPARATOR  # noqa: E402
from pipeline.common.atomic import atomic_path  # noqa: E402


def alignment_figure(path: Path, soft_log: np.ndarray, durations: np.ndarray, symbols: list[str], title: str) -> None:
    """The soft alignment (tokens x frames) with the hard Viterbi path drawn over it."""
    frames, n_tokens = soft_log.shape
    fig, ax = plt.subplots(figsize=(max(6.0, frames / 40), max(4.0, n_tokens / 6)))
    ax.imshow(np.exp(soft_log).T, origin="lower", aspect="auto", interpolation="none", cmap="magma")
    ends = np.cumsum(durations)
    starts = ends - durations
    for k, (s, e) in enumerate(zip(starts, ends)):
        ax.plot([s - 0.5, e - 0.5], [k, k], color="cyan", linewidth=1.2)
    ax.set_yticks(range(n_tokens))
    ax.set_yticklabels(["␣" if s == WORD_SEPARATOR else s for s in symbols], fontsize=6)
    ax.set_xlabel("mel frame")
    ax.set_ylabel("token")
    ax.set_title(title, fontsize=9)
    _save(fig, path)


def mel_comparison_figure(path: Path, panels: list[tuple[str, np.ndarray]], title: str) -> None:
    """Log-mels [frames, n_mels] stacked top to bottom on one colour scale (e.g. target,
    free-running prediction), each with its own time axis."""
    vmin = min(float(m.min()) for _, m in panels)
    vmax = max(float(m.max()) for _, m in panels)
    width = max(6.0, max(len(m) for _, m in panels) / 40)
    fig, axes = plt.subplots(len(panels), 1, figsize=(width, 2.2 * len(panels)), squeeze=False)
    for ax, (name, mel) in zip(axes[:, 0], panels):
        ax.imshow(mel.T, origin="lower", aspect="auto", interpolation="none", cmap="magma", vmin=vmin, vmax=vmax)
        ax.set_ylabel("mel bin")
        ax.set_title(name, fontsize=8)
    axes[-1, 0].set_xlabel("frame")
    fig.suptitle(title, fontsize=9)
    _save(fig, path)


def attention_figure(path: Path, attention: np.ndarray, expected: np.ndarray, symbols: list[str], title: str) -> None:
    """Decoder cross-attention (steps x tokens) with the token the durations say is speaking
    at each step drawn over it."""
    steps, n_tokens = attention.shape
    fig, ax = plt.subplots(figsize=(max(6.0, steps / 25), max(4.0, n_tokens / 6)))
    ax.imshow(attention.T, origin="lower", aspect="auto", interpolation="none", cmap="magma")
    ax.plot(np.arange(len(expected)), expected, color="cyan", linewidth=1.0, label="durations")
    ax.set_yticks(range(n_tokens))
    ax.set_yticklabels(["␣" if s == WORD_SEPARATOR else s for s in symbols], fontsize=6)
    ax.set_xlabel("decoder step")
    ax.set_ylabel("token")
    ax.legend(loc="upper left", fontsize=7)
    ax.set_title(title, fontsize=9)
    _save(fig, path)


def lr_find_figure(
    path: Path, lrs: list[float], losses: list[float], smoothed: list[float], marks: dict[str, float], title: str
) -> None:
    """The LR range test: the training loss (faint) and its smoothed curve against the LR on a
    log axis, with a vertical line at each marked LR (`marks`: label -> LR; the first is the
    suggestion, drawn solid, the others dashed)."""
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    ax.plot(lrs, losses, color="0.7", linewidth=0.8, label="loss")
    ax.plot(lrs, smoothed, color="C0", linewidth=1.8, label="smoothed loss")
    for k, (label, lr) in enumerate(marks.items()):
        ax.axvline(lr, color="C3" if k == 0 else "C2", linestyle="-" if k == 0 else "--", linewidth=1.2, label=label)
    ax.set_xscale("log")
    # The diverging tail would squash the useful part: the y axis ends a little above the
    # highest smoothed loss before the minimum (the whole curve when it never fell).
    if smoothed:
        best = int(np.argmin(smoothed))
        low, high = min(smoothed), max(smoothed[: best + 1] if best > 0 else smoothed)
        span = max(high - low, 1e-6 * max(abs(high), 1.0))
        ax.set_ylim(low - 0.05 * span, high + 0.25 * span)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.legend(loc="upper left", fontsize=7)
    ax.set_title(title, fontsize=9)
    _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> None:
    """Lay out, write atomically as PNG and free the figure (pyplot keeps every open one)."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
