"""Figures a person can check by eye."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on training machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pipeline.atomic import atomic_path  # noqa: E402


def alignment_figure(
    path: Path, soft_log: np.ndarray, durations: np.ndarray, symbols: list[str], title: str
) -> None:
    """The soft alignment (tokens x frames) with the hard Viterbi path drawn over it."""
    frames, n_tokens = soft_log.shape
    fig, ax = plt.subplots(figsize=(max(6.0, frames / 40), max(4.0, n_tokens / 6)))
    ax.imshow(np.exp(soft_log).T, origin="lower", aspect="auto", interpolation="none", cmap="magma")
    ends = np.cumsum(durations)
    starts = ends - durations
    for k, (s, e) in enumerate(zip(starts, ends)):
        ax.plot([s - 0.5, e - 0.5], [k, k], color="cyan", linewidth=1.2)
    ax.set_yticks(range(n_tokens))
    ax.set_yticklabels(["␣" if s == " " else s for s in symbols], fontsize=6)
    ax.set_xlabel("mel frame")
    ax.set_ylabel("token")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
