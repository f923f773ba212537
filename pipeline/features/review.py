"""What a person checks after precompute: alignment figures and the list of flagged utterances."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.common.atomic import atomic_path
from pipeline.common.figures import alignment_figure
from pipeline.features.aligner_training import Alignment
from pipeline.features.split import SPLIT_NAMES
from pipeline.features.store import FeatureStore


def alignment_figures(folder: Path, aligned: Alignment, ids: list[str], symbols: list[list[str]], count: int) -> None:
    """Figures of the first `count` kept soft alignments (by index), each with its Viterbi path."""
    for i, soft in sorted(aligned.soft.items())[:count]:
        alignment_figure(
            folder / f"{ids[i]}.png",
            soft,
            aligned.durations[i],
            symbols[i],
            f"{ids[i]}: soft alignment, Viterbi path (cyan); score {aligned.scores[i]:.3f}",
        )


def write_flagged(store: Path, path: Path) -> None:
    """The aligner's flagged utterances, worst first, with score and transcript, for a person to check."""
    fs = FeatureStore(store)
    scores, flagged, split = fs.array("align_score"), fs.array("align_flagged"), fs.array("split")
    rows = [
        {
            "id": fs.ids[i],
            "score": round(float(scores[i]), 4),
            "split": SPLIT_NAMES[split[i]],
            "text": fs.attrs["texts"][i],
        }
        for i in np.flatnonzero(flagged)
    ]
    rows.sort(key=lambda r: -r["score"])
    with atomic_path(path) as tmp:
        pd.DataFrame(rows, columns=["id", "score", "split", "text"]).to_csv(tmp, index=False)
