"""reports/index.html (pipeline/evaluation/report_page.py): every sample gets a player grouped
under its utterance, every figure an image, the headline numbers are on the page, everything
from data is escaped, and nothing outside the reports folder is referenced."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from pipeline.evaluation.report_page import (
    PAGE,
    PageContent,
    UtteranceSamples,
    collect_content,
    report_page,
    split_sample_name,
    write_page,
)

METRICS = {
    "checkpoint_step": 4400,
    "decoder": "autoregressive",
    "utterances": 3,
    "val_mel_loss": 0.4321,
    "alignment_error": 1.25,
    "mcd": {"model": 9.8765, "vocoder_ceiling": 6.5432, "model_share": 3.3333},
    "length_ratio_error": 0.0789,
    "duration_mae_frames": 1.5,
    "stop": {"on_time": 2, "early": 1, "late": 0, "never": 0},
    "wer": {"synthesized": 0.4567, "vocoded_truth": 0.1234, "truth": 0.0912, "gap": 0.3333, "held_back": 0.5},
    "rtf": {"model": 0.1, "vocoder": 0.2, "total": 0.3},
    "convergence": {"steps_to_target": 1200, "val_curve_area": 0.61, "wall_seconds": 1800.0},
    "vocoder": {
        "used": "trained",
        "griffin_lim": {"pesq_wb": 1.11, "estoi": 0.222, "mcd": 7.77, "rtf_one_thread": 0.5, "wer_gap": 0.25},
        "trained": {"pesq_wb": 2.34, "estoi": 0.678, "mcd": 6.54, "rtf_one_thread": 0.05, "wer_gap": 0.3333},
    },
}
ROWS = [
    {"id": "utt_001", "text": "The old man walked home.", "heard_synthesized": "the old man walked"},
    {"id": "utt_002", "text": "A small dog slept.", "heard_synthesized": "a small dog"},
]
KINDS = ["truth", "vocoded_truth", "synthesized", "vocoded_truth_griffin_lim", "synthesized_griffin_lim"]


class Elements(HTMLParser):
    """Every start tag of a page with its attributes, and its text as a reader sees it (`text`:
    the style sheet left out, white space collapsed)."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.parts: list[str] = []
        self.feed(page)
        self.text = " ".join("".join(self.parts).split())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        if not self.tags or self.tags[-1][0] != "style":
            self.parts.append(data)

    def sources(self, tag: str) -> list[str]:
        return [unquote(a["src"]) for t, a in self.tags if t == tag]


def reports_folder(root: Path, ids: tuple[str, ...] = ("utt_001", "utt_002"), figures: bool = True) -> Path:
    """A reports folder as evaluate leaves it (files with placeholder contents)."""
    reports = root / "reports"
    (reports / "samples").mkdir(parents=True)
    for utt_id in ids:
        for kind in KINDS:
            (reports / "samples" / f"{utt_id}_{kind}.wav").write_bytes(b"RIFF")
    (reports / "samples" / "held_back_01.wav").write_bytes(b"RIFF")
    if figures:
        (reports / "figures" / "eval").mkdir(parents=True)
        for utt_id in ids:
            for name in ("mel", "attention"):
                (reports / "figures" / "eval" / f"{utt_id}_{name}.png").write_bytes(b"PNG")
    return reports


def page_of(reports: Path, rows: list[dict] = ROWS, metrics: dict = METRICS) -> str:
    return report_page(collect_content(reports, metrics, rows, ["The small dog slept."], "models/best.pt"))


def test_every_sample_file_gets_a_player(tmp_path: Path) -> None:
    reports = reports_folder(tmp_path)
    players = Elements(page_of(reports)).sources("audio")
    assert sorted(players) == sorted(f"samples/{p.name}" for p in (reports / "samples").glob("*.wav"))


def test_the_players_of_an_utterance_are_grouped_in_listening_order(tmp_path: Path) -> None:
    content = collect_content(reports_folder(tmp_path), METRICS, ROWS)
    assert [u.id for u in content.utterances or []] == ["utt_001", "utt_002"]
    first = content.utterances[0] if content.utterances else None
    assert first is not None and first.text == "The old man walked home."
    assert [p.label for p in first.players] == [
        "recording",
        "vocoded recording (trained vocoder)",
        "synthesized (trained vocoder)",
        "vocoded recording (Griffin-Lim)",
        "synthesized (Griffin-Lim)",
    ]


def test_a_held_back_sentence_is_labelled_with_its_text(tmp_path: Path) -> None:
    content = collect_content(reports_folder(tmp_path), METRICS, ROWS, ["The small dog slept."])
    assert [(m.src, m.label) for m in content.held_back or []] == [("samples/held_back_01.wav", "The small dog slept.")]


