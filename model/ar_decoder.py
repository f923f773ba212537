"""The autoregressive decoder: previous mel frames in, next `r` frames and a stop logit out.

Teacher-forced in training (all steps in one causal pass); step by step with a key/value
cache at synthesis, where the predicted durations keep the cross-attention inside a window
around the token that should be speaking now, so words are neither skipped nor repeated,
and a length cap derived from them ends a run whose stop token never fires.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from model.config import ModelConfig
from model.duration import length_regulate
from model.layers import DecoderLayer, PositionalEncoding, Prenet, lengths_to_mask
from model.losses import step_mask as steps_of


@dataclass
class DecoderOutput:
    """mel [B, T, n_mels]; stop logits [B, S]; cross-attention [B, S, N] (mean over heads and
    layers); step mask [B, S]. S = ceil(T / r) decoder steps."""

    mel: torch.Tensor
    stop_logits: torch.Tensor
    attention: torch.Tensor
    step_mask: torch.Tensor


def expected_tokens(durations: torch.Tensor, steps: torch.Tensor, r: int) -> torch.Tensor:
    """Index of the token the durations say is speaking at the first frame of each step.
    durations [B, N]; steps [S] -> [B, S]."""
    ends = durations.cumsum(1)
    frames = (steps * r)[None, :].expand(durations.size(0), -1).contiguous()
    return torch.searchsorted(ends, frames, right=True).clamp(max=durations.size(1) - 1)


def window_mask(centers: torch.Tensor, token_mask: torch.Tensor, width: int) -> torch.Tensor:
    """[B, S] centers -> [B, S, N] True on real tokens within `width` of the center."""
    n = torch.arange(token_mask.size(1), device=centers.device)
    near = (n[None, None, :] - centers[..., None]).abs() <= width
    return near & token_mask[:, None, :]


class AutoregressiveDecoder(nn.Module):
    """Causal transformer decoder with a prenet, cross-attention to the text, mel and stop heads."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.r = cfg.reduction
        self.n_mels = cfg.n_mels
        self.window = cfg.attention_window
        self.prenet = Prenet(cfg.reduction * cfg.n_mels, cfg.prenet_dim, cfg.d_model, cfg.prenet_dropout)
        self.style = nn.Linear(cfg.latent, cfg.d_model)
        self.pos = PositionalEncoding(cfg.d_model)
        self.layers = nn.ModuleList(
            DecoderLayer(cfg.d_model, cfg.heads, cfg.ff, cfg.dropout, cfg.attention_dropout)
            for _ in range(cfg.decoder_layers)
        )
        self.norm = nn.LayerNorm(cfg.d_model)
        self.mel_head = nn.Linear(cfg.d_model, cfg.reduction * cfg.n_mels)
        self.stop_head = nn.Linear(cfg.d_model, 1)
        self.aligned = nn.Linear(cfg.d_model, cfg.d_model) if cfg.aligned_conditioning else None

    def _aligned(self, memory: torch.Tensor, durations: torch.Tensor, steps: int) -> torch.Tensor:
        """The text state each step is speaking: the length-regulated memory averaged over the
        step's r frames, projected [B, steps, D]; zero past the durations' end, which is the
        decoder's cue to stop."""
        assert self.aligned is not None
        frames = length_regulate(memory, durations, steps * self.r)
        b, _, d = frames.shape
        return self.aligned(frames.view(b, steps, self.r, d).mean(2))

    def _inputs(self, mels: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        """Step s sees the r frames of step s-1 (zeros, the 'go' frame, at s=0)."""
        b, t, m = mels.shape
        s = -(-t // self.r)
        padded = torch.zeros(b, s * self.r, m, dtype=mels.dtype, device=mels.device)
        padded[:, :t] = mels * frame_mask[..., None]
        groups = padded.view(b, s, self.r * m)
        return torch.cat([torch.zeros_like(groups[:, :1]), groups[:, :-1]], dim=1)

    def forward(
        self,
        mels: torch.Tensor,
        frame_mask: torch.Tensor,
        memory: torch.Tensor,
        token_mask: torch.Tensor,
        latent: torch.Tensor,
        durations: torch.Tensor | None = None,
        cross_allowed: torch.Tensor | None = None,
    ) -> DecoderOutput:
        """Teacher-forced pass: `mels` are the previous frames fed in (the targets, or a mix of
        targets and the model's own predictions under scheduled sampling). `durations` [B, N]
        (the aligner's) are required with aligned conditioning. `cross_allowed` [B, S, N]
        restricts the cross-attention per step (default: every real token)."""
        b, t, _ = mels.shape
        step_mask = steps_of(frame_mask, self.r)
        s = step_mask.size(1)
        x = self.prenet(self._inputs(mels, frame_mask)) + self.style(latent)[:, None, :]
        if self.aligned is not None:
            if durations is None:
                raise ValueError("aligned conditioning needs the durations")
            x = x + self._aligned(memory, durations, s)
        x = self.pos(x)
        causal = torch.ones(s, s, dtype=torch.bool, device=mels.device).tril()
        self_allowed = causal[None] & step_mask[:, None, :]
        cross = token_mask[:, None, :] if cross_allowed is None else cross_allowed
        weights = []
        for layer in self.layers:
            x, w = layer(x, self_allowed, layer.cross_attn.project_kv(memory), cross, step_mask)
            weights.append(w.mean(1))
        x = self.norm(x)
        mel = self.mel_head(x).view(b, s * self.r, self.n_mels)[:, :t] * frame_mask[..., None]
        stop = self.stop_head(x).squeeze(-1)
        attention = torch.stack(weights).mean(0) * step_mask[..., None]
        return DecoderOutput(mel, stop, attention, step_mask)

    @torch.no_grad()
    def generate(
        self,
        memory: torch.Tensor,
        token_mask: torch.Tensor,
        latent: torch.Tensor,
        durations: torch.Tensor,
        max_length_factor: float,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Free-running synthesis with a key/value cache.

        `durations` [B, N] are the predicted frames per token: they place the attention window
        (tokens within `attention_window` of the expected one) and set the length cap,
        ceil(max_length_factor * predicted frames / r) steps. Returns mel [B, T, n_mels],
        frame lengths [B], whether the stop fired [B], and the windows used [B, S, N].
        """
        b = memory.size(0)
        device = memory.device
        predicted = durations.sum(1).clamp_min(1)
        max_steps = int(torch.ceil(max_length_factor * predicted.max().float() / self.r))
        memory_kv = [layer.cross_attn.project_kv(memory) for layer in self.layers]
        caches: list[dict[str, torch.Tensor]] = [{} for _ in self.layers]
        style = self.style(latent)[:, None, :]
        aligned = self._aligned(memory, durations, max_steps) if self.aligned is not None else None
        prev = torch.zeros(b, 1, self.r * self.n_mels, device=device, dtype=memory.dtype)
        lengths = torch.zeros(b, dtype=torch.long, device=device)
        fired = torch.zeros(b, dtype=torch.bool, device=device)
        done = torch.zeros(b, dtype=torch.bool, device=device)
        cap = torch.ceil(max_length_factor * predicted.float() / self.r).long()
        frames, windows = [], []
        ones = torch.ones(b, 1, dtype=torch.bool, device=device)
        for s in range(max_steps):
            center = expected_tokens(durations, torch.tensor([s], device=device), self.r)
            allowed = window_mask(center, token_mask, self.window)  # [B, 1, N]
            x = self.prenet(prev) + style
            if aligned is not None:
                x = x + aligned[:, s : s + 1]
            x = self.pos(x, offset=s)
            self_allowed = torch.ones(b, 1, s + 1, dtype=torch.bool, device=device)
            for layer, kv, cache in zip(self.layers, memory_kv, caches):
                x, _ = layer(x, self_allowed, kv, allowed, ones, cache)
            x = self.norm(x)
            out = self.mel_head(x)  # [B, 1, r*M]
            stop = torch.sigmoid(self.stop_head(x)).view(b) > 0.5
            frames.append(out.view(b, self.r, self.n_mels))
            windows.append(allowed[:, 0])
            lengths = torch.where(done, lengths, lengths + self.r)
            fired = fired | (stop & ~done)
            done = done | stop | (s + 1 >= cap)
            prev = out
            if bool(done.all()):
                break
        mel = torch.cat(frames, dim=1)
        mel = mel * lengths_to_mask(lengths.to(device), mel.size(1))[..., None]
        return mel, lengths, fired, torch.stack(windows, dim=1)
