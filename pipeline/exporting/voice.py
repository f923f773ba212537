"""A trained voice as a self-contained folder: ONNX graphs plus voice.json.

voice.json carries everything the runtime (pipeline/runtime) needs besides the graphs: the
frontend and its symbols, the languages and speakers, the mel settings and statistics, the
decoder's constants (reduction, attention window, length cap, stop threshold), the vocoder's,
the position-table sizes that bound a piece of text, each file's digest, and what the voice is:
the run it came from and its measured figures (eval.json's headline numbers). The folder is
written beside its final path and renamed into place, so an interrupted export leaves no
half-voice behind.
"""

from __future__ import annotations

import datetime
import json
import math
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchaudio

from model.mel import MelSettings
from model.tts import HamgaraTTS
from model.vocoder_generator import VocoderGenerator, analysis_pad
from pipeline.common.atomic import atomic_path
from pipeline.common.hashing import file_digest
from pipeline.evaluation.chunking import MAX_SECONDS_PER_TOKEN
from pipeline.evaluation.synthesizer import Synthesizer
from pipeline.exporting.graphs import (
    OPSET,
    DecoderSetupGraph,
    DecoderStepGraph,
    EncoderGraph,
    ParallelGraph,
    PostnetGraph,
    VocoderMagnitudeGraph,
    export_graph,
)

FORMAT = "hamgara-voice/1"
VOICE_FILE = "voice.json"
# Fast Griffin-Lim settings of a voice without a trained vocoder: the iterations `hamgara synth`
# uses for Griffin-Lim, with the trained generator's momentum.
GRIFFIN_LIM_ITERS = 60
GRIFFIN_LIM_MOMENTUM = 0.99
# The stop token fires when its probability exceeds this (model/ar_decoder.py `generate`).
STOP_THRESHOLD = 0.5


