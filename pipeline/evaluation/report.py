"""What the evaluate stage leaves for people and for DVC: reports/eval.json,
reports/eval_utterances.csv, reports/samples/*.wav, reports/figures/eval/*.png,
reports/summary.md and reports/index.html (report_page.py), written from one evaluation's results.

The unseen sentences (split UNSEEN) appear beside the validation set, never inside it: their
rows follow the validation rows in eval_utterances.csv (column `set`), their figures are
eval.json `unseen` and `wer.unseen`, and summary.md and the page show them side by side."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.common.atomic import write_json, write_text, write_wav
from pipeline.common.figures import attention_figure, mel_comparison_figure
from pipeline.config import EvalConfig
from pipeline.evaluation.report_page import stop_phrase, unseen_rows, write_page
from pipeline.features.store import FeatureStore

# (text, wave, what the recognizer heard or None) per held-back sentence.
HeldBack = list[tuple[str, np.ndarray, str | None]]


@dataclass
class EvalResults:
    """One evaluation's results: eval.json's content, a row per utterance (sorted by id), and
    keyed by store index the waves (synthesized, vocoded_truth, truth), the (predicted,
    target) mels and the teacher-forced (attention, expected-token path) of those drawn; and
    apart, the unseen sentences' rows (sorted by id) and the waves (synthesized,
    vocoded_truth) of those written as samples."""

    metrics: dict[str, Any]
    rows: list[dict[str, Any]]
    waves: dict[int, dict[str, np.ndarray]]
    mels: dict[int, tuple[np.ndarray, np.ndarray]]
    attention: dict[int, tuple[np.ndarray, np.ndarray]]
    held_back: HeldBack
    sample_rate: int
    unseen_rows: list[dict[str, Any]] = field(default_factory=list)
    unseen_waves: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)


def write_reports(
    reports: Path, results: EvalResults, cfg: EvalConfig, store: FeatureStore, symbols: list[str]
) -> None:
    """Every output of the evaluate stage under `reports`."""
    write_samples(reports / "samples", results, cfg.samples, store.attrs["ids"])
    write_figures(reports / "figures" / "eval", results, cfg.figures, store, symbols)
    write_table(reports / "eval_utterances.csv", results.rows + results.unseen_rows)
    write_json(reports / "eval.json", results.metrics)
    write_text(
        reports / "summary.md",
        summary_markdown(results.metrics, results.rows, results.held_back, cfg, results.unseen_rows),
    )
    # Last: the page links to the samples and figures above, as they are now on disk.
    write_page(
        reports,
        results.metrics,
        results.rows + results.unseen_rows,
        [text for text, _, _ in results.held_back],
        cfg.checkpoint,
    )


def _fresh_folder(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*"):
        old.unlink()  # the folder is this stage's output: nothing stale from another run


def write_samples(folder: Path, results: EvalResults, count: int, ids: list[str]) -> None:
    """The first `count` utterances' three waves, the first `count` unseen sentences' two
    (synthesized, vocoded_truth: text the model never had, to hear), and every held-back
    sentence's wave."""
    _fresh_folder(folder)
    for i in sorted(results.waves)[:count]:
        for kind, wave in results.waves[i].items():
            write_wav(folder / f"{ids[i]}_{kind}.wav", wave, results.sample_rate)
    for i in sorted(results.unseen_waves)[:count]:
        for kind, wave in results.unseen_waves[i].items():
            write_wav(folder / f"{ids[i]}_{kind}.wav", wave, results.sample_rate)
    for k, (_, wave, _) in enumerate(results.held_back):
        write_wav(folder / f"held_back_{k + 1:02d}.wav", wave, results.sample_rate)


def write_figures(folder: Path, results: EvalResults, count: int, store: FeatureStore, symbols: list[str]) -> None:
    """Predicted vs target mel of the first `count` utterances, and their attention where drawn."""
    _fresh_folder(folder)
    ids, texts = store.attrs["ids"], store.attrs["texts"]
    for i in sorted(results.mels)[:count]:
        pred, true = results.mels[i]
        mel_comparison_figure(
            folder / f"{ids[i]}_mel.png",
            [("recording (target)", true), ("free-running synthesis", pred)],
            f"{ids[i]}: {texts[i]}",
        )
        if i in results.attention:
            att, expected = results.attention[i]
            attention_figure(
                folder / f"{ids[i]}_attention.png",
                att,
                expected,
                [symbols[t] for t in store.tokens(i)],
                f"{ids[i]}: teacher-forced cross-attention, duration path (cyan)",
            )


