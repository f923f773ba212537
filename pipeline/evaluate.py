"""The `evaluate` stage: does the output meet the target?

Free-running synthesis (no teacher forcing) of the validation utterances from the trained
checkpoint, scored against the recordings, plus the training history turned into
convergence figures:

- `val_mel_loss` (teacher-forced, as in training) and the attention's alignment error;
- MCD-DTW of the synthesized audio against the recording, and of Griffin-Lim applied to the
  recording's own mel (the vocoder ceiling): the difference is the acoustic model's share;
- length ratio error, stop-token behaviour (autoregressive decoder), duration error;
- word error rate of an offline recognizer on synthesized, vocoded-truth and true audio (and
  on the held-back sentences of `eval.sentences`);
- real-time factor of synthesis; steps_to_target, the validation curve's area, wall time.

Writes reports/eval.json (DVC metrics), reports/eval_utterances.csv (per utterance),
reports/samples/*.wav, reports/figures/eval/*.png and reports/summary.md.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from model.ar_decoder import expected_tokens
from model.config import LossSettings
from model.objective import teacher_forced_metrics
from model.vocoder import Vocoder, load_vocoder
from pipeline.common.atomic import write_json, write_text, write_wav
from pipeline.common.figures import attention_figure, mel_comparison_figure
from pipeline.common.runtime import resolve_device
from pipeline.common.stage import run_stage
from pipeline.config import EvalConfig, eval_config, load_params, train_config
from pipeline.evaluation.history import convergence
from pipeline.evaluation.mcd import mcd_dtw, mel_cepstrum, trim_silence
from pipeline.evaluation.synthesizer import Synthesizer
from pipeline.evaluation.wer import Recognizer, word_error_rate
from pipeline.features.split import VAL
from pipeline.features.store import FeatureStore
from pipeline.training.checkpoint import CheckpointError
from pipeline.training.dataset import FeatureDataset, collate


def stop_outcome(fired: bool | None, predicted: int, target: int, tolerance: float) -> str | None:
    """How the stop token ended an utterance: on_time, early, late or never (the length cap
    ended it); None for a decoder without one."""
    if fired is None:
        return None
    if not fired:
        return "never"
    ratio = predicted / max(target, 1)
    if ratio < 1.0 - tolerance:
        return "early"
    if ratio > 1.0 + tolerance:
        return "late"
    return "on_time"


def _truth_wave(manifest: pd.DataFrame, utt_id: str, features: dict[str, Any]) -> np.ndarray:
    """The recording, read as precompute read it (resampled, trimmed, peak-normalized)."""
    from pipeline.data.audio import load_waveform

    if utt_id not in manifest.index:
        raise ValueError(f"{utt_id}: in features.zarr but not in the manifest; rerun dvc repro precompute")
    wave, _ = load_waveform(
        str(manifest.loc[utt_id, "audio"]), features["sample_rate"], features["trim_top_db"], features["peak_norm"]
    )
    return wave.numpy()


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _teacher_forced(
    synth: Synthesizer, dataset: FeatureDataset, count: int, settings: LossSettings, batch_size: int, figures: int
) -> tuple[dict[str, float], dict[int, tuple[np.ndarray, np.ndarray]]]:
    """val_mel_loss and friends over the dataset's first `count` utterances, and for the first
    `figures` of them (the ones drawn) the attention and expected-token path (autoregressive
    decoder), keyed by store index."""
    items = [dataset[k] for k in range(count)]
    batches = [collate(items[k : k + batch_size])[0] for k in range(0, len(items), batch_size)]
    metrics = teacher_forced_metrics(synth.model, batches, settings, synth.device)
    attention: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    drawn = items[:figures]
    if synth.config.decoder == "autoregressive" and drawn:
        batch = collate(drawn)[0].to(synth.device)
        with torch.no_grad():
            out = synth.model(batch)
        steps = torch.arange(out.attention.size(1), device=synth.device)
        expected = expected_tokens(batch.durations, steps, synth.config.reduction)
        for k, item in enumerate(drawn):
            n, s = int(batch.token_mask[k].sum()), int(out.step_mask[k].sum())
            attention[item["index"]] = (out.attention[k, :s, :n].float().cpu().numpy(), expected[k, :s].cpu().numpy())
    return metrics, attention


def evaluate(
    store_path: Path,
    manifest_path: Path,
    live_dir: Path,
    cfg: EvalConfig,
    settings_params: dict[str, Any],
    reports: Path,
    progress: bool = True,
) -> dict[str, Any]:
    """Score the checkpoint `cfg.checkpoint`; write the reports; return eval.json's content."""
    device = resolve_device(cfg.device)
    synth = Synthesizer.from_file(cfg.checkpoint, device)
    store = FeatureStore(store_path)
    if list(store.attrs["symbols"]) != synth.symbols:
        raise CheckpointError(
            f"{cfg.checkpoint}: trained on another symbol table than {store_path}; retrain (dvc repro train)"
        )
    dataset = FeatureDataset(store_path, [VAL])
    indices = dataset.indices[: cfg.utterances] if cfg.utterances > 0 else dataset.indices
    if len(indices) == 0:
        raise ValueError(f"{store_path}: no validation utterances to evaluate (features.val_share is 0?)")
    manifest = pd.read_parquet(manifest_path).set_index("id")
    ids, texts = store.attrs["ids"], store.attrs["texts"]
    languages, speakers = store.array("language"), store.array("speaker")
    vocoder: Vocoder = load_vocoder(cfg.vocoder, synth.mel_settings, cfg.griffin_lim_iters, device)
    sr = vocoder.sample_rate
    recognizer = Recognizer() if cfg.recognizer == "pocketsphinx" else None

    tf, attention = _teacher_forced(
        synth,
        dataset,
        len(indices),
        train_config(settings_params).loss_settings(synth.config.reduction),
        cfg.batch_size,
        cfg.figures,
    )

    rows: list[dict[str, Any]] = []
    waves: dict[int, dict[str, np.ndarray]] = {}
    mels: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    audio_seconds = model_seconds = vocoder_seconds = 0.0
    bar = tqdm(total=len(indices), desc="evaluate", unit="utt", disable=not progress)
    # Batches of one language and speaker (the model takes one of each per call).
    groups: dict[tuple[int, int], list[int]] = {}
    for i in indices:
        groups.setdefault((int(languages[i]), int(speakers[i])), []).append(int(i))
    for (lang, spk), members in groups.items():
        # Scored shortest first: pocketsphinx adapts its cepstral mean from one utterance to the
        # next, so the order it hears them in is part of the WER.
        members = sorted(members, key=lambda i: len(store.tokens(i)))
        utts = synth.synthesize_tokens(
            [store.tokens(i).astype(int).tolist() for i in members],
            [texts[i] for i in members],
            vocoder,
            synth.languages[lang],
            spk,
            None,
            cfg.length_scale,
            cfg.batch_size,
        )
        for i, utt in zip(members, utts):
            mel, fired, durations, wave = utt.mel, utt.stop_fired, utt.durations, utt.wave
            assert wave is not None
            true_mel = store.mel(i)
            vocoded_truth = vocoder(torch.from_numpy(true_mel)).numpy()
            truth = _truth_wave(manifest, ids[i], store.attrs["features"])
            ref = mel_cepstrum(trim_silence(truth), cfg.mcd_order, cfg.mcd_alpha, cfg.mcd_floor_db)
            true_durations = store.durations(i)
            row: dict[str, Any] = {
                "id": ids[i],
                "text": texts[i],
                "frames": len(mel),
                "target_frames": len(true_mel),
                "length_ratio": len(mel) / max(len(true_mel), 1),
                "stop": stop_outcome(fired, len(mel), len(true_mel), cfg.stop_tolerance),
                "duration_mae_frames": float(np.abs(durations - true_durations).mean()),
                "mcd_model": mcd_dtw(
                    ref, mel_cepstrum(trim_silence(wave), cfg.mcd_order, cfg.mcd_alpha, cfg.mcd_floor_db)
                ),
                "mcd_vocoder": mcd_dtw(
                    ref, mel_cepstrum(trim_silence(vocoded_truth), cfg.mcd_order, cfg.mcd_alpha, cfg.mcd_floor_db)
                ),
            }
            if recognizer is not None:
                row["heard_synthesized"] = recognizer.transcribe(wave, sr)
                row["heard_vocoded_truth"] = recognizer.transcribe(vocoded_truth, sr)
                row["heard_truth"] = recognizer.transcribe(truth, sr)
            rows.append(row)
            waves[i] = {"synthesized": wave, "vocoded_truth": vocoded_truth, "truth": truth}
            mels[i] = (mel, true_mel)
            audio_seconds += len(wave) / sr
            model_seconds += utt.model_seconds
            vocoder_seconds += utt.vocoder_seconds
            bar.update(1)
    bar.close()
    rows.sort(key=lambda r: r["id"])

    metrics: dict[str, Any] = {
        "utterances": len(rows),
        "decoder": synth.config.decoder,
        "checkpoint_step": synth.step,
        "val_mel_loss": tf["val_mel_loss"],
    }
    if "val/alignment_error" in tf:
        metrics["alignment_error"] = tf["val/alignment_error"]
    mcd_model = _mean([r["mcd_model"] for r in rows])
    mcd_vocoder = _mean([r["mcd_vocoder"] for r in rows])
    metrics["mcd"] = {"model": mcd_model, "vocoder_ceiling": mcd_vocoder, "model_share": mcd_model - mcd_vocoder}
    metrics["length_ratio_error"] = _mean([abs(r["length_ratio"] - 1.0) for r in rows])
    metrics["duration_mae_frames"] = _mean([r["duration_mae_frames"] for r in rows])
    if synth.config.decoder == "autoregressive":
        metrics["stop"] = {k: sum(r["stop"] == k for r in rows) for k in ("on_time", "early", "late", "never")}
    metrics["rtf"] = {
        "model": model_seconds / audio_seconds,
        "vocoder": vocoder_seconds / audio_seconds,
        "total": (model_seconds + vocoder_seconds) / audio_seconds,
    }

    held_back: list[tuple[str, np.ndarray, str | None]] = []
    if cfg.sentences:
        for utt in synth.synthesize(list(cfg.sentences), vocoder, None, None, None, cfg.length_scale, cfg.batch_size):
            assert utt.wave is not None
            heard = recognizer.transcribe(utt.wave, sr) if recognizer is not None else None
            held_back.append((utt.text, utt.wave, heard))
    if recognizer is not None:
        refs = [r["text"] for r in rows]
        wer = {
            "synthesized": word_error_rate(refs, [r["heard_synthesized"] for r in rows]),
            "vocoded_truth": word_error_rate(refs, [r["heard_vocoded_truth"] for r in rows]),
            "truth": word_error_rate(refs, [r["heard_truth"] for r in rows]),
        }
        wer["gap"] = wer["synthesized"] - wer["vocoded_truth"]
        if held_back:
            wer["held_back"] = word_error_rate([t for t, _, _ in held_back], [h or "" for _, _, h in held_back])
        metrics["wer"] = wer
    metrics["convergence"] = {
        k: v for k, v in convergence(live_dir, cfg.target_val_mel_loss, cfg.curve_smoothing).items() if v is not None
    }
    metrics["convergence"]["target_val_mel_loss"] = cfg.target_val_mel_loss

    _write_people_outputs(reports, cfg, synth, rows, waves, mels, attention, held_back, sr, ids, store)
    _write_table(reports / "eval_utterances.csv", rows)
    write_json(reports / "eval.json", metrics)
    write_text(reports / "summary.md", summary_markdown(metrics, rows, held_back, cfg))
    return metrics


