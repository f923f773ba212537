"""Durations: the predictor trained on the aligner's durations, and the length regulator."""

from __future__ import annotations

import torch
from torch import nn

from model.config import ModelConfig
from model.dropout import Dropout


class DurationPredictor(nn.Module):
    """hidden [B, N, D] -> log(duration + 1) [B, N], zero on padding (FastSpeech 2 style)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c = cfg.duration_channels
        self.conv1 = nn.Conv1d(cfg.d_model, c, 3, padding=1)
        self.norm1 = nn.LayerNorm(c)
        self.conv2 = nn.Conv1d(c, c, 3, padding=1)
        self.norm2 = nn.LayerNorm(c)
        self.out = nn.Linear(c, 1)
        self.drop = Dropout(cfg.dropout)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask[..., None].to(hidden.dtype)
        x = hidden * m
        x = self.drop(self.norm1(torch.relu(self.conv1(x.transpose(1, 2)).transpose(1, 2)))) * m
        x = self.drop(self.norm2(torch.relu(self.conv2(x.transpose(1, 2)).transpose(1, 2)))) * m
        return self.out(x).squeeze(-1) * mask


def durations_from_log(log_durations: torch.Tensor, mask: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Predicted frames per token: round(scale * (exp(pred) - 1)), at least 0, 0 on padding.

    Computed in float64: float32 exp implementations (torch's vectorized one, numpy's, an ONNX
    runtime's) differ in the last bit, and a value that lands on a .5 then rounds differently
    in each; in float64 no float32 prediction lands within their disagreement of a .5, so the
    exported voice's runtime (pipeline/runtime/decoding.py) rounds every duration as this does."""
    d = torch.round(scale * (torch.exp(log_durations.double()) - 1.0)).clamp_min(0)
    return (d * mask).long()


def length_regulate(hidden: torch.Tensor, durations: torch.Tensor, n_frames: int | None = None) -> torch.Tensor:
    """Repeat each token's hidden vector `duration` times: [B, N, D] -> [B, T, D], zero beyond
    each utterance's total (T = n_frames or the longest total)."""
    b, n, d = hidden.shape
    totals = durations.sum(1)
    t = int(totals.max()) if n_frames is None else n_frames
    ends = durations.cumsum(1)  # [B, N]
    frames = torch.arange(t, device=hidden.device)[None, :].expand(b, t).contiguous()
    # Token of each frame: how many token ends are at or before it.
    index = torch.searchsorted(ends, frames, right=True).clamp(max=n - 1)
    out = torch.gather(hidden, 1, index[..., None].expand(b, t, d))
    return out * (frames < totals[:, None])[..., None]
