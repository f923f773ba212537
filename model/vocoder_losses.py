"""The trained vocoder's objective: the recording's STFT magnitude, frame by frame.

The generator's frames line up with the recording's STFT frames (model/vocoder_generator.py),
so its magnitude is compared with the truth directly: L1 of the natural logs (every bin counts,
quiet ones as much as loud ones) plus the spectral convergence (the relative Frobenius error of
the linear magnitudes, which the loud harmonics dominate). The phase is not learned: Griffin-Lim
rebuilds it from the magnitude (docs/vocoder.md says what was measured before choosing this).
"""

from __future__ import annotations

import torch


def vocoder_loss_terms(
    log_magnitude: torch.Tensor, target_magnitude: torch.Tensor, floor: float
) -> dict[str, torch.Tensor]:
    """Predicted natural-log magnitude and the true linear magnitude, both [B, bins, frames]
    -> `log_l1` and `spectral_convergence`. `floor` (the mel's log clamp) bounds the true
    log magnitude below, as the prediction is bounded."""
    target_log = torch.log(target_magnitude.clamp_min(floor))
    magnitude = log_magnitude.exp()
    return {
        "log_l1": (log_magnitude - target_log).abs().mean(),
        "spectral_convergence": torch.linalg.vector_norm(magnitude - target_magnitude)
        / torch.linalg.vector_norm(target_magnitude).clamp_min(1e-8),
    }


def vocoder_loss(terms: dict[str, torch.Tensor], spectral_convergence_weight: float) -> torch.Tensor:
    """The total that is minimized."""
    return terms["log_l1"] + spectral_convergence_weight * terms["spectral_convergence"]
