"""Scoring a checkpoint against the validation split: the work behind the evaluate stage.

An `Evaluation` runs in named steps: set up (checkpoint, store, vocoder, recognizer); the
teacher-forced metrics; free-running synthesis scored per batch of one language and speaker
(MCD-DTW against the recording and of the vocoder on the recording's own mel, length ratio,
stop token, duration error, what the recognizer heard); the held-back sentences; the store's
unseen sentences (split UNSEEN: text whose words training never had), scored the same way
but kept apart from every validation figure; the word error rates; convergence from the
training history. `evaluate` runs one and writes its reports (pipeline/evaluation/report.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from model.ar_decoder import expected_tokens
from model.objective import teacher_forced_metrics
from model.vocoder import GriffinLimVocoder, Vocoder
from pipeline.common.runtime import resolve_device
from pipeline.config import EvalConfig, train_config
from pipeline.evaluation.free_running import STOP_OUTCOMES, stop_outcome
from pipeline.evaluation.history import convergence
from pipeline.evaluation.mcd import mcd_dtw, mel_cepstrum, trim_silence
from pipeline.evaluation.per_speaker import per_speaker, spread_over_speakers
from pipeline.evaluation.report import EvalResults, HeldBack, write_reports
from pipeline.evaluation.similarity import SpeakerEncoder, similarity_report
from pipeline.evaluation.synthesizer import Synthesizer, Utterance
from pipeline.evaluation.vocoder_comparison import VocoderComparison
from pipeline.evaluation.wer import Recognizer, gap_interval, word_error_rate
from pipeline.features.split import SPLIT_NAMES, TRAIN, UNSEEN, VAL
from pipeline.features.store import FeatureStore
from pipeline.training.checkpoint import CheckpointError
from pipeline.training.dataset import FeatureDataset, collate
from pipeline.vocoding.checkpoint import TRAINED, VocoderMismatchError, open_vocoder


def truth_wave(manifest: pd.DataFrame, utt_id: str, features: dict[str, Any]) -> np.ndarray:
    """The recording, read as precompute read it (resampled, trimmed, peak-normalized)."""
    from pipeline.data.audio import load_waveform, recorded_trim_frames

    if utt_id not in manifest.index:
        raise ValueError(f"{utt_id}: in features.zarr but not in the manifest; rerun dvc repro precompute")
    wave, _ = load_waveform(
        str(manifest.loc[utt_id, "audio"]),
        features["sample_rate"],
        features["trim_top_db"],
        features["peak_norm"],
        *recorded_trim_frames(features),
    )
    return wave.numpy()


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def unseen_word_error_rates(rows: list[dict[str, Any]]) -> dict[str, float]:
    """eval.json `wer.unseen`: WER of the synthesized and the vocoded-truth audio of the unseen
    sentences' rows, their gap and its 95% bootstrap interval over those sentences."""
    refs = [r["text"] for r in rows]
    synthesized = [r["heard_synthesized"] for r in rows]
    vocoded = [r["heard_vocoded_truth"] for r in rows]
    wer = {"synthesized": word_error_rate(refs, synthesized), "vocoded_truth": word_error_rate(refs, vocoded)}
    wer["gap"] = wer["synthesized"] - wer["vocoded_truth"]
    wer["gap_ci95_low"], wer["gap_ci95_high"] = gap_interval(refs, synthesized, vocoded)
    return wer


