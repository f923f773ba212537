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

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

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
Item = str | tuple[str, ...]  # a word or phrase, or a verb's (base form, past tense)


@dataclass(frozen=True)
class Vocabulary:
    """The word lists and sentence templates one grammar draws from: the whole grammar, or
    what a hold-out (`hold_out`) leaves to the training sentences."""

    names: tuple[str, ...]
    pronouns: tuple[tuple[str, str], ...]
    people: tuple[str, ...]
    animals: tuple[str, ...]
    things: tuple[str, ...]
    thing_verbs: tuple[tuple[str, str], ...]
    person_verbs: tuple[tuple[str, str], ...]
    intransitive: tuple[tuple[str, str], ...]
    person_adjectives: tuple[str, ...]
    thing_adjectives: tuple[str, ...]
    place_adjectives: tuple[str, ...]
    degrees: tuple[str, ...]
    adverbs: tuple[str, ...]
    place_nouns: tuple[str, ...]
    prepositions: tuple[str, ...]
    fixed_places: tuple[str, ...]
    times: tuple[str, ...]
    deadlines: tuple[str, ...]
    links: tuple[str, ...]
    subordinators: tuple[str, ...]
    trailing_subordinators: tuple[str, ...]
    report_verbs: tuple[str, ...]
    question_words: tuple[str, ...]
    templates: tuple[str, ...]  # names of TEMPLATES this grammar uses


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
    adjectives = rng.sample(adjectives, min(n_adj, len(adjectives)))
    head = adjectives + noun
    return [_determiner(rng, head[0]), *head]


def _person(rng: random.Random, v: Vocabulary) -> Words:
    return _noun_phrase(rng, v.people + v.animals, v.person_adjectives)


def _subject(rng: random.Random, v: Vocabulary) -> tuple[Words, str]:
    """A subject and the past form of "to be" that agrees with it."""
    kind = rng.choices(("name", "pronoun", "phrase"), weights=(3, 2, 6))[0]
    if kind == "name":
        return [rng.choice(v.names)], "was"
    if kind == "pronoun":
        pronoun, be = rng.choice(v.pronouns)
        return [pronoun], be
    return _person(rng, v), "was"


def _verb_and_object(rng: random.Random, v: Vocabulary, form: int) -> Words:
    """A transitive verb (0: base form, 1: past) and an object that suits it."""
    if rng.random() < 0.7:
        return [rng.choice(v.thing_verbs)[form], *_noun_phrase(rng, v.things, v.thing_adjectives)]
    verb = rng.choice(v.person_verbs)[form]
    return [verb, rng.choice(v.names)] if rng.random() < 0.3 else [verb, *_person(rng, v)]


def _place(rng: random.Random, v: Vocabulary) -> Words:
    if rng.random() < 0.2:
        return rng.choice(v.fixed_places).split()
    words = [rng.choice(v.prepositions), "the"]
    if rng.random() < 0.3:
        words.append(rng.choice(v.place_adjectives))
    words.append(rng.choice(v.place_nouns))
    return words


def _time(rng: random.Random, v: Vocabulary) -> Words:
    return rng.choice(v.times).split()


def _maybe(rng: random.Random, p: float, part: Callable[[random.Random], Words]) -> Words:
    return part(rng) if rng.random() < p else []


def _predicate(rng: random.Random, v: Vocabulary, past: bool) -> Words:
    """Verb, object and modifiers; the verb is in the past tense or, for questions, the base form."""
    form = 1 if past else 0
    if rng.random() < 0.65:
        words = _verb_and_object(rng, v, form)
    else:
        words = [rng.choice(v.intransitive)[form]]
    words += _maybe(rng, 0.3, lambda r: [r.choice(v.adverbs)])
    words += _maybe(rng, 0.45, lambda r: _place(r, v))
    words += _maybe(rng, 0.3, lambda r: _time(r, v))
    return words


