"""The exported voice against the torch model: the same mels, and how much faster on one thread.

    python -m benchmarks.runtime [--checkpoint models/best.pt] [--texts reports/eval_utterances.csv]
                                 [--limit 25] [--out benchmarks/results/runtime.json]

Exports the checkpoint (with the vocoder.pt beside it, if any) to a temporary folder, then on
each held-back text (evaluate's validation sentences, reports/eval_utterances.csv) in one
process, on one CPU thread for both:
- parity: the mel of the torch model (pipeline/evaluation/synthesizer.py) and of the runtime
  (pipeline/runtime) on the same symbol ids: frames, stop and the largest difference;
- speed: text -> wave through each (torch: Synthesizer.synthesize with its vocoder; runtime:
  Voice.speak), real-time factor = compute seconds / audio seconds, summed over the texts, and
  the runtime's RTF as a share of torch's (the issue's bar: at most 1/1.5);
- time to first audio: the held-back texts joined into one long text, sent to a `hamgara serve`
  app (uvicorn, in this process) with "stream": true; seconds until the first audio bytes arrive
  against seconds until the whole answer has.
Each text is said once untimed first (warm-up: onnxruntime and torch both set up on first use).
"""

from __future__ import annotations

import argparse
import csv
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch

from pipeline.common.atomic import write_json
from pipeline.evaluation.synthesizer import Synthesizer
from pipeline.exporting.parity import compare
from pipeline.exporting.voice import export_voice, run_identity
from pipeline.runtime import Voice
from pipeline.vocoding.checkpoint import auto_vocoder, beside

REPO = Path(__file__).resolve().parents[1]


def held_back_texts(path: Path, limit: int) -> list[str]:
    """The first `limit` texts of evaluate's per-utterance table."""
    with path.open(encoding="utf-8", newline="") as f:
        return [row["text"] for row in csv.DictReader(f)][:limit]


def speed(synth: Synthesizer, vocoder: Any, voice: Voice, texts: list[str]) -> dict[str, float]:
    """RTF of text -> wave through torch and through the runtime, one text at a time."""
    torch_seconds = runtime_seconds = audio = 0.0
    for text in texts:
        synth.synthesize([text], vocoder, batch_size=1)  # warm-up
        voice.speak(text)
        t0 = time.perf_counter()
        (utt,) = synth.synthesize([text], vocoder, batch_size=1)
        torch_seconds += time.perf_counter() - t0
        t0 = time.perf_counter()
        wave = voice.speak(text)
        runtime_seconds += time.perf_counter() - t0
        audio += len(wave) / voice.sample_rate
        assert utt.wave is not None
    return {
        "audio_seconds": audio,
        "rtf_torch": torch_seconds / audio,
        "rtf_runtime": runtime_seconds / audio,
        "runtime_share_of_torch": runtime_seconds / torch_seconds,
    }


def first_audio(voice: Voice, text: str) -> dict[str, float]:
    """Seconds to the first audio bytes and to the whole answer of a streamed request."""
    import httpx
    import uvicorn

    from pipeline.serving.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(voice, max_chars=100_000), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        url = f"http://127.0.0.1:{port}/api/tts"
        httpx.post(url, json={"text": text}, timeout=600)  # warm-up
        t0 = time.perf_counter()
        first = None
        received = 0
        with httpx.stream("POST", url, json={"text": text, "stream": True}, timeout=600) as answer:
            for part in answer.iter_bytes():
                received += len(part)
                if first is None and received > 44:  # past the WAV header: audio
                    first = time.perf_counter() - t0
        whole = time.perf_counter() - t0
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    audio = (received - 44) / 2 / voice.sample_rate
    return {"audio_seconds": audio, "first_audio_seconds": first or whole, "whole_answer_seconds": whole}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="models/best.pt")
    ap.add_argument("--texts", default="reports/eval_utterances.csv", help="evaluate's per-utterance table")
    ap.add_argument("--limit", type=int, default=25)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "runtime.json"))
    args = ap.parse_args(argv)

    torch.set_num_threads(1)
    checkpoint = Path(args.checkpoint)
    synth = Synthesizer.from_file(checkpoint)
    trained = beside(checkpoint, None)
    vocoder, _ = auto_vocoder("auto", synth.mel_settings, 60, "cpu", trained)
    generator = getattr(vocoder, "generator", None)
    texts = held_back_texts(Path(args.texts), args.limit)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "voice"
        export_voice(synth, generator, folder, run_identity(checkpoint, synth.step, trained if generator else None), {})
        voice = Voice.load(folder, threads=1)
        results = compare(synth, voice, texts)
        parity = {
            "texts": len(results),
            "same_frames": sum(r.torch_frames == r.runtime_frames for r in results),
            "same_stop": sum(r.torch_stop == r.runtime_stop for r in results),
            "max_mel_difference": max(r.max_difference for r in results),
            "all_within_1e-3": all(r.same for r in results),
        }
        timing = speed(synth, vocoder, voice, texts)
        streaming = first_audio(voice, " ".join(texts[:8]))
    out = {
        "checkpoint": str(checkpoint),
        "step": synth.step,
        "vocoder": "trained" if generator is not None else "griffin_lim",
        "threads": 1,
        "parity": parity,
        "speed": timing,
        "streaming": streaming,
        "per_text": [r.__dict__ for r in results],
    }
    write_json(args.out, out)
    print(
        f"parity on {parity['texts']} held-back texts: same frames {parity['same_frames']}, same stop "
        f"{parity['same_stop']}, largest mel difference {parity['max_mel_difference']:.2e}"
    )
    print(
        f"one thread, {timing['audio_seconds']:.1f} s of audio: RTF torch {timing['rtf_torch']:.3f}, runtime "
        f"{timing['rtf_runtime']:.3f} ({timing['runtime_share_of_torch']:.2f} of torch's; bar <= {1 / 1.5:.2f})"
    )
    print(
        f"streamed {streaming['audio_seconds']:.1f} s of audio: first audio after {streaming['first_audio_seconds']:.2f} s, "
        f"whole answer after {streaming['whole_answer_seconds']:.2f} s"
    )
    print(f"-> {args.out}")
    return 0 if parity["all_within_1e-3"] else 1


if __name__ == "__main__":
    sys.exit(main())
