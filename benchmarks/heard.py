"""What a recognizer hears an exported voice say: typed text in, spoken words out.

    python -m benchmarks.heard --voice voice/ ["In 1999, Dr. Smith paid $5.50 for 3 books." ...]
                               [--out benchmarks/results/heard.json]

Each text goes through the frontend's spelling-out (model/textnorm), the exported voice
(pipeline/runtime) and pocketsphinx (the recognizer evaluate uses); prints the text, the words
the voice was asked to say, what pocketsphinx heard and their word error rate. The check that
numbers, money and abbreviations are said as words, on the voice a user would ship.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from model.textnorm import spell_out
from pipeline.common.atomic import write_json
from pipeline.evaluation.wer import Recognizer, normalize_words, word_error_rate
from pipeline.runtime import Voice

TEXTS = (
    "In 1999, Dr. Smith paid $5.50 for 3 books.",
    "The meeting starts at 10:30 on the 3rd of May.",
    "Prices rose by 45% in 2021.",
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("texts", nargs="*", default=list(TEXTS))
    ap.add_argument("--voice", default="voice")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "heard.json"))
    args = ap.parse_args(argv)
    voice = Voice.load(args.voice)
    recognizer = Recognizer()
    rows = []
    for text in args.texts:
        said = spell_out(text, voice.language(None))
        heard = recognizer.transcribe(voice.speak(text), voice.sample_rate)
        wer = word_error_rate([said], [heard])
        rows.append({"text": text, "said": said, "heard": heard, "wer": wer})
        print(f"{text}\n  said:  {said}\n  heard: {heard}   (WER {wer:.2f})")
    total = word_error_rate([r["said"] for r in rows], [r["heard"] for r in rows])
    words = sum(len(normalize_words(r["said"])) for r in rows)
    print(f"{len(rows)} text(s), {words} words: WER {total:.3f}")
    write_json(args.out, {"voice": voice.config.get("identity", {}), "wer": total, "texts": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
