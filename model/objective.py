"""From model outputs and a batch to the raw loss terms (model/losses.py defines each term)."""

from __future__ import annotations

import torch

from model.config import LossSettings
from model.losses import (
    attention_alignment_error,
    attention_loss,
    attention_targets,
    duration_loss,
    kl_loss,
    mel_loss,
    stop_loss,
    stop_targets,
)
from model.tts import TTSBatch, TTSOutput


def raw_losses(out: TTSOutput, batch: TTSBatch, s: LossSettings) -> dict[str, torch.Tensor | None]:
    """Each term, unweighted. `stop` and `attention` are None for the parallel decoder: they
    do not apply to it, which is not the same as being zero."""
    terms: dict[str, torch.Tensor | None] = {
        "mel": mel_loss(out.mel_pre, out.mel_post, batch.mels, batch.frame_mask, s.huber_delta, s.mel_label_smoothing),
        "kl": kl_loss(out.mu, out.logvar),
        "duration": duration_loss(out.log_durations, batch.durations, batch.token_mask),
        "stop": None,
        "attention": None,
    }
    if out.stop_logits is not None and out.step_mask is not None:
        targets = stop_targets(batch.frame_mask, s.reduction)
        terms["stop"] = stop_loss(out.stop_logits, targets, out.step_mask, s.stop_pos_weight, s.stop_label_smoothing)
    if out.attention is not None and out.step_mask is not None:
        targets = attention_targets(
            batch.durations, batch.token_mask, batch.frame_mask, s.reduction, s.attention_soften
        )
        terms["attention"] = attention_loss(out.attention, targets, out.step_mask, batch.token_mask)
    return terms


def alignment_error(out: TTSOutput, batch: TTSBatch, reduction: int) -> torch.Tensor | None:
    """Mean distance in tokens between where the decoder attends and where the durations say
    it should (autoregressive decoder only)."""
    if out.attention is None or out.step_mask is None:
        return None
    targets = attention_targets(batch.durations, batch.token_mask, batch.frame_mask, reduction, 0.0)
    return attention_alignment_error(out.attention, targets, out.step_mask)


@torch.no_grad()
def teacher_forced_metrics(
    model: torch.nn.Module, batches: list[TTSBatch], s: LossSettings, device: torch.device
) -> dict[str, float]:
    """The validation figures of a teacher-forced pass (the model in eval mode):
    `val_mel_loss` (L1 on normalized mels after the postnet, over real frames and mel
    channels), each raw term as `val/<term>` (mean over batches) and, for the autoregressive
    decoder, `val/alignment_error`."""
    l1_sum, frames = 0.0, 0
    terms: dict[str, float] = {}
    align: list[float] = []
    for batch in batches:
        batch = batch.to(device)
        out = model(batch)
        mask = batch.frame_mask[..., None]
        l1_sum += float(((out.mel_post - batch.mels).abs() * mask).sum() / batch.mels.size(-1))
        frames += int(batch.frame_mask.sum())
        for k, v in raw_losses(out, batch, s).items():
            if v is not None:
                terms[k] = terms.get(k, 0.0) + float(v) / len(batches)
        err = alignment_error(out, batch, s.reduction)
        if err is not None:
            align.append(float(err))
    result = {"val_mel_loss": l1_sum / max(frames, 1), **{f"val/{k}": v for k, v in terms.items()}}
    if align:
        result["val/alignment_error"] = sum(align) / len(align)
    return result
