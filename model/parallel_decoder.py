"""The parallel decoder: text hidden states expanded by durations, decoded in one pass.

No stop token and no attention: the durations fix the alignment outright. It exists so that
`dvc exp run -S model.decoder=parallel` shows which family converges faster on your data.
"""

from __future__ import annotations

import torch
from torch import nn

from model.config import ModelConfig
from model.duration import length_regulate
from model.layers import EncoderLayer, PositionalEncoding, lengths_to_mask


class ParallelDecoder(nn.Module):
    """(memory [B, N, D], durations [B, N]) -> mel [B, T, n_mels], zero beyond each length."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.style = nn.Linear(cfg.latent, cfg.d_model)
        self.pos = PositionalEncoding(cfg.d_model)
        self.layers = nn.ModuleList(
            EncoderLayer(cfg.d_model, cfg.heads, cfg.ff, cfg.dropout, cfg.attention_dropout, cfg.frame_attention_window)
            for _ in range(cfg.decoder_layers)
        )
        self.norm = nn.LayerNorm(cfg.d_model)
        self.mel_head = nn.Linear(cfg.d_model, cfg.n_mels)

    def forward(
        self, memory: torch.Tensor, durations: torch.Tensor, latent: torch.Tensor, n_frames: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the mel and its frame mask [B, T]."""
        x = length_regulate(memory, durations, n_frames)
        frame_mask = lengths_to_mask(durations.sum(1), x.size(1))
        x = self.pos(x + self.style(latent)[:, None, :]) * frame_mask[..., None]
        for layer in self.layers:
            x = layer(x, frame_mask)
        return self.mel_head(self.norm(x)) * frame_mask[..., None], frame_mask