def export_voice(
    synth: Synthesizer,
    generator: VocoderGenerator | None,
    out: Path,
    identity: dict[str, Any],
    figures: dict[str, Any],
) -> dict[str, Any]:
    """Write the voice of `synth` (and `generator`, None: Griffin-Lim) to the folder `out`;
    returns the voice.json written. `identity` and `figures` are stored as they are."""
    with atomic_path(out, folder=True) as tmp:
        tmp.mkdir(parents=True)
        files = _acoustic_graphs(synth.model, tmp)
        vocoder = _vocoder(generator, synth.mel_settings, tmp)
        files.update(vocoder.pop("files"))
        voice = {
            "format": FORMAT,
            "opset": OPSET,
            "frontend": synth.frontend,
            "symbols": synth.symbols,
            "languages": synth.languages,
            "speakers": synth.speakers,
            "mel": synth.mel_settings.__dict__,
            "mel_mean": synth.mean.tolist(),
            "mel_std": synth.std.tolist(),
            "model": _model_constants(synth),
            "vocoder": vocoder,
            "files": {name: file_digest(tmp / name, 16) for name in sorted(files)},
            "identity": identity,
            "figures": figures,
        }
        (tmp / VOICE_FILE).write_text(json.dumps(voice, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return voice


def _model_constants(synth: Synthesizer) -> dict[str, Any]:
    cfg = synth.config
    model = synth.model
    return {
        "decoder": cfg.decoder,
        "reduction": cfg.reduction,
        "n_mels": cfg.n_mels,
        "d_model": cfg.d_model,
        "heads": cfg.heads,
        "decoder_layers": cfg.decoder_layers,
        "latent": cfg.latent,
        "attention_window": cfg.attention_window,
        "max_length_factor": cfg.max_length_factor,
        "optional_ids": list(cfg.optional_ids),
        "stop_threshold": STOP_THRESHOLD,
        # What bounds one piece of text (Synthesizer.max_chunk_tokens): the position tables.
        "text_positions": int(model.encoder.pos.pe.size(0)),
        "frame_positions": int(model.decoder.pos.pe.size(0)),
        "max_seconds_per_token": MAX_SECONDS_PER_TOKEN,
    }


def _acoustic_graphs(model: HamgaraTTS, folder: Path) -> set[str]:
    """The acoustic model's graphs in `folder`; their file names."""
    cfg = model.cfg
    n, d, r = 7, cfg.d_model, cfg.reduction
    heads, dh, layers = cfg.heads, cfg.d_model // cfg.heads, cfg.decoder_layers
    tokens = torch.randint(1, cfg.n_symbols, (1, n))
    one = torch.zeros(1, dtype=torch.long)
    export_graph(
        EncoderGraph(model),
        (tokens, one, one),
        str(folder / "encoder.onnx"),
        {"tokens": {1: "tokens"}, "language": {}, "speaker": {}},
        {"memory": {1: "tokens"}, "log_durations": {1: "tokens"}},
    )
    memory = torch.randn(1, n, d)
    latent = torch.zeros(1, cfg.latent)
    frames = 4 * r
    frame_tokens = torch.arange(frames) % n
    names = {"encoder.onnx", "postnet.onnx"}
    if cfg.decoder == "autoregressive":
        export_graph(
            DecoderSetupGraph(model),
            (memory, frame_tokens, torch.ones(frames), latent),
            str(folder / "decoder_setup.onnx"),
            {"memory": {1: "tokens"}, "frame_tokens": {0: "frames"}, "frame_valid": {0: "frames"}, "latent": {}},
            {
                "aligned": {1: "steps"},
                "style": {},
                "memory_k": {3: "tokens"},
                "memory_v": {3: "tokens"},
            },
        )
        past = torch.randn(layers, 1, heads, 3, dh)
        export_graph(
            DecoderStepGraph(model),
            (
                torch.randn(1, 1, r * cfg.n_mels),
                torch.tensor([3]),
                torch.randn(1, 1, d),
                torch.randn(1, 1, d),
                torch.ones(1, 1, n, dtype=torch.bool),
                torch.randn(layers, 1, heads, n, dh),
                torch.randn(layers, 1, heads, n, dh),
                past,
                past.clone(),
            ),
            str(folder / "decoder_step.onnx"),
            {
                "prev": {},
                "step": {},
                "aligned": {},
                "style": {},
                "allowed": {2: "tokens"},
                "memory_k": {3: "tokens"},
                "memory_v": {3: "tokens"},
                "past_k": {3: "past"},
                "past_v": {3: "past"},
            },
            {"frames": {}, "stop_logit": {}, "next_k": {3: "next"}, "next_v": {3: "next"}},
        )
        names |= {"decoder_setup.onnx", "decoder_step.onnx"}
    else:
        export_graph(
            ParallelGraph(model),
            (memory, frame_tokens, latent),
            str(folder / "parallel.onnx"),
            {"memory": {1: "tokens"}, "frame_tokens": {0: "frames"}, "latent": {}},
            {"mel": {1: "frames"}},
        )
        names.add("parallel.onnx")
    export_graph(
        PostnetGraph(model),
        (torch.randn(1, frames, cfg.n_mels),),
        str(folder / "postnet.onnx"),
        {"mel": {1: "frames"}},
        {"mel_post": {1: "frames"}},
    )
    return names


def _vocoder(generator: VocoderGenerator | None, settings: MelSettings, folder: Path) -> dict[str, Any]:
    """The vocoder's part of voice.json, its files written to `folder`: the trained generator's
    magnitude network, or the mel filters' pseudo-inverse that Griffin-Lim starts from."""
    common = {
        "n_fft": settings.n_fft,
        "hop_length": settings.hop_length,
        "win_length": settings.win_length,
        "analysis_pad": analysis_pad(settings),
        "sample_rate": settings.sample_rate,
    }
    if generator is not None:
        export_graph(
            VocoderMagnitudeGraph(generator),
            (torch.randn(1, 12, settings.n_mels),),
            str(folder / "vocoder.onnx"),
            {"log_mel": {1: "frames"}},
            {"magnitude": {2: "frames"}},
        )
        return {
            "kind": "trained",
            "phase_iters": generator.phase_iters,
            "momentum": generator.momentum,
            **common,
            "files": {"vocoder.onnx"},
        }
    bins = settings.n_fft // 2 + 1
    filters = torchaudio.functional.melscale_fbanks(
        bins, settings.fmin, settings.fmax, settings.n_mels, settings.sample_rate, norm="slaney", mel_scale="slaney"
    )
    np.save(folder / "inverse_filters.npy", torch.linalg.pinv(filters.double()).float().numpy())
    return {
        "kind": "griffin_lim",
        "phase_iters": GRIFFIN_LIM_ITERS,
        "momentum": GRIFFIN_LIM_MOMENTUM,
        "log_clamp": settings.log_clamp,
        **common,
        "files": {"inverse_filters.npy"},
    }


def run_identity(checkpoint: Path, step: int | None, vocoder: Path | None) -> dict[str, Any]:
    """Where the voice came from: the checkpoints' digests, the training step, the commit."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=checkpoint.parent
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": file_digest(checkpoint, 16),
        "step": step,
        "vocoder_sha256": file_digest(vocoder, 16) if vocoder is not None else None,
        "git_commit": commit,
        "exported_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def headline_figures(eval_json: Path) -> dict[str, Any]:
    """eval.json's headline numbers (what the voice measured on its held-back sentences), or
    {} when there is no evaluation yet."""
    if not eval_json.is_file():
        return {}
    report = json.loads(eval_json.read_text(encoding="utf-8"))
    wer = report.get("wer") or {}
    vocoder = report.get("vocoder") or {}
    used = vocoder.get(vocoder.get("used", ""), {}) if isinstance(vocoder, dict) else {}
    figures = {
        "source": str(eval_json),
        "utterances": report.get("utterances"),
        "checkpoint_step": report.get("checkpoint_step"),
        "mcd": (report.get("mcd") or {}).get("model"),
        "wer_synthesized": wer.get("synthesized"),
        "wer_vocoded_truth": wer.get("vocoded_truth"),
        "wer_gap": wer.get("gap"),
        "rtf": (report.get("rtf") or {}).get("total"),
        "vocoder": vocoder.get("used") if isinstance(vocoder, dict) else None,
        "vocoder_pesq_wb": used.get("pesq_wb"),
    }
    return {k: v for k, v in figures.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}
