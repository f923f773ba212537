"""Hamgara's acoustic model: text encoder, style VAE, duration predictor, a decoder
(autoregressive or parallel) and a postnet. Pure torch: batches in, tensors out."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from model.ar_decoder import AutoregressiveDecoder
from model.config import ModelConfig
from model.duration import DurationPredictor, durations_from_log
from model.layers import Postnet, lengths_to_mask
from model.parallel_decoder import ParallelDecoder
from model.style import ReferenceEncoder, sample_latent
from model.text_encoder import TextEncoder


@dataclass
class TTSBatch:
    """A padded batch. mels are normalized log-mels; durations are the aligner's (sum per
    utterance == its frames)."""

    tokens: torch.Tensor  # [B, N] int64
    token_mask: torch.Tensor  # [B, N] bool
    speakers: torch.Tensor  # [B] int64
    languages: torch.Tensor  # [B] int64
    mels: torch.Tensor  # [B, T, n_mels]
    frame_mask: torch.Tensor  # [B, T] bool
    durations: torch.Tensor  # [B, N] int64

    def to(self, device: torch.device, non_blocking: bool = False) -> TTSBatch:
        """The batch on `device`."""
        return TTSBatch(**{k: v.to(device, non_blocking=non_blocking) for k, v in self.__dict__.items()})


@dataclass
class TTSOutput:
    """Training outputs. stop_logits, attention and step_mask are None for the parallel decoder."""

    mel_pre: torch.Tensor
    mel_post: torch.Tensor
    log_durations: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor
    stop_logits: torch.Tensor | None
    attention: torch.Tensor | None
    step_mask: torch.Tensor | None


@dataclass
class Synthesis:
    """Free-running output: mel [B, T, n_mels] (normalized), lengths [B] frames, stop_fired [B]
    (None for the parallel decoder, which has no stop), predicted durations [B, N]."""

    mel: torch.Tensor
    lengths: torch.Tensor
    stop_fired: torch.Tensor | None
    durations: torch.Tensor


class HamgaraTTS(nn.Module):
    """The whole acoustic model; `cfg.decoder` picks the decoder family."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = TextEncoder(cfg)
        self.reference = ReferenceEncoder(cfg)
        self.duration = DurationPredictor(cfg)
        self.decoder: nn.Module
        if cfg.decoder == "autoregressive":
            self.decoder = AutoregressiveDecoder(cfg)
        else:
            self.decoder = ParallelDecoder(cfg)
        self.postnet = Postnet(cfg.n_mels, cfg.postnet_channels, cfg.postnet_layers, cfg.dropout)

    def forward(self, batch: TTSBatch, sampling: float = 0.0, input_noise: float = 0.0) -> TTSOutput:
        """Teacher-forced training pass: the decoder sees the target durations (parallel) or
        the target frames (autoregressive); the style latent is sampled from the target's own
        posterior.

        Autoregressive decoder only, against exposure bias (both 0 = plain teacher forcing):
        `input_noise` adds Gaussian noise of that std to the previous frames fed in, and
        `sampling` is scheduled sampling made cheap for a transformer: a first pass without
        gradients predicts every frame, then each decoder step is fed that (detached)
        prediction instead of the true previous frames with this probability, in a second
        pass whose output is the one trained."""
        memory = self.encoder(batch.tokens, batch.token_mask, batch.languages, batch.speakers)
        log_durations = self.duration(memory, batch.token_mask)
        mu, logvar = self.reference(batch.mels, batch.frame_mask)
        latent = sample_latent(mu, logvar, self.training)
        durations = batch.durations * batch.token_mask
        stop = attention = step_mask = None
        if isinstance(self.decoder, AutoregressiveDecoder):
            fed = self._fed_frames(batch, memory, latent, durations, sampling, input_noise)
            out = self.decoder(fed, batch.frame_mask, memory, batch.token_mask, latent, durations)
            mel, stop, attention, step_mask = out.mel, out.stop_logits, out.attention, out.step_mask
        else:
            mel, _ = self.decoder(memory, durations, latent, batch.mels.size(1))
        mel_post = self.postnet(mel, batch.frame_mask) * batch.frame_mask[..., None]
        return TTSOutput(mel, mel_post, log_durations, mu, logvar, stop, attention, step_mask)

    def _fed_frames(
        self,
        batch: TTSBatch,
        memory: torch.Tensor,
        latent: torch.Tensor,
        durations: torch.Tensor,
        sampling: float,
        input_noise: float,
    ) -> torch.Tensor:
        """The previous frames the autoregressive decoder is fed in training: the targets, with
        noise and with the model's own predictions mixed in per decoder step (see `forward`)."""
        fed = batch.mels
        if input_noise > 0:
            fed = fed + input_noise * torch.randn_like(fed)
        if sampling > 0:
            with torch.no_grad():
                own = self.decoder(fed, batch.frame_mask, memory, batch.token_mask, latent, durations).mel
            r = self.cfg.reduction
            steps = -(-fed.size(1) // r)
            # One draw per decoder step, so a step sees all r frames of one source.
            pick = torch.rand(fed.size(0), steps, device=fed.device) < sampling
            pick = pick.repeat_interleave(r, dim=1)[:, : fed.size(1), None]
            fed = torch.where(pick, own.to(fed.dtype), fed)
        return fed

    @torch.no_grad()
    def synthesize(
        self,
        tokens: torch.Tensor,
        token_mask: torch.Tensor,
        languages: torch.Tensor,
        speakers: torch.Tensor,
        reference: tuple[torch.Tensor, torch.Tensor] | None = None,
        length_scale: float = 1.0,
    ) -> Synthesis:
        """Free-running synthesis. `reference` (mel [B, T, n_mels], mask [B, T]) gives the style
        latent's mean (voice/style cloning); without it the prior mean (zeros) is used.
        `length_scale` stretches the predicted durations (>1 slower)."""
        memory = self.encoder(tokens, token_mask, languages, speakers)
        durations = durations_from_log(self.duration(memory, token_mask), token_mask, length_scale)
        # Every real token but a word separator is said: at least one frame each.
        optional = torch.isin(tokens, torch.tensor(self.cfg.optional_ids, dtype=tokens.dtype, device=tokens.device))
        durations = torch.where(token_mask & ~optional, durations.clamp_min(1), durations)
        if reference is not None:
            latent, _ = self.reference(*reference)
        else:
            latent = torch.zeros(tokens.size(0), self.cfg.latent, device=tokens.device)
        if isinstance(self.decoder, AutoregressiveDecoder):
            mel, lengths, fired, _ = self.decoder.generate(
                memory, token_mask, latent, durations, self.cfg.max_length_factor
            )
            stop_fired: torch.Tensor | None = fired
        else:
            mel, frame_mask = self.decoder(memory, durations, latent)
            lengths, stop_fired = frame_mask.sum(1), None
        frame_mask = lengths_to_mask(lengths.to(mel.device), mel.size(1))
        mel = self.postnet(mel, frame_mask) * frame_mask[..., None]
        return Synthesis(mel, lengths, stop_fired, durations)


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Trainable parameters per top-level module and in total."""
    counts = {name: sum(p.numel() for p in m.parameters() if p.requires_grad) for name, m in model.named_children()}
    counts["total"] = sum(counts.values())
    return counts
