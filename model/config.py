"""The model's configuration: one typed object, built from params.yaml `model` and the features."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelConfig:
    """Every size and behaviour knob of model/tts.py.

    The vocabulary sizes (symbols, speakers, languages) and n_mels come from the features
    store, the rest from params.yaml `model` (the size preset picked by `model.size`).
    """

    decoder: str  # "autoregressive" | "parallel"
    n_symbols: int
    n_speakers: int
    n_languages: int
    n_mels: int
    d_model: int
    heads: int
    encoder_layers: int
    decoder_layers: int
    ff: int
    latent: int
    reference_channels: int
    postnet_channels: int
    postnet_layers: int
    prenet_dim: int
    duration_channels: int
    dropout: float
    prenet_dropout: float
    reduction: int
    attention_window: int
    max_length_factor: float
    # Token ids that may last 0 frames at synthesis (word separators); every other real token
    # gets at least one frame, so no phone is skipped.
    optional_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.decoder not in ("autoregressive", "parallel"):
            raise ValueError(f"model.decoder must be 'autoregressive' or 'parallel', got {self.decoder!r}")
        if self.d_model % self.heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by heads {self.heads}")
        if self.reduction < 1:
            raise ValueError(f"model.reduction must be >= 1, got {self.reduction}")