def write_table(path: Path, rows: list[dict[str, Any]]) -> None:
    """The per-utterance rows as CSV, floats to 4 decimals; the columns are every row's keys
    in the order first met, a row without one (an unseen sentence has no `heard_truth`)
    leaving its cell empty."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    write_text(path, buf.getvalue())


def _fmt(v: Any, digits: int = 3) -> str:
    return "–" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))


def _optional_rows(m: dict[str, Any], cfg: EvalConfig) -> list[str]:
    """The measures only some runs have: attention (and stop) of the autoregressive decoder, WER."""
    lines = []
    if "alignment_error" in m:
        lines.append(
            f"| attention alignment error | {_fmt(m['alignment_error'])} tokens | teacher-forced attention vs durations |"
        )
    if "stop" in m:
        lines.append(f"| stop token | {stop_phrase(m['stop'])} | ±{cfg.stop_tolerance:.0%} of the recorded length |")
    if "wer" in m:
        w = m["wer"]
        lines.append(f"| WER synthesized | {_fmt(w['synthesized'])} | pocketsphinx on the synthesized audio |")
        lines.append(
            f"| WER vocoded truth | {_fmt(w['vocoded_truth'])} | ... on {cfg.vocoder} of the recording's mel |"
        )
        lines.append(f"| WER truth | {_fmt(w['truth'])} | ... on the recordings (the recognizer's own floor) |")
        if "gap_ci95_low" in w:
            lines.append(
                f"| WER gap | {_fmt(w['gap'])} (95% interval {_fmt(w['gap_ci95_low'])} to {_fmt(w['gap_ci95_high'])}) | "
                "synthesized minus vocoded truth; the interval is a bootstrap over the utterances: a "
                "difference inside it is not a finding |"
            )
        if "unseen" in w:
            u = w["unseen"]
            lines.append(
                f"| WER gap, unseen sentences | {_fmt(u['gap'])} (95% interval {_fmt(u['gap_ci95_low'])} to "
                f"{_fmt(u['gap_ci95_high'])}) | the same gap on text whose words training never had "
                "(see Unseen sentences below) |"
            )
        if "held_back" in w:
            lines.append(f"| WER held-back sentences | {_fmt(w['held_back'])} | sentences from no corpus |")
    return lines


def _unseen(m: dict[str, Any]) -> list[str]:
    """The unseen sentences beside the validation set (eval.json `unseen`, `wer.unseen`): the
    rows the report page tables (report_page.unseen_rows), as markdown."""
    rows = unseen_rows(m)
    if not rows:
        return []
    n = m["unseen"]["utterances"]
    return [
        "",
        "## Unseen sentences",
        "",
        f"{n} sentence{'' if n == 1 else 's'} whose words training never had "
        "(split `unseen`), synthesized and scored as the validation ones; no validation figure above "
        "includes them. A WER gap wider here than on validation, with the two intervals apart, says the "
        "model reads the words it trained on better than new ones.",
        "",
        "| measure | validation (in-grammar) | unseen |",
        "|---|---|---|",
        *(f"| {measure} | {val} | {unseen} |" for measure, val, unseen in rows),
    ]


def _vocoders(m: dict[str, Any]) -> list[str]:
    """The vocoder comparison table (eval.json `vocoder`)."""
    v = m.get("vocoder")
    if not v:
        return []
    names = [n for n in ("griffin_lim", "trained") if n in v]
    lines = [
        "",
        f"## Vocoders (this evaluation heard `{v['used']}`)",
        "",
        "Copy synthesis: each vocoder on the recording's own mel, against the recording. WER gap: synthesized minus copy synthesis, heard through the same vocoder."
        + _compared_count(v, names),
        "",
        "| vocoder | PESQ-WB | ESTOI | MCD-DTW dB | RTF, one thread | WER copy | WER synthesized | WER gap |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n in names:
        f = v[n]
        lines.append(
            f"| {n} | {_fmt(f['pesq_wb'], 2)} | {_fmt(f['estoi'])} | {_fmt(f['mcd'], 2)} | {_fmt(f['rtf_one_thread'])} "
            f"| {_fmt(f.get('wer_copy'))} | {_fmt(f.get('wer_synthesized'))} | {_fmt(f.get('wer_gap'))} |"
        )
    return lines


def _compared_count(v: dict[str, Any], names: list[str]) -> str:
    """' Over N validation utterances.' when the comparison says how many (eval.vocoder_utterances)."""
    counts = {v[n].get("utterances") for n in names} - {None}
    return f" Over {counts.pop()} validation utterances (eval.vocoder_utterances)." if len(counts) == 1 else ""


def _heard(rows: list[dict[str, Any]], held_back: HeldBack, unseen_rows: Sequence[dict[str, Any]] = ()) -> list[str]:
    """The table of what the recognizer heard: the first rows, the first unseen sentences (the
    recording of which is not recognized), then the held-back sentences."""
    lines = ["", "## What the recognizer heard", "", "| text | synthesized | recording |", "|---|---|---|"]
    for r in rows[:8]:
        lines.append(f"| {r['text']} | {r['heard_synthesized']} | {r['heard_truth']} |")
    for r in unseen_rows[:4]:
        lines.append(f"| {r['text']} (unseen) | {r['heard_synthesized']} | – |")
    for text, _, heard in held_back:
        lines.append(f"| {text} (held back) | {heard} | – |")
    return lines


def summary_markdown(
    metrics: dict[str, Any],
    rows: list[dict[str, Any]],
    held_back: HeldBack,
    cfg: EvalConfig,
    unseen_rows: Sequence[dict[str, Any]] = (),
) -> str:
    """reports/summary.md: what a person reads first."""
    m = metrics
    conv = m["convergence"]
    lines = [
        "# Hamgara evaluation",
        "",
        f"Checkpoint `{cfg.checkpoint}` (step {m['checkpoint_step']}, {m['decoder']} decoder), "
        f"{m['utterances']} validation utterances synthesized free-running.",
        "",
        "| measure | value | meaning |",
        "|---|---|---|",
        f"| val_mel_loss | {_fmt(m['val_mel_loss'])} | teacher-forced L1 on normalized mels (training's curve) |",
        f"| MCD-DTW, model | {_fmt(m['mcd']['model'], 2)} dB | synthesized vs recording |",
        f"| MCD-DTW, vocoder ceiling | {_fmt(m['mcd']['vocoder_ceiling'], 2)} dB | {cfg.vocoder} on the recording's own mel |",
        f"| MCD, model's share | {_fmt(m['mcd']['model_share'], 2)} dB | what a better acoustic model could remove |",
        f"| length ratio error | {_fmt(m['length_ratio_error'])} | mean abs(synthesized / recorded length - 1) |",
        f"| duration error | {_fmt(m['duration_mae_frames'], 2)} frames | predicted vs aligner durations, per token |",
        *_optional_rows(m, cfg),
        f"| real-time factor | {_fmt(m['rtf']['total'])} | compute seconds per second of audio (model {_fmt(m['rtf']['model'])}, vocoder {_fmt(m['rtf']['vocoder'])}) |",
        f"| steps_to_target | {_fmt(conv.get('steps_to_target'))} | first step with smoothed val_mel_loss <= {cfg.target_val_mel_loss} |",
        f"| validation curve area | {_fmt(conv.get('val_curve_area'))} | mean val_mel_loss over the run (lower = faster) |",
        f"| training wall time | {_fmt(conv.get('wall_seconds'), 0)} s | |",
        "",
        "Listen: `reports/samples/` (`*_synthesized.wav` next to `*_vocoded_truth.wav` and `*_truth.wav`, "
        "and `*_synthesized_<vocoder>.wav`, `*_vocoded_truth_<vocoder>.wav` through the other vocoder; "
        "`held_back_*.wav`; an unseen sentence's `*_synthesized.wav` and `*_vocoded_truth.wav`). "
        "Look: `reports/figures/eval/` (mels; attention with the duration path). "
        "Per utterance: `reports/eval_utterances.csv` (column `set`: val or unseen).",
    ]
    lines += _unseen(m)
    lines += _vocoders(m)
    if len(m.get("per_speaker", {})) > 1:
        lines += _speakers(m["per_speaker"])
    if "speaker_similarity" in m:
        lines += _similarity(m["speaker_similarity"])
    if "wer" in m:
        lines += _heard(rows, held_back, unseen_rows)
    return "\n".join(lines) + "\n"


def _speakers(per_speaker: dict[str, dict[str, Any]]) -> list[str]:
    """The per-speaker table: a small speaker the mean hides shows up here."""
    lines = [
        "",
        "## Per speaker",
        "",
        "| speaker | utterances | WER gap | WER synthesized / vocoded truth / truth | MCD model / ceiling | length err |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in per_speaker.items():
        w = s.get("wer")
        wer = f"{_fmt(w['synthesized'])} / {_fmt(w['vocoded_truth'])} / {_fmt(w['truth'])}" if w else "–"
        lines.append(
            f"| {name} | {s['utterances']} | {_fmt(w['gap']) if w else '–'} | {wer} | "
            f"{_fmt(s['mcd']['model'], 2)} / {_fmt(s['mcd']['vocoder_ceiling'], 2)} | {_fmt(s['length_ratio_error'])} |"
        )
    return lines


def _similarity(sim: dict[str, Any]) -> list[str]:
    """The speaker-similarity table: margins (own centroid minus the best other) of the
    recordings, the vocoded recordings and the synthesis, and how often the synthesis is
    nearest its own speaker."""
    lines = [
        "",
        "## Speaker similarity",
        "",
        f"Resemblyzer d-vectors against each speaker's centroid ({sim['references_per_speaker']} training "
        "recordings each). Margin: similarity to the right speaker minus the best other; margin ratio: "
        "synthesized / real.",
        "",
        "| speaker | utterances | margin real / vocoded / synthesized | margin ratio | identified (synthesized) |",
        "|---|---|---|---|---|",
    ]
    for name, block in [("all", sim), *sim["per_speaker"].items()]:
        margins = " / ".join(_fmt(block[k]["margin"]) for k in ("real", "vocoded_truth", "synthesized"))
        lines.append(
            f"| {name} | {block['utterances']} | {margins} | {_fmt(block['margin_ratio'], 2)} | "
            f"{block['synthesized']['identification']:.0%} |"
        )
    return lines
