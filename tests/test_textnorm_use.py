"""Synthesis speaks numbers: typed text is spelled out (model.textnorm) before the frontend reads it."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from model.text import FrontendError, build_symbol_table, to_phonemes
from pipeline.evaluation.synthesizer import Synthesizer
from pipeline.synth import main as synth_main

ISSUE = "In 1999, Dr. Smith paid $5.50 for 3 books."
SPOKEN = "In nineteen ninety nine, Doctor Smith paid five dollars, fifty cents for three books."
# A sentence of the tiny store (tests/helpers.py TEXTS) with its number written in digits: every
# phone of its spoken form is in the tiny model's symbol table.
SEVEN_BIRDS = "7 birds sat quietly on the garden wall."


@pytest.fixture
def synth(tiny_runs) -> Synthesizer:
    return Synthesizer.from_file(tiny_runs["autoregressive"] / "models" / "best.pt")


def test_a_number_in_digits_becomes_the_tokens_of_its_words(synth: Synthesizer) -> None:
    lang = synth.language(None)
    assert synth.tokens([SEVEN_BIRDS], lang) == synth.tokens(["Seven birds sat quietly on the garden wall."], lang)


def test_the_sentence_of_issue_32_is_read_as_words(synth: Synthesizer) -> None:
    lang = synth.language(None)
    # The tiny store's twelve sentences lack some phones of these words (the θ of "three"): the
    # table gets them, as that of a model trained on a corpus that has them would.
    synth.symbols = build_symbol_table([synth.symbols, *to_phonemes([SPOKEN], lang)])
    assert synth.tokens([ISSUE], lang) == synth.tokens([SPOKEN], lang)


def test_a_title_before_a_name_does_not_end_a_sentence_of_a_long_line(synth: Synthesizer) -> None:
    # Spelled out before the line is split: "Dr. Smith" would otherwise end a sentence at "Dr.".
    lang = synth.language(None)
    synth.symbols = build_symbol_table([synth.symbols, *to_phonemes([SPOKEN], lang)])
    owners, pieces = synth.chunk_tokens([ISSUE], lang, bound=1000)
    assert owners == [0] and pieces == synth.tokens([SPOKEN], lang)


def test_a_character_spelling_out_cannot_mend_is_still_refused_by_name(synth: Synthesizer) -> None:
    with pytest.raises(FrontendError, match=r"line 1: characters the frontend cannot read: '/'"):
        synth.tokens(["The shop is open 24/7."], synth.language(None))


def test_synth_writes_a_wav_for_a_line_with_digits(tiny_runs, tmp_path) -> None:
    out = tmp_path / "birds.wav"
    checkpoint = str(tiny_runs["autoregressive"] / "models" / "best.pt")
    assert synth_main([SEVEN_BIRDS, "--checkpoint", checkpoint, "-o", str(out), "--griffin-lim-iters", "4"]) == 0
    wave, _ = sf.read(out)
    assert len(wave) > 0 and np.isfinite(wave).all()


PERSIAN = "در سال ۱۳۹۹ قيمت ۲۵٫۵ درصد افزایش یافت."  # Persian digits, an Arabic yeh, a Persian decimal point


def test_a_persian_sentence_with_persian_digits_comes_out_of_the_frontend_as_phonemes() -> None:
    from model.text import text_to_ids, unsupported_chars
    from model.textnorm import spell_out

    assert unsupported_chars(PERSIAN, "fa")  # as typed, the frontend cannot read it
    spoken = spell_out(PERSIAN, "fa")
    assert unsupported_chars(spoken, "fa") == ""
    (phonemes,) = to_phonemes([spoken], "fa")
    table = build_symbol_table([phonemes])
    (ids,) = text_to_ids([PERSIAN], "fa", "phonemes", table)
    assert [table[i] for i in ids] == phonemes
    # The number words are said: far more phonemes than the digits' sentence has words.
    assert len(phonemes) > 3 * len(PERSIAN.split())
