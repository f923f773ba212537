"""Long text: said sentence by sentence, in pieces the position tables hold, joined with pauses.

The model's position tables hold 8192 positions (about 95 s of speech); synthesizing that much
on a CPU in a test would take minutes, so the synthesis tests shrink the tables instead
(`small_tables`): the pieces' bound is derived from the tables the model was built with, and a
text well past a small table shows the same overflow the full one has.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from helpers import TEXTS
from model.layers import PositionalEncoding
from model.vocoder import GriffinLimVocoder
from pipeline.evaluation.chunking import SENTENCE_PAUSE_SECONDS, join_with_gaps, split_at_bound, split_sentences
from pipeline.evaluation.synthesizer import Synthesizer
from pipeline.synth import main as synth_main

# Positions in each shrunken table: pieces of up to 18 tokens at 22.05 kHz, hop 256 (long enough
# for Griffin-Lim even from the barely trained tiny model, which gives about a frame per token).
TABLE = 400
# Every sentence of the tiny store at once: ~500 tokens, more than TABLE positions.
LONG_LINE = " ".join(TEXTS)


@pytest.fixture
def small_tables(tiny_runs, monkeypatch):
    """Models built while this is active get TABLE-position tables (the trained tiny runs are
    made first: training with them shrunk is not what is under test)."""
    original = PositionalEncoding.__init__

    def shrunk(self: PositionalEncoding, d_model: int, max_len: int = 8192) -> None:
        original(self, d_model, TABLE)

    monkeypatch.setattr(PositionalEncoding, "__init__", shrunk)
    return tiny_runs


def _checkpoint(runs, decoder: str) -> str:
    return str(runs[decoder] / "models" / "best.pt")


# --- the splitters -------------------------------------------------------------------------


def test_english_text_splits_at_each_sentence_end() -> None:
    text = 'Hello there. How are you?  Fine! He said "Stop." Then; he left'
    assert split_sentences(text) == ["Hello there.", "How are you?", "Fine!", 'He said "Stop."', "Then;", "he left"]


def test_persian_text_splits_at_its_own_marks_too() -> None:
    text = "سلام. حال شما چطور است؟ خوبم؛ ممنون۔ خداحافظ"
    assert split_sentences(text) == ["سلام.", "حال شما چطور است؟", "خوبم؛", "ممنون۔", "خداحافظ"]


def test_no_piece_is_empty_or_punctuation_alone() -> None:
    assert split_sentences("Wait. . . What?   ") == ["Wait. . .", "What?"]
    assert split_sentences(". ! Hello. ") == [". ! Hello."]
    assert split_sentences("One sentence without an end") == ["One sentence without an end"]
    assert split_sentences("") == [] and split_sentences("   ") == [] and split_sentences("?! .") == []


def test_a_sentence_without_punctuation_is_cut_at_word_boundaries_within_the_bound() -> None:
    text = " ".join(f"word{i:02d}" for i in range(40))  # 279 characters, no punctuation
    pieces = split_at_bound(text, 50, ",", " ")
    assert all(len(p) <= 50 for p in pieces) and len(pieces) == 6
    assert " ".join(pieces) == text  # whole words, nothing lost, no separator at a cut


def test_a_long_sentence_is_cut_at_a_comma_or_word_boundary_near_an_even_share() -> None:
    assert split_at_bound("aaaa bbbb, cccc dddd eeee", 14, ",", " ") == ["aaaa bbbb,", "cccc dddd eeee"]
    # A comma early in the window would make a tiny piece: the word boundary nearest an even share wins.
    assert split_at_bound("a, bbbb cccc dddd", 12, ",", " ") == ["a, bbbb", "cccc dddd"]


def test_a_word_longer_than_the_bound_is_cut_within_it() -> None:
    assert split_at_bound("abcdefghij", 4, ",", " ") == ["abcd", "efg", "hij"]


def test_token_lists_within_the_bound_come_back_whole() -> None:
    ids = [5, 1, 7, 1, 9]
    assert split_at_bound(ids, 5, {2}, {1}) == [ids]
    assert split_at_bound(ids, 4, {2}, {1}) == [[5, 1, 7], [9]]


def test_pieces_are_joined_with_gaps_of_the_fill() -> None:
    joined = join_with_gaps([np.ones((2, 3)), 2 * np.ones((1, 3))], 2, -11.5)
    assert joined.shape == (5, 3) and (joined[2:4] == -11.5).all() and (joined[4] == 2).all()


# --- synthesis -----------------------------------------------------------------------------


@pytest.mark.parametrize("decoder", ["autoregressive", "parallel"])
def test_one_sentence_lines_are_synthesized_exactly_as_in_one_pass(tiny_runs, decoder: str) -> None:
    synth = Synthesizer.from_file(_checkpoint(tiny_runs, decoder))
    vocoder = GriffinLimVocoder(synth.mel_settings, 4)
    texts = TEXTS[:4]
    lang = synth.language(None)
    single_pass = synth.synthesize_tokens(synth.tokens(texts, lang), texts, vocoder, lang)
    for new, old in zip(synth.synthesize(texts, vocoder), single_pass, strict=True):
        assert new.text == old.text and new.stop_fired == old.stop_fired
        assert np.array_equal(new.mel, old.mel) and np.array_equal(new.wave, old.wave)
        assert np.array_equal(new.durations, old.durations)


@pytest.mark.parametrize("decoder", ["autoregressive", "parallel"])
def test_a_line_beyond_the_position_table_is_said_in_pieces_joined_by_pauses(small_tables, decoder: str) -> None:
    synth = Synthesizer.from_file(_checkpoint(small_tables, decoder))
    lang = synth.language(None)
    tokens = synth.tokens([LONG_LINE], lang)
    assert len(tokens[0]) > TABLE
    with pytest.raises(RuntimeError):  # the single pass: what `synthesize` did before
        synth.synthesize_tokens(tokens, [LONG_LINE], None, lang)
    owners, pieces = synth.chunk_tokens([LONG_LINE], lang, synth.max_chunk_tokens())
    (utt,) = synth.synthesize([LONG_LINE], None)
    pause = round(SENTENCE_PAUSE_SECONDS * synth.mel_settings.sample_rate / synth.mel_settings.hop_length)
    floor = np.float32(np.log(synth.mel_settings.log_clamp))
    parts = synth.synthesize_tokens(pieces, [LONG_LINE] * len(pieces), None, lang)
    assert len(pieces) > len(TEXTS) and max(len(p) for p in pieces) <= synth.max_chunk_tokens() < TABLE
    assert len(utt.mel) == sum(len(p.mel) for p in parts) + pause * (len(parts) - 1)
    first = len(parts[0].mel)
    assert (utt.mel[first : first + pause] == floor).all()
    assert len(utt.durations) == sum(len(p) for p in pieces) and utt.text == LONG_LINE
    if decoder == "autoregressive":
        assert utt.stop_fired == all(p.stop_fired for p in parts)
    else:
        assert utt.stop_fired is None


def test_synth_writes_one_file_per_line_however_long_the_line(small_tables, tmp_path) -> None:
    lines = tmp_path / "lines.txt"
    lines.write_text(f"{LONG_LINE}\n{TEXTS[0]}\n", encoding="utf-8")
    out = tmp_path / "out"
    argv = ["--file", str(lines), "--checkpoint", _checkpoint(small_tables, "parallel"), "-o", str(out)]
    assert synth_main([*argv, "--griffin-lim-iters", "2"]) == 0
    assert sorted(p.name for p in out.glob("*.wav")) == ["0001.wav", "0002.wav"]
    long_wave, sr = sf.read(out / "0001.wav")
    short_wave, _ = sf.read(out / "0002.wav")
    assert len(long_wave) > 5 * len(short_wave)
    # The pauses: runs of exact silence at least SENTENCE_PAUSE_SECONDS long, one per join.
    silent = np.concatenate([[0], (long_wave == 0).astype(int), [0]])
    edges = np.flatnonzero(np.diff(silent))
    runs = edges[1::2] - edges[::2]
    assert (runs >= round(SENTENCE_PAUSE_SECONDS * sr) - 256).sum() >= len(TEXTS) - 1


@pytest.mark.parametrize("sentences", [1, 2, 12, 60])
def test_no_input_length_crashes_synthesis(small_tables, sentences: int) -> None:
    synth = Synthesizer.from_file(_checkpoint(small_tables, "autoregressive"))
    text = " ".join(TEXTS[i % len(TEXTS)] for i in range(sentences))
    no_punctuation = text.replace(".", "").replace("?", "").replace(",", "")
    for utt in synth.synthesize([text, no_punctuation], None, batch_size=16):
        assert len(utt.mel) > 0 and np.isfinite(utt.mel).all()


def test_a_bad_sentence_inside_a_long_line_is_reported_on_its_line(tiny_runs) -> None:
    synth = Synthesizer.from_file(_checkpoint(tiny_runs, "parallel"))
    with pytest.raises(ValueError, match=r"line 2: characters the frontend cannot read: '/'"):
        synth.synthesize([TEXTS[0], f"{TEXTS[1]} It is open 24/7. {TEXTS[2]}"], None)
