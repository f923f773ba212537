"""`hamgara serve`: an exported voice (hamgara export) over HTTP, with a page to try it.

  hamgara serve --voice voice/                     # http://127.0.0.1:8000/
  curl -X POST localhost:8000/api/tts -H 'Content-Type: application/json' \\
       -d '{"text": "In 1999, Dr. Smith paid $5.50.", "speaker": null}' -o speech.wav

  GET  /             a page: text box, speaker menu, speak button, player, download link
  GET  /health       {"status": "ok", ...}
  GET  /api/voices   the voice's speakers, languages, sample rate and measured figures
  POST /api/tts      JSON {"text", "speaker", "language", "length_scale", "stream"} -> audio/wav

Bad requests get a 4xx JSON {"error": "..."} naming the problem, and the server keeps serving.
"stream": true sends the WAV sentence by sentence as each is made. Runs without torch
(onnxruntime, FastAPI, uvicorn: pip install .[runtime]). Requests are answered one utterance
at a time (the rest wait their turn), each using --threads cores.
"""

from __future__ import annotations

import argparse
import sys

from pipeline.common.cli_args import positive_int
from pipeline.common.stage import run_stage


def main(argv: list[str] | None = None) -> int:
    """Command-line entry of `hamgara serve`."""
    ap = argparse.ArgumentParser(
        prog="hamgara serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--voice", default="voice", help="the exported voice folder (default: voice)")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    ap.add_argument("--port", type=positive_int, default=8000, help="port (default 8000)")
    ap.add_argument("--max-chars", type=positive_int, default=2000, help="longest text accepted (default 2000)")
    ap.add_argument("--threads", type=int, default=0, help="onnxruntime threads per utterance (default 0: all cores)")
    args = ap.parse_args(argv)
    return run_stage("serve", lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    import uvicorn

    from pipeline.runtime import Voice
    from pipeline.serving.app import create_app

    voice = Voice.load(args.voice, threads=args.threads)
    app = create_app(voice, args.max_chars)
    print(f"serve: voice {args.voice} ({', '.join(voice.speakers)}) at http://{args.host}:{args.port}/", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
