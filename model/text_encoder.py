"""Text encoder: token, language and (multi-speaker) speaker embeddings through residual
convolutions over the tokens, then transformer layers."""

from __future__ import annotations

import torch
from torch import nn

from model.config import ModelConfig
from model.layers import EncoderLayer, PositionalEncoding, TokenConvolutions


class TextEncoder(nn.Module):
    """tokens [B, N] -> hidden [B, N, D], zero on padding."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(cfg.n_symbols, cfg.d_model, padding_idx=0)
        self.language = nn.Embedding(cfg.n_languages, cfg.d_model)
        # A speaker embedding only when there is more than one speaker: with one, it would be a
        # constant bias the other layers already have.
        self.speaker = nn.Embedding(cfg.n_speakers, cfg.d_model) if cfg.n_speakers > 1 else None
        # Local context first, as Transformer-TTS's encoder pre-net: a phone's sound depends on
        # its neighbours, which the attention layers would otherwise have to find by position.
        self.convs = (
            TokenConvolutions(cfg.d_model, cfg.text_conv_layers, cfg.text_conv_kernel, cfg.dropout)
            if cfg.text_conv_layers
            else None
        )
        self.pos = PositionalEncoding(cfg.d_model)
        self.layers = nn.ModuleList(
            EncoderLayer(cfg.d_model, cfg.heads, cfg.ff, cfg.dropout, cfg.attention_dropout)
            for _ in range(cfg.encoder_layers)
        )
        self.norm = nn.LayerNorm(cfg.d_model)

    def forward(
        self, tokens: torch.Tensor, mask: torch.Tensor, languages: torch.Tensor, speakers: torch.Tensor
    ) -> torch.Tensor:
        x = self.embed(tokens) + self.language(languages)[:, None, :]
        if self.speaker is not None:
            x = x + self.speaker(speakers)[:, None, :]
        if self.convs is not None:
            x = self.convs(x, mask)
        x = self.pos(x) * mask[..., None]
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x) * mask[..., None]