def _write_people_outputs(
    reports: Path,
    cfg: EvalConfig,
    synth: Synthesizer,
    rows: list[dict[str, Any]],
    waves: dict[int, dict[str, np.ndarray]],
    mels: dict[int, tuple[np.ndarray, np.ndarray]],
    attention: dict[int, tuple[np.ndarray, np.ndarray]],
    held_back: list[tuple[str, np.ndarray, str | None]],
    sr: int,
    ids: list[str],
    store: FeatureStore,
) -> None:
    samples, figures = reports / "samples", reports / "figures" / "eval"
    for folder in (samples, figures):
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*"):
            old.unlink()  # the folder is this stage's output: nothing stale from another run
    chosen = sorted(waves)[: cfg.samples]
    for i in chosen:
        for kind, wave in waves[i].items():
            write_wav(samples / f"{ids[i]}_{kind}.wav", wave, sr)
    for k, (_, wave, _) in enumerate(held_back):
        write_wav(samples / f"held_back_{k + 1:02d}.wav", wave, sr)
    for i in sorted(mels)[: cfg.figures]:
        pred, true = mels[i]
        mel_comparison_figure(
            figures / f"{ids[i]}_mel.png",
            [("recording (target)", true), ("free-running synthesis", pred)],
            f"{ids[i]}: {store.attrs['texts'][i]}",
        )
        if i in attention:
            att, expected = attention[i]
            symbols = [synth.symbols[t] for t in store.tokens(i)]
            attention_figure(
                figures / f"{ids[i]}_attention.png",
                att,
                expected,
                symbols,
                f"{ids[i]}: teacher-forced cross-attention, duration path (cyan)",
            )