def _clause(rng: random.Random, v: Vocabulary) -> Words:
    subject, be = _subject(rng, v)
    if rng.random() < 0.2:
        degree = _maybe(rng, 0.4, lambda r: r.choice(v.degrees).split())
        return [*subject, be, *degree, rng.choice(v.person_adjectives), *_maybe(rng, 0.4, lambda r: _place(r, v))]
    return [*subject, *_predicate(rng, v, past=True)]


def _statement(rng: random.Random, v: Vocabulary) -> Words:
    return _clause(rng, v) + ["."]


def _fronted_modifier(rng: random.Random, v: Vocabulary) -> Words:
    front = _time(rng, v) if rng.random() < 0.5 else _place(rng, v)
    return [*front, ",", *_clause(rng, v), "."]


def _compound(rng: random.Random, v: Vocabulary) -> Words:
    return [*_clause(rng, v), ",", *rng.choice(v.links).split(), *_clause(rng, v), "."]


def _subordinate_first(rng: random.Random, v: Vocabulary) -> Words:
    return [rng.choice(v.subordinators), *_clause(rng, v), ",", *_clause(rng, v), "."]


def _three_clauses(rng: random.Random, v: Vocabulary) -> Words:
    return [rng.choice(v.subordinators), *_clause(rng, v), ",", *_clause(rng, v), ",", "and", *_clause(rng, v), "."]


def _subordinate_last(rng: random.Random, v: Vocabulary) -> Words:
    return [*_clause(rng, v), rng.choice(v.trailing_subordinators), *_clause(rng, v), "."]


def _reported(rng: random.Random, v: Vocabulary) -> Words:
    subject, _ = _subject(rng, v)
    return [*subject, rng.choice(v.report_verbs), "that", *_clause(rng, v), "."]


def _yes_no_question(rng: random.Random, v: Vocabulary) -> Words:
    subject, be = _subject(rng, v)
    if rng.random() < 0.25:
        return [
            be,
            *subject,
            *_maybe(rng, 0.3, lambda r: r.choice(v.degrees).split()),
            rng.choice(v.person_adjectives),
            *_maybe(rng, 0.4, lambda r: _time(r, v)),
            "?",
        ]
    return ["did", *subject, *_predicate(rng, v, past=False), "?"]


def _wh_question(rng: random.Random, v: Vocabulary) -> Words:
    if rng.random() < 0.3:
        return [
            "who",
            *_verb_and_object(rng, v, 1),
            *_maybe(rng, 0.5, lambda r: _place(r, v)),
            *_maybe(rng, 0.3, lambda r: _time(r, v)),
            "?",
        ]
    subject, _ = _subject(rng, v)
    return [rng.choice(v.question_words), "did", *subject, *_predicate(rng, v, past=False), "?"]


def _existential(rng: random.Random, v: Vocabulary) -> Words:
    phrase = [rng.choice(v.thing_adjectives), *rng.choice(v.things).split()]
    return [
        "there",
        "was",
        _article(phrase[0]),
        *phrase,
        *_place(rng, v),
        *_maybe(rng, 0.4, lambda r: _time(r, v)),
        ".",
    ]


def _request(rng: random.Random, v: Vocabulary) -> Words:
    words = ["please", *_verb_and_object(rng, v, 0), *_maybe(rng, 0.6, lambda r: _place(r, v))]
    return words + _maybe(rng, 0.3, lambda r: r.choice(v.deadlines).split()) + ["."]


# name -> (template, relative weight): statements dominate, as in read speech corpora.
TEMPLATES: dict[str, tuple[Callable[[random.Random, Vocabulary], Words], int]] = {
    "statement": (_statement, 6),
    "fronted_modifier": (_fronted_modifier, 3),
    "compound": (_compound, 3),
    "subordinate_first": (_subordinate_first, 2),
    "subordinate_last": (_subordinate_last, 2),
    "reported": (_reported, 2),
    "yes_no_question": (_yes_no_question, 2),
    "wh_question": (_wh_question, 2),
    "three_clauses": (_three_clauses, 1),
    "existential": (_existential, 1),
    "request": (_request, 1),
}

