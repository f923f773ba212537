"""`hamgara serve`: the exported voice over HTTP; every bad request a 4xx JSON, and it keeps serving."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from pipeline.serving.app import create_app

WORDS = "The small dog slept."


@pytest.fixture(scope="module")
def client(tiny_voices) -> TestClient:
    _, voice = tiny_voices["autoregressive"]
    return TestClient(create_app(voice, max_chars=200))


def decoded(body: bytes) -> tuple[np.ndarray, int]:
    wave, sr = sf.read(io.BytesIO(body))
    return wave, sr


def test_health_says_ok(client) -> None:
    answer = client.get("/health")
    assert answer.status_code == 200 and answer.json()["status"] == "ok"


def test_voices_lists_the_speakers_languages_and_figures(client, tiny_voices) -> None:
    synth, _ = tiny_voices["autoregressive"]
    (voice,) = client.get("/api/voices").json()["voices"]
    assert voice["speakers"] == synth.speakers and voice["languages"] == synth.languages
    assert voice["sample_rate"] == synth.mel_settings.sample_rate and voice["figures"]["wer_gap"] == 0.1


def test_tts_answers_a_wav_of_speech(client) -> None:
    answer = client.post("/api/tts", json={"text": WORDS})
    assert answer.status_code == 200 and answer.headers["content-type"] == "audio/wav"
    wave, sr = decoded(answer.content)
    assert sr == 22050 and len(wave) > 0.1 * sr and np.abs(wave).max() > 0


def test_a_length_scale_above_one_makes_longer_speech(tiny_voices) -> None:
    # The parallel voice: its length is the durations' (a 6-step autoregressive model's stop
    # fires where it will).
    client = TestClient(create_app(tiny_voices["parallel"][1]))
    normal, _ = decoded(client.post("/api/tts", json={"text": WORDS}).content)
    slow, _ = decoded(client.post("/api/tts", json={"text": WORDS, "length_scale": 2.0}).content)
    assert len(slow) > 1.3 * len(normal)


def test_the_page_is_served_at_the_root(client) -> None:
    answer = client.get("/")
    assert answer.status_code == 200 and 'id="speak"' in answer.text and "/api/tts" in answer.text


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"text": "   "}, 400, "text is empty"),
        ({"text": "word " * 60}, 413, "over this server's limit of 200"),
        ({"text": WORDS, "speaker": "nobody"}, 400, "speaker 'nobody' is not one this voice has"),
        ({"text": WORDS, "language": "xx"}, 400, "language 'xx' is not one this voice speaks"),
        ({"text": "Ελληνικά."}, 400, "characters the frontend cannot read"),
        ({"text": WORDS, "length_scale": 0}, 400, "length_scale must be between"),
        ({"words": WORDS}, 422, "text: Field required"),
        ({"text": WORDS, "volume": 11}, 422, "volume"),
    ],
)
def test_a_bad_request_gets_a_4xx_json_naming_the_problem(client, body, status, message) -> None:
    answer = client.post("/api/tts", json=body)
    assert answer.status_code == status
    assert message in answer.json()["error"]
    # ...and the server goes on answering.
    assert client.post("/api/tts", json={"text": WORDS}).status_code == 200


def test_a_body_that_is_not_json_gets_a_json_error(client) -> None:
    answer = client.post("/api/tts", content=b"text=hello", headers={"Content-Type": "text/plain"})
    assert answer.status_code == 422 and "must be JSON" in answer.json()["error"]


def test_a_streamed_answer_holds_the_same_audio_as_a_whole_one(client) -> None:
    text = f"{WORDS} {WORDS} {WORDS}"
    whole, _ = decoded(client.post("/api/tts", json={"text": text}).content)
    with client.stream("POST", "/api/tts", json={"text": text, "stream": True}) as answer:
        assert answer.status_code == 200
        parts = list(answer.iter_bytes())
    body = b"".join(parts)
    streamed = np.frombuffer(body[44:], dtype="<i2").astype(np.float64) / 32767.0
    assert len(streamed) == len(whole) and np.abs(streamed - whole).max() < 1e-3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_voices) -> Iterator[str]:
    """A real uvicorn server on a free port in this process (threads), its base URL."""
    import uvicorn

    _, voice = tiny_voices["parallel"]
    port = free_port()
    config = uvicorn.Config(create_app(voice, max_chars=500), host="127.0.0.1", port=port, log_level="warning")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started:
        assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=10)


def test_twenty_concurrent_clients_are_all_answered(server) -> None:
    def ask(i: int) -> tuple[int, int]:
        answer = httpx.post(f"{server}/api/tts", json={"text": WORDS if i % 4 else ""}, timeout=120)
        return answer.status_code, len(answer.content)

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(ask, range(20)))
    assert [status for status, _ in answers] == [400 if i % 4 == 0 else 200 for i in range(20)]
    assert all(size > 44 for status, size in answers if status == 200)
    assert httpx.get(f"{server}/health", timeout=10).json()["status"] == "ok"


# The page's audio, read back in the browser: the WAV's peak sample (16-bit PCM after the header).
PEAK_OF_PLAYER = """
const done = arguments[arguments.length - 1];
fetch(document.getElementById('player').src).then(r => r.arrayBuffer()).then(b => {
  const samples = new Int16Array(b.slice(44));
  let peak = 0;
  for (const s of samples) peak = Math.max(peak, Math.abs(s));
  done({peak: peak, samples: samples.length});
}).catch(e => done({error: String(e)}));
"""


def test_the_page_speaks_a_typed_sentence_into_its_player(chromium, server) -> None:
    from selenium.webdriver.common.by import By

    from browser import open_page, wait_for

    open_page(chromium, f"{server}/")
    wait_for(chromium, "document.getElementById('speaker').options.length > 0", 20, "the speaker menu to fill")
    box = chromium.find_element(By.ID, "text")
    box.clear()
    box.send_keys(WORDS)
    chromium.find_element(By.ID, "speak").click()
    duration = wait_for(
        chromium,
        "(() => { const p = document.getElementById('player'); return p.readyState >= 1 && p.duration > 0 && p.duration; })()",
        60,
        "the player to receive audio",
    )
    expected, sr = decoded(httpx.post(f"{server}/api/tts", json={"text": WORDS}, timeout=60).content)
    assert abs(duration - len(expected) / sr) < 0.05
    audio = chromium.execute_async_script(PEAK_OF_PLAYER)
    assert "error" not in audio and audio["peak"] > 100 and audio["samples"] == len(expected)
    assert chromium.find_element(By.ID, "download").get_attribute("href").startswith("blob:")
    assert chromium.find_element(By.ID, "error").text == ""


def test_the_page_shows_the_servers_error_for_an_unknown_speaker(chromium, server) -> None:
    from selenium.webdriver.common.by import By

    from browser import open_page, wait_for

    open_page(chromium, f"{server}/")
    wait_for(chromium, "document.getElementById('speaker').options.length > 0", 20, "the speaker menu to fill")
    # A speaker the voice does not have, as a stale page or a hand-edited request would send.
    chromium.execute_script(
        "const s = document.getElementById('speaker'); s.disabled = false;"
        "s.add(new Option('nobody', 'nobody')); s.value = 'nobody';"
    )
    chromium.find_element(By.ID, "speak").click()
    message = wait_for(chromium, "document.getElementById('error').textContent", 30, "the error to show")
    assert "speaker 'nobody' is not one this voice has" in message
