"""Text as written -> text as spoken (model.textnorm): one table per language and feature.

Each table is (written, spoken). Every row's spoken form must also be something the frontend
reads (no character `unsupported_chars` refuses) and must come back unchanged when spelled out
again: synthesis spells a line out before splitting it into sentences and again per sentence.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers import REPO
from model.text import unsupported_chars
from model.textnorm import spell_out

# --- English -------------------------------------------------------------------------------

CARDINALS = [
    ("3 books", "three books"),
    ("0", "zero"),
    ("1,234", "one thousand, two hundred and thirty four"),
    ("1,000,000 stars", "one million stars"),
    ("1,999 books", "one thousand, nine hundred and ninety nine books"),
    ("007", "zero zero seven"),
    (
        "12345678901234567890",
        "one two three four five six seven eight nine zero one two three four five six seven eight nine zero",
    ),
    ("MP3 and 3D", "MP three and three D"),
]
ORDINALS = [
    ("1st", "first"),
    ("the 22nd", "the twenty second"),
    ("3rd", "third"),
    ("4th", "fourth"),
    ("101st", "one hundred and first"),
    ("1,000th", "one thousandth"),
]
YEARS = [
    ("In 1999", "In nineteen ninety nine"),
    ("2001", "two thousand and one"),
    ("2010", "twenty ten"),
    ("In 2024.", "In twenty twenty four."),
    ("1905", "nineteen oh five"),
    ("1100", "eleven hundred"),
    ("the 1990s", "the nineteen nineties"),
    ("the '80s", "the eighties"),
    ("1914-1918", "nineteen fourteen to nineteen eighteen"),
]
DECIMALS = [
    ("3.14", "three point one four"),
    ("3.50", "three point five zero"),
    ("0.5", "zero point five"),
    (".5", "point five"),
    ("1,234.5", "one thousand, two hundred and thirty four point five"),
    ("version 2.0.1", "version two point zero point one"),
]
CURRENCY = [
    ("$5.50", "five dollars, fifty cents"),
    ("$1", "one dollar"),
    ("$5.00", "five dollars"),
    ("$0.25", "twenty five cents"),
    ("$1.01", "one dollar, one cent"),
    ("$1,200", "one thousand, two hundred dollars"),
    ("$2.5 million", "two point five million dollars"),
    ("£3", "three pounds"),
    ("£1.50", "one pound, fifty pence"),
    ("€20", "twenty euros"),
    ("-$5", "minus five dollars"),
]
PERCENTAGES = [
    ("45%", "forty five percent"),
    ("45 %", "forty five percent"),
    ("3.5%", "three point five percent"),
    ("-2%", "minus two percent"),
    ("10-20%", "ten to twenty percent"),
    ("% of them", "percent of them"),
]
TIMES = [
    ("10:30", "ten thirty"),
    ("9:05", "nine oh five"),
    ("10:00", "ten o'clock"),
    ("13:45", "thirteen forty five"),
    ("18:00", "eighteen hundred"),
    ("7 am", "seven AM"),
    ("11AM", "eleven AM"),
    ("7:00 pm", "seven PM"),
    ("We met at 7 p.m. Then we left.", "We met at seven PM. Then we left."),
]
NEGATIVES = [
    ("-5", "minus five"),
    ("It fell to -3.5 degrees.", "It fell to minus three point five degrees."),
    ("(-3)", "(minus three)"),
    ("COVID-19", "COVID-nineteen"),
    ("pages 10-20", "pages ten to twenty"),
]
ABBREVIATIONS = [
    ("Dr. Smith", "Doctor Smith"),
    ("I saw the Dr.", "I saw the Doctor."),
    ("Mr. and Mrs. Smith", "Mister and Missus Smith"),
    ("Ms. Jones", "Miz Jones"),
    ("Mr Smith", "Mister Smith"),
    ("Prof. Lee", "Professor Lee"),
    ("St. Louis", "Saint Louis"),
    ("We flew to St. Louis.", "We flew to Saint Louis."),
    ("He lives on Baker St. He is happy.", "He lives on Baker Street. He is happy."),
    ("John Smith Jr. went home.", "John Smith Junior went home."),
    ("cats vs. dogs", "cats versus dogs"),
    ("apples, e.g., pears", "apples, for example, pears"),
    ("one, i.e. two", "one, that is two"),
    ("cats, dogs, etc.", "cats, dogs, et cetera."),
    ("cats, dogs, etc. and more", "cats, dogs, et cetera and more"),
    ("No. 5", "Number five"),
]
SYMBOLS = [
    ("rock & roll", "rock and roll"),
    ("AT&T", "AT and T"),
    ("2 + 2 = 4", "two plus two equals four"),
    ("me @ home", "me at home"),
    ("#1", "number one"),
]
SENTENCES = [
    (
        "In 1999, Dr. Smith paid $5.50 for 3 books.",
        "In nineteen ninety nine, Doctor Smith paid five dollars, fifty cents for three books.",
    ),
    ("The train leaves at 9:05 from platform 3.", "The train leaves at nine oh five from platform three."),
]
ENGLISH = CARDINALS + ORDINALS + YEARS + DECIMALS + CURRENCY + PERCENTAGES + TIMES + NEGATIVES
ENGLISH += ABBREVIATIONS + SYMBOLS + SENTENCES


@pytest.mark.parametrize(("written", "spoken"), CARDINALS)
def test_a_count_is_read_as_a_cardinal(written: str, spoken: str) -> None:
    assert spell_out(written, "en-us") == spoken


@pytest.mark.parametrize(("written", "spoken"), ORDINALS)
def test_an_ordinal_is_read_as_an_ordinal(written: str, spoken: str) -> None:
    assert spell_out(written, "en-us") == spoken


@pytest.mark.parametrize(("written", "spoken"), YEARS)
def test_a_year_is_read_as_a_year(written: str, spoken: str) -> None:
    assert spell_out(written, "en-us") == spoken


@pytest.mark.parametrize(("written", "spoken"), DECIMALS)
def test_a_decimal_reads_its_digits_after_the_point(written: str, spoken: str) -> None:
    assert spell_out(written, "en-us") == spoken


@pytest.mark.parametrize(("written", "spoken"), CURRENCY)
def test_an_amount_is_read_with_its_currency(written: str, spoken: str) -> None:
    assert spell_out(written, "en-us") == spoken


@pytest.mark.parametrize(("written", "spoken"), PERCENTAGES)
def test_a_percentage_is_read_as_percent(written: str, spoken: str) -> None:
    assert spell_out(written, "en-us") == spoken


@pytest.mark.parametrize(("written", "spoken"), TIMES)
def test_a_time_is_read_as_a_clock_time(written: str, spoken: str) -> None:
    assert spell_out(written, "en-us") == spoken


@pytest.mark.parametrize(("written", "spoken"), NEGATIVES)
def test_a_minus_sign_is_read_but_a_hyphen_is_not(written: str, spoken: str) -> None:
    assert spell_out(written, "en-us") == spoken


@pytest.mark.parametrize(("written", "spoken"), ABBREVIATIONS)
def test_an_abbreviation_is_read_in_full_keeping_a_sentence_ending_stop(written: str, spoken: str) -> None:
    assert spell_out(written, "en-us") == spoken


@pytest.mark.parametrize(("written", "spoken"), SYMBOLS)
def test_a_symbol_is_read_as_its_word(written: str, spoken: str) -> None:
    assert spell_out(written, "en-us") == spoken


@pytest.mark.parametrize(("written", "spoken"), SENTENCES)
def test_a_sentence_is_read_with_all_its_numbers_and_abbreviations(written: str, spoken: str) -> None:
    assert spell_out(written, "en-us") == spoken


@pytest.mark.parametrize("written", [w for w, _ in ENGLISH])
def test_english_output_holds_only_characters_the_frontend_reads(written: str) -> None:
    assert unsupported_chars(spell_out(written, "en-us"), "en-us") == ""


@pytest.mark.parametrize("language", ["en", "en-gb", "EN-US"])
def test_every_english_voice_is_read_as_english(language: str) -> None:
    assert spell_out("In 1999, Dr. Smith paid $5.50.", language) == spell_out("In 1999, Dr. Smith paid $5.50.", "en-us")


def test_digits_of_other_scripts_are_read_as_english_numbers_in_english_text() -> None:
    assert spell_out("۳ books", "en-us") == "three books"


# --- Persian -------------------------------------------------------------------------------

ARABIC_LETTERS = [
    ("علي", "علی"),  # Arabic yeh U+064A -> Persian yeh U+06CC
    ("كتاب", "کتاب"),  # Arabic kaf U+0643 -> keheh U+06A9
    ("موسى", "موسی"),  # alef maksura U+0649 -> Persian yeh
    ("مي\u200cخواهم", "می\u200cخواهم"),  # the zero-width non-joiner stays where it was written
]
PERSIAN_NUMBERS = [
    ("۳", "سه"),  # Persian digits
    ("٣", "سه"),  # Arabic-Indic digits
    ("12", "دوازده"),  # ASCII digits
    ("۱۴۰۲", "هزار و چهارصد و دو"),
    ("۱٬۲۳۴", "هزار و دویست و سی و چهار"),
    ("1,234", "هزار و دویست و سی و چهار"),
    ("۱۰۰۰۰۰۰", "یک میلیون"),
    ("-۵", "منفی پنج"),
    ("۰۹۱۲۱۲۳۴۵۶۷", "صفر نه یک دو یک دو سه چهار پنج شش هفت"),  # a phone number: digit by digit
    ("۳تا کتاب", "سه تا کتاب"),
]
PERSIAN_DECIMALS = [
    ("۳٫۱۴", "سه و چهارده صدم"),
    ("3.14", "سه و چهارده صدم"),
    ("۲٫۵", "دو و نیم"),
    ("۰٫۵", "نیم"),
    ("۰٫۰۵", "پنج صدم"),  # five hundredths; num2words alone says "half"
]
PERSIAN_PERCENTAGES = [
    ("۴۵٪", "چهل و پنج درصد"),
    ("۴۵ %", "چهل و پنج درصد"),
    ("٪ آنها", "درصد آنها"),
]
PERSIAN_SENTENCES = [
    (
        "در سال ۱۳۹۹، ۳ کتاب به قيمت ۵۰ هزار تومان خريدم.",
        "در سال هزار و سیصد و نود و نه، سه کتاب به قیمت پنجاه هزار تومان خریدم.",
    ),
]
PERSIAN = ARABIC_LETTERS + PERSIAN_NUMBERS + PERSIAN_DECIMALS + PERSIAN_PERCENTAGES + PERSIAN_SENTENCES


@pytest.mark.parametrize(("written", "spoken"), ARABIC_LETTERS)
def test_arabic_letter_forms_become_persian_ones(written: str, spoken: str) -> None:
    assert spell_out(written, "fa") == spoken


@pytest.mark.parametrize(("written", "spoken"), PERSIAN_NUMBERS)
def test_a_persian_number_in_any_digit_set_is_read_in_persian(written: str, spoken: str) -> None:
    assert spell_out(written, "fa") == spoken


@pytest.mark.parametrize(("written", "spoken"), PERSIAN_DECIMALS)
def test_a_persian_decimal_is_read_as_a_fraction(written: str, spoken: str) -> None:
    assert spell_out(written, "fa") == spoken


@pytest.mark.parametrize(("written", "spoken"), PERSIAN_PERCENTAGES)
def test_a_persian_percentage_is_read_as_dar_sad(written: str, spoken: str) -> None:
    assert spell_out(written, "fa") == spoken


@pytest.mark.parametrize(("written", "spoken"), PERSIAN_SENTENCES)
def test_a_persian_sentence_is_read_with_its_numbers_and_letters_mended(written: str, spoken: str) -> None:
    assert spell_out(written, "fa") == spoken


@pytest.mark.parametrize("written", [w for w, _ in PERSIAN])
def test_persian_output_holds_only_characters_the_frontend_reads(written: str) -> None:
    assert unsupported_chars(spell_out(written, "fa"), "fa") == ""


# --- every language ------------------------------------------------------------------------


@pytest.mark.parametrize(("language", "spoken"), [("en-us", s) for _, s in ENGLISH] + [("fa", s) for _, s in PERSIAN])
def test_spelled_out_text_is_left_as_it_is(language: str, spoken: str) -> None:
    assert spell_out(spoken, language) == spoken


@pytest.mark.parametrize("language", ["de", "fa-latn"])
def test_a_language_without_a_normalizer_is_only_tidied_and_keeps_its_digits(language: str) -> None:
    # Its digits are left for the frontend's unsupported-characters error to name, rather than
    # read as words of a language the text is not in.
    assert spell_out("  Im  Jahr\u00a01999 “so”  ", language) == 'Im Jahr 1999 "so"'


def test_importing_the_normalizer_loads_no_torch() -> None:
    # The exported voice's runtime imports it where torch is not installed.
    probe = "import sys, model.textnorm; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
