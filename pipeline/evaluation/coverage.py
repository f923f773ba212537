"""Phoneme and diphone coverage: which sounds, and which pairs of consecutive sounds, the training
transcripts hold, and which pairs a text asks for that training never had.

A diphone is the passage from one phoneme into the next. The sound of a phoneme depends on its
neighbours (coarticulation: the "k" of "key" and of "coo" are made differently), so a voice learns
each passage from the examples of it in its training; a passage it never heard is guessed from
others and is spoken worse, and one heard once is learned from that one recording. How many
diphones a corpus holds, and how often, is therefore a measure of what its recording script
taught, and the diphones of a text missing from training say what the voice will stumble on.

What counts as a phoneme here (`phoneme`): a symbol of the frontend (model/text.py), with its
stress marks removed; the word separator, punctuation and the pad symbol are not phonemes. With
the characters frontend the "phonemes" are letters, and the same figures are about letter pairs.

Pure counting over symbol sequences, plus the readers that give it the training split of a
features store and the lines of a text; no torch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model.config import WORD_SEPARATOR
from model.text import PAD, PUNCTUATION

# The stress marks model/text.py's split_ipa joins to the phone that follows ("ˈa"). Folded away
# for coverage: stress changes a vowel's length and pitch, which the model learns per phoneme
# from every stressed vowel, while the passage from one sound into the next is made the same
# way; keeping "ˈa-t", "ˌa-t" and "a-t" apart would split one passage's examples three ways and
# triple the pairs a script seems to need. Length marks stay: "iː" and "i" are different
# phonemes in many languages (English among them, as espeak-ng writes it).
STRESS_MARKS = "ˈˌ"

# Diphones seen once, as a share of the distinct diphones seen, above which the coverage check
# warns: a passage learned from one recording is learned from that recording's accident. In a
# corpus chosen for coverage most pairs come back many times and the once-seen ones are the
# phonotactic rarities; more than a fifth of them seen once means the script is short or
# repetitive.
MAX_ONCE_SHARE = 0.2

Diphone = tuple[str, str]


def phoneme(symbol: str) -> str | None:
    """The phoneme `symbol` stands for, stress marks removed; None for a symbol that is not one
    (the word separator, punctuation, the pad symbol, a stress mark left alone at the end)."""
    if symbol in (PAD, WORD_SEPARATOR) or all(ch in PUNCTUATION for ch in symbol):
        return None
    base = "".join(ch for ch in symbol if ch not in STRESS_MARKS)
    return base or None


def spoken_runs(symbols: Sequence[str]) -> list[list[str]]:
    """The stretches of phonemes said in one breath: `symbols` cut at punctuation (and the pad),
    with word separators left out but not cut at.

    Why across words: in connected speech the last sound of a word runs into the first of the
    next without a pause ("at all" is said "a-t-a-ll"), so a voice must make those passages as
    well as the ones inside words, and they are where a varied script differs from a repetitive
    one. Why not across punctuation: a comma or a full stop is usually a pause, and the sounds
    on its two sides are not joined.
    """
    runs: list[list[str]] = [[]]
    for s in symbols:
        p = phoneme(s)
        if p is not None:
            runs[-1].append(p)
        elif s != WORD_SEPARATOR and runs[-1]:
            runs.append([])
    return [r for r in runs if r]


def diphones(symbols: Sequence[str]) -> list[Diphone]:
    """The diphones of one symbol sequence, in order: consecutive phonemes within each spoken run."""
    return [(a, b) for run in spoken_runs(symbols) for a, b in zip(run, run[1:])]


def show(diphone: Diphone) -> str:
    """A diphone as people write one: "t-ə" (the hyphen keeps "aː-t" readable where a symbol is
    several characters)."""
    return f"{diphone[0]}-{diphone[1]}"


@dataclass
class Coverage:
    """The phonemes and diphones of a set of symbol sequences, with how often each occurs and the
    index of the first sequence that holds each diphone (to name an example)."""

    phonemes: Counter[str] = field(default_factory=Counter)
    diphones: Counter[Diphone] = field(default_factory=Counter)
    first_seen: dict[Diphone, int] = field(default_factory=dict)
    sequences: int = 0

    @property
    def candidates(self) -> int:
        """Ordered pairs of the phonemes seen. There is no inventory of a language's phonemes or
        of the pairs it allows, so this stands in for "the language's pairs": many of them never
        occur in the language, and a share of 100% is not the goal."""
        return len(self.phonemes) ** 2

    @property
    def pair_share(self) -> float:
        """Distinct diphones seen as a share of the candidate pairs (0 when nothing was seen)."""
        return len(self.diphones) / self.candidates if self.candidates else 0.0

    def bands(self) -> dict[str, int]:
        """How many distinct diphones occur once, 2-4 times and 5 times or more."""
        counts = np.fromiter(self.diphones.values(), dtype=np.int64, count=len(self.diphones))
        return {
            "once": int((counts == 1).sum()),
            "2-4": int(((counts >= 2) & (counts <= 4)).sum()),
            "5+": int((counts >= 5).sum()),
        }

    @property
    def once_share(self) -> float:
        """Diphones seen exactly once as a share of the distinct diphones seen."""
        return self.bands()["once"] / len(self.diphones) if self.diphones else 0.0

    def rarest(self, n: int) -> list[tuple[Diphone, int]]:
        """The `n` least frequent diphones with their counts; ties in symbol order, so that the
        report is the same from run to run."""
        return sorted(self.diphones.items(), key=lambda kv: (kv[1], kv[0]))[:n]

    def rarest_phonemes(self, n: int) -> list[tuple[str, int]]:
        """The `n` least frequent phonemes with their counts, ties in symbol order."""
        return sorted(self.phonemes.items(), key=lambda kv: (kv[1], kv[0]))[:n]


def count_coverage(sequences: Iterable[Sequence[str]]) -> Coverage:
    """Phoneme and diphone counts of symbol sequences (stress folded, separators and punctuation
    left out: `phoneme`, `spoken_runs`)."""
    cov = Coverage()
    for i, symbols in enumerate(sequences):
        cov.sequences += 1
        for run in spoken_runs(symbols):
            cov.phonemes.update(run)
        pairs = diphones(symbols)
        cov.diphones.update(pairs)
        for d in pairs:
            cov.first_seen.setdefault(d, i)
    return cov


@dataclass(frozen=True)
class Unseen:
    """A phoneme or diphone (as `show` writes it) of a text that training never had: how often the
    text holds it and the first line that does."""

    item: str
    count: int
    line: int


@dataclass
class TextCoverage:
    """A text read against training: its diphone occurrences and how many training had, what it
    holds that training never had, and the lines to record to cover those diphones."""

    lines: int
    occurrences: int
    seen_occurrences: int
    unseen_diphones: list[Unseen]
    unseen_phonemes: list[Unseen]
    # (line, diphones it adds): lines in the order that covers the unseen diphones soonest.
    pick: list[tuple[int, int]]

    @property
    def seen_share(self) -> float:
        """The share of the text's diphone occurrences that training had (1 for a text without any)."""
        return self.seen_occurrences / self.occurrences if self.occurrences else 1.0


