"""Text -> mel -> waveform from a checkpoint alone.

A checkpoint (`models/best.pt` or `models/last.pt`) carries the model config, the symbol table,
the frontend, the speakers and languages, the mel settings and the training-split mel
statistics, so synthesis needs nothing else: text is normalized and turned into symbols
exactly as precompute did, the model predicts normalized mels, those are de-normalized with
the stored statistics and handed to a vocoder. A long line is said in pieces the model's
position tables can hold (pipeline/evaluation/chunking.py) and joined with short pauses.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from model.config import ModelConfig
from model.layers import lengths_to_mask
from model.mel import LogMel, MelSettings
from model.text import FrontendError, text_to_ids
from model.tts import HamgaraTTS
from model.vocoder import Vocoder
from pipeline.evaluation.chunking import (
    EDGE_FADE_SECONDS,
    SENTENCE_PAUSE_SECONDS,
    fade_edges,
    join_with_gaps,
    max_piece_tokens,
    text_pieces,
)
from pipeline.training.checkpoint import CheckpointError, load_checkpoint, model_state


class ReferenceAudioError(ValueError):
    """The reference recording (`hamgara synth --reference`) cannot be read; the message names
    the file and why."""


@dataclass
class Utterance:
    """One synthesized line: natural-log mel [frames, n_mels], the wave (None when not
    vocoded), whether the stop token fired (None for the parallel decoder), the predicted
    durations per token, and the seconds the acoustic model and the vocoder took."""

    text: str
    mel: np.ndarray
    wave: np.ndarray | None
    stop_fired: bool | None
    durations: np.ndarray
    model_seconds: float
    vocoder_seconds: float


def join_utterances(
    parts: list[Utterance], pause_frames: int, mel_floor: float, pause_samples: int, fade_samples: int
) -> Utterance:
    """The pieces of one line as one Utterance: mels joined with `pause_frames` of silence
    (`mel_floor` in every channel), waves (faded at the joins) with `pause_samples` of zeros,
    the durations of all pieces' tokens in order (so they no longer sum to the frames: the
    pauses belong to no token), the time taken summed, and the stop counted as fired only if it
    fired in every piece (None for the parallel decoder). One piece comes back as it is."""
    if len(parts) == 1:
        return parts[0]
    waves = [p.wave for p in parts]
    wave = None
    if all(w is not None for w in waves):
        wave = join_with_gaps([fade_edges(w, fade_samples) for w in waves if w is not None], pause_samples, 0.0)
    fired = [p.stop_fired for p in parts]
    return Utterance(
        parts[0].text,
        join_with_gaps([p.mel for p in parts], pause_frames, mel_floor),
        wave,
        None if any(f is None for f in fired) else all(fired),
        np.concatenate([p.durations for p in parts]),
        sum(p.model_seconds for p in parts),
        sum(p.vocoder_seconds for p in parts),
    )


class Synthesizer:
    """The acoustic model of one checkpoint, ready to turn text into mels (and waves)."""

    def __init__(self, ckpt: dict[str, Any], device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        cfg = dict(ckpt["model_config"])
        cfg["optional_ids"] = tuple(cfg.get("optional_ids", ()))
        self.config = ModelConfig(**cfg)
        self.model = HamgaraTTS(self.config).to(self.device).eval()
        self.model.load_state_dict(model_state(ckpt))
        self.symbols: list[str] = list(ckpt["symbols"])
        self.frontend: str = ckpt["frontend"]
        self.languages: list[str] = list(ckpt["languages"])
        self.speakers: list[str] = list(ckpt["speakers"])
        self.mel_settings = MelSettings(**ckpt["mel"])
        self.mean = torch.tensor(ckpt["mel_mean"], dtype=torch.float32)
        self.std = torch.tensor(ckpt["mel_std"], dtype=torch.float32)
        self.features: dict[str, Any] | None = ckpt.get("features")
        self.step = ckpt.get("step", ckpt.get("trainer", {}).get("step"))

    @classmethod
    def from_file(cls, path: str | Path, device: torch.device | str = "cpu") -> Synthesizer:
        """Load `path` (see load_checkpoint) onto `device`."""
        return cls(load_checkpoint(path, device), device)

    def language(self, name: str | None) -> str:
        """The language to speak: `name`, or the only one the model knows."""
        if name is None:
            if len(self.languages) > 1:
                raise FrontendError(f"this model speaks {', '.join(self.languages)}: choose one with --language")
            return self.languages[0]
        if name not in self.languages:
            raise FrontendError(f"language {name!r} is not one this model was trained on ({', '.join(self.languages)})")
        return name

    def speaker(self, name: str | None) -> int:
        """The speaker index: `name`, or the first speaker."""
        if name is None:
            return 0
        if name not in self.speakers:
            raise FrontendError(f"speaker {name!r} is not one this model was trained on ({', '.join(self.speakers)})")
        return self.speakers.index(name)

    def tokens(self, texts: list[str], language: str, lines: Sequence[int] | None = None) -> list[list[int]]:
        """Symbol ids of each text, by the frontend the model was trained with, its numbers,
        amounts and abbreviations first spelled out as words of `language` (model/text.py
        `text_to_ids`, which the exported voice's runtime shares); empty text, characters the
        frontend cannot read even then and symbols the model never saw raise FrontendError
        naming the line: `lines[i]` is text i's line number, by default its position from 1."""
        return text_to_ids(texts, language, self.frontend, self.symbols, lines)

    def max_chunk_tokens(self, length_scale: float = 1.0) -> int:
        """The most tokens one piece may hold so that neither position table overflows
        (pipeline/evaluation/chunking.py `max_piece_tokens`)."""
        cfg = self.config
        return max_piece_tokens(
            int(self.model.encoder.pos.pe.size(0)),
            int(self.model.decoder.pos.pe.size(0)),
            self.mel_settings.sample_rate / self.mel_settings.hop_length,
            length_scale,
            cfg.reduction if cfg.decoder == "autoregressive" else None,
            cfg.max_length_factor,
        )

    def chunk_tokens(self, texts: list[str], language: str, bound: int) -> tuple[list[int], list[list[int]]]:
        """Each text's sentences as symbol ids, a sentence longer than `bound` tokens cut at a
        comma or word boundary near it: (the index of the text each piece belongs to, the
        pieces' ids), in reading order (pipeline/evaluation/chunking.py `text_pieces`)."""
        return text_pieces(texts, language, self.frontend, self.symbols, bound)

    def reference_latent_input(self, wave_path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
        """A reference recording as the normalized mel and mask the style encoder reads. A path
        that is no file, a file libsndfile cannot decode and one without samples raise
        ReferenceAudioError."""
        from pipeline.data.audio import load_waveform, recorded_trim_frames

        if self.features is None:
            raise CheckpointError("this checkpoint predates reference-audio support (no feature settings stored)")
        path = Path(wave_path)
        if not path.exists():
            raise ReferenceAudioError(f"--reference {path}: no such file")
        if path.is_dir():
            raise ReferenceAudioError(f"--reference {path}: a folder, not an audio file")
        try:
            wave, _ = load_waveform(
                str(path),
                self.mel_settings.sample_rate,
                self.features["trim_top_db"],
                self.features["peak_norm"],
                *recorded_trim_frames(self.features),
            )
        except sf.SoundFileError as e:  # libsndfile's refusal: not audio, or a decoder error inside the file
            reason = getattr(e, "error_string", None) or str(e)
            raise ReferenceAudioError(f"--reference {path}: not an audio file libsndfile can read ({reason})") from None
        if wave.numel() == 0:
            raise ReferenceAudioError(f"--reference {path}: no samples (an empty recording has no style to take on)")
        with torch.no_grad():
            mel = LogMel(self.mel_settings)(wave)
        mel = ((mel - self.mean) / self.std)[None].to(self.device)
        return mel, torch.ones(mel.shape[:2], dtype=torch.bool, device=self.device)

    @torch.no_grad()
    def mels(
        self,
        token_lists: list[list[int]],
        language: str,
        speaker: int = 0,
        reference: tuple[torch.Tensor, torch.Tensor] | None = None,
        length_scale: float = 1.0,
    ) -> list[tuple[np.ndarray, bool | None, np.ndarray]]:
        """Free-running synthesis of a batch: (natural-log mel [frames, n_mels], stop fired,
        predicted durations) per line."""
        b, n = len(token_lists), max(len(t) for t in token_lists)
        tokens = torch.zeros(b, n, dtype=torch.long)
        for i, t in enumerate(token_lists):
            tokens[i, : len(t)] = torch.tensor(t)
        mask = lengths_to_mask(torch.tensor([len(t) for t in token_lists]), n)
        lang = torch.full((b,), self.languages.index(language), dtype=torch.long)
        spk = torch.full((b,), speaker, dtype=torch.long)
        if reference is not None:
            reference = (reference[0].expand(b, -1, -1), reference[1].expand(b, -1))
        out = self.model.synthesize(
            tokens.to(self.device),
            mask.to(self.device),
            lang.to(self.device),
            spk.to(self.device),
            reference,
            length_scale,
        )
        mel = out.mel.float().cpu() * self.std + self.mean
        result = []
        for i in range(b):
            frames = int(out.lengths[i])
            fired = None if out.stop_fired is None else bool(out.stop_fired[i])
            result.append((mel[i, :frames].numpy(), fired, out.durations[i, : len(token_lists[i])].cpu().numpy()))
        return result

    def synthesize(
        self,
        texts: list[str],
        vocoder: Vocoder | None,
        language: str | None = None,
        speaker: str | None = None,
        reference_wav: str | Path | None = None,
        length_scale: float = 1.0,
        batch_size: int = 8,
        pause_seconds: float = SENTENCE_PAUSE_SECONDS,
    ) -> list[Utterance]:
        """Texts -> one Utterance per text (mels, and waves when a vocoder is given), of any
        length: each text is said sentence by sentence, a sentence too long for the position
        tables (`max_chunk_tokens`) in pieces, and the pieces are joined with `pause_seconds`
        of silence (see `join_utterances`). The pieces of all texts are synthesized together,
        in batches of similar length. A one-sentence text within the bound is synthesized
        exactly as `synthesize_tokens` alone would (same mel, same wave)."""
        lang = self.language(language)
        reference = self.reference_latent_input(reference_wav) if reference_wav is not None else None
        owners, pieces = self.chunk_tokens(texts, lang, self.max_chunk_tokens(length_scale))
        utts = self.synthesize_tokens(
            pieces,
            [texts[o] for o in owners],
            vocoder,
            lang,
            self.speaker(speaker),
            reference,
            length_scale,
            batch_size,
        )
        hop_seconds = self.mel_settings.hop_length / self.mel_settings.sample_rate
        pause_frames = round(pause_seconds / hop_seconds)
        sample_rate = vocoder.sample_rate if vocoder is not None else self.mel_settings.sample_rate
        # The mel of silence: every channel at the floor the log was clamped to.
        mel_floor = float(np.log(self.mel_settings.log_clamp))
        return [
            join_utterances(
                [u for u, o in zip(utts, owners) if o == i],
                pause_frames,
                mel_floor,
                round(pause_frames * hop_seconds * sample_rate),
                round(EDGE_FADE_SECONDS * sample_rate),
            )
            for i in range(len(texts))
        ]

    def synthesize_tokens(
        self,
        token_lists: list[list[int]],
        texts: list[str],
        vocoder: Vocoder | None,
        language: str,
        speaker: int = 0,
        reference: tuple[torch.Tensor, torch.Tensor] | None = None,
        length_scale: float = 1.0,
        batch_size: int = 8,
    ) -> list[Utterance]:
        """Symbol ids (with their texts) -> Utterances in the same order, synthesized in
        batches of similar length; each utterance carries its share of its batch's model time
        and its own vocoder time."""
        order = sorted(range(len(token_lists)), key=lambda i: len(token_lists[i]))
        results: list[Utterance | None] = [None] * len(token_lists)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            t0 = time.perf_counter()
            mels = self.mels([token_lists[i] for i in idx], language, speaker, reference, length_scale)
            model_seconds = (time.perf_counter() - t0) / len(idx)
            for i, (mel, fired, durations) in zip(idx, mels):
                t1 = time.perf_counter()
                wave = vocoder(torch.from_numpy(mel)).numpy() if vocoder is not None else None
                results[i] = Utterance(texts[i], mel, wave, fired, durations, model_seconds, time.perf_counter() - t1)
        return [r for r in results if r is not None]
