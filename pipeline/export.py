"""`hamgara export`: the trained voice as a folder that runs without torch.

  hamgara export -o voice/                   # models/best.pt (+ models/vocoder.pt) -> voice/
  hamgara synth --voice voice/ "Hello." -o hello.wav
  hamgara serve --voice voice/

The folder holds ONNX graphs (text encoder and durations; the autoregressive decoder as one step
with its key/value cache passed in and out, or the parallel decoder; the postnet; the trained
vocoder's network, or Griffin-Lim's filters when there is no trained vocoder) and voice.json:
symbols, languages, speakers, mel settings, the decoder's constants, each file's digest, the
run it came from and the voice's measured figures (reports/eval.json's headline numbers).
pipeline/runtime reads it with onnxruntime and numpy (`pip install .[runtime]`).

After writing, the export runs N seeded sequences of the model's own symbols (any language)
through both the torch model and the exported graphs and compares the mels (--verify N, 0
skips): the same frames and stop, and every value within 1e-3, or the export fails (exit 3)
and says where they differ. The folder is written
beside its path and renamed into place; an existing voice folder of ours is replaced whole.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.common.cli_args import non_negative_int
from pipeline.common.stage import RunAborted, run_stage

# Lengths, in symbols, of the sequences the export is checked on: a word to a long sentence.
VERIFY_LENGTHS = (3, 12, 40, 90)


class ExportMismatch(RunAborted):
    """The exported graphs did not say what the torch model says."""


def main(argv: list[str] | None = None) -> int:
    """Command-line entry of `hamgara export`."""
    ap = argparse.ArgumentParser(
        prog="hamgara export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("-o", "--out", default="voice", help="the voice folder to write (default: voice)")
    ap.add_argument("--checkpoint", default="models/best.pt", help="acoustic model checkpoint (default models/best.pt)")
    ap.add_argument(
        "--vocoder",
        default="auto",
        choices=["auto", "trained", "griffin_lim"],
        help="auto (default: the trained vocoder when --vocoder-checkpoint exists and fits, else Griffin-Lim), "
        "trained, or griffin_lim",
    )
    ap.add_argument("--vocoder-checkpoint", help="the trained vocoder (default: vocoder.pt beside --checkpoint)")
    ap.add_argument(
        "--eval",
        default="reports/eval.json",
        help="evaluation whose headline figures voice.json records (default reports/eval.json; none if missing)",
    )
    ap.add_argument(
        "--verify",
        type=non_negative_int,
        default=len(VERIFY_LENGTHS),
        help=f"symbol sequences said through both torch and the export and compared (default {len(VERIFY_LENGTHS)}; 0 skips)",
    )
    args = ap.parse_args(argv)
    return run_stage("export", lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    # torch is loaded only once the arguments are good
    from model.vocoder import TrainedVocoder
    from pipeline.common.atomic import check_output_path
    from pipeline.evaluation.synthesizer import Synthesizer
    from pipeline.exporting.parity import MAX_MEL_DIFFERENCE, compare_ids, symbol_sequences
    from pipeline.exporting.voice import export_voice, headline_figures, run_identity
    from pipeline.runtime import Voice
    from pipeline.vocoding.checkpoint import auto_vocoder, beside

    out = Path(args.out)
    check_output_path(out, folder=True)
    checkpoint = Path(args.checkpoint)
    synth = Synthesizer.from_file(checkpoint)
    trained = beside(checkpoint, args.vocoder_checkpoint)
    vocoder, note = auto_vocoder(args.vocoder, synth.mel_settings, 60, "cpu", trained)
    if note:
        print(f"export: {note}", file=sys.stderr)
    generator = vocoder.generator if isinstance(vocoder, TrainedVocoder) else None
    identity = run_identity(checkpoint, synth.step, trained if generator is not None else None)
    voice_json = export_voice(synth, generator, out, identity, headline_figures(Path(args.eval)))
    kind = voice_json["vocoder"]["kind"]
    print(
        f"export: {checkpoint} (step {synth.step}) + {'trained vocoder ' + str(trained) if generator else 'Griffin-Lim'}"
    )
    print(f"export: wrote {out}/ ({', '.join(sorted(voice_json['files']))}, voice.json); vocoder: {kind}")
    if args.verify:
        lengths = [VERIFY_LENGTHS[i % len(VERIFY_LENGTHS)] for i in range(args.verify)]
        sequences = symbol_sequences(synth.symbols, lengths)
        labels = [f"sequence {i + 1} ({n} symbols)" for i, n in enumerate(lengths)]
        results = compare_ids(synth, Voice.load(out), labels, sequences, synth.languages[0])
        worst = max(r.max_difference for r in results)
        for r in results:
            if not r.same:
                raise ExportMismatch(
                    f"{out}: the exported graphs do not say {r.text} as the torch model does: frames "
                    f"{r.runtime_frames} against {r.torch_frames}, stop {r.runtime_stop} against {r.torch_stop}, "
                    f"largest mel difference {r.max_difference:.2e} (at most {MAX_MEL_DIFFERENCE:.0e} allowed)"
                )
        print(
            f"export: verified on {len(results)} symbol sequence(s): the same frames and stop as torch, "
            f"largest mel difference {worst:.1e} (limit {MAX_MEL_DIFFERENCE:.0e})"
        )
    print(f'export: try it: hamgara synth --voice {out} "Hello there." -o hello.wav; hamgara serve --voice {out}')
    return 0


if __name__ == "__main__":
    sys.exit(main())
