"""`hamgara synth`: text to speech from a checkpoint alone.

  hamgara synth "Hello there." -o hello.wav
  hamgara synth --file lines.txt -o out/          # one wav per line: out/0001.wav, ...
  echo "Hello." | hamgara synth - -o hello.wav
  hamgara synth --voice voice/ "Hello." -o hello.wav   # an exported voice (hamgara export): no torch

The checkpoint carries everything synthesis needs (model, symbols, frontend, mel settings and
statistics). The vocoder is the one the vocoder stage trained (models/vocoder.pt) when there is
one, else Griffin-Lim (--vocoder picks); exported vocoder files (torch.export .pt2, TorchScript)
are refused, since loading either can run code hidden in the file (model/vocoder.py).
With --voice DIR the folder `hamgara export` wrote is used instead, through onnxruntime
(pipeline/runtime): no torch is loaded, and the checkpoint, vocoder, reference and device
options do not apply. Numbers, money, times and abbreviations are read out ("In 1999, Dr.
Smith paid $5.50" -> "In nineteen ninety-nine, Doctor Smith paid five dollars, fifty cents").
Prints the real-time factor: seconds of computing per second of audio.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.common.atomic import OutputPathError, check_output_path, write_wav
from pipeline.common.cli_args import positive_float, positive_int
from pipeline.common.stage import run_stage


def _lines(args: argparse.Namespace) -> list[str]:
    if args.file:
        path = Path(args.file)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        lines = [line for line in lines if line and not line.startswith("#")]
        if not lines:
            raise ValueError(f"{path}: no lines to synthesize (blank lines and # comments are skipped)")
        return lines
    if args.text == "-":
        return [line.strip() for line in sys.stdin.read().splitlines() if line.strip()] or [""]
    if args.text is None:
        raise ValueError("give a text, - for standard input, or --file")
    return [args.text]


def _outputs(out: Path, count: int) -> list[Path]:
    """The wav of each line: `out` itself for one line to a .wav path, else out/0001.wav, ...

    Checked before any work (and before the model loads), so that an `-o` that names something
    of the user's, a folder where a file goes or a file where a folder goes, costs nothing and
    touches nothing."""
    if count == 1 and out.suffix.lower() == ".wav":
        if out.is_dir():
            raise OutputPathError(
                f"{out}: is a folder; one line is written to a .wav file. Give a file path for -o "
                "(or a folder path without .wav to write 0001.wav inside it)"
            )
        check_output_path(out)
        return [out]
    if out.suffix.lower() == ".wav" and not out.is_dir():
        raise ValueError(f"{out}: {count} lines need a folder for -o, not a .wav file")
    if (out.exists() or out.is_symlink()) and not out.is_dir():
        raise OutputPathError(
            f"{out}: exists and is not a folder; {count} line(s) are written into a folder as 0001.wav, ... "
            "Give a folder path for -o"
        )
    outputs = [out / f"{i + 1:04d}.wav" for i in range(count)]
    for path in outputs:
        check_output_path(path)
    return outputs


def _speaker_note(speakers: list[str], used: str) -> str:
    """The line that says which voice a multi-speaker model speaks in when none was asked for:
    the default is a choice the user did not make, and may not know there was to make."""
    listed = ", ".join(speakers[:10]) + (f", and {len(speakers) - 10} more" if len(speakers) > 10 else "")
    return (
        f"synth: no --speaker given; speaking as {used!r}, the first of this model's {len(speakers)} speakers "
        f"({listed}); choose one with --speaker NAME"
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry of `hamgara synth`."""
    ap = argparse.ArgumentParser(
        prog="hamgara synth", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("text", nargs="?", help="the text to say; - reads lines from standard input")
    ap.add_argument("--file", help="a UTF-8 file, one line per utterance (batch mode)")
    ap.add_argument(
        "-o", "--out", default="synth.wav", help="output .wav (one line) or folder (several); default synth.wav"
    )
    ap.add_argument("--voice", help="an exported voice folder (hamgara export): synthesize with it, without torch")
    ap.add_argument("--checkpoint", help="model checkpoint (default models/best.pt)")
    ap.add_argument(
        "--language", help="language (an espeak-ng voice the model was trained on); default: the model's only one"
    )
    ap.add_argument("--speaker", help="speaker name from training; default: the first (said on stderr)")
    ap.add_argument("--reference", help="a reference wav whose style (the style latent) the speech takes on")
    ap.add_argument(
        "--length-scale", type=positive_float, default=1.0, help="stretch predicted durations (>1 slower); default 1.0"
    )
    ap.add_argument(
        "--vocoder",
        help="auto (default: trained when --vocoder-checkpoint exists and fits, else griffin_lim), trained, or griffin_lim; "
        "exported vocoder files (.pt2, TorchScript) can run code when loaded and are refused",
    )
    ap.add_argument(
        "--vocoder-checkpoint",
        help="the trained vocoder (default: vocoder.pt beside --checkpoint, where the vocoder stage writes it)",
    )
    ap.add_argument("--griffin-lim-iters", type=positive_int, help="Griffin-Lim iterations (default 60)")
    ap.add_argument("--batch-size", type=positive_int, default=8, help="lines synthesized together (default 8)")
    ap.add_argument("--device", help="cpu (default), cuda, or auto")
    args = ap.parse_args(argv)
    torch_only = ("checkpoint", "vocoder", "vocoder_checkpoint", "reference", "griffin_lim_iters", "device")
    if args.voice is not None:
        given = [f"--{name.replace('_', '-')}" for name in torch_only if getattr(args, name) is not None]
        if given:
            ap.error(
                f"{', '.join(given)} cannot be used with --voice (the exported voice carries its own model and vocoder)"
            )
        return run_stage("synth", lambda: _run_voice(args))
    defaults = {"checkpoint": "models/best.pt", "vocoder": "auto", "griffin_lim_iters": 60, "device": "cpu"}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return run_stage("synth", lambda: _run(args))


def _report(path: Path, seconds: float, stop_fired: bool | None) -> None:
    stop = "" if stop_fired is None or stop_fired else "  (stop token never fired: length cap)"
    print(f"{path}  {seconds:.2f} s{stop}")


def _run_voice(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    from pipeline.runtime import Voice

    texts = _lines(args)
    outputs = _outputs(Path(args.out), len(texts))
    voice = Voice.load(args.voice)
    if args.speaker is None and len(voice.speakers) > 1:
        print(_speaker_note(voice.speakers, voice.speakers[0]), file=sys.stderr)
    t0 = time.perf_counter()
    plans = [voice.plan([text], args.language, args.speaker, args.length_scale) for text in texts]
    audio = 0.0
    for plan, path in zip(plans, outputs):
        pieces = list(voice.chunks(plan))
        wave = np.concatenate(pieces)
        write_wav(path, wave, voice.sample_rate)
        seconds = len(wave) / voice.sample_rate
        audio += seconds
        _report(path, seconds, None)
    compute = time.perf_counter() - t0
    print(
        f"synth: {len(texts)} utterance(s), {audio:.1f} s of audio, real-time factor {compute / max(audio, 1e-9):.3f}"
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    from pipeline.common.runtime import resolve_device  # torch is loaded only once the arguments are good
    from pipeline.evaluation.synthesizer import Synthesizer
    from pipeline.vocoding.checkpoint import auto_vocoder, beside

    texts = _lines(args)
    outputs = _outputs(Path(args.out), len(texts))
    device = resolve_device(args.device)
    synth = Synthesizer.from_file(args.checkpoint, device)
    if args.speaker is None and len(synth.speakers) > 1:
        print(_speaker_note(synth.speakers, synth.speakers[synth.speaker(None)]), file=sys.stderr)
    vocoder, note = auto_vocoder(
        args.vocoder,
        synth.mel_settings,
        args.griffin_lim_iters,
        device,
        beside(args.checkpoint, args.vocoder_checkpoint),
    )
    if note:
        print(f"synth: {note}", file=sys.stderr)
    utts = synth.synthesize(
        texts, vocoder, args.language, args.speaker, args.reference, args.length_scale, args.batch_size
    )
    audio = compute = 0.0
    for utt, path in zip(utts, outputs):
        assert utt.wave is not None
        write_wav(path, utt.wave, vocoder.sample_rate)
        seconds = len(utt.wave) / vocoder.sample_rate
        audio += seconds
        compute += utt.model_seconds + utt.vocoder_seconds
        _report(path, seconds, utt.stop_fired)
    print(f"synth: {len(utts)} utterance(s), {audio:.1f} s of audio, real-time factor {compute / max(audio, 1e-9):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