def _write_table(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    write_text(path, buf.getvalue())


def _fmt(v: Any, digits: int = 3) -> str:
    return "–" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))


def summary_markdown(
    metrics: dict[str, Any],
    rows: list[dict[str, Any]],
    held_back: list[tuple[str, np.ndarray, str | None]],
    cfg: EvalConfig,
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
    ]
    if "alignment_error" in m:
        lines.append(
            f"| attention alignment error | {_fmt(m['alignment_error'])} tokens | teacher-forced attention vs durations |"
        )
    if "stop" in m:
        s = m["stop"]
        lines.append(
            f"| stop token | {s['on_time']} on time, {s['early']} early, {s['late']} late, {s['never']} never | "
            f"±{cfg.stop_tolerance:.0%} of the recorded length |"
        )
    if "wer" in m:
        w = m["wer"]
        lines.append(f"| WER synthesized | {_fmt(w['synthesized'])} | pocketsphinx on the synthesized audio |")
        lines.append(
            f"| WER vocoded truth | {_fmt(w['vocoded_truth'])} | ... on {cfg.vocoder} of the recording's mel |"
        )
        lines.append(f"| WER truth | {_fmt(w['truth'])} | ... on the recordings (the recognizer's own floor) |")
        if "held_back" in w:
            lines.append(f"| WER held-back sentences | {_fmt(w['held_back'])} | sentences from no corpus |")
    lines += [
        f"| real-time factor | {_fmt(m['rtf']['total'])} | compute seconds per second of audio (model {_fmt(m['rtf']['model'])}, vocoder {_fmt(m['rtf']['vocoder'])}) |",
        f"| steps_to_target | {_fmt(conv.get('steps_to_target'))} | first step with smoothed val_mel_loss <= {cfg.target_val_mel_loss} |",
        f"| validation curve area | {_fmt(conv.get('val_curve_area'))} | mean val_mel_loss over the run (lower = faster) |",
        f"| training wall time | {_fmt(conv.get('wall_seconds'), 0)} s | |",
        "",
        "Listen: `reports/samples/` (`*_synthesized.wav` next to `*_vocoded_truth.wav` and `*_truth.wav`; "
        "`held_back_*.wav`). Look: `reports/figures/eval/` (mels; attention with the duration path). "
        "Per utterance: `reports/eval_utterances.csv`.",
    ]
    if "wer" in m:
        lines += ["", "## What the recognizer heard", "", "| text | synthesized | recording |", "|---|---|---|"]
        for r in rows[:8]:
            lines.append(f"| {r['text']} | {r['heard_synthesized']} | {r['heard_truth']} |")
        for text, _, heard in held_back:
            lines.append(f"| {text} (held back) | {heard} | – |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry of the evaluate stage."""
    ap = argparse.ArgumentParser(
        prog="hamgara evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    ap.add_argument("--features", default="data/features.zarr", help="features store written by precompute")
    ap.add_argument("--manifest", default="data/manifest.parquet", help="manifest written by validate (audio paths)")
    ap.add_argument("--live", default="dvclive", help="the training's dvclive folder (history)")
    ap.add_argument("--reports", default="reports", help="where eval.json, samples/, figures/eval/ and summary.md go")
    args = ap.parse_args(argv)
    return run_stage("evaluate", lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    metrics = evaluate(
        Path(args.features), Path(args.manifest), Path(args.live), eval_config(params), params, Path(args.reports)
    )
    wer = metrics.get("wer", {})
    print(
        f"evaluate: {metrics['utterances']} utterances; MCD {metrics['mcd']['model']:.2f} dB "
        f"(vocoder ceiling {metrics['mcd']['vocoder_ceiling']:.2f}); "
        + (f"WER {wer['synthesized']:.3f} (vocoded truth {wer['vocoded_truth']:.3f}); " if wer else "")
        + f"RTF {metrics['rtf']['total']:.3f} -> {args.reports}/eval.json, {args.reports}/summary.md"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
