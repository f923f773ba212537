"""reports/index.html opened in a real browser: after a real evaluation every player and every
figure on the page loads from the file system, and the headline figures are visible. The
harness's own checks (tests/browser.py) are shown to fail on planted faults, so a passing page
test means something."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from selenium.webdriver.remote.webdriver import WebDriver

import browser
from browser import (
    BrowserError,
    console_errors,
    failures,
    find_browser,
    images_loaded,
    media_loaded,
    open_page,
    visible_text,
    wait_for,
)
from helpers import committed_params
from pipeline.common.atomic import write_wav
from pipeline.config import eval_config
from pipeline.evaluation.report_page import PAGE, Media, PageContent, UtteranceSamples, report_page
from pipeline.evaluation.scoring import evaluate


@pytest.fixture(scope="module")
def evaluated(tiny_runs, tiny_store, tiny_vocoder, tmp_path_factory) -> Path:
    """The reports folder of one evaluation heard through the trained vocoder with Griffin-Lim
    compared (so every kind of sample is written), at test_evaluate's smallest settings. No
    recognizer: pocketsphinx was 13 of its 22 s, and the WER rows are test_report_page's."""
    params = committed_params()
    cfg = dataclasses.replace(
        eval_config(params),
        checkpoint=str(tiny_runs["autoregressive"] / "models" / "best.pt"),
        griffin_lim_iters=4,
        vocoder="trained",
        utterances=1,
        device="cpu",
        samples=1,
        figures=1,
        sentences=["The small dog slept."],
        recognizer="none",
    )
    reports = tmp_path_factory.mktemp("page") / "reports"
    evaluate(
        tiny_store,
        tiny_store.parent / "manifest.parquet",
        tiny_runs["autoregressive"] / "dvclive",
        cfg,
        params,
        reports,
        progress=False,
        vocoder_path=tiny_vocoder,
    )
    return reports


def test_evaluate_writes_the_page_beside_its_samples_and_figures(evaluated: Path) -> None:
    assert (evaluated / PAGE).is_file()
    kinds = {p.name.split("_", 2)[-1] for p in (evaluated / "samples").glob("utt_*.wav")}
    # Every kind of sample is on disk, so the checks below see a player of each.
    assert kinds == {
        "truth.wav",
        "vocoded_truth.wav",
        "synthesized.wav",
        "vocoded_truth_griffin_lim.wav",
        "synthesized_griffin_lim.wav",
    }


def test_every_player_on_the_evaluation_page_loads_with_a_duration(chromium: WebDriver, evaluated: Path) -> None:
    open_page(chromium, evaluated / PAGE)
    players = media_loaded(chromium, timeout=10)
    assert len(players) == len(list((evaluated / "samples").glob("*.wav")))
    assert not failures(players)
    assert all(p.duration is not None and p.duration > 0 for p in players)


def test_every_figure_on_the_evaluation_page_loads(chromium: WebDriver, evaluated: Path) -> None:
    open_page(chromium, evaluated / PAGE)
    images = images_loaded(chromium, timeout=10)
    assert len(images) == len(list((evaluated / "figures" / "eval").glob("*.png"))) == 2
    assert not failures(images)
    assert all(i.natural_width > 0 for i in images)


def test_the_headline_figures_are_visible_on_the_evaluation_page(chromium: WebDriver, evaluated: Path) -> None:
    metrics = json.loads((evaluated / "eval.json").read_text(encoding="utf-8"))
    open_page(chromium, evaluated / PAGE)
    text = visible_text(chromium)
    assert f"{metrics['mcd']['model']:.2f} dB" in text
    assert f"{metrics['mcd']['vocoder_ceiling']:.2f} dB" in text
    assert f"{metrics['mcd']['model_share']:.2f} dB" in text
    assert f"{metrics['val_mel_loss']:.3f}" in text
    on_time = metrics["stop"]["on_time"] / metrics["utterances"]
    assert f"{on_time:.0%} on time" in text
    assert "trained vocoder (heard)" in text and "Griffin-Lim" in text
    for name in ("griffin_lim", "trained"):
        assert f"{metrics['vocoder'][name]['pesq_wb']:.2f}" in text


# --- the harness fails when it should -------------------------------------------------------------


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """A page with one playable wav and one player and one image whose files do not exist."""
    write_wav(tmp_path / "samples" / "ok.wav", np.zeros(2205, dtype=np.float32), 22050)
    content = PageContent(
        {},
        utterances=[
            UtteranceSamples(
                "u", "text", None, (Media("samples/ok.wav", "present"), Media("samples/gone.wav", "missing"))
            )
        ],
        held_back=[],
        figures=[Media("figures/eval/gone.png", "missing figure")],
    )
    (tmp_path / PAGE).write_text(report_page(content), encoding="utf-8")
    return tmp_path / PAGE


def test_a_player_whose_file_is_missing_is_reported_as_not_loaded(chromium: WebDriver, planted: Path) -> None:
    open_page(chromium, planted)
    players = {p.src: p for p in media_loaded(chromium, timeout=10)}
    assert players["samples/ok.wav"].loaded and players["samples/ok.wav"].duration == pytest.approx(0.1, abs=0.01)
    gone = players["samples/gone.wav"]
    assert not gone.loaded and gone.error is not None
    assert failures(list(players.values())) == [gone.problem] and "samples/gone.wav" in (gone.problem or "")


def test_an_image_whose_file_is_missing_is_reported_as_broken(chromium: WebDriver, planted: Path) -> None:
    open_page(chromium, planted)
    [image] = images_loaded(chromium, timeout=10)
    assert not image.loaded and image.natural_width == 0
    assert failures([image]) == ["<img> 'figures/eval/gone.png' (alt 'missing figure'): broken (natural width 0)"]


def test_wait_for_fails_naming_the_condition_and_the_timeout(chromium: WebDriver, planted: Path) -> None:
    open_page(chromium, planted)
    with pytest.raises(
        AssertionError,
        match=r"timed out after 0\.2 s waiting for the moon on file:.*: `window\.moon === 1` stayed false",
    ):
        wait_for(chromium, "window.moon === 1", timeout=0.2, what="the moon")


def test_wait_for_returns_the_value_of_a_condition_that_holds(chromium: WebDriver, planted: Path) -> None:
    open_page(chromium, planted)
    assert wait_for(chromium, "document.title", timeout=1) == "Hamgara evaluation"


def test_console_errors_reports_what_the_page_logged(chromium: WebDriver, tmp_path: Path) -> None:
    page = tmp_path / "logs.html"
    page.write_text("<script>console.error('planted failure')</script>", encoding="utf-8")
    console_errors(chromium)  # what earlier pages logged
    open_page(chromium, page)
    assert any("planted failure" in line for line in console_errors(chromium))


def test_a_missing_chromium_fails_naming_the_command_that_installs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(browser.shutil, "which", lambda name: None if name == "chromium" else f"/usr/bin/{name}")
    with pytest.raises(BrowserError, match=r"chromium not found on PATH.*`\./setup\.sh test` installs them"):
        find_browser()
