"""The style latent: a VAE posterior over a small latent from a reference mel.

In training the reference is the target utterance itself, so the latent can carry what the
text does not say (speaking style, recording conditions); the KL term keeps it close to a
unit Gaussian so that the prior mean is a sensible default at synthesis, and a reference
recording gives voice/style cloning.
"""

from __future__ import annotations

import torch
from torch import nn

from model.config import ModelConfig


class ReferenceEncoder(nn.Module):
    """mel [B, T, n_mels] + mask -> (mu, logvar) [B, latent] by convolutions and masked mean pooling."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c = cfg.reference_channels
        self.convs = nn.ModuleList(
            [nn.Conv1d(cfg.n_mels, c, 5, padding=2), nn.Conv1d(c, c, 5, padding=2), nn.Conv1d(c, c, 5, padding=2)]
        )
        self.to_stats = nn.Linear(c, 2 * cfg.latent)

    def forward(self, mel: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = mask[:, None, :].to(mel.dtype)
        x = mel.transpose(1, 2) * m
        for conv in self.convs:
            x = torch.relu(conv(x)) * m
        pooled = x.sum(-1) / m.sum(-1).clamp_min(1.0)
        mu, logvar = self.to_stats(pooled).chunk(2, dim=-1)
        # Bounded log-variance: an exploding posterior variance would make the KL and the
        # sample numerically useless early in training.
        return mu, logvar.clamp(-8.0, 8.0)


def sample_latent(mu: torch.Tensor, logvar: torch.Tensor, training: bool) -> torch.Tensor:
    """The reparameterized sample in training, the mean otherwise."""
    if not training:
        return mu
    return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