# Every word and template of the grammar.
FULL = Vocabulary(
    names=NAMES,
    pronouns=PRONOUNS,
    people=PEOPLE,
    animals=ANIMALS,
    things=THINGS,
    thing_verbs=THING_VERBS,
    person_verbs=PERSON_VERBS,
    intransitive=INTRANSITIVE,
    person_adjectives=PERSON_ADJECTIVES,
    thing_adjectives=THING_ADJECTIVES,
    place_adjectives=PLACE_ADJECTIVES,
    degrees=DEGREES,
    adverbs=ADVERBS,
    place_nouns=PLACE_NOUNS,
    prepositions=PREPOSITIONS,
    fixed_places=FIXED_PLACES,
    times=TIMES,
    deadlines=DEADLINES,
    links=LINKS,
    subordinators=SUBORDINATORS,
    trailing_subordinators=TRAILING_SUBORDINATORS,
    report_verbs=REPORT_VERBS,
    question_words=QUESTION_WORDS,
    templates=tuple(TEMPLATES),
)

# The content-word classes a hold-out draws from, each on its own: names, nouns, verbs, adjectives, adverbs.
CONTENT_CLASSES = (
    "names",
    "people",
    "animals",
    "things",
    "thing_verbs",
    "person_verbs",
    "intransitive",
    "person_adjectives",
    "thing_adjectives",
    "place_adjectives",
    "adverbs",
    "place_nouns",
)


def item_words(item: Item) -> set[str]:
    """The lowercase words an item writes: every word of a phrase, both forms of a verb."""
    forms = (item,) if isinstance(item, str) else item
    return {w.lower() for form in forms for w in form.split()}


@dataclass(frozen=True)
class HoldOut:
    """A split of the grammar: what training sentences may use, and what only unseen ones have."""

    train: Vocabulary
    words: frozenset[str]  # lowercase words no training sentence contains
    templates: tuple[str, ...]  # templates no training sentence comes from


def hold_out(share: float, templates: Sequence[str], seed: int) -> HoldOut:
    """Hold back a seeded `share` of every content-word class (at least one word of each when
    share > 0) and the named templates. A held word leaves every list it is in (an adjective
    that describes people and things, a verb that takes both, a phrase that contains it), so the
    training grammar can never write it. ValueError when a list would be left empty or a
    template name is unknown."""
    unknown = [t for t in templates if t not in TEMPLATES]
    if unknown:
        raise ValueError(f"unknown sentence template(s) {unknown}; the grammar has {list(TEMPLATES)}")
    if not 0.0 <= share < 1.0:
        raise ValueError(f"the held-back share must be in [0, 1), got {share}")
    # Its own random stream: the same seed's training sentences then come from a fixed vocabulary.
    rng = random.Random(f"hold-out|{seed}")
    held: set[str] = set()
    for name in CONTENT_CLASSES:
        items: tuple[Item, ...] = getattr(FULL, name)
        count = math.ceil(share * len(items)) if share > 0 else 0
        for item in rng.sample(items, count):
            held |= item_words(item)
    kept: dict[str, object] = {}
    for field in fields(Vocabulary):
        if field.name == "templates":
            continue
        items = getattr(FULL, field.name)
        left = tuple(i for i in items if field.name == "pronouns" or not item_words(i) & held)
        if not left:
            raise ValueError(f"holding back {share:.0%} of the words leaves no {field.name.replace('_', ' ')}")
        kept[field.name] = left
    left_templates = tuple(t for t in TEMPLATES if t not in templates)
    if not left_templates:
        raise ValueError("every sentence template is held back: training sentences need at least one")
    return HoldOut(Vocabulary(**kept, templates=left_templates), frozenset(held), tuple(templates))