def _most_frequent_first(counts: Counter[str], first_line: dict[str, int]) -> list[Unseen]:
    return [Unseen(item, n, first_line[item]) for item, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def greedy_pick(line_diphones: Sequence[tuple[int, set[Diphone]]]) -> list[tuple[int, int]]:
    """Lines in the order to record them to cover the union of their diphones with the fewest
    lines: each time the line that adds the most not yet covered (the earlier on a tie), until
    none adds any. The classic greedy choice of a recording script; not the smallest set, which
    is a set-cover problem, but within a small factor of it and what script builders use."""
    covered: set[Diphone] = set()
    left = [(line, pairs) for line, pairs in line_diphones if pairs]
    order = []
    while left:
        best = max(left, key=lambda lp: (len(lp[1] - covered), -lp[0]))
        gain = len(best[1] - covered)
        if gain == 0:
            break
        order.append((best[0], gain))
        covered |= best[1]
        left.remove(best)
    return order


def text_coverage(training: Coverage, lines: Sequence[tuple[int, Sequence[str]]]) -> TextCoverage:
    """A text's symbol sequences, each with its line number, against the training coverage."""
    occurrences = seen = 0
    unseen_d: Counter[str] = Counter()
    unseen_p: Counter[str] = Counter()
    first_line: dict[str, int] = {}
    new_per_line = []
    for number, symbols in lines:
        for run in spoken_runs(symbols):
            for p in run:
                if p not in training.phonemes:
                    unseen_p[p] += 1
                    first_line.setdefault(p, number)
        new = set()
        for d in diphones(symbols):
            occurrences += 1
            if d in training.diphones:
                seen += 1
            else:
                unseen_d[show(d)] += 1
                first_line.setdefault(show(d), number)
                new.add(d)
        new_per_line.append((number, new))
    return TextCoverage(
        lines=len(lines),
        occurrences=occurrences,
        seen_occurrences=seen,
        unseen_diphones=_most_frequent_first(unseen_d, first_line),
        unseen_phonemes=_most_frequent_first(unseen_p, first_line),
        pick=greedy_pick(new_per_line),
    )


@dataclass(frozen=True)
class Script:
    """A text file given to doctor: its name and its non-empty lines with their numbers (from 1)."""

    path: Path
    lines: list[tuple[int, str]]


def read_script(path: Path) -> Script:
    """The text file `path`, one sentence per line; empty lines are skipped but counted, so that
    a line number is the one an editor shows. A file without any text is a ValueError."""
    text = Path(path).read_text(encoding="utf-8")
    lines = [(i, line.strip()) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        raise ValueError(f"{path}: no text: give one sentence per line")
    return Script(Path(path), lines)


def script_symbols(script: Script, language: str, frontend: str) -> list[tuple[int, list[str]]]:
    """The script's lines as the model's frontend reads them, each with its line number: numbers
    and abbreviations spelled out for `language` as synthesis does (model/textnorm), then
    phonemes (espeak-ng) or characters.

    Not `model.text.text_to_ids`: that maps each symbol to the model's nearest and refuses one it
    does not know, while coverage wants the raw phonemes, unknown ones included, to report them.
    """
    from model.text import to_characters, to_phonemes
    from model.textnorm import spell_out

    numbers = [n for n, _ in script.lines]
    spoken = [spell_out(t, language) for _, t in script.lines]
    symbols = [to_characters(t) for t in spoken] if frontend == "characters" else to_phonemes(spoken, language)
    return list(zip(numbers, symbols))


def training_sequences(store_path: Path) -> dict[str, tuple[list[str], list[list[str]]]]:
    """The training split of a features store as symbol sequences, per language: language ->
    (utterance ids, their symbols). Per language because two languages' phonemes are not one
    inventory: a pair of English sounds says nothing of Persian."""
    from pipeline.features.split import TRAIN
    from pipeline.features.store import FeatureStore

    store = FeatureStore(store_path)
    symbols = np.asarray(store.attrs["symbols"], dtype=object)
    languages = store.attrs.get("languages", [])
    # One read of the whole token array, sliced by the offsets, rather than one read per utterance.
    tokens, offsets = store.array("tokens"), store.token_offsets
    language_of, split = store.array("language"), store.array("split")
    out: dict[str, tuple[list[str], list[list[str]]]] = {name: ([], []) for name in languages}
    for i in np.flatnonzero(split == TRAIN):
        ids, seqs = out[languages[int(language_of[i])]]
        ids.append(store.ids[i])
        seqs.append(symbols[tokens[offsets[i] : offsets[i + 1]]].tolist())
    return out
