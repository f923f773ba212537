"""The duration aligner: RAD-TTS's unsupervised alignment learning, trained on the user's corpus.

Why this design ("One TTS Alignment To Rule Them All", Badlani et al., 2021) rather than a
flat-start HMM forced aligner: it needs no pronunciation lexicon, phone-set mapping or
acoustic-model recipe per language — it aligns whatever symbols the frontend emits
(espeak-ng phonemes for English or Persian, or characters) to mels, learns in a few thousand
small steps on a CPU, and its training objective doubles as a per-utterance score of how well
a transcript explains its audio. Parts:

- small convolutional text and mel encoders; the soft alignment is a softmax over tokens of
  the negative squared distance between each mel frame's query and each token's key;
- a static beta-binomial prior that favours the diagonal, so training starts near a sensible
  monotonic alignment instead of discovering it;
- the forward-sum objective: the likelihood of the mel frames summed over every monotonic
  alignment, computed by torch's CTC loss with the tokens as the target sequence;
- hard durations from monotonic alignment search (Viterbi, model/mas.py) over the soft
  alignment, so every phone and punctuation token gets at least one frame and durations sum
  to the frame count.

Word separators are not aligned as sounds: the encoders see them (they shape the keys of
the phones around them), but they take no columns in training. At extraction each one may
take the frames the CTC blank explains best — a pause between words — or none, which is
what fluent speech has at most word boundaries. Punctuation is aligned like a phone, so a
pause marked by a comma lands in the comma.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import betabinom
from torch import nn
from torch.nn import functional as F


def beta_binomial_log_prior(n_tokens: int, n_frames: int, scaling: float) -> np.ndarray:
    """log P(token | frame) [n_frames, n_tokens]: frame t of T favours token ~ t/T * n_tokens.

    Row t is a beta-binomial over token positions with a = scaling*t, b = scaling*(T+1-t).
    """
    k = np.arange(n_tokens)
    t = np.arange(1, n_frames + 1)[:, None]
    pmf = betabinom(n_tokens - 1, scaling * t, scaling * (n_frames + 1 - t)).pmf(k[None, :])
    return np.log(np.maximum(pmf, 1e-8)).astype(np.float32)


class ConvEncoder(nn.Module):
    """Conv1d stack with ReLU, same length in and out, channels-first [B, C, T]."""

    def __init__(self, c_in: int, hidden: int, c_out: int, kernels: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = c_in
        for k in kernels:
            layers += [nn.Conv1d(c, hidden, k, padding=k // 2), nn.ReLU()]
            c = hidden
        layers.append(nn.Conv1d(c, c_out, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Aligner(nn.Module):
    """Soft text-to-mel alignment from distances between encoded tokens and encoded frames."""

    def __init__(self, n_symbols: int, n_mels: int, hidden: int, attn_dim: int, temperature: float) -> None:
        super().__init__()
        self.embed = nn.Embedding(n_symbols, hidden, padding_idx=0)
        self.text_encoder = ConvEncoder(hidden, hidden, attn_dim, (3, 3))
        self.mel_encoder = ConvEncoder(n_mels, hidden, attn_dim, (3, 1))
        self.temperature = temperature

    def forward(
        self,
        tokens: torch.Tensor,
        mels: torch.Tensor,
        token_mask: torch.Tensor,
        log_prior: torch.Tensor,
    ) -> torch.Tensor:
        """Log soft alignment [B, frames, tokens] (log-softmax over tokens, plus the log prior).

        tokens [B, N] ids; mels [B, T, n_mels] normalized; token_mask [B, N] True on the
        tokens that take frames; log_prior [B, T, N] (zero elsewhere). Tokens off the mask
        still shape their neighbours' keys through the convolutions.
        """
        keys = self.text_encoder(self.embed(tokens).transpose(1, 2))  # [B, D, N]
        queries = self.mel_encoder(mels.transpose(1, 2))  # [B, D, T]
        # Squared distance via |q|^2 + |k|^2 - 2 q.k: never materializes [B, T, N, D].
        dist = (
            (queries**2).sum(1)[:, :, None]
            + (keys**2).sum(1)[:, None, :]
            - 2 * torch.einsum("bdt,bdn->btn", queries, keys)
        )
        logits = (-self.temperature * dist).masked_fill(~token_mask[:, None, :], -1e4)
        return F.log_softmax(logits, dim=-1) + log_prior


def frame_log_probs(log_attn: torch.Tensor, token_mask: torch.Tensor, blank_logprob: float) -> torch.Tensor:
    """Per-frame log-distribution over [blank, tokens...] ([B, T, N+1]), as the CTC sees it.

    The blank has a fixed score; it explains frames no token accounts for — in speech, mostly
    pauses and transitions. Columns off `token_mask` get (practically) zero probability.
    """
    padded = F.pad(log_attn, (1, 0), value=blank_logprob)  # blank at class 0
    keep = F.pad(token_mask, (1, 0), value=True)
    return F.log_softmax(padded.masked_fill(~keep[:, None, :], -1e4), dim=-1)


def forward_sum_loss(
    log_attn: torch.Tensor,
    token_mask: torch.Tensor,
    targets: torch.Tensor,
    target_lens: torch.Tensor,
    frame_lens: torch.Tensor,
    blank_logprob: float,
) -> torch.Tensor:
    """Per-utterance forward-sum loss, -log P(frames | tokens) summed over monotonic paths,
    divided by the utterance's frame count (so utterances of any length compare).

    Computed as CTC: a blank class with a fixed log-probability is put in front of the
    token columns, and the target is the sequence of aligned token positions (1-based
    columns, `targets` [B, M] padded, `target_lens` [B]), so every CTC path is a monotonic
    alignment that visits each aligned token at least once. Columns off `token_mask` (padding,
    word separators) take no frames.
    """
    log_probs = frame_log_probs(log_attn, token_mask, blank_logprob).transpose(0, 1)  # [T, B, N+1]
    nll = F.ctc_loss(log_probs.float(), targets, frame_lens, target_lens, blank=0, reduction="none", zero_infinity=True)
    return nll / frame_lens.float()