def sentence_words(sentence: str) -> list[str]:
    """The lowercase words of a sentence, punctuation left out."""
    return [w.strip(",.?").lower() for w in sentence.split() if w.strip(",.?")]


def leaked_words(sentences: Sequence[str], held: frozenset[str] | set[str]) -> dict[str, int]:
    """Held-back words that occur in `sentences`, each with the index of the first sentence
    that has it; empty when none leaked."""
    leaks: dict[str, int] = {}
    for k, sentence in enumerate(sentences):
        for word in sentence_words(sentence):
            if word in held and word not in leaks:
                leaks[word] = k
    return leaks


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


def _sentence_of_length(
    rng: random.Random, length: int, v: Vocabulary, accept: Callable[[Words], bool] | None = None
) -> str:
    templates = [TEMPLATES[t][0] for t in v.templates]
    weights = [TEMPLATES[t][1] for t in v.templates]
    for _ in range(_MAX_TRIES):
        tokens = rng.choices(templates, weights=weights)[0](rng, v)
        if _word_count(tokens) == length and (accept is None or accept(tokens)):
            return _render(tokens)
    raise ValueError(f"the sentence grammar could not make a sentence of {length} words")


def _check_bounds(n: int, min_words: int, max_words: int) -> None:
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not MIN_SUPPORTED_WORDS <= min_words <= max_words <= MAX_SUPPORTED_WORDS:
        raise ValueError(
            f"word bounds must satisfy {MIN_SUPPORTED_WORDS} <= min_words <= max_words <= "
            f"{MAX_SUPPORTED_WORDS}, got min_words={min_words}, max_words={max_words}"
        )


def _distinct(
    n: int, min_words: int, max_words: int, rng: random.Random, make: Callable[[int], str], taken: set[str]
) -> list[str]:
    """`n` sentences from `make(length)` that are neither repeated nor in `taken`."""
    sentences: list[str] = []
    seen = set(taken)
    duplicates = 0
    while len(sentences) < n:
        sentence = make(_target_length(rng, min_words, max_words))
        if sentence in seen:
            # Only a tiny word range over a huge n can exhaust the grammar; say so instead of looping.
            duplicates += 1
            if duplicates > 100 * max(n, 1):
                raise ValueError(f"cannot make {n} distinct sentences of {min_words}-{max_words} words")
            continue
        seen.add(sentence)
        sentences.append(sentence)
    return sentences


def generate_sentences(n: int, min_words: int, max_words: int, seed: int, vocabulary: Vocabulary = FULL) -> list[str]:
    """Return `n` distinct English sentences of `min_words` to `max_words` words each, drawn
    from `vocabulary` (the whole grammar by default; a hold-out's `train` for training text).

    Words are whitespace-separated tokens. Sentences start with a capital letter, end in
    "." or "?", and contain only ASCII letters, spaces, commas and the final mark. Lengths
    spread over the whole range with a mean near TARGET_MEAN_WORDS (when the range allows).
    The same arguments always give the same list.
    """
    _check_bounds(n, min_words, max_words)
    rng = random.Random(seed)
    return _distinct(n, min_words, max_words, rng, lambda k: _sentence_of_length(rng, k, vocabulary), set())


def generate_unseen_sentences(n: int, min_words: int, max_words: int, seed: int, held: HoldOut) -> list[str]:
    """Return `n` distinct sentences of the whole grammar (every template, every word) that each
    hold at least one of `held`'s words: text no sentence of `held.train` can be. Seeded apart
    from the training sentences of the same seed; the same arguments always give the same list."""
    _check_bounds(n, min_words, max_words)
    if not held.words:
        raise ValueError("unseen sentences need held-back words (a hold-out share above 0)")
    rng = random.Random(f"unseen|{seed}")

    def has_held_word(tokens: Words) -> bool:
        return any(t.lower() in held.words for t in tokens)

    return _distinct(n, min_words, max_words, rng, lambda k: _sentence_of_length(rng, k, FULL, has_held_word), set())
