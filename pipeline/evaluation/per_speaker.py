"""Per-speaker figures of an evaluation: the same measures as the whole, over each speaker's
rows, so that a small speaker drowned by a big one shows up instead of vanishing in the mean."""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.evaluation.wer import word_error_rate


def _mean(values: list[float]) -> float:
    return float(np.mean(values))


def speaker_metrics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One speaker's rows (each with `mcd_model`, `mcd_vocoder`, `length_ratio`, `stop` and,
    when a recognizer ran, `heard_*`) -> utterances, MCD, length ratio error, stops on time
    (decoders with a stop token) and WER (synthesized, vocoded truth, truth, gap)."""
    metrics: dict[str, Any] = {
        "utterances": len(rows),
        "mcd": {
            "model": _mean([r["mcd_model"] for r in rows]),
            "vocoder_ceiling": _mean([r["mcd_vocoder"] for r in rows]),
        },
        "length_ratio_error": _mean([abs(r["length_ratio"] - 1.0) for r in rows]),
    }
    if rows[0]["stop"] is not None:  # a decoder with a stop token
        metrics["stop_on_time"] = sum(r["stop"] == "on_time" for r in rows)
    if "heard_synthesized" in rows[0]:
        refs = [r["text"] for r in rows]
        wer = {
            kind: word_error_rate(refs, [r[f"heard_{kind}"] for r in rows])
            for kind in ("synthesized", "vocoded_truth", "truth")
        }
        wer["gap"] = wer["synthesized"] - wer["vocoded_truth"]
        metrics["wer"] = wer
    return metrics


def per_speaker(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """`speaker_metrics` of each speaker's rows (rows carry `speaker`), speakers in name order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["speaker"], []).append(r)
    return {name: speaker_metrics(groups[name]) for name in sorted(groups)}


def spread_over_speakers(indices: np.ndarray, speakers: np.ndarray, count: int) -> list[int]:
    """`count` of `indices` taken in turns from each speaker (in store order within a speaker),
    returned in store order: a capped evaluation (eval.utterances) still hears every speaker,
    where the first `count` would be the big speaker's. With one speaker: the first `count`."""
    queues: dict[int, list[int]] = {}
    for i, s in zip(indices.tolist(), speakers.tolist()):
        queues.setdefault(int(s), []).append(int(i))
    chosen: list[int] = []
    depth = 0
    while len(chosen) < count and any(depth < len(q) for q in queues.values()):
        chosen += [q[depth] for q in queues.values() if depth < len(q)][: count - len(chosen)]
        depth += 1
    return sorted(chosen)
