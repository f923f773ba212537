"""`hamgara`: one command for every stage (each also runs as `python -m pipeline.<stage>`)."""

from __future__ import annotations

import argparse
import importlib
import sys

STAGES = {
    "corpus": "synthesize the embedded demo corpus with festival (data/corpus)",
    "validate": "check every corpus row; write data/manifest.parquet and reports/",
    "precompute": "log-mels, phoneme ids, durations and split into data/features.zarr",
    "train": "train the acoustic model; models/ and dvclive/ (resumes after an interruption)",
    "vocoder": "train the mel -> waveform vocoder on the corpus's recordings; models/vocoder.pt (resumes)",
    "evaluate": "free-running synthesis of the validation split scored against the recordings; reports/",
    "synth": 'text to speech from a checkpoint: hamgara synth "Hello." -o hello.wav',
    "export": "the trained voice as ONNX graphs + voice.json, runnable without torch: hamgara export -o voice/",
    "serve": "an exported voice over HTTP with a page to try it: hamgara serve --voice voice/",
    "doctor": "review the data and the training run: reports/doctor.md (ok / warning / problem, with fixes)",
    "model-info": "parameter counts of the model for every size and decoder",
    "lr-find": "LR range test on your features with the configured model: a suggested train.lr (reports/lr_find.json)",
}
MODULES = {"model-info": "model_info", "lr-find": "lr_find"}


def main(argv: list[str] | None = None) -> int:
    """Dispatch `hamgara <stage> [options]` to the stage's own command line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(
        prog="hamgara",
        description="Hamgara: a text-to-speech training pipeline. The usual way to run it is "
        "`dvc repro`, which runs the stages below in order and caches each; every stage can "
        "also be run by hand. `hamgara <stage> --help` shows a stage's options.",
    )
    sub = ap.add_subparsers(dest="stage", metavar="<stage>")
    for name, help_text in STAGES.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in STAGES:
        ap.parse_args(argv[:1] or ["--help"])
        return 2
    module = importlib.import_module(f"pipeline.{MODULES.get(argv[0], argv[0])}")
    return int(module.main(argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
