"""Text -> mel -> waveform from a checkpoint alone.

A checkpoint (`models/best.pt` or `models/last.pt`) carries the model config, the symbol table,
the frontend, the speakers and languages, the mel settings and the training-split mel
statistics, so synthesis needs nothing else: text is normalized and turned into symbols
exactly as precompute did, the model predicts normalized mels, those are de-normalized with
the stored statistics and handed to a vocoder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.config import ModelConfig
from model.layers import lengths_to_mask
from model.mel import LogMel, MelSettings
from model.text import FrontendError, encode, normalize_text, to_characters, to_phonemes, unsupported_chars
from model.tts import HamgaraTTS
from model.vocoder import Vocoder
from pipeline.training.checkpoint import CheckpointError, load_checkpoint, model_state

_STRESS = "ˈˌ"
_LENGTH = "ːˑ"


def nearest_symbol(symbol: str, known: set[str]) -> str:
    """`symbol` if the model knows it, else the same phone with another stress or without its
    length mark (stress and length are folded into the phone symbols, so a phone seen only
    unstressed in training may come with secondary stress in a new sentence). A symbol with
    no known variant is returned unchanged, for `encode` to report."""
    if symbol in known:
        return symbol
    base = symbol.lstrip(_STRESS)
    stripped = base.rstrip(_LENGTH)
    for candidate in (base, "ˈ" + base, "ˌ" + base, stripped, "ˈ" + stripped, "ˌ" + stripped):
        if candidate in known:
            return candidate
    return symbol


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

    def tokens(self, texts: list[str], language: str) -> list[list[int]]:
        """Symbol ids of each text, by the frontend the model was trained with; empty text,
        characters the frontend cannot read and symbols the model never saw raise
        FrontendError naming the line."""
        normalized = [normalize_text(t) for t in texts]
        for i, t in enumerate(normalized):
            if not t:
                raise FrontendError(f"line {i + 1}: empty text")
            bad = unsupported_chars(t, language)
            if bad:
                raise FrontendError(f"line {i + 1}: characters the frontend cannot read: {bad!r} in {t!r}")
        if self.frontend == "characters":
            symbols = [to_characters(t) for t in normalized]
        else:
            symbols = to_phonemes(normalized, language)
        out = []
        known = set(self.symbols)
        for i, (t, syms) in enumerate(zip(normalized, symbols)):
            if not syms:
                raise FrontendError(f"line {i + 1} ({t!r}): the frontend produced no symbols")
            try:
                out.append(encode([nearest_symbol(s, known) for s in syms], self.symbols))
            except FrontendError as e:
                raise FrontendError(f"line {i + 1} ({t!r}): {e}; the model cannot say it") from None
        return out

    def reference_latent_input(self, wave_path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
        """A reference recording as the normalized mel and mask the style encoder reads."""
        from pipeline.data.audio import load_waveform, recorded_trim_frames

        if self.features is None:
            raise CheckpointError("this checkpoint predates reference-audio support (no feature settings stored)")
        wave, _ = load_waveform(
            str(wave_path),
            self.mel_settings.sample_rate,
            self.features["trim_top_db"],
            self.features["peak_norm"],
            *recorded_trim_frames(self.features),
        )
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
    ) -> list[Utterance]:
        """Texts -> Utterances (mels, and waves when a vocoder is given), in batches of
        similar length."""
        lang = self.language(language)
        reference = self.reference_latent_input(reference_wav) if reference_wav is not None else None
        return self.synthesize_tokens(
            self.tokens(texts, lang), texts, vocoder, lang, self.speaker(speaker), reference, length_scale, batch_size
        )

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
