"""The HTTP API and page of `hamgara serve`, over one exported voice (pipeline/runtime).

  GET  /             the page: a text box, a speaker menu, speak, a player and a download link
  GET  /health       {"status": "ok", ...}
  GET  /api/voices   the voice: speakers, languages, sample rate, its measured figures
  POST /api/tts      {"text", "speaker", "language", "length_scale", "stream"} -> audio/wav

Every refusal is a 4xx JSON body {"error": "..."} naming the problem: empty text, text over the
limit (413), an unknown speaker or language, characters the frontend cannot read, a bad
length_scale, a body that is not the JSON above. The frontend runs before any audio is made,
so a refused request costs nothing and the server goes on serving. With "stream": true the
WAV is sent sentence by sentence as each is made, so a long text starts playing after its first
sentence rather than after its last.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict

from model.text import FrontendError
from pipeline.runtime import Voice
from pipeline.serving.wav import STREAMED_SIZE, header, pcm16, wav_bytes

# length_scale outside this stretches speech past what the duration predictor was trained on
# into mumbling or drawl; the CLI takes any positive value, a public endpoint a sane one.
LENGTH_SCALE_RANGE = (0.25, 4.0)


class TTSRequest(BaseModel):
    """The body of POST /api/tts."""

    model_config = ConfigDict(extra="forbid")

    text: str
    speaker: str | None = None
    language: str | None = None
    length_scale: float = 1.0
    stream: bool = False


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(voice: Voice, max_chars: int = 2000, name: str | None = None) -> FastAPI:
    """The FastAPI application serving `voice`; texts longer than `max_chars` are refused."""
    app = FastAPI(title="Hamgara", docs_url=None, redoc_url=None)
    voice_name = name or voice.folder.name
    page = resources.files("pipeline.serving").joinpath("page.html").read_text(encoding="utf-8")

    @app.exception_handler(RequestValidationError)
    async def bad_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'body'}: {e.get('msg', 'invalid')}"
            for e in exc.errors()
        )
        return _error(422, f'the request body must be JSON like {{"text": "Hello."}} ({problems})')

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "voice": voice_name, "sample_rate": voice.sample_rate}

    @app.get("/api/voices")
    def voices() -> dict[str, Any]:
        return {
            "voices": [
                {
                    "name": voice_name,
                    "speakers": voice.speakers,
                    "languages": voice.languages,
                    "sample_rate": voice.sample_rate,
                    "vocoder": voice.vocoder_kind,
                    "max_chars": max_chars,
                    "length_scale_range": list(LENGTH_SCALE_RANGE),
                    "figures": voice.config.get("figures", {}),
                }
            ]
        }

    @app.post("/api/tts")
    def tts(body: TTSRequest) -> Response:
        text = body.text.strip()
        if not text:
            return _error(400, "text is empty: give the text to say")
        if len(text) > max_chars:
            return _error(
                413, f"text is {len(text)} characters, over this server's limit of {max_chars}; send it in parts"
            )
        low, high = LENGTH_SCALE_RANGE
        if not low <= body.length_scale <= high:
            return _error(400, f"length_scale must be between {low} and {high}, got {body.length_scale}")
        try:
            plan = voice.plan([text], body.language, body.speaker, body.length_scale)
        except FrontendError as e:
            return _error(400, str(e))
        if body.stream:
            # A generator run by Starlette in a worker thread: each piece is sent as it is made.
            def chunks():  # type: ignore[no-untyped-def]
                yield header(voice.sample_rate, STREAMED_SIZE)
                for wave in voice.chunks(plan):
                    yield pcm16(wave)

            return StreamingResponse(chunks(), media_type="audio/wav")
        wave = np.concatenate(list(voice.chunks(plan)))
        return Response(wav_bytes(wave, voice.sample_rate), media_type="audio/wav")

    return app
