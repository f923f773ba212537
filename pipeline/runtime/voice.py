"""An exported voice (pipeline/exporting): text -> waveform with onnxruntime and numpy, no torch.

  voice = Voice.load("voice/")
  wave = voice.speak("In 1999, Dr. Smith paid $5.50 for 3 books.")
  for chunk in voice.chunks(voice.plan([long_text])): ...   # sentence by sentence, as each is ready

Text is read exactly as `hamgara synth` reads it (model/text.py `text_to_ids`: numbers and
abbreviations spelled out, phonemes, the model's nearest symbols), said sentence by sentence
in pieces the position tables hold (pipeline/evaluation/chunking.py), and the pieces joined
with the synthesizer's pauses.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model.text import FrontendError
from pipeline.evaluation.chunking import (
    EDGE_FADE_SECONDS,
    SENTENCE_PAUSE_SECONDS,
    fade_edges,
    max_piece_tokens,
    text_pieces,
)
from pipeline.runtime import decoding
from pipeline.runtime.phase import PhaseReconstruction

FORMAT = "hamgara-voice/1"
VOICE_FILE = "voice.json"


class VoiceError(ValueError):
    """A voice folder that cannot be used; the message names the file and why."""


@dataclass
class Piece:
    """One piece of a text said: its wave, mel [frames, n_mels] (natural log), whether the stop
    fired (None: parallel decoder), the index of the text it belongs to, and its compute seconds."""

    wave: np.ndarray
    mel: np.ndarray
    stop_fired: bool | None
    owner: int
    seconds: float


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Voice:
    """The graphs and settings of one exported voice folder."""

    def __init__(self, folder: Path, config: dict[str, Any], threads: int = 0) -> None:
        import onnxruntime as ort

        self.folder = folder
        self.config = config
        model = config["model"]
        self.symbols: list[str] = config["symbols"]
        self.frontend: str = config["frontend"]
        self.languages: list[str] = config["languages"]
        self.speakers: list[str] = config["speakers"]
        self.model = model
        self.sample_rate: int = int(config["mel"]["sample_rate"])
        self.hop: int = int(config["mel"]["hop_length"])
        self.mean = np.asarray(config["mel_mean"], dtype=np.float32)
        self.std = np.asarray(config["mel_std"], dtype=np.float32)
        options = ort.SessionOptions()
        # 0 lets onnxruntime pick (every core); a server answering several clients may want 1 each.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.sessions = {
            name[: -len(".onnx")]: ort.InferenceSession(
                str(folder / name), sess_options=options, providers=["CPUExecutionProvider"]
            )
            for name in config["files"]
            if name.endswith(".onnx")
        }
        vocoder = config["vocoder"]
        self.vocoder_kind: str = vocoder["kind"]
        self.phase = PhaseReconstruction(
            vocoder["n_fft"], vocoder["hop_length"], vocoder["win_length"], vocoder["phase_iters"], vocoder["momentum"]
        )
        self.inverse_filters = np.load(folder / "inverse_filters.npy") if vocoder["kind"] == "griffin_lim" else None
        self.log_clamp = float(config["mel"]["log_clamp"])
        # An onnxruntime session may run from several threads, but the graphs of one utterance
        # are a sequence; one lock keeps a server's concurrent requests from interleaving
        # their caches' memory traffic on a small machine (each request still runs whole).
        self.lock = threading.Lock()

    @classmethod
    def load(cls, folder: str | Path, threads: int = 0, verify: bool = True) -> Voice:
        """Open the voice in `folder`: voice.json, and every file it lists, checked against
        its digest when `verify` (a damaged or swapped graph is refused, naming the file)."""
        folder = Path(folder)
        path = folder / VOICE_FILE
        if not folder.is_dir():
            raise VoiceError(f"{folder}: no such voice folder (make one with: hamgara export -o {folder})")
        if not path.is_file():
            raise VoiceError(f"{path}: missing; {folder} is not an exported voice (hamgara export -o {folder})")
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise VoiceError(f"{path}: not readable JSON ({e})") from None
        if not isinstance(config, dict) or config.get("format") != FORMAT:
            found = config.get("format") if isinstance(config, dict) else None
            raise VoiceError(f"{path}: format {found!r}, this runtime reads {FORMAT!r}; export the voice again")
        for name, digest in config["files"].items():
            file = folder / name
            if not file.is_file():
                raise VoiceError(f"{file}: missing (voice.json lists it); export the voice again")
            if verify and not _sha256(file).startswith(digest):
                raise VoiceError(f"{file}: its contents differ from what voice.json recorded (damaged or replaced)")
        return cls(folder, config, threads)

    # --- choosing ---------------------------------------------------------------------------

    def language(self, name: str | None) -> str:
        """The language to speak: `name`, or the voice's only one."""
        if name is None:
            if len(self.languages) > 1:
                raise FrontendError(f"this voice speaks {', '.join(self.languages)}: choose a language")
            return self.languages[0]
        if name not in self.languages:
            raise FrontendError(f"language {name!r} is not one this voice speaks ({', '.join(self.languages)})")
        return name

    def speaker(self, name: str | None) -> int:
        """The speaker index: `name`, or the first speaker."""
        if name is None:
            return 0
        if name not in self.speakers:
            raise FrontendError(f"speaker {name!r} is not one this voice has ({', '.join(self.speakers)})")
        return self.speakers.index(name)

    def max_piece_tokens(self, length_scale: float) -> int:
        """The longest piece, in tokens, the position tables hold at this length scale."""
        m = self.model
        autoregressive = m["decoder"] == "autoregressive"
        return max_piece_tokens(
            m["text_positions"],
            m["frame_positions"],
            self.sample_rate / self.hop,
            length_scale,
            m["reduction"] if autoregressive else None,
            m["max_length_factor"],
        )

    # --- the graphs -------------------------------------------------------------------------

    def _run(self, graph: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        session = self.sessions[graph]
        # The exporter drops an input the graph does not read (the speaker of a one-speaker voice).
        wanted = {i.name for i in session.get_inputs()}
        return session.run(None, {k: v for k, v in feeds.items() if k in wanted})

    def mel(
        self, ids: list[int], language: str, speaker: int = 0, length_scale: float = 1.0
    ) -> tuple[np.ndarray, bool | None]:
        """Symbol ids -> natural-log mel [frames, n_mels] and whether the stop fired (None for
        the parallel decoder)."""
        m = self.model
        tokens = np.asarray([ids], dtype=np.int64)
        lang = np.asarray([self.languages.index(language)], dtype=np.int64)
        spk = np.asarray([speaker], dtype=np.int64)
        memory, log_durations = self._run("encoder", {"tokens": tokens, "language": lang, "speaker": spk})
        durations = decoding.durations(log_durations[0], tokens[0], m["optional_ids"], length_scale)
        latent = np.zeros((1, m["latent"]), dtype=np.float32)
        fired: bool | None = None
        if m["decoder"] == "autoregressive":
            r = m["reduction"]
            steps = decoding.step_limit(durations, m["max_length_factor"], r)
            index, valid = decoding.frame_tokens(durations, steps * r)
            aligned, style, memory_k, memory_v = self._run(
                "decoder_setup", {"memory": memory, "frame_tokens": index, "frame_valid": valid, "latent": latent}
            )
            shape = (m["decoder_layers"], 1, m["heads"], 0, m["d_model"] // m["heads"])
            cache = [np.zeros(shape, dtype=np.float32), np.zeros(shape, dtype=np.float32)]

            def step(prev: np.ndarray, s: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                frames, logit, cache[0], cache[1] = self._run(
                    "decoder_step",
                    {
                        "prev": prev,
                        "step": np.asarray([s], dtype=np.int64),
                        "aligned": aligned[:, s : s + 1],
                        "style": style,
                        "allowed": allowed,
                        "memory_k": memory_k,
                        "memory_v": memory_v,
                        "past_k": cache[0],
                        "past_v": cache[1],
                    },
                )
                return frames, logit

            mel, fired = decoding.generate(
                step, durations, m["n_mels"], r, m["attention_window"], m["max_length_factor"], m["stop_threshold"]
            )
        else:
            index, _ = decoding.frame_tokens(durations, int(durations.sum()))
            (mel,) = self._run("parallel", {"memory": memory, "frame_tokens": index, "latent": latent})
            mel = mel[0]
        (post,) = self._run("postnet", {"mel": mel[None].astype(np.float32)})
        return post[0] * self.std + self.mean, fired

    def vocode(self, log_mel: np.ndarray) -> np.ndarray:
        """Natural-log mel [frames, n_mels] -> wave [frames * hop] float32."""
        v = self.config["vocoder"]
        short = (v["n_fft"] - v["hop_length"]) // (2 * v["hop_length"]) + 2 - log_mel.shape[0]
        if short > 0:  # too short for the phase STFT's reflect padding: pad with silence
            silence = np.full((short, log_mel.shape[1]), np.log(self.log_clamp), dtype=np.float32)
            log_mel = np.concatenate([log_mel, silence])
        log_mel = log_mel.astype(np.float32)
        if self.vocoder_kind == "trained":
            (magnitude,) = self._run("vocoder", {"log_mel": log_mel[None]})
            magnitude = magnitude[0].T
        else:
            assert self.inverse_filters is not None
            magnitude = np.maximum(np.exp(log_mel) @ self.inverse_filters, 0.0)
        return self.phase(np.ascontiguousarray(magnitude))

    # --- text -------------------------------------------------------------------------------

    def plan(
        self, texts: list[str], language: str | None = None, speaker: str | None = None, length_scale: float = 1.0
    ) -> Plan:
        """The pieces `texts` will be said in: the frontend runs here, so text it cannot read,
        an unknown speaker or language raise FrontendError before any audio is made."""
        lang = self.language(language)
        spk = self.speaker(speaker)
        owners, ids = text_pieces(texts, lang, self.frontend, self.symbols, self.max_piece_tokens(length_scale))
        return Plan(lang, spk, length_scale, owners, ids)

    def pieces(self, plan: Plan) -> Iterator[Piece]:
        """The planned pieces said in reading order, each yielded as soon as it is vocoded."""
        for owner, ids in zip(plan.owners, plan.ids):
            with self.lock:
                t0 = time.perf_counter()
                mel, fired = self.mel(ids, plan.language, plan.speaker, plan.length_scale)
                wave = self.vocode(mel)
            yield Piece(wave, mel, fired, owner, time.perf_counter() - t0)

    def pause(self) -> np.ndarray:
        """The silence put between two pieces (the synthesizer's, rounded to whole frames)."""
        hop_seconds = self.hop / self.sample_rate
        frames = round(SENTENCE_PAUSE_SECONDS / hop_seconds)
        return np.zeros(round(frames * hop_seconds * self.sample_rate), dtype=np.float32)

    def chunks(self, plan: Plan) -> Iterator[np.ndarray]:
        """The audio of a one-text plan in consecutive chunks, one per piece, the pause before
        every piece but the first included, joined as the synthesizer joins them (a lone piece
        unfaded, several faded at their edges): the first sentence can play while the rest is
        made."""
        fade = round(EDGE_FADE_SECONDS * self.sample_rate)
        several = len(plan.ids) > 1
        for i, piece in enumerate(self.pieces(plan)):
            wave = fade_edges(piece.wave, fade) if several else piece.wave
            yield wave if i == 0 else np.concatenate([self.pause(), wave])

    def speak(
        self, text: str, language: str | None = None, speaker: str | None = None, length_scale: float = 1.0
    ) -> np.ndarray:
        """The whole audio of `text` [samples] float32."""
        return np.concatenate(list(self.chunks(self.plan([text], language, speaker, length_scale))))


@dataclass
class Plan:
    """What `Voice.plan` decided: the language, speaker index and length scale, and each
    piece's text index (`owners`) and symbol ids."""

    language: str
    speaker: int
    length_scale: float
    owners: list[int]
    ids: list[list[int]]
