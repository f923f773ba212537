"""The corpus stage on a tiny demo corpus, synthesized by the real festival."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import soundfile as sf

from helpers import committed_params, demo_config
from pipeline.demo import festival
from pipeline.demo.build import build_demo_corpus
from pipeline.demo.festival import FestivalError, scheme_string, synthesize_batch

VOICE = "cmu_us_slt_arctic_hts"
TINY = demo_config(utterances=4, min_words=5, max_words=8, seed=11, sample_rate=16000, batch_size=2)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "corpus"
    build_demo_corpus(TINY, out, workers=2)
    return out


def _rows(corpus: Path) -> list[list[str]]:
    return [line.split("|") for line in (corpus / "metadata.csv").read_text(encoding="utf-8").splitlines()]


def _plain_words(text: str) -> list[str]:
    return [re.sub(r"[^a-z']", "", w.lower()) for w in text.split()]


def test_metadata_rows_have_three_fields(corpus: Path) -> None:
    rows = _rows(corpus)
    assert [r[0] for r in rows] == ["demo_0001", "demo_0002", "demo_0003", "demo_0004"]
    for row in rows:
        assert len(row) == 3 and row[1] == row[2] and row[1]


def test_wavs_are_mono_16_bit_at_the_sample_rate(corpus: Path) -> None:
    for utt_id, _, _ in _rows(corpus):
        info = sf.info(str(corpus / "wavs" / f"{utt_id}.wav"))
        assert (info.channels, info.samplerate, info.subtype) == (1, TINY.sample_rate, "PCM_16")


def test_alignment_words_follow_the_sentence(corpus: Path) -> None:
    for utt_id, text, _ in _rows(corpus):
        alignment = json.loads((corpus / "alignments" / f"{utt_id}.json").read_text())
        assert alignment["id"] == utt_id
        assert [w[0].lower() for w in alignment["words"]] == _plain_words(text)


def test_last_phone_ends_at_the_end_of_the_wav(corpus: Path) -> None:
    for utt_id, _, _ in _rows(corpus):
        alignment = json.loads((corpus / "alignments" / f"{utt_id}.json").read_text())
        duration = sf.info(str(corpus / "wavs" / f"{utt_id}.wav")).duration
        assert alignment["phones"][-1][2] == pytest.approx(duration, abs=0.05)


def test_summary_counts_the_corpus(corpus: Path) -> None:
    summary = json.loads((corpus / "corpus.json").read_text())
    assert summary["utterances"] == 4
    assert summary["sample_rate"] == TINY.sample_rate and summary["seed"] == TINY.seed
    assert 5 <= summary["words_min"] <= summary["words_max"] <= 8
    assert summary["total_seconds"] > 0


def test_rebuild_with_same_seed_is_identical(corpus: Path, tmp_path: Path) -> None:
    again = tmp_path / "corpus"
    build_demo_corpus(TINY, again, workers=1)
    assert (again / "metadata.csv").read_bytes() == (corpus / "metadata.csv").read_bytes()
    for utt_id, _, _ in _rows(corpus):
        name = f"wavs/{utt_id}.wav"
        assert (again / name).read_bytes() == (corpus / name).read_bytes()


def test_scheme_string_escapes_quotes_backslashes_and_newlines() -> None:
    assert scheme_string('say "hi"\\now\nok') == '"say \\"hi\\"\\\\now ok"'


def test_text_with_quotes_is_synthesized(tmp_path: Path) -> None:
    timings = synthesize_batch([("odd", 'She said "hello" to the cat.')], tmp_path, VOICE, 16000)
    assert [w.label.lower() for w in timings["odd"].words] == ["she", "said", "hello", "to", "the", "cat"]
    assert (tmp_path / "odd.wav").is_file()


def test_missing_voice_gives_festival_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(FestivalError, match="no_such_voice"):
        synthesize_batch([("a", "Hello there.")], tmp_path, "no_such_voice", 16000)


def _fake_failing_festival(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "festival"
    fake.write_text("#!/bin/sh\necho 'SIOD ERROR: something broke' >&2\nexit 255\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))


def test_festival_failure_reports_stderr_and_batch_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_failing_festival(tmp_path, monkeypatch)
    with pytest.raises(FestivalError) as error:
        synthesize_batch([("u1", "One."), ("u2", "Two.")], tmp_path / "wavs", VOICE, 16000)
    assert "SIOD ERROR: something broke" in str(error.value)
    assert "u1" in str(error.value) and "u2" in str(error.value)


def test_failed_synthesis_leaves_no_corpus_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_failing_festival(tmp_path, monkeypatch)
    out = tmp_path / "data" / "corpus"
    with pytest.raises(FestivalError):
        build_demo_corpus(TINY, out, workers=1)
    assert list((tmp_path / "data").iterdir()) == []


def test_missing_festival_gives_install_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(festival, "FESTIVAL_EXECUTABLE", "festival-not-installed-here")
    out = tmp_path / "corpus"
    with pytest.raises(FestivalError, match="apt-get install festival festvox-us-slt-hts"):
        build_demo_corpus(TINY, out, workers=1)
    assert not out.exists()


def test_the_stage_writes_its_own_output_never_the_users_corpus() -> None:
    from pipeline.corpus import _parse_args

    # data.corpus may point at a user's own recordings; the demo goes to the stage's DVC out.
    assert _parse_args([]).out == Path("data/corpus")


@pytest.mark.parametrize("overrun,ok", [(0.006, True), (0.057, True), (0.2, False), (-0.2, False)])
def test_a_wav_must_end_where_festivals_last_phone_ends(tmp_path: Path, overrun: float, ok: bool) -> None:
    # The HTS voice's wave ends 6 ms after its last phone, the diphone voices' 48-57 ms after
    # (measured on 30 sentences each); timings off by more than that do not describe the audio.
    wav = tmp_path / "a.wav"
    sf.write(wav, [0.0] * int(22050 * (2.0 + overrun)), 22050, subtype="PCM_16")
    timings = festival.Timings(phones=[festival.Segment("pau", 0.0, 2.0)], words=[])
    if ok:
        festival._check_wav(wav, timings, 22050)
    else:
        with pytest.raises(FestivalError, match="festival's last phone ends at 2.000 s"):
            festival._check_wav(wav, timings, 22050)


@pytest.fixture(scope="module")
def two_voices(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo2") / "corpus"
    build_demo_corpus(dataclasses.replace(TINY, utterances=3, extra_voices=["kal_diphone:2"]), out, workers=2)
    return out


def test_an_extra_voice_is_a_vctk_style_speaker_at_its_own_rate(two_voices: Path) -> None:
    ids = [row[0] for row in _rows(two_voices)]
    assert ids == ["demo_0001", "demo_0002", "demo_0003", "p301_001_mic1", "p301_002_mic1"]
    rates = {i: sf.info(str(two_voices / "wavs" / f"{i}.wav")).samplerate for i in ids}
    assert rates["demo_0001"] == 16000 and rates["p301_001_mic1"] == 48000
    speakers = json.loads((two_voices / "corpus.json").read_text())["speakers"]
    assert speakers["p301"]["voice"] == "kal_diphone" and speakers["p301"]["utterances"] == 2
    assert speakers["demo"]["sample_rate"] == 16000


def test_the_speaker_regex_of_params_reads_each_speaker_from_its_id(two_voices: Path) -> None:
    from pipeline.config import data_config
    from pipeline.data.metadata import read_metadata

    params = committed_params()
    params["data"]["speaker_regex"] = r"^(p\d+|demo)_"
    table = read_metadata(two_voices, data_config(params))
    assert list(table["speaker"]) == ["demo", "demo", "demo", "p301", "p301"]


def test_an_extra_speaker_says_other_sentences_than_the_main_one(two_voices: Path) -> None:
    texts = {row[0]: row[1] for row in _rows(two_voices)}
    assert texts["p301_001_mic1"] not in {texts["demo_0001"], texts["demo_0002"], texts["demo_0003"]}


@pytest.mark.parametrize(
    "voices,message",
    [
        (["kal_diphone"], "must be '<festival voice>:<utterances>'"),
        (["kal_diphone:0"], "must be '<festival voice>"),
        ([f"{VOICE}:3"], "voices must differ"),
    ],
)
def test_a_malformed_extra_voice_is_refused(voices: list[str], message: str) -> None:
    from pipeline.config import ConfigError, data_config

    params = committed_params()
    params["data"]["demo"]["extra_voices"] = voices
    with pytest.raises(ConfigError, match=message):
        data_config(params)


# The unseen-words test set: a main voice, an extra voice, two held-back sentences and two
# in-grammar sentences listed in validation.txt.
WITH_UNSEEN = dataclasses.replace(
    TINY, utterances=3, extra_voices=["kal_diphone:2"], unseen_utterances=2, validation_utterances=2
)


@pytest.fixture(scope="module")
def with_unseen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo_unseen") / "corpus"
    build_demo_corpus(WITH_UNSEEN, out, workers=2)
    return out


def _training_leaks(corpus: Path) -> dict[str, int]:
    """Held-back words (corpus.json) in the rows unseen.txt does not hold out, as leaked_words gives them."""
    from pipeline.demo.sentences import leaked_words

    # Validation sentences count as training text here: they come from the training grammar.
    held = set(json.loads((corpus / "corpus.json").read_text())["unseen"]["held_words"])
    unseen = set((corpus / "unseen.txt").read_text().split())
    return leaked_words([text for utt_id, text, _ in _rows(corpus) if utt_id not in unseen], held)


def test_the_unseen_sentences_are_rows_of_the_main_voice_listed_in_unseen_txt(with_unseen: Path) -> None:
    ids = [row[0] for row in _rows(with_unseen)]
    listed = (with_unseen / "unseen.txt").read_text().split()
    assert listed == ["demo_unseen_0001", "demo_unseen_0002"] and set(listed) <= set(ids)
    rate = sf.info(str(with_unseen / "wavs" / "demo_unseen_0001.wav")).samplerate
    assert rate == WITH_UNSEEN.sample_rate  # the main voice's


def test_each_unseen_sentence_holds_a_held_back_word(with_unseen: Path) -> None:
    from pipeline.demo.sentences import sentence_words

    summary = json.loads((with_unseen / "corpus.json").read_text())["unseen"]
    assert summary["utterances"] == 2 and summary["held_templates"] == ["request"]
    texts = {row[0]: row[1] for row in _rows(with_unseen)}
    for utt_id in ("demo_unseen_0001", "demo_unseen_0002"):
        assert set(sentence_words(texts[utt_id])) & set(summary["held_words"]), texts[utt_id]


def test_no_held_back_word_is_in_any_training_transcript_of_any_voice(with_unseen: Path) -> None:
    assert _training_leaks(with_unseen) == {}


def test_a_leaked_held_back_word_in_a_training_transcript_is_caught(with_unseen: Path, tmp_path: Path) -> None:
    import shutil

    planted = tmp_path / "corpus"
    shutil.copytree(with_unseen, planted)
    word = json.loads((planted / "corpus.json").read_text())["unseen"]["held_words"][0]
    rows = (planted / "metadata.csv").read_text().splitlines()
    utt_id, text, _ = rows[1].split("|")
    leaked = f"{text[:-1]} {word}{text[-1]}"
    rows[1] = f"{utt_id}|{leaked}|{leaked}"
    (planted / "metadata.csv").write_text("\n".join(rows) + "\n")
    assert _training_leaks(planted) == {word: 1}


def test_validate_marks_the_listed_rows_unseen(with_unseen: Path) -> None:
    from pipeline.config import data_config
    from pipeline.data.metadata import read_metadata

    table = read_metadata(with_unseen, data_config(committed_params()))
    assert table.loc[table["unseen"], "id"].tolist() == ["demo_unseen_0001", "demo_unseen_0002"]


def test_without_unseen_utterances_there_is_no_hold_out(corpus: Path) -> None:
    assert not (corpus / "unseen.txt").exists()
    assert "unseen" not in json.loads((corpus / "corpus.json").read_text())


def test_the_validation_sentences_are_main_voice_rows_listed_in_validation_txt(with_unseen: Path) -> None:
    listed = (with_unseen / "validation.txt").read_text().split()
    assert listed == ["demo_val_0001", "demo_val_0002"]
    assert json.loads((with_unseen / "corpus.json").read_text())["validation"]["utterances"] == 2
    assert sf.info(str(with_unseen / "wavs" / "demo_val_0001.wav")).samplerate == WITH_UNSEEN.sample_rate


def test_the_validation_sentences_continue_the_training_stream_without_repeating_it(with_unseen: Path) -> None:
    from pipeline.demo.sentences import generate_sentences, hold_out

    held = hold_out(WITH_UNSEEN.unseen_word_share, WITH_UNSEEN.unseen_templates, WITH_UNSEEN.seed)
    texts = {row[0]: row[1] for row in _rows(with_unseen)}
    stream = generate_sentences(5, WITH_UNSEEN.min_words, WITH_UNSEEN.max_words, WITH_UNSEEN.seed, held.train)
    # The training sentences are those a corpus without validation sentences has; the listed
    # ones are the next distinct sentences of the same grammar.
    assert [texts[f"demo_{i:04d}"] for i in (1, 2, 3)] == stream[:3]
    assert [texts["demo_val_0001"], texts["demo_val_0002"]] == stream[3:]


def test_without_validation_utterances_there_is_no_validation_txt(corpus: Path) -> None:
    assert not (corpus / "validation.txt").exists()
    assert "validation" not in json.loads((corpus / "corpus.json").read_text())