def test_an_id_that_ends_like_a_kind_is_grouped_under_the_known_id() -> None:
    kinds = ["truth", "vocoded_truth", "synthesized"]
    # `a_vocoded_truth` is utterance `a`'s vocoded truth, or utterance `a_vocoded`'s recording.
    assert split_sample_name("a_vocoded_truth", ["a_vocoded"], kinds) == ("a_vocoded", "truth")
    assert split_sample_name("a_vocoded_truth", ["a"], kinds) == ("a", "vocoded_truth")
    assert split_sample_name("a_vocoded_truth", [], kinds) == ("a", "vocoded_truth")  # unknown: the longest kind
    assert split_sample_name("notes", ["a"], kinds) is None


def test_a_wav_that_is_no_utterance_sample_still_gets_a_player(tmp_path: Path) -> None:
    reports = reports_folder(tmp_path)
    (reports / "samples" / "extra.wav").write_bytes(b"RIFF")
    assert "samples/extra.wav" in Elements(page_of(reports)).sources("audio")


def test_every_figure_gets_an_image(tmp_path: Path) -> None:
    reports = reports_folder(tmp_path)
    images = Elements(page_of(reports)).sources("img")
    assert sorted(images) == sorted(f"figures/eval/{p.name}" for p in (reports / "figures" / "eval").glob("*.png"))


@pytest.mark.parametrize(
    "shown",
    [
        "9.88 dB",  # MCD model
        "6.54 dB",  # MCD vocoder ceiling
        "3.33 dB",  # the model's share
        "0.457",  # WER synthesized
        "0.333",  # WER gap
        "67% on time",  # stop rate: 2 of 3
        "0.432",  # val_mel_loss
        "2.34",  # the trained vocoder's PESQ-WB
        "0.222",  # Griffin-Lim's ESTOI
        "step 4400",
    ],
)
def test_the_headline_numbers_appear_on_the_page(tmp_path: Path, shown: str) -> None:
    text = Elements(page_of(reports_folder(tmp_path))).text
    assert shown in text


def test_a_planted_script_in_an_utterance_id_and_text_comes_out_escaped(tmp_path: Path) -> None:
    evil = "<script>alert(1)</script>"
    utt_id = 'x"><script>alert(2)</script>'
    content = PageContent(
        METRICS,
        checkpoint=evil,
        utterances=[UtteranceSamples(utt_id, evil, evil, ())],
        held_back=[],
        figures=[],
    )
    page = report_page(content)
    parsed = Elements(page)
    assert "script" not in [tag for tag, _ in parsed.tags]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert evil in parsed.text  # escaped, the reader still sees the text as it is


def test_a_file_name_with_markup_comes_out_as_an_escaped_address(tmp_path: Path) -> None:
    reports = reports_folder(tmp_path, ids=('u"><b>x',), figures=False)
    page = page_of(reports, rows=[{"id": 'u"><b>x', "text": "t"}])
    assert "b" not in [tag for tag, _ in Elements(page).tags]
    assert 'samples/u"><b>x_truth.wav' in Elements(page).sources("audio")


def test_missing_samples_and_figures_folders_give_a_page_that_says_so(tmp_path: Path) -> None:
    text = Elements(page_of(tmp_path / "no_reports_here")).text
    assert "No samples/ folder" in text and "No figures/eval/ folder" in text


def test_empty_samples_and_figures_folders_give_a_page_that_says_so(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    (reports / "samples").mkdir(parents=True)
    (reports / "figures" / "eval").mkdir(parents=True)
    text = Elements(page_of(reports)).text
    assert "No samples in samples/" in text and "No figures in figures/eval/" in text


def test_a_run_without_stop_token_or_recognizer_still_gets_a_page(tmp_path: Path) -> None:
    # The parallel decoder has no stop token; eval.recognizer none leaves out every WER.
    metrics = {k: v for k, v in METRICS.items() if k not in ("stop", "wer", "alignment_error", "vocoder")}
    text = Elements(page_of(reports_folder(tmp_path), metrics=metrics)).text
    assert "9.88 dB" in text and "WER" not in text and "stop" not in text


def test_an_empty_metrics_dict_shows_dashes_instead_of_crashing(tmp_path: Path) -> None:
    text = Elements(report_page(PageContent({}))).text
    assert "MCD-DTW, model" in text and "–" in text


def test_the_page_references_nothing_outside_the_reports_folder(tmp_path: Path) -> None:
    parsed = Elements(page_of(reports_folder(tmp_path)))
    assert not [t for t, _ in parsed.tags if t in ("script", "link", "iframe", "object", "embed")]
    addresses = [a.get("src") or a.get("href") for _, a in parsed.tags if "src" in a or "href" in a]
    assert addresses and all(not a.startswith(("/", "http:", "https:", "file:", "..")) for a in addresses)


def test_write_page_writes_index_html_in_the_reports_folder(tmp_path: Path) -> None:
    reports = reports_folder(tmp_path)
    path = write_page(reports, METRICS, ROWS, ["The small dog slept."])
    assert path == reports / PAGE and path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in reports.iterdir()) == ["figures", "index.html", "samples"]  # no temporary left
