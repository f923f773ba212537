"""The acoustic model and the vocoder as ONNX graphs: one torch module per graph, each a view
onto the trained modules' own weights, with every input a runtime needs made explicit.

Synthesis in torch (model/tts.py `synthesize`) interleaves tensor work with decisions (rounded
durations, the attention window, the stop), so the exported voice is cut at those decisions:

  encoder        tokens, language, speaker -> text memory, log durations
  decoder_setup  memory, each frame's token, latent -> every step's aligned text state, the
                 style term, the cross-attention keys/values of every layer
  decoder_step   one autoregressive step: the previous frames, the step's window, the
                 self-attention cache in -> the next r frames, the stop logit, the cache out
  parallel       (parallel decoder) memory expanded by durations -> the whole mel
  postnet        mel -> refined mel
  vocoder        log-mel -> STFT magnitude (the trained generator's network; its phase
                 iterations run in numpy, pipeline/runtime/phase.py)

and the decisions are made in numpy by pipeline/runtime, the same arithmetic as torch's, so the
runtime walks the same steps and frames. Each graph takes one utterance (batch 1): an
utterance computes the same alone as in a batch (model/layers.py), and a server answers one
request at a time per session. Attention here is written out (matmul, softmax) rather than
through torch's fused kernel: batch 1 needs no padding masks, and the plain form exports to
every opset onnxruntime runs.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from model.layers import MultiHeadAttention
from model.tts import HamgaraTTS
from model.vocoder_generator import VocoderGenerator

# ONNX opset of every graph: 17 has LayerNormalization as one operator; onnxruntime 1.x runs it.
OPSET = 17


def _attend(
    attn: MultiHeadAttention, query: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor | None
) -> torch.Tensor:
    """`attn` over precomputed keys/values [1, H, Tk, Dh]; `allowed` [1, Tq, Tk] bool or None (all)."""
    q = attn._split(attn.q(query))
    scores = q @ k.transpose(-1, -2) / math.sqrt(attn.d_head)
    if allowed is not None:
        scores = scores.masked_fill(~allowed[:, None], float("-inf"))
    return attn.out(attn._merge(torch.softmax(scores, dim=-1) @ v))


class EncoderGraph(nn.Module):
    """tokens [1, N] int64, language [1], speaker [1] -> memory [1, N, D], log durations [1, N]."""

    def __init__(self, model: HamgaraTTS) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, tokens: torch.Tensor, language: torch.Tensor, speaker: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.model.encoder
        x = enc.embed(tokens) + enc.language(language)[:, None, :]
        if enc.speaker is not None:
            x = x + enc.speaker(speaker)[:, None, :]
        if enc.convs is not None:
            x = enc.convs(x, torch.ones_like(tokens, dtype=torch.bool))
        x = x + enc.pos.alpha * enc.pos.pe[: tokens.size(1)][None]
        for layer in enc.layers:
            h = layer.norm1(x)
            k, v = layer.attn.project_kv(h)
            x = x + _attend(layer.attn, h, k, v, None)
            x = x + layer.ff(layer.norm2(x))
        memory = enc.norm(x)
        mask = torch.ones_like(tokens, dtype=torch.bool)
        return memory, self.model.duration(memory, mask)


class DecoderSetupGraph(nn.Module):
    """The step-independent work of autoregressive synthesis, done once per utterance.

    memory [1, N, D]; frame_tokens [S * r] int64, the token the predicted durations say is
    speaking at each frame of the S steps the length cap allows; frame_valid [S * r] float, 0
    past the durations' end (model/duration.py `length_regulate`); latent [1, latent].
    -> aligned [1, S, D] (zero-projected when the model has no aligned conditioning), style
    [1, 1, D], cross-attention keys and values [L, 1, H, N, Dh]."""

    def __init__(self, model: HamgaraTTS) -> None:
        super().__init__()
        self.decoder = model.decoder
        self.d_model = model.cfg.d_model
        self.r = model.cfg.reduction

    def forward(
        self, memory: torch.Tensor, frame_tokens: torch.Tensor, frame_valid: torch.Tensor, latent: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        dec = self.decoder
        frames = memory[0].index_select(0, frame_tokens) * frame_valid[:, None]
        steps = frames.view(-1, self.r, self.d_model).mean(1)[None]
        aligned = dec.aligned(steps) if dec.aligned is not None else torch.zeros_like(steps)
        style = dec.style(latent)[:, None, :]
        kv = [layer.cross_attn.project_kv(memory) for layer in dec.layers]
        return aligned, style, torch.stack([k for k, _ in kv]), torch.stack([v for _, v in kv])


class DecoderStepGraph(nn.Module):
    """One autoregressive step with its key/value cache passed in and out.

    prev [1, 1, r * n_mels] (the last step's frames; zeros at step 0), step [1] int64 (its
    position), aligned [1, 1, D] (this step's row of DecoderSetupGraph's), style [1, 1, D],
    allowed [1, 1, N] bool (the attention window), memory keys/values [L, 1, H, N, Dh], past
    keys/values [L, 1, H, S, Dh] (S = steps so far, 0 at the start)
    -> frames [1, 1, r * n_mels], stop logit [1], keys/values [L, 1, H, S + 1, Dh]."""

    def __init__(self, model: HamgaraTTS) -> None:
        super().__init__()
        self.decoder = model.decoder

    def forward(
        self,
        prev: torch.Tensor,
        step: torch.Tensor,
        aligned: torch.Tensor,
        style: torch.Tensor,
        allowed: torch.Tensor,
        memory_k: torch.Tensor,
        memory_v: torch.Tensor,
        past_k: torch.Tensor,
        past_v: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        dec = self.decoder
        x = dec.prenet(prev) + style + aligned
        x = x + dec.pos.alpha * dec.pos.pe.index_select(0, step)[None]
        keys, values = [], []
        for i, layer in enumerate(dec.layers):
            h = layer.norm1(x)
            k, v = layer.self_attn.project_kv(h)
            k = torch.cat([past_k[i], k], dim=2)
            v = torch.cat([past_v[i], v], dim=2)
            keys.append(k)
            values.append(v)
            x = x + _attend(layer.self_attn, h, k, v, None)
            x = x + _attend(layer.cross_attn, layer.norm2(x), memory_k[i], memory_v[i], allowed)
            x = x + layer.ff(layer.norm3(x))
        x = dec.norm(x)
        return dec.mel_head(x), dec.stop_head(x).view(1), torch.stack(keys), torch.stack(values)


class ParallelGraph(nn.Module):
    """The parallel decoder: memory [1, N, D], frame_tokens [T] int64, latent [1, latent]
    -> mel [1, T, n_mels] (T = the predicted frames; every frame real)."""

    def __init__(self, model: HamgaraTTS) -> None:
        super().__init__()
        self.decoder = model.decoder

    def forward(self, memory: torch.Tensor, frame_tokens: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        dec = self.decoder
        x = memory[0].index_select(0, frame_tokens)[None]
        x = dec.pos(x + dec.style(latent)[:, None, :])
        frames = torch.arange(x.size(1))
        for layer in dec.layers:
            # A frame window (model/layers.py `attend_local`, computed block by block in torch
            # with an unfold ONNX cannot express for a dynamic length) is the same attention as
            # a banded mask over every pair of frames, which exports.
            band = (frames[None, :] - frames[:, None]).abs() <= layer.window if layer.window else None
            h = layer.norm1(x)
            k, v = layer.attn.project_kv(h)
            x = x + _attend(layer.attn, h, k, v, band[None] if band is not None else None)
            x = x + layer.ff(layer.norm2(x))
        return dec.mel_head(dec.norm(x))


class PostnetGraph(nn.Module):
    """mel [1, T, n_mels] (normalized) -> the postnet's refined mel."""

    def __init__(self, model: HamgaraTTS) -> None:
        super().__init__()
        self.postnet = model.postnet

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.postnet(mel, torch.ones(mel.shape[:2], dtype=torch.bool))


class VocoderMagnitudeGraph(nn.Module):
    """Natural-log mel [1, T, n_mels] -> STFT magnitude [1, bins, T]: the trained generator up
    to its phase reconstruction."""

    def __init__(self, generator: VocoderGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        return self.generator.log_magnitude(log_mel).exp()


def export_graph(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    path: str,
    inputs: dict[str, dict[int, str]],
    outputs: dict[str, dict[int, str]],
) -> None:
    """Trace `module` on `args` into an ONNX file at `path`. `inputs`/`outputs`: each name, in
    order, with its dynamic axes (axis -> name), so any text length and step count run."""
    import warnings

    module.eval()
    dynamic = {name: axes for name, axes in {**inputs, **outputs}.items() if axes}
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated in favour of torch.export's (dynamo=True).
        # That one exports these graphs too (the step graph with a zero-length cache, checked
        # with Dim("past", min=0)) but took 7.4 s where this took 0.5 s for the tiny model's
        # step graph, a cost every export in the test suite would pay; with torch pinned at
        # 2.11 this one stays, and moving is a change of this function only. Its deprecation
        # warnings say nothing about this model.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            path,
            input_names=list(inputs),
            output_names=list(outputs),
            dynamic_axes=dynamic,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