class Evaluation:
    """One evaluation of the checkpoint `cfg.checkpoint` on the validation split of a store
    (and, apart, on its unseen sentences). Construct it (the set-up step), then `run()`; the
    steps fill its fields as they go."""

    def __init__(
        self,
        store_path: Path,
        manifest_path: Path,
        live_dir: Path,
        cfg: EvalConfig,
        settings_params: dict[str, Any],
        progress: bool = True,
        *,
        vocoder_path: Path,
    ) -> None:
        self.cfg, self.live_dir, self.progress = cfg, live_dir, progress
        self.device = resolve_device(cfg.device)
        self.synth = Synthesizer.from_file(cfg.checkpoint, self.device)
        self.store = FeatureStore(store_path)
        if list(self.store.attrs["symbols"]) != self.synth.symbols:
            raise CheckpointError(
                f"{cfg.checkpoint}: trained on another symbol table than {store_path}; retrain (dvc repro train)"
            )
        self.dataset = FeatureDataset(store_path, [VAL])
        if len(self.dataset.indices) == 0:
            raise ValueError(f"{store_path}: no validation utterances to evaluate (features.val_share is 0?)")
        self.speaker_codes = self.store.array("speaker")
        all_val = self.dataset.indices
        self.indices = (
            spread_over_speakers(all_val, self.speaker_codes[all_val], cfg.utterances)
            if cfg.utterances > 0
            else [int(i) for i in all_val]
        )
        # The vocoder comparison (copy synthesis through every vocoder, PESQ, ESTOI, two more
        # recognitions) costs more than the rest of an utterance's scoring: a share of them
        # answers its question, while the WER gap needs every utterance there is.
        chosen = np.asarray(self.indices, dtype=np.int64)
        self.compared = (
            set(spread_over_speakers(chosen, self.speaker_codes[chosen], cfg.vocoder_utterances))
            if cfg.vocoder_utterances > 0
            else set(self.indices)
        )
        all_unseen = np.flatnonzero(self.store.array("split") == UNSEEN)
        self.unseen_indices = (
            spread_over_speakers(all_unseen, self.speaker_codes[all_unseen], cfg.unseen_utterances)
            if cfg.unseen_utterances > 0
            else [int(i) for i in all_unseen]
        )
        self.manifest = pd.read_parquet(manifest_path).set_index("id")
        self.settings = train_config(settings_params).loss_settings(self.synth.config.reduction)
        self.vocoder: Vocoder = open_vocoder(
            cfg.vocoder, self.synth.mel_settings, cfg.griffin_lim_iters, self.device, vocoder_path
        )
        self.sample_rate = self.vocoder.sample_rate
        self.recognizer = Recognizer() if cfg.recognizer == "pocketsphinx" else None
        self.comparison = VocoderComparison(
            self._compared_vocoders(vocoder_path), cfg.vocoder, self._cepstrum, self.recognizer is not None
        )
        self.rows: list[dict[str, Any]] = []
        # The unseen sentences' rows and the waves of those written as samples: apart from
        # `rows` and `waves`, which every validation figure (and speaker similarity) is made of.
        self.unseen_rows: list[dict[str, Any]] = []
        self.unseen_waves: dict[int, dict[str, np.ndarray]] = {}
        self.waves: dict[int, dict[str, np.ndarray]] = {}
        self.mels: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.attention: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.held_back: HeldBack = []
        self.seconds = {"audio": 0.0, "model": 0.0, "vocoder": 0.0}

    def _compared_vocoders(self, vocoder_path: Path) -> dict[str, Vocoder]:
        """Griffin-Lim and, when there is one for these mels, the trained vocoder; the one
        `eval.vocoder` names is the one already loaded."""
        settings, cfg = self.synth.mel_settings, self.cfg
        compared: dict[str, Vocoder] = {cfg.vocoder: self.vocoder}
        if "griffin_lim" not in compared:
            compared["griffin_lim"] = GriffinLimVocoder(settings, cfg.griffin_lim_iters)
        if TRAINED not in compared and vocoder_path.is_file():
            try:
                compared[TRAINED] = open_vocoder(TRAINED, settings, cfg.griffin_lim_iters, self.device, vocoder_path)
            except (CheckpointError, VocoderMismatchError) as e:
                print(f"evaluate: warning: the trained vocoder is left out of the comparison: {e}")
        return {name: compared[name] for name in ("griffin_lim", TRAINED) if name in compared}

    def run(self) -> EvalResults:
        """Every step in order; the results the reports are written from."""
        metrics = self.teacher_forced()
        self.synthesize_and_score()
        metrics.update(self.free_running_metrics())
        self.synthesize_held_back()
        # Last of the syntheses: pocketsphinx adapts to what it heard before, so hearing the
        # unseen sentences earlier would move the validation and held-back WER.
        self.synthesize_unseen()
        if self.unseen_rows:
            metrics["unseen"] = self.unseen_metrics()
        if self.recognizer is not None:
            metrics["wer"] = self.word_error_rates()
        metrics["per_speaker"] = per_speaker(self.rows)
        if self.cfg.speaker_similarity and len(self.store.attrs["speakers"]) > 1:
            metrics["speaker_similarity"] = self.speaker_similarity()
        metrics["convergence"] = self.convergence()
        metrics["vocoder"] = {"used": self.cfg.vocoder, **self.comparison.report()}
        return EvalResults(
            metrics,
            self.rows,
            self.waves,
            self.mels,
            self.attention,
            self.held_back,
            self.sample_rate,
            self.unseen_rows,
            self.unseen_waves,
        )

    def teacher_forced(self) -> dict[str, Any]:
        """val_mel_loss (and the attention's alignment error) over the evaluated utterances;
        keeps the attention and expected-token path of those drawn (autoregressive decoder)."""
        synth, cfg = self.synth, self.cfg
        # Dataset positions of the evaluated store indices (dataset.indices is ascending).
        items = [self.dataset[int(k)] for k in np.searchsorted(self.dataset.indices, self.indices)]
        batches = [collate(items[k : k + cfg.batch_size])[0] for k in range(0, len(items), cfg.batch_size)]
        tf = teacher_forced_metrics(synth.model, batches, self.settings, synth.device)
        drawn = items[: cfg.figures]
        if synth.config.decoder == "autoregressive" and drawn:
            batch = collate(drawn)[0].to(synth.device)
            with torch.no_grad():
                out = synth.model(batch)
            steps = torch.arange(out.attention.size(1), device=synth.device)
            expected = expected_tokens(batch.durations, steps, synth.config.reduction)
            for k, item in enumerate(drawn):
                n, s = int(batch.token_mask[k].sum()), int(out.step_mask[k].sum())
                self.attention[item["index"]] = (
                    out.attention[k, :s, :n].float().cpu().numpy(),
                    expected[k, :s].cpu().numpy(),
                )
        metrics: dict[str, Any] = {
            "utterances": len(self.indices),
            "decoder": synth.config.decoder,
            "checkpoint_step": synth.step,
            "val_mel_loss": tf["val_mel_loss"],
        }
        if "val/alignment_error" in tf:
            metrics["alignment_error"] = tf["val/alignment_error"]
        return metrics

    def synthesize_and_score(self) -> None:
        """Free-running synthesis of every evaluated utterance, scored; rows sorted by id."""
        for i, utt in self.synthesized(self.indices, "evaluate"):
            self.rows.append(self.score_utterance(i, utt))
        self.rows.sort(key=lambda r: r["id"])

    def synthesized(self, indices: list[int], desc: str) -> Iterator[tuple[int, Utterance]]:
        """(store index, free-running Utterance) of each of `indices`, synthesized in batches of
        one language and speaker, shortest first within each."""
        languages, speakers = self.store.array("language"), self.speaker_codes
        # Batches of one language and speaker (the model takes one of each per call).
        groups: dict[tuple[int, int], list[int]] = {}
        for i in indices:
            groups.setdefault((int(languages[i]), int(speakers[i])), []).append(i)
        bar = tqdm(total=len(indices), desc=desc, unit="utt", disable=not self.progress)
        for (lang, spk), members in groups.items():
            # Scored shortest first: pocketsphinx adapts its cepstral mean from one utterance to
            # the next, so the order it hears them in is part of the WER.
            members = sorted(members, key=lambda i: len(self.store.tokens(i)))
            utts = self.synth.synthesize_tokens(
                [self.store.tokens(i).astype(int).tolist() for i in members],
                [self.store.attrs["texts"][i] for i in members],
                self.vocoder,
                self.synth.languages[lang],
                spk,
                None,
                self.cfg.length_scale,
                self.cfg.batch_size,
            )
            for i, utt in zip(members, utts):
                yield i, utt
                bar.update(1)
        bar.close()

    def _cepstrum(self, wave: np.ndarray) -> np.ndarray:
        cfg = self.cfg
        return mel_cepstrum(trim_silence(wave, cfg.mcd_trim_top_db), cfg.mcd_order, cfg.mcd_alpha, cfg.mcd_floor_db)

    def free_running_row(
        self, i: int, utt: Utterance, split: int
    ) -> tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray]:
        """The scores every synthesized store utterance `i` gets, whichever set (`split`) it is
        from: the row (id, set, speaker, text, lengths, stop, MCD of the model and of the
        vocoder on the recording's mel, and what the recognizer heard of both), with the
        recording, its mel and its vocoded copy."""
        wave, mel = utt.wave, utt.mel
        assert wave is not None  # synthesized with a vocoder
        true_mel = self.store.mel(i)
        vocoded_truth = self.vocoder(torch.from_numpy(true_mel)).numpy()
        utt_id = self.store.attrs["ids"][i]
        truth = truth_wave(self.manifest, utt_id, self.store.attrs["features"])
        ref = self._cepstrum(truth)
        row: dict[str, Any] = {
            "id": utt_id,
            "set": SPLIT_NAMES[split],
            "speaker": self.store.attrs["speakers"][int(self.speaker_codes[i])],
            "text": self.store.attrs["texts"][i],
            "frames": len(mel),
            "target_frames": len(true_mel),
            "length_ratio": len(mel) / max(len(true_mel), 1),
            "stop": stop_outcome(utt.stop_fired, len(mel), len(true_mel), self.cfg.stop_tolerance),
            "mcd_model": mcd_dtw(ref, self._cepstrum(wave)),
            "mcd_vocoder": mcd_dtw(ref, self._cepstrum(vocoded_truth)),
        }
        if self.recognizer is not None:
            row["heard_synthesized"] = self.recognizer.transcribe(wave, self.sample_rate)
            row["heard_vocoded_truth"] = self.recognizer.transcribe(vocoded_truth, self.sample_rate)
        return row, truth, true_mel, vocoded_truth

    def score_utterance(self, i: int, utt: Utterance) -> dict[str, Any]:
        """The row of validation utterance `i` synthesized as `utt` (with its duration error,
        what the recognizer heard of the recording, and the vocoder comparison); keeps its
        waves and mels."""
        wave, mel = utt.wave, utt.mel
        assert wave is not None  # synthesized with a vocoder
        row, truth, true_mel, vocoded_truth = self.free_running_row(i, utt, VAL)
        row["duration_mae_frames"] = float(np.abs(utt.durations - self.store.durations(i)).mean())
        heard = None
        if self.recognizer is not None:
            row["heard_truth"] = self.recognizer.transcribe(truth, self.sample_rate)
            heard = (row["heard_synthesized"], row["heard_vocoded_truth"])
        others = (
            self.comparison.add(truth, true_mel, mel, row["text"], (vocoded_truth, wave), heard)
            if i in self.compared
            else {}
        )
        self.waves[i] = {"synthesized": wave, "vocoded_truth": vocoded_truth, "truth": truth, **others}
        self.mels[i] = (mel, true_mel)
        self.seconds["audio"] += len(wave) / self.sample_rate
        self.seconds["model"] += utt.model_seconds
        self.seconds["vocoder"] += utt.vocoder_seconds
        return row

    def free_running_metrics(self) -> dict[str, Any]:
        """MCD, length and duration errors, stop outcomes and real-time factor over the rows."""
        rows, seconds = self.rows, self.seconds
        mcd_model = _mean([r["mcd_model"] for r in rows])
        mcd_vocoder = _mean([r["mcd_vocoder"] for r in rows])
        metrics: dict[str, Any] = {
            "mcd": {"model": mcd_model, "vocoder_ceiling": mcd_vocoder, "model_share": mcd_model - mcd_vocoder},
            "length_ratio_error": _mean([abs(r["length_ratio"] - 1.0) for r in rows]),
            "duration_mae_frames": _mean([r["duration_mae_frames"] for r in rows]),
        }
        if self.synth.config.decoder == "autoregressive":
            metrics["stop"] = {k: sum(r["stop"] == k for r in rows) for k in STOP_OUTCOMES}
        metrics["rtf"] = {
            "model": seconds["model"] / seconds["audio"],
            "vocoder": seconds["vocoder"] / seconds["audio"],
            "total": (seconds["model"] + seconds["vocoder"]) / seconds["audio"],
        }
        return metrics

    def synthesize_unseen(self) -> None:
        """Free-running synthesis of the unseen sentences, scored as the validation ones are
        but into `unseen_rows` (sorted by id); keeps the waves of the first `eval.samples`.

        Neither the recognizer on the recording (`heard_truth`) nor the vocoder comparison:
        the recognizer's floor and the vocoders are properties of the recordings, which the
        validation set already measures, and each would add a recognition or a vocoder pass
        per utterance to the stage's cost. The unseen figures ask one question, whether the
        model can say text it never had, and the synthesis against the vocoded recording
        answers it."""
        sampled = set(sorted(self.unseen_indices)[: self.cfg.samples])
        for i, utt in self.synthesized(self.unseen_indices, "evaluate unseen"):
            row, _, _, vocoded_truth = self.free_running_row(i, utt, UNSEEN)
            self.unseen_rows.append(row)
            if i in sampled:
                assert utt.wave is not None  # synthesized with a vocoder
                self.unseen_waves[i] = {"synthesized": utt.wave, "vocoded_truth": vocoded_truth}
        self.unseen_rows.sort(key=lambda r: r["id"])

    def unseen_metrics(self) -> dict[str, Any]:
        """eval.json `unseen`: how many unseen sentences were scored, their MCD, length ratio
        error and (autoregressive decoder) stop outcomes."""
        rows = self.unseen_rows
        metrics: dict[str, Any] = {
            "utterances": len(rows),
            "mcd_model": _mean([r["mcd_model"] for r in rows]),
            "length_ratio_error": _mean([abs(r["length_ratio"] - 1.0) for r in rows]),
        }
        if self.synth.config.decoder == "autoregressive":
            metrics["stop"] = {k: sum(r["stop"] == k for r in rows) for k in STOP_OUTCOMES}
        return metrics

    def speaker_similarity(self) -> dict[str, Any]:
        """Speaker similarity (pipeline/evaluation/similarity.py): each speaker's centroid from
        its first `similarity_references` training recordings; every evaluated utterance's
        recording, vocoded truth and synthesis scored against the centroids."""
        encoder = SpeakerEncoder()
        names, splits = self.store.attrs["speakers"], self.store.array("split")
        rate = int(self.store.attrs["features"]["sample_rate"])
        references: dict[str, list[np.ndarray]] = {}
        for code, name in enumerate(names):
            train = np.flatnonzero((self.speaker_codes == code) & (splits == TRAIN))[: self.cfg.similarity_references]
            if len(train):
                references[name] = [
                    encoder.embed(
                        truth_wave(self.manifest, self.store.attrs["ids"][i], self.store.attrs["features"]), rate
                    )
                    for i in train
                ]
        scored = []
        for i in self.indices:
            name = names[int(self.speaker_codes[i])]
            if name in references:
                w = self.waves[i]
                scored.append(
                    (
                        name,
                        {
                            "real": encoder.embed(w["truth"], rate),
                            "vocoded_truth": encoder.embed(w["vocoded_truth"], self.sample_rate),
                            "synthesized": encoder.embed(w["synthesized"], self.sample_rate),
                        },
                    )
                )
        report = similarity_report(references, scored)
        return {"encoder": "resemblyzer", "references_per_speaker": self.cfg.similarity_references, **report}

    def synthesize_held_back(self) -> None:
        """The held-back sentences (eval.sentences): synthesized and, with a recognizer, heard."""
        if not self.cfg.sentences:
            return
        utts = self.synth.synthesize(
            list(self.cfg.sentences), self.vocoder, None, None, None, self.cfg.length_scale, self.cfg.batch_size
        )
        for utt in utts:
            assert utt.wave is not None  # synthesized with a vocoder
            heard = self.recognizer.transcribe(utt.wave, self.sample_rate) if self.recognizer is not None else None
            self.held_back.append((utt.text, utt.wave, heard))

    def word_error_rates(self) -> dict[str, Any]:
        """WER on synthesized, vocoded-truth and true audio, their gap with its 95% bootstrap
        interval over utterances, on the held-back sentences and, when the store has unseen
        sentences, on those (`unseen`, apart: the figures above are the validation set's alone)."""
        rows = self.rows
        refs = [r["text"] for r in rows]
        wer: dict[str, Any] = {
            "synthesized": word_error_rate(refs, [r["heard_synthesized"] for r in rows]),
            "vocoded_truth": word_error_rate(refs, [r["heard_vocoded_truth"] for r in rows]),
            "truth": word_error_rate(refs, [r["heard_truth"] for r in rows]),
        }
        wer["gap"] = wer["synthesized"] - wer["vocoded_truth"]
        # A few dozen utterances make the gap a draw (another machine's numerics, another seed, move it by
        # more than a claimed improvement): its 95% interval says how wide the draw is.
        low, high = gap_interval(refs, [r["heard_synthesized"] for r in rows], [r["heard_vocoded_truth"] for r in rows])
        wer["gap_ci95_low"], wer["gap_ci95_high"] = low, high
        if self.held_back:
            wer["held_back"] = word_error_rate(
                [t for t, _, _ in self.held_back], [h or "" for _, _, h in self.held_back]
            )
        if self.unseen_rows:
            wer["unseen"] = unseen_word_error_rates(self.unseen_rows)
        return wer

    def convergence(self) -> dict[str, Any]:
        """The training history's convergence figures (those available) and the target they used."""
        cfg = self.cfg
        figures = convergence(self.live_dir, cfg.target_val_mel_loss, cfg.curve_smoothing)
        return {k: v for k, v in figures.items() if v is not None} | {"target_val_mel_loss": cfg.target_val_mel_loss}


def evaluate(
    store_path: Path,
    manifest_path: Path,
    live_dir: Path,
    cfg: EvalConfig,
    settings_params: dict[str, Any],
    reports: Path,
    progress: bool = True,
    *,
    vocoder_path: Path,
) -> dict[str, Any]:
    """Score the checkpoint `cfg.checkpoint` (heard through `cfg.vocoder`, with Griffin-Lim and
    the trained vocoder at `vocoder_path` compared); write the reports; return eval.json's content."""
    evaluation = Evaluation(
        store_path, manifest_path, live_dir, cfg, settings_params, progress, vocoder_path=vocoder_path
    )
    results = evaluation.run()
    write_reports(reports, results, cfg, evaluation.store, evaluation.synth.symbols)
    return results.metrics
