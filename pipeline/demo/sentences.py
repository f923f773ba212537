"""A deterministic English sentence generator for the demo corpus.

The demo corpus needs transcripts that a speech synthesizer reads cleanly and that a
phonemizer and an aligner can handle without surprises, so the grammar here is small
and the vocabulary is plain: common words found in any pronunciation lexicon, no
homographs whose reading depends on meaning (read, lead, wind, close, ...), no digits,
no abbreviations and no apostrophes (festival splits a possessive into a separate,
zero-length word, which would make its word timings disagree with the text).

Everything random goes through one `random.Random(seed)`, so a seed fully determines
the list of sentences.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

# Mean words per sentence the length distribution aims for. Tuned so that the demo
# defaults (560 utterances, 5 to 20 words) give about 35 minutes with festival's slt voice.
TARGET_MEAN_WORDS = 10.5

# Word bounds the grammar reaches quickly enough; requests outside them are refused.
MIN_SUPPORTED_WORDS = 3
MAX_SUPPORTED_WORDS = 30

# Share of sentence lengths drawn uniformly over the allowed range.
_UNIFORM_SHARE = 0.15

# Candidates tried per sentence before the requested length is declared unreachable.
_MAX_TRIES = 5000

NAMES = (
    "Anna",
    "Tom",
    "Maria",
    "David",
    "Sarah",
    "Peter",
    "Laura",
    "James",
    "Emma",
    "Daniel",
    "Grace",
    "Henry",
    "Alice",
    "Oliver",
    "Ruth",
    "Martin",
    "Helen",
    "Simon",
    "Clara",
    "Victor",
)

# (pronoun, form of "to be" that agrees with it)
PRONOUNS = (("she", "was"), ("he", "was"), ("we", "were"), ("they", "were"))

PEOPLE = (
    "farmer",
    "teacher",
    "doctor",
    "baker",
    "sailor",
    "driver",
    "painter",
    "child",
    "boy",
    "girl",
    "man",
    "woman",
    "friend",
    "student",
    "captain",
    "singer",
    "writer",
    "nurse",
    "pilot",
    "guard",
    "king",
    "queen",
    "neighbor",
    "fisherman",
    "gardener",
    "stranger",
    "visitor",
    "musician",
    "soldier",
    "cook",
)

ANIMALS = ("dog", "cat", "horse", "bird", "rabbit", "goat", "duck", "pony", "puppy", "kitten")

THINGS = (
    "letter",
    "basket",
    "bottle",
    "candle",
    "chair",
    "table",
    "window",
    "door",
    "box",
    "book",
    "map",
    "key",
    "coat",
    "hat",
    "shoe",
    "bag",
    "ring",
    "lamp",
    "clock",
    "cup",
    "plate",
    "bowl",
    "knife",
    "spoon",
    "blanket",
    "ladder",
    "bucket",
    "bicycle",
    "boat",
    "wagon",
    "kettle",
    "mirror",
    "pencil",
    "picture",
    "ribbon",
    "rope",
    "stone",
    "apple",
    "lemon",
    "cake",
    "bread",
    "cheese",
    "pie",
    "flower",
    "shell",
    "feather",
    "coin",
    "ticket",
    "parcel",
    "umbrella",
    "camera",
    "radio",
    "guitar",
    "drum",
    "whistle",
    "jacket",
    "scarf",
    "wallet",
    "jar",
    "brush",
    "hammer",
    "bell",
    "envelope",
    "pillow",
    "carpet",
    "sandwich",
    "newspaper",
    "garden hose",
)

# (base form, past tense): the base form is needed for questions with "did".
THING_VERBS = (
    ("find", "found"),
    ("carry", "carried"),
    ("paint", "painted"),
    ("open", "opened"),
    ("fix", "fixed"),
    ("clean", "cleaned"),
    ("drop", "dropped"),
    ("lift", "lifted"),
    ("wash", "washed"),
    ("sell", "sold"),
    ("buy", "bought"),
    ("bring", "brought"),
    ("hide", "hid"),
    ("lose", "lost"),
    ("keep", "kept"),
    ("pack", "packed"),
    ("fill", "filled"),
    ("hold", "held"),
    ("pull", "pulled"),
    ("push", "pushed"),
    ("mend", "mended"),
    ("borrow", "borrowed"),
    ("share", "shared"),
    ("catch", "caught"),
    ("throw", "threw"),
    ("kick", "kicked"),
    ("wrap", "wrapped"),
    ("check", "checked"),
    ("count", "counted"),
    ("touch", "touched"),
    ("move", "moved"),
    ("drag", "dragged"),
    ("fold", "folded"),
    ("scrub", "scrubbed"),
    ("measure", "measured"),
    ("draw", "drew"),
    ("deliver", "delivered"),
    ("forget", "forgot"),
    ("want", "wanted"),
    ("need", "needed"),
    ("grab", "grabbed"),
    ("send", "sent"),
    ("take", "took"),
    ("make", "made"),
    ("choose", "chose"),
    ("weigh", "weighed"),
    ("return", "returned"),
    ("collect", "collected"),
    ("shut", "shut"),
    ("steal", "stole"),
    ("break", "broke"),
    ("sketch", "sketched"),
)

PERSON_VERBS = (
    ("watch", "watched"),
    ("follow", "followed"),
    ("notice", "noticed"),
    ("remember", "remembered"),
    ("like", "liked"),
    ("help", "helped"),
    ("meet", "met"),
    ("greet", "greeted"),
    ("thank", "thanked"),
    ("invite", "invited"),
    ("warn", "warned"),
    ("call", "called"),
    ("visit", "visited"),
    ("find", "found"),
    ("miss", "missed"),
    ("trust", "trusted"),
    ("ignore", "ignored"),
    ("teach", "taught"),
)

INTRANSITIVE = (
    ("sleep", "slept"),
    ("laugh", "laughed"),
    ("wait", "waited"),
    ("smile", "smiled"),
    ("dance", "danced"),
    ("sing", "sang"),
    ("cry", "cried"),
    ("shout", "shouted"),
    ("whisper", "whispered"),
    ("arrive", "arrived"),
    ("rest", "rested"),
    ("work", "worked"),
    ("play", "played"),
    ("listen", "listened"),
    ("stay", "stayed"),
    ("walk", "walked"),
    ("run", "ran"),
    ("swim", "swam"),
    ("jump", "jumped"),
    ("wave", "waved"),
    ("nod", "nodded"),
    ("yawn", "yawned"),
    ("cough", "coughed"),
    ("pause", "paused"),
    ("hurry", "hurried"),
    ("wander", "wandered"),
    ("relax", "relaxed"),
    ("complain", "complained"),
    ("agree", "agreed"),
    ("sigh", "sighed"),
    ("whistle", "whistled"),
    ("fall", "fell"),
)

PERSON_ADJECTIVES = (
    "old",
    "young",
    "small",
    "tall",
    "happy",
    "sad",
    "tired",
    "busy",
    "clever",
    "gentle",
    "brave",
    "kind",
    "careful",
    "lazy",
    "quiet",
    "hungry",
    "sleepy",
    "lucky",
    "famous",
    "friendly",
    "patient",
    "nervous",
    "proud",
    "curious",
    "cheerful",
    "polite",
    "honest",
    "lonely",
    "little",
    "calm",
    "angry",
    "shy",
    "worried",
    "eager",
    "tidy",
)

THING_ADJECTIVES = (
    "old",
    "small",
    "big",
    "heavy",
    "warm",
    "cold",
    "wet",
    "dry",
    "clean",
    "dirty",
    "empty",
    "full",
    "soft",
    "round",
    "sharp",
    "smooth",
    "rough",
    "shiny",
    "wooden",
    "golden",
    "silver",
    "broken",
    "red",
    "blue",
    "green",
    "yellow",
    "brown",
    "white",
    "black",
    "purple",
    "tiny",
    "huge",
    "pretty",
    "simple",
    "rusty",
    "dusty",
    "new",
    "strange",
    "lovely",
    "spare",
    "plain",
)

PLACE_ADJECTIVES = (
    "old",
    "quiet",
    "busy",
    "dark",
    "empty",
    "small",
    "big",
    "little",
    "cold",
    "warm",
    "sunny",
    "crowded",
    "narrow",
    "lovely",
    "new",
    "famous",
    "peaceful",
    "noisy",
)

DEGREES = ("very", "quite", "rather", "so", "really", "terribly", "a little")

ADVERBS = (
    "slowly",
    "quickly",
    "quietly",
    "carefully",
    "gently",
    "happily",
    "sadly",
    "calmly",
    "suddenly",
    "proudly",
    "nervously",
    "patiently",
    "eagerly",
    "loudly",
    "softly",
    "politely",
    "bravely",
    "lazily",
    "neatly",
    "silently",
    "cheerfully",
    "gladly",
    "firmly",
    "warmly",
    "boldly",
    "secretly",
    "anxiously",
    "gracefully",
)

PLACE_NOUNS = (
    "kitchen",
    "garden",
    "station",
    "market",
    "library",
    "river",
    "lake",
    "forest",
    "village",
    "harbor",
    "bridge",
    "hill",
    "beach",
    "farm",
    "shop",
    "church",
    "school",
    "office",
    "park",
    "castle",
    "museum",
    "hotel",
    "barn",
    "cellar",
    "attic",
    "hallway",
    "square",
    "valley",
    "island",
    "mountain",
    "road",
    "corner",
    "bakery",
    "theater",
    "hospital",
    "airport",
    "factory",
    "cottage",
    "stable",
    "meadow",
)

PREPOSITIONS = ("in", "at", "near", "behind", "beside", "outside", "across", "by")

FIXED_PLACES = (
    "at home",
    "downtown",
    "upstairs",
    "downstairs",
    "abroad",
    "nearby",
    "outdoors",
    "in town",
    "by the sea",
    "on the train",
    "at the edge of the woods",
    "in the middle of the road",
)

TIMES = (
    "yesterday",
    "today",
    "tonight",
    "last night",
    "last week",
    "last summer",
    "this morning",
    "this afternoon",
    "this evening",
    "on Monday",
    "on Tuesday",
    "on Wednesday",
    "on Thursday",
    "on Friday",
    "on Saturday",
    "on Sunday",
    "at noon",
    "at midnight",
    "after lunch",
    "after dinner",
    "before breakfast",
    "before dawn",
    "in the morning",
    "in the evening",
    "in the spring",
    "in the winter",
    "the next day",
    "two days later",
    "a week ago",
    "long ago",
    "soon after",
    "every morning",
    "once again",
    "later that night",
)

DEADLINES = ("before lunch", "before dinner", "before noon", "before dark", "by Friday", "by tonight")

LINKS = ("and", "but", "so", "and then", "yet")
SUBORDINATORS = ("When", "Before", "After", "Because", "While", "Although", "Since", "Once")
TRAILING_SUBORDINATORS = ("because", "before", "after", "until", "while", "although")
REPORT_VERBS = ("said", "thought", "knew", "hoped", "heard", "noticed", "felt", "guessed")
QUESTION_WORDS = ("Where", "Why", "When", "How")

Words = list[str]


def _article(next_word: str) -> str:
    # The vocabulary avoids words like "hour" or "unit" whose spelling misleads this rule.
    return "an" if next_word[0].lower() in "aeiou" else "a"


def _determiner(rng: random.Random, next_word: str) -> str:
    choice = rng.choice(("the", "the", "the", "a", "my", "our", "her", "his", "their", "this", "that"))
    return _article(next_word) if choice == "a" else choice


def _noun_phrase(rng: random.Random, nouns: Sequence[str], adjectives: Sequence[str]) -> Words:
    """A determiner, up to two adjectives and a noun; multi-word nouns count as several words."""
    noun = rng.choice(nouns).split()
    n_adj = rng.choices((0, 1, 2), weights=(5, 4, 1))[0]
    adjectives = rng.sample(adjectives, n_adj)
    head = adjectives + noun
    return [_determiner(rng, head[0]), *head]


def _person(rng: random.Random) -> Words:
    return _noun_phrase(rng, PEOPLE + ANIMALS, PERSON_ADJECTIVES)


def _subject(rng: random.Random) -> tuple[Words, str]:
    """A subject and the past form of "to be" that agrees with it."""
    kind = rng.choices(("name", "pronoun", "phrase"), weights=(3, 2, 6))[0]
    if kind == "name":
        return [rng.choice(NAMES)], "was"
    if kind == "pronoun":
        pronoun, be = rng.choice(PRONOUNS)
        return [pronoun], be
    return _person(rng), "was"


def _verb_and_object(rng: random.Random, form: int) -> Words:
    """A transitive verb (0: base form, 1: past) and an object that suits it."""
    if rng.random() < 0.7:
        return [rng.choice(THING_VERBS)[form], *_noun_phrase(rng, THINGS, THING_ADJECTIVES)]
    verb = rng.choice(PERSON_VERBS)[form]
    return [verb, rng.choice(NAMES)] if rng.random() < 0.3 else [verb, *_person(rng)]


def _place(rng: random.Random) -> Words:
    if rng.random() < 0.2:
        return rng.choice(FIXED_PLACES).split()
    words = [rng.choice(PREPOSITIONS), "the"]
    if rng.random() < 0.3:
        words.append(rng.choice(PLACE_ADJECTIVES))
    words.append(rng.choice(PLACE_NOUNS))
    return words


def _time(rng: random.Random) -> Words:
    return rng.choice(TIMES).split()


def _maybe(rng: random.Random, p: float, part: Callable[[random.Random], Words]) -> Words:
    return part(rng) if rng.random() < p else []


def _predicate(rng: random.Random, past: bool) -> Words:
    """Verb, object and modifiers; the verb is in the past tense or, for questions, the base form."""
    form = 1 if past else 0
    if rng.random() < 0.65:
        words = _verb_and_object(rng, form)
    else:
        words = [rng.choice(INTRANSITIVE)[form]]
    words += _maybe(rng, 0.3, lambda r: [r.choice(ADVERBS)])
    words += _maybe(rng, 0.45, _place)
    words += _maybe(rng, 0.3, _time)
    return words


def _clause(rng: random.Random) -> Words:
    subject, be = _subject(rng)
    if rng.random() < 0.2:
        degree = _maybe(rng, 0.4, lambda r: r.choice(DEGREES).split())
        return [*subject, be, *degree, rng.choice(PERSON_ADJECTIVES), *_maybe(rng, 0.4, _place)]
    return [*subject, *_predicate(rng, past=True)]


def _statement(rng: random.Random) -> Words:
    return _clause(rng) + ["."]


def _fronted_modifier(rng: random.Random) -> Words:
    front = _time(rng) if rng.random() < 0.5 else _place(rng)
    return [*front, ",", *_clause(rng), "."]


def _compound(rng: random.Random) -> Words:
    return [*_clause(rng), ",", *rng.choice(LINKS).split(), *_clause(rng), "."]


def _subordinate_first(rng: random.Random) -> Words:
    return [rng.choice(SUBORDINATORS), *_clause(rng), ",", *_clause(rng), "."]


def _three_clauses(rng: random.Random) -> Words:
    return [rng.choice(SUBORDINATORS), *_clause(rng), ",", *_clause(rng), ",", "and", *_clause(rng), "."]


def _subordinate_last(rng: random.Random) -> Words:
    return [*_clause(rng), rng.choice(TRAILING_SUBORDINATORS), *_clause(rng), "."]


def _reported(rng: random.Random) -> Words:
    subject, _ = _subject(rng)
    return [*subject, rng.choice(REPORT_VERBS), "that", *_clause(rng), "."]


def _yes_no_question(rng: random.Random) -> Words:
    subject, be = _subject(rng)
    if rng.random() < 0.25:
        return [
            be,
            *subject,
            *_maybe(rng, 0.3, lambda r: r.choice(DEGREES).split()),
            rng.choice(PERSON_ADJECTIVES),
            *_maybe(rng, 0.4, _time),
            "?",
        ]
    return ["did", *subject, *_predicate(rng, past=False), "?"]


def _wh_question(rng: random.Random) -> Words:
    if rng.random() < 0.3:
        return ["who", *_verb_and_object(rng, 1), *_maybe(rng, 0.5, _place), *_maybe(rng, 0.3, _time), "?"]
    subject, _ = _subject(rng)
    return [rng.choice(QUESTION_WORDS), "did", *subject, *_predicate(rng, past=False), "?"]


def _existential(rng: random.Random) -> Words:
    phrase = [rng.choice(THING_ADJECTIVES), *rng.choice(THINGS).split()]
    return ["there", "was", _article(phrase[0]), *phrase, *_place(rng), *_maybe(rng, 0.4, _time), "."]


def _request(rng: random.Random) -> Words:
    words = ["please", *_verb_and_object(rng, 0), *_maybe(rng, 0.6, _place)]
    return words + _maybe(rng, 0.3, lambda r: r.choice(DEADLINES).split()) + ["."]


# (template, relative weight): statements dominate, as in read speech corpora.
_TEMPLATES: tuple[tuple[Callable[[random.Random], Words], int], ...] = (
    (_statement, 6),
    (_fronted_modifier, 3),
    (_compound, 3),
    (_subordinate_first, 2),
    (_subordinate_last, 2),
    (_reported, 2),
    (_yes_no_question, 2),
    (_wh_question, 2),
    (_three_clauses, 1),
    (_existential, 1),
    (_request, 1),
)


def _render(tokens: Words) -> str:
    """Join tokens into text: punctuation attaches to the previous word, first letter capitalised."""
    text = ""
    for token in tokens:
        text += token if token in ",.?" or not text else " " + token
    return text[0].upper() + text[1:]


def _word_count(tokens: Words) -> int:
    return sum(1 for t in tokens if t not in ",.?")


def _target_length(rng: random.Random, lo: int, hi: int) -> int:
    # Mostly a triangular law whose mode is placed so the mean lands near TARGET_MEAN_WORDS,
    # mixed with a uniform share so the long end of the range is not starved;
    # floor() of a draw on [lo, hi + 1) gives every integer its share.
    if rng.random() < _UNIFORM_SHARE:
        return rng.randint(lo, hi)
    uniform_mean = (lo + hi) / 2
    triangular_mean = (TARGET_MEAN_WORDS - _UNIFORM_SHARE * uniform_mean) / (1 - _UNIFORM_SHARE)
    mode = 3 * (triangular_mean + 0.5) - lo - (hi + 1)
    mode = min(max(mode, lo), hi + 1)
    return min(hi, int(rng.triangular(lo, hi + 1, mode)))


def _sentence_of_length(rng: random.Random, length: int) -> str:
    templates = [t for t, _ in _TEMPLATES]
    weights = [w for _, w in _TEMPLATES]
    for _ in range(_MAX_TRIES):
        tokens = rng.choices(templates, weights=weights)[0](rng)
        if _word_count(tokens) == length:
            return _render(tokens)
    raise ValueError(f"the sentence grammar could not make a sentence of {length} words")


def generate_sentences(n: int, min_words: int, max_words: int, seed: int) -> list[str]:
    """Return `n` distinct English sentences of `min_words` to `max_words` words each.

    Words are whitespace-separated tokens. Sentences start with a capital letter, end in
    "." or "?", and contain only ASCII letters, spaces, commas and the final mark. Lengths
    spread over the whole range with a mean near TARGET_MEAN_WORDS (when the range allows).
    The same arguments always give the same list.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not MIN_SUPPORTED_WORDS <= min_words <= max_words <= MAX_SUPPORTED_WORDS:
        raise ValueError(
            f"word bounds must satisfy {MIN_SUPPORTED_WORDS} <= min_words <= max_words <= "
            f"{MAX_SUPPORTED_WORDS}, got min_words={min_words}, max_words={max_words}"
        )
    rng = random.Random(seed)
    sentences: list[str] = []
    seen: set[str] = set()
    duplicates = 0
    while len(sentences) < n:
        sentence = _sentence_of_length(rng, _target_length(rng, min_words, max_words))
        if sentence in seen:
            # Only a tiny word range over a huge n can exhaust the grammar; say so instead of looping.
            duplicates += 1
            if duplicates > 100 * max(n, 1):
                raise ValueError(f"cannot make {n} distinct sentences of {min_words}-{max_words} words")
            continue
        seen.add(sentence)
        sentences.append(sentence)
    return sentences
