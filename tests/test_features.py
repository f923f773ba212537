"""Feature definitions: the log-mel, its Griffin-Lim inverse, the id-hash split and the text frontend."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from helpers import speech_like
from model.mel import LogMel, MelSettings
from model.text import (
    PAD,
    FrontendError,
    build_symbol_table,
    encode,
    normalize_text,
    to_characters,
    to_phonemes,
    unsupported_chars,
)
from model.vocoder import GriffinLimVocoder
from pipeline.config import features_config
from pipeline.features.extraction import mel_settings
from pipeline.features.split import TRAIN, UNSEEN, VAL, split_corpus, split_draw, split_of

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def settings(params: dict) -> MelSettings:
    return mel_settings(features_config(params))


def log_mel(settings: MelSettings, y: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return LogMel(settings)(torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))).numpy()


def librosa_log_mel(s: MelSettings, y: np.ndarray) -> np.ndarray:
    """The HiFi-GAN recipe written with librosa: reflect pad, no centering, magnitude, Slaney mel, clamped log."""
    pad = (s.n_fft - s.hop_length) // 2
    mel = librosa.feature.melspectrogram(
        y=np.pad(y, (pad, pad), mode="reflect"),
        sr=s.sample_rate,
        n_fft=s.n_fft,
        hop_length=s.hop_length,
        win_length=s.win_length,
        window="hann",
        center=False,
        power=1.0,
        n_mels=s.n_mels,
        fmin=s.fmin,
        fmax=s.fmax,
        htk=False,
        norm="slaney",
    )
    return np.log(np.maximum(mel, s.log_clamp)).T


# --- log-mel ---------------------------------------------------------------------------------


def test_log_mel_matches_the_librosa_reference(settings):
    y = speech_like(1.0, settings.sample_rate, seed=3)[: settings.sample_rate + 100]
    ours, ref = log_mel(settings, y), librosa_log_mel(settings, y)
    assert ours.shape == ref.shape == (len(y) // settings.hop_length, settings.n_mels)
    assert np.abs(ours - ref).max() < 1e-3


@pytest.mark.parametrize("n", [256 * 40, 256 * 40 + 1, 256 * 40 + 255, 5000])
def test_log_mel_has_samples_floor_divided_by_hop_frames(settings, n):
    y = speech_like(1.0, settings.sample_rate, seed=1)[:n]
    assert log_mel(settings, y).shape == (n // settings.hop_length, settings.n_mels)


def test_log_mel_of_digital_silence_is_the_log_clamp(settings):
    mel = log_mel(settings, np.zeros(4096, dtype=np.float32))
    np.testing.assert_allclose(mel, np.log(settings.log_clamp), rtol=0, atol=1e-6)


def test_log_mel_works_on_a_batch(settings):
    a = speech_like(0.5, settings.sample_rate, seed=1)
    b = speech_like(0.5, settings.sample_rate, seed=2)
    batch = log_mel(settings, np.stack([a, b]))
    assert batch.shape == (2, len(a) // settings.hop_length, settings.n_mels)
    np.testing.assert_allclose(batch[1], log_mel(settings, b), atol=1e-5)


# --- Griffin-Lim -----------------------------------------------------------------------------

# Measured: mean |log-mel difference| of a 32-iteration Griffin-Lim round trip of speech_like
# audio is about 0.28 (seeds 0-3); a different signal differs by about 5.7.
GRIFFIN_LIM_TOLERANCE = 0.5


def test_griffin_lim_round_trip_reproduces_the_mel(settings):
    y = speech_like(1.0, settings.sample_rate, seed=0)
    mel = log_mel(settings, y)
    torch.manual_seed(0)
    wave = GriffinLimVocoder(settings, n_iter=32)(torch.from_numpy(mel))
    assert wave.ndim == 1
    assert abs(len(wave) - len(y)) <= 2 * settings.hop_length
    again = log_mel(settings, wave.numpy())
    n = min(len(mel), len(again))
    voiced = mel[:n] > np.log(settings.log_clamp) + 1e-3  # frames/bins above the clamp floor
    assert voiced.mean() > 0.5
    round_trip = np.abs(again[:n] - mel[:n])[voiced].mean()

    other = log_mel(settings, 0.3 * np.sin(2 * np.pi * 900 * np.arange(len(y)) / settings.sample_rate))
    different = np.abs(other[:n] - mel[:n])[voiced].mean()

    assert round_trip < GRIFFIN_LIM_TOLERANCE
    assert round_trip < 0.1 * different


def test_griffin_lim_vocoder_reports_its_sample_rate(settings):
    assert GriffinLimVocoder(settings, n_iter=1).sample_rate == settings.sample_rate


@pytest.mark.parametrize("frames", [1, 2, 3])
def test_griffin_lim_inverts_a_mel_too_short_for_its_window_by_padding_it_with_silence(settings, frames):
    # An undertrained autoregressive model whose stop fires at the first step emits 2 frames;
    # the STFT inside Griffin-Lim cannot pad a wave that short, and evaluate used to crash on it.
    vocoder = GriffinLimVocoder(settings, n_iter=2)
    wave = vocoder(torch.zeros(frames, settings.n_mels))
    assert torch.isfinite(wave).all()
    # (frames - 1) hops from torchaudio's centred inverse, then the half hop that lines it up
    assert len(wave) == (vocoder.min_frames() - 1) * settings.hop_length + settings.hop_length // 2


# --- split -----------------------------------------------------------------------------------

IDS = [f"LJ{i // 100:03d}-{i % 100:04d}" for i in range(2000)]


def test_split_of_is_deterministic():
    first = [split_of(i, 0.05, "hamgara") for i in IDS]
    second = [split_of(i, 0.05, "hamgara") for i in reversed(IDS)]
    assert first == second[::-1]
    assert set(first) == {TRAIN, VAL}


@pytest.mark.parametrize("share", [0.05, 0.25])
def test_split_of_gives_roughly_val_share(share):
    val = sum(split_of(i, share, "hamgara") == VAL for i in IDS) / len(IDS)
    assert abs(val - share) <= 0.02


def test_split_of_with_zero_share_puts_everything_in_train():
    assert {split_of(i, 0.0, "hamgara") for i in IDS} == {TRAIN}


def test_adding_ids_does_not_move_existing_ones():
    old = {i: split_of(i, 0.05, "hamgara") for i in IDS[:1000]}
    grown = {i: split_of(i, 0.05, "hamgara") for i in IDS}  # the corpus doubled
    assert {i: grown[i] for i in old} == old


def test_larger_val_share_only_moves_ids_from_train_to_val():
    small = [split_of(i, 0.05, "hamgara") for i in IDS]
    large = [split_of(i, 0.10, "hamgara") for i in IDS]
    assert all(b == VAL for a, b in zip(small, large) if a == VAL)
    assert sum(large) > sum(small)


def test_a_different_salt_reshuffles_some_ids():
    a = [split_of(i, 0.05, "hamgara") for i in IDS]
    b = [split_of(i, 0.05, "other-salt") for i in IDS]
    assert a != b
    assert abs(sum(a) - sum(b)) / len(IDS) <= 0.03  # still about the same share


# A big speaker and two small ones, VCTK-style ids: at a 5% share the hash alone leaves a
# 6-utterance speaker without validation most of the time.
SPEAKERS = ["lj"] * 400 + ["p301"] * 6 + ["p302"] * 6
MIXED_IDS = IDS[:400] + [f"p301_{k:03d}_mic1" for k in range(6)] + [f"p302_{k:03d}_mic1" for k in range(6)]


def test_every_speaker_has_a_validation_utterance():
    splits = split_corpus(MIXED_IDS, SPEAKERS, 0.05, "hamgara")
    for speaker in set(SPEAKERS):
        members = [k for k, s in enumerate(SPEAKERS) if s == speaker]
        assert (splits[members] == VAL).any(), speaker


def test_a_small_speaker_gives_its_lowest_draw_utterance_and_only_that():
    plain = np.array([split_of(i, 0.05, "hamgara") for i in MIXED_IDS])
    splits = split_corpus(MIXED_IDS, SPEAKERS, 0.05, "hamgara")
    moved = np.flatnonzero(splits != plain)
    assert len(moved) >= 1  # the planted case: at least one small speaker was all train
    for k in moved:
        assert plain[k] == TRAIN and splits[k] == VAL
        members = [j for j, s in enumerate(SPEAKERS) if s == SPEAKERS[k]]
        assert split_draw(MIXED_IDS[k], "hamgara") == min(split_draw(MIXED_IDS[j], "hamgara") for j in members)


def test_split_corpus_matches_split_of_when_every_speaker_already_has_validation():
    assert split_corpus(IDS, ["lj"] * len(IDS), 0.05, "hamgara").tolist() == [split_of(i, 0.05, "hamgara") for i in IDS]


def test_a_speaker_with_one_utterance_keeps_it_for_training():
    splits = split_corpus(IDS[:400] + ["p999_001_mic1"], ["lj"] * 400 + ["p999"], 0.05, "hamgara")
    assert splits[-1] == split_of("p999_001_mic1", 0.05, "hamgara")


def test_listed_unseen_utterances_are_unseen_and_the_rest_keep_their_split():
    held = [k % 50 == 0 for k in range(len(IDS))]
    plain = split_corpus(IDS, ["lj"] * len(IDS), 0.05, "hamgara")
    splits = split_corpus(IDS, ["lj"] * len(IDS), 0.05, "hamgara", held)
    assert (splits[np.array(held)] == UNSEEN).all()
    assert splits[~np.array(held)].tolist() == plain[~np.array(held)].tolist()


def test_a_speaker_whose_validation_is_all_unseen_still_gets_a_validation_utterance():
    ids, speakers = [f"a_{i}" for i in range(1, 7)], ["a"] * 6
    held = (split_corpus(ids, speakers, 0.3, "s") == VAL).tolist()
    assert any(held)  # the planted case: the hash's validation utterance is held out
    splits = split_corpus(ids, speakers, 0.3, "s", held)
    assert (splits[np.array(held)] == UNSEEN).all() and (splits == VAL).sum() == 1


def test_adding_other_speakers_does_not_move_a_speakers_utterances():
    alone = split_corpus(MIXED_IDS[:406], SPEAKERS[:406], 0.05, "hamgara")
    grown = split_corpus(MIXED_IDS, SPEAKERS, 0.05, "hamgara")
    assert grown[:406].tolist() == alone.tolist()


def test_split_corpus_with_zero_share_puts_everything_in_train():
    assert set(split_corpus(MIXED_IDS, SPEAKERS, 0.0, "hamgara").tolist()) == {TRAIN}


# --- text frontend ---------------------------------------------------------------------------


def test_symbol_table_is_deterministic_with_pad_at_zero():
    seqs = [list("hello world"), list("goodbye!"), ["ʃ", "ˈ", "a"]]
    table = build_symbol_table(seqs)
    assert table[0] == PAD
    assert table == build_symbol_table(list(reversed(seqs)))
    assert table[1:] == sorted(set("hello world") | set("goodbye!") | {"ʃ", "ˈ", "a"})


def test_symbol_table_does_not_list_pad_twice():
    table = build_symbol_table([[PAD, "a", "b", PAD]])
    assert table == [PAD, "a", "b"]


def test_encode_maps_symbols_to_their_table_index():
    table = build_symbol_table([list("abc ")])
    ids = encode(list("cab a"), table)
    assert [table[i] for i in ids] == list("cab a")
    assert 0 not in ids


def test_encode_raises_frontend_error_naming_the_unknown_symbol():
    table = build_symbol_table([list("abc")])
    with pytest.raises(FrontendError, match="'ʒ'"):
        encode(["a", "ʒ"], table)


def test_to_phonemes_keeps_word_boundaries_and_punctuation_for_english():
    text = "Hello, world. Is it raining?"
    [symbols] = to_phonemes([text], "en-us")
    phonemes = "".join(symbols)
    assert len(phonemes.split(" ")) == len(text.split(" "))
    assert symbols.count(" ") == text.count(" ")  # a word boundary is its own symbol
    for mark in ",.?":
        assert mark in symbols
    assert "ˈ" in phonemes  # stress is kept
    assert not any(ch.isupper() for ch in phonemes)  # IPA, not the spelling
    assert phonemes.split(" ")[0].endswith(",")


def test_to_phonemes_phonemizes_every_text_in_order():
    out = to_phonemes(["Yes.", "Good morning, sir."], "en-us")
    assert len(out) == 2
    assert "".join(out[0]).count(" ") == 0
    assert "".join(out[1]).count(" ") == 2


def test_to_phonemes_of_an_unknown_language_raises_frontend_error():
    with pytest.raises(FrontendError, match="xx-nonexistent"):
        to_phonemes(["hello"], "xx-nonexistent")


def test_unsupported_chars_flags_digits_and_symbols_for_english_in_order():
    assert unsupported_chars("I have 3 cats & 2 dogs for $5.", "en-us") == "3&2$5"


def test_unsupported_chars_accepts_plain_english_with_punctuation():
    assert unsupported_chars('Well, "hello" - isn\'t it (quite) late? Yes!', "en-us") == ""


def test_unsupported_chars_flags_accented_letters_for_english():
    assert unsupported_chars("Café", "en-us") == "é"


def test_unsupported_chars_accepts_persian_letters_and_punctuation():
    assert unsupported_chars("سلام دنیا، حال\u200cتان چطور است؟", "fa") == ""


def test_unsupported_chars_flags_persian_digits_and_latin_letters_for_persian():
    assert unsupported_chars("سال ۱۴۰۲ ok", "fa") == "۱۴۰۲ok"


def test_normalize_text_folds_typographic_quotes_dashes_and_whitespace():
    assert normalize_text("  \u201cHi\u201d \u2014 it\u2019s   me\u00a0 ") == '"Hi" - it\'s me'


def test_to_characters_lowercases_one_symbol_per_character():
    assert to_characters("Hi, Bo") == ["h", "i", ",", " ", "b", "o"]


def test_the_griffin_lim_wave_lines_up_with_the_mels_frames(settings):
    # torchaudio centres frame t on t * hop, the mel on t * hop + hop / 2: undelayed, the wave
    # leads the recording by half a hop, which copy-synthesis scores that do not realign (ESTOI)
    # count against Griffin-Lim. The mel of the wave is closest to the input at the delay it has.
    y = speech_like(1.0, settings.sample_rate, seed=0)
    mel = log_mel(settings, y)
    wave = GriffinLimVocoder(settings, n_iter=32)(torch.from_numpy(mel)).numpy()

    def error(w: np.ndarray) -> float:
        again = log_mel(settings, w)
        n = min(len(mel), len(again))
        voiced = mel[:n] > np.log(settings.log_clamp) + 1e-3
        return float(np.abs(again[:n] - mel[:n])[voiced].mean())

    half = settings.hop_length // 2
    assert error(wave) < error(wave[half:])  # the wave as torchaudio made it
    assert error(wave) < error(np.concatenate([np.zeros(half, np.float32), wave]))  # a hop late
