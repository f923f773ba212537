"""Transformer building blocks with explicit masks, attention weights and a key/value cache.

Masks are boolean and True where a position is real (or may be attended); every layer
zeroes padded positions on its way out, so what sits in padding never reaches a real
position and an utterance computes the same alone as in a batch.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from model.dropout import Dropout, dropout

# Every fused attention backend but cuDNN's. Under bf16/fp16 on a GPU torch prefers cuDNN's,
# which builds a graph for each new input shape: ~300 ms per call the first time a shape is
# seen, measured on an H200 (benchmarks/cuda_check.py, docs/measurements.md "The CUDA path, measured"), and
# with length-bucketed batches nearly every step brings new shapes, so mixed precision trained
# ten times slower than fp32. The others need no per-shape set-up. On the CPU nothing changes:
# its backends (flash, math) are both in the list.
_SDPA_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


def fused_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor, dropout: float
) -> torch.Tensor:
    """torch's scaled_dot_product_attention with a boolean mask (True = may attend), through
    the backends of `_SDPA_BACKENDS`."""
    with sdpa_kernel(_SDPA_BACKENDS):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout)


def lengths_to_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """[B] lengths -> [B, max_len] bool, True on the first `length` positions."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


class PositionalEncoding(nn.Module):
    """Sinusoidal positions scaled by a learned factor (Transformer-TTS): text and mel
    positions live on different scales, and the model learns how much position to add."""

    def __init__(self, d_model: int, max_len: int = 8192) -> None:
        super().__init__()
        pos = torch.arange(max_len)[:, None]
        div = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div)
        self.register_buffer("pe", pe, persistent=False)
        self.alpha = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        return x + self.alpha * self.pe[offset : offset + x.size(1)][None]


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention that returns its weights (the attention loss needs them)."""

    def __init__(self, d_model: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.d_head = d_model // heads
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = Dropout(dropout)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.d_head).transpose(1, 2)  # [B, H, T, Dh]

    def project_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of `memory` [B, S, D] (cacheable: they do not depend on the query)."""
        return self._split(self.k(memory)), self._split(self.v(memory))

    def forward(
        self,
        query: torch.Tensor,
        key_value: tuple[torch.Tensor, torch.Tensor],
        allowed: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """query [B, Tq, D]; key_value from `project_kv` [B, H, Tk, Dh]; allowed [B, Tq, Tk] or
        broadcastable, True where the query may look. Returns output [B, Tq, D] and weights
        [B, H, Tq, Tk]. A query with nothing allowed (a padded query) gets zero weights."""
        k, v = key_value
        q = self._split(self.q(query))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.d_head)
        allowed = allowed.unsqueeze(1) if allowed.dim() == 3 else allowed
        scores = scores.masked_fill(~allowed, float("-inf"))
        weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # all -inf rows -> 0
        out = self.dropout(weights) @ v
        return self.out(self._merge(out)), weights

    def attend(
        self,
        query: torch.Tensor,
        key_value: tuple[torch.Tensor, torch.Tensor],
        allowed: torch.Tensor,
    ) -> torch.Tensor:
        """`forward` without the weights, through torch's fused scaled_dot_product_attention:
        self-attention needs no weights, and materialising them (and a dropout mask as large)
        over every pair of frames was the parallel decoder's costliest step
        (benchmarks/profile_step.py). Same arguments; a query with nothing allowed attends
        everywhere instead of nowhere (no NaN), so its caller must mask that position's output."""
        k, v = key_value
        q = self._split(self.q(query))
        allowed = allowed.unsqueeze(1) if allowed.dim() == 3 else allowed
        allowed = allowed | ~allowed.any(dim=-1, keepdim=True)
        p = self.dropout.p if self.training else 0.0
        out = fused_attention(q, k, v, allowed, p)
        return self.out(self._merge(out))

    def attend_local(self, x: torch.Tensor, mask: torch.Tensor, window: int) -> torch.Tensor:
        """Self-attention of x [B, T, D] in which each position sees the real positions (mask
        [B, T], True where real) at most `window` away: exactly `attend` with a banded mask,
        computed block by block (blocks of `window` positions, each against itself and its two
        neighbours), so its cost grows as T * 3 * window instead of T^2. Padded positions'
        outputs are arbitrary (finite); the caller masks them."""
        b, t, _ = x.shape
        w, blocks = window, -(-t // window)
        pad = blocks * w - t
        q = F.pad(self._split(self.q(x)), (0, 0, 0, pad))
        q = q.view(b, self.heads, blocks, w, self.d_head)

        def neighbourhoods(z: torch.Tensor) -> torch.Tensor:  # [B, H, T, Dh] -> [B, H, blocks, 3w, Dh]
            return F.pad(z, (0, 0, w, pad + w)).unfold(2, 3 * w, w).transpose(-1, -2)

        k, v = neighbourhoods(self._split(self.k(x))), neighbourhoods(self._split(self.v(x)))
        real = F.pad(mask, (w, pad + w)).unfold(1, 3 * w, w)  # [B, blocks, 3w]
        # Query i of a block sits at offset w + i of its neighbourhood.
        offsets = torch.arange(3 * w, device=x.device)
        band = (offsets[None, :] - (w + offsets[:w, None])).abs() <= w  # [w, 3w]
        allowed = band & real[:, :, None, :]  # [B, blocks, w, 3w]
        allowed = (allowed | ~allowed.any(dim=-1, keepdim=True)).unsqueeze(1)
        p = self.dropout.p if self.training else 0.0
        out = fused_attention(q, k, v, allowed, p)
        return self.out(self._merge(out.reshape(b, self.heads, blocks * w, self.d_head)[:, :, :t]))

    @staticmethod
    def _merge(x: torch.Tensor) -> torch.Tensor:
        b, h, t, dh = x.shape
        return x.transpose(1, 2).reshape(b, t, h * dh)


class FeedForward(nn.Module):
    """Position-wise two-layer MLP."""

    def __init__(self, d_model: int, ff: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, ff), nn.GELU(), Dropout(dropout), nn.Linear(ff, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TokenConvolutions(nn.Module):
    """Residual pre-norm 1-D convolutions along a sequence [B, N, D] -> [B, N, D]: each
    position takes in the `kernel // 2` positions on either side. Padding is zeroed before every
    convolution, so a padded batch gives each item what it would get alone."""

    def __init__(self, d_model: int, layers: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(layers))
        self.convs = nn.ModuleList(nn.Conv1d(d_model, d_model, kernel, padding=kernel // 2) for _ in range(layers))
        self.drop = Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = mask[..., None].to(x.dtype)
        for norm, conv in zip(self.norms, self.convs, strict=True):
            h = conv((norm(x) * keep).transpose(1, 2)).transpose(1, 2)
            x = x + self.drop(torch.relu(h))
        return x * keep


class EncoderLayer(nn.Module):
    """Pre-norm self-attention + feed-forward over real positions only. `dropout` acts on the
    residual branches and the feed-forward, `attention_dropout` on the attention weights;
    `window` > 0 limits each position's self-attention to positions at most that far away
    (cost linear in length), 0 lets it see all."""

    def __init__(
        self, d_model: int, heads: int, ff: int, dropout: float, attention_dropout: float, window: int = 0
    ) -> None:
        super().__init__()
        self.window = window
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, heads, attention_dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = FeedForward(d_model, ff, dropout)
        self.drop = Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        if self.window:
            a = self.attn.attend_local(h, mask, self.window)
        else:
            a = self.attn.attend(h, self.attn.project_kv(h), mask[:, None, :])  # padded rows: masked below
        x = x + self.drop(a)
        x = x + self.drop(self.ff(self.norm2(x)))
        return x * mask[..., None]


class DecoderLayer(nn.Module):
    """Pre-norm causal self-attention, cross-attention to the text, feed-forward.

    Self-attention keys/values can be cached step by step for synthesis. Dropout as in
    EncoderLayer."""

    def __init__(self, d_model: int, heads: int, ff: int, dropout: float, attention_dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, heads, attention_dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.cross_attn = MultiHeadAttention(d_model, heads, attention_dropout)
        self.norm3 = nn.LayerNorm(d_model)
        self.ff = FeedForward(d_model, ff, dropout)
        self.drop = Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        self_allowed: torch.Tensor,
        memory_kv: tuple[torch.Tensor, torch.Tensor],
        cross_allowed: torch.Tensor,
        step_mask: torch.Tensor,
        cache: dict[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, Tq, D] (all steps in training, the new step at synthesis). With `cache`, this
        step's self-attention keys/values are appended to it and attention runs over all
        cached steps. Returns the output and the cross-attention weights [B, H, Tq, N]."""
        h = self.norm1(x)
        k, v = self.self_attn.project_kv(h)
        if cache is not None:
            if "k" in cache:
                k = torch.cat([cache["k"], k], dim=2)
                v = torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        a = self.self_attn.attend(h, (k, v), self_allowed)
        x = x + self.drop(a)
        c, weights = self.cross_attn(self.norm2(x), memory_kv, cross_allowed)
        x = x + self.drop(c)
        x = x + self.drop(self.ff(self.norm3(x)))
        return x * step_mask[..., None], weights


class Prenet(nn.Module):
    """Two bottleneck layers with strong dropout: the decoder must not lean on its own
    previous frame too hard, or it never learns to listen to the text (Tacotron 2)."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int, dropout: float) -> None:
        super().__init__()
        self.l1 = nn.Linear(d_in, d_hidden)
        self.l2 = nn.Linear(d_hidden, d_hidden)
        self.proj = nn.Linear(d_hidden, d_out)
        self.p = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = dropout(F.relu(self.l1(x)), self.p, self.training)
        x = dropout(F.relu(self.l2(x)), self.p, self.training)
        return self.proj(x)


class Postnet(nn.Module):
    """Residual convolutional refinement of the decoder's mel [B, T, n_mels], masked."""

    def __init__(self, n_mels: int, channels: int, layers: int, dropout: float, kernel: int = 5) -> None:
        super().__init__()
        dims = [n_mels] + [channels] * (layers - 1) + [n_mels]
        self.convs = nn.ModuleList(nn.Conv1d(a, b, kernel, padding=kernel // 2) for a, b in zip(dims[:-1], dims[1:]))
        self.drop = Dropout(dropout)

    def forward(self, mel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask[:, None, :].to(mel.dtype)
        x = mel.transpose(1, 2) * m
        for i, conv in enumerate(self.convs):
            x = conv(x) * m
            if i < len(self.convs) - 1:
                x = self.drop(torch.tanh(x))
        return mel + x.transpose(1, 2)
