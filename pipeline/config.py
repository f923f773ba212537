"""Typed configuration, one dataclass per stage section of params.yaml.

Every default lives in params.yaml; these classes only give the values types and a clear
error when a key is missing or unknown, so no knob hides in code. Each field also declares
the values it may take (`at_least(1)`, `share()`, `one_of(...)`: its `Limit`), and every
section config checks its fields' types and limits, then its cross-key rules, when it is
built; `load_params` builds every section, so a bad value (typed by hand or set with
`dvc exp run -S`) stops a stage before any work starts, with one line per problem naming
the file read and the key.

The file is hostile input like any other: a message shows a value only through `shown`,
which cuts it to a few dozen characters, and `load_params` refuses YAML whose aliases would
expand past `MAX_PARAMS_VALUES` before anything is built from it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import math
import os
import re
import sys
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

from model.config import LOSS_TERMS, PARAM_KEYS, SIZE_KEYS, WORD_SEPARATOR, LossSettings, LossWeights, ModelConfig

T = TypeVar("T")

# The sections of params.yaml, each read by one typed config below.
SECTIONS = ("data", "features", "align", "model", "train", "vocoder", "eval", "lr_find")

# The file a problem is said to be in when the params did not come from a file that
# load_params read (a dict built in code): DVC's params file, the default of every --params.
PARAMS_FILE = "params.yaml"

# A safety bound, not a knob: the committed params.yaml holds under 400 YAML nodes, so a file
# whose aliases expand past this is a mistake or an attack ("billion laughs": nine levels of
# nine-fold aliases are 9**9 values), refused before anything is built from it or printed.
MAX_PARAMS_VALUES = 100_000

# How much of a value a message shows: enough to recognise it, few enough that a problem
# stays one readable line whatever the file holds.
SHOWN_CHARS = 60

# The least of a single value that a message shows, however little room is left after
# the items before it: a number is never cut to its first digit.
_SHOWN_SCALAR_CHARS = 12

# Above this many bits an integer is not turned into digits for a message: Python refuses
# str() of an integer over 4,300 digits (a hex literal in YAML can be far longer).
_SHOWN_INT_BITS = 10_000

# The largest integer a count may be: it ends up in a tensor shape or a torch seed, which
# hold 64 bits (a YAML hex literal can be any length, and a float of 1e300 is whole).
_INT_MAX = 2**63 - 1

# How many unknown keys a message names before it only counts the rest.
_LISTED_KEYS = 5

# The longest name (NAME_MAX) and path (PATH_MAX less its NUL) that Linux filesystems take,
# in bytes: a data.corpus longer than these can never be opened, whatever is on disk.
NAME_MAX_BYTES = 255
PATH_MAX_BYTES = 4095


class ConfigError(ValueError):
    """params.yaml is missing a key, has an unknown one, or a value of the wrong kind."""


class ParamsError(ConfigError):
    """The problems found in the values of a params file, one line each, every line naming
    the file: `file` is PARAMS_FILE until `load_params` says which file it read (`naming`),
    so a message never names params.yaml when --params named another file."""

    def __init__(self, problems: Sequence[str], file: str = PARAMS_FILE) -> None:
        super().__init__(tuple(problems), file)  # args that rebuild it: it pickles
        self.problems = tuple(problems)
        self.file = file

    def __str__(self) -> str:
        return "\n".join(f"{self.file}: {problem}" for problem in self.problems)

    def naming(self, file: str | Path) -> ParamsError:
        """The same problems, said to be in `file`."""
        return ParamsError(self.problems, str(file))


def _clip(text: str, limit: int = SHOWN_CHARS) -> str:
    """`text` cut to `limit` characters, marked "..." where it was cut."""
    return text if len(text) <= limit else text[:limit] + "..."


def _size(value: Any) -> str:
    """How big `value` is, from its own length only (a nested or shared part is never walked)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value).bit_length() > _SHOWN_INT_BITS:  # estimated: its digits are never written
            return f"about {int(abs(value).bit_length() * math.log10(2)) + 1:,} digits"
        return f"{len(str(abs(value))):,} digits"
    n = len(value)
    if isinstance(value, str):
        return f"{n:,} character{'s' * (n != 1)}"
    if isinstance(value, (bytes, bytearray)):
        return f"{n:,} byte{'s' * (n != 1)}"
    if isinstance(value, dict):
        return f"a mapping of {n:,} key{'s' * (n != 1)}"
    kind = "a list" if isinstance(value, list) else "a set" if isinstance(value, (set, frozenset)) else "a sequence"
    return f"{kind} of {n:,} item{'s' * (n != 1)}"


def _render(value: Any, budget: int) -> tuple[str, bool]:
    """`value` as Python writes it, stopped after about `budget` characters, and whether it
    was cut. Only what is written is visited: a list of a million items, or one whose items
    are shared many times over (YAML aliases), costs as much as its first few items."""
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        opening, closing = ("{", "}") if isinstance(value, (dict, set, frozenset)) else ("[", "]")
        if isinstance(value, tuple):
            opening, closing = "(", ")"
        parts: list[str] = []
        used, cut = 1, False
        items = value.items() if isinstance(value, dict) else value
        for item in items:
            if isinstance(value, dict):
                key, key_cut = _render(item[0], budget - used)
                text, item_cut = _render(item[1], budget - used - len(key) - 2)
                text, item_cut = f"{key}: {text}", key_cut or item_cut
            else:
                text, item_cut = _render(item, budget - used)
            if parts and (item_cut or used + len(text) > budget):  # whole items, then "..."
                parts.append("...")
                cut = True
                break
            parts.append(text)
            used += len(text) + 2
            cut = cut or item_cut
        return opening + ", ".join(parts) + closing, cut
    budget = max(budget, _SHOWN_SCALAR_CHARS)
    if isinstance(value, (str, bytes, bytearray)):
        if len(value) <= budget:
            return repr(value), False
        head = repr(value[:budget])
        return head[:-1] + "..." + head[-1], True  # the cut inside the quotes
    if isinstance(value, int) and not isinstance(value, bool) and abs(value).bit_length() > _SHOWN_INT_BITS:
        return "an integer", True
    text = repr(value)
    return (text, False) if len(text) <= budget else (text[:budget] + "...", True)


def shown(value: Any) -> str:
    """`value` for a message: as Python writes it, cut to about SHOWN_CHARS characters and
    then followed by its size ("'/very/long/...' (4,096 characters)", "[1, 2, 3, ...] (a
    list of 10,000 items)"). Every value a message shows goes through here: a params file
    can hold a value of any size, and the message must stay one line."""
    text, cut = _render(value, SHOWN_CHARS)
    return f"{text} ({_size(value)})" if cut else text


def _label(key: Any) -> str:
    """A key as part of a dotted params key: a short printable name as it is, anything else
    (a number, a very long or unprintable name) as `shown` writes it."""
    if isinstance(key, str) and key.isprintable() and len(key) <= SHOWN_CHARS:
        return key
    return shown(key)


def check_keys(raw: Any, known: tuple[str, ...] | list[str], where: str) -> None:
    """Refuse a section that is not a mapping, has a key we do not read (naming the nearest
    known key: `val_evry` is almost always a typo of `val_every`), or lacks one we need.
    `where` is the section's dotted path; "" is the top level (the sections themselves)."""
    place = f"`{where}`" if where else "the top level"
    if not isinstance(raw, dict):
        raise ParamsError([f"{place} must be a mapping, got {type(raw).__name__}"])
    prefix = f"{where}." if where else ""
    unknown = sorted(set(raw) - set(known), key=_label)
    if unknown:
        hints = []
        for key in unknown[:_LISTED_KEYS]:  # a file can hold thousands: the line names a few
            near = difflib.get_close_matches(_label(key), known, n=1, cutoff=0.6)
            hints.append(f"{prefix}{_label(key)}" + (f" (did you mean {prefix}{near[0]}?)" if near else ""))
        if len(unknown) > _LISTED_KEYS:
            hints.append(f"and {len(unknown) - _LISTED_KEYS:,} more")
        raise ParamsError([f"unknown key(s): {'; '.join(hints)}. Known under {place}: {', '.join(known)}"])
    missing = [k for k in known if k not in raw]
    if missing:
        raise ParamsError([f"missing key(s) under {place}: {', '.join(missing)}"])


@dataclass(frozen=True)
class Limit:
    """The values a knob may take beyond its type: a range (either end absent, open or
    closed), a set of choices, or a pattern. `note` says what an edge value means where it
    has a documented meaning (`0 = all cores`), so the message explains why 0 passes."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    pattern: str = ""
    shown: str = ""  # how a pattern is described to the user
    note: str = ""

    def allows(self, value: Any) -> bool:
        """Whether a value of the right type is within the limit (null always is: a
        `X | None` field's null means "off" and has no range)."""
        if value is None:
            return True
        if self.choices:
            return value in self.choices
        if self.pattern:
            return re.fullmatch(self.pattern, value) is not None
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or not (value > self.high or (self.high_open and value == self.high))

    def describe(self) -> str:
        """The limit in words: `> 0`, `in [0, 1]`, `one of a, b`, plus the note."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.pattern:
            return self.shown
        if self.low is not None and self.high is not None:
            text = f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        elif self.low is not None:
            text = f"{'>' if self.low_open else '>='} {self.low:g}"
        else:
            text = f"{'<' if self.high_open else '<='} {self.high:g}"
        return text + (f" ({self.note})" if self.note else "")


def _knob(**limit: Any) -> Any:
    """A dataclass field (without default: every default lives in params.yaml) whose value
    must also satisfy `Limit(**limit)`."""
    return dataclasses.field(metadata={"limit": Limit(**limit)})


def at_least(low: float, note: str = "") -> Any:
    """A count or amount of `low` or more (`at_least(1)`: steps, sizes, rates)."""
    return _knob(low=low, note=note)


def above(low: float) -> Any:
    """A number strictly above `low` (`above(0)`: learning rates, scales, decibels)."""
    return _knob(low=low, low_open=True)


def at_most(high: float) -> Any:
    """A number of `high` or less (`at_most(0)`: a log-probability)."""
    return _knob(high=high)


def between(low: float, high: float, *, low_open: bool = False, high_open: bool = False, note: str = "") -> Any:
    """A number in the interval from `low` to `high`, each end included unless said open."""
    return _knob(low=low, high=high, low_open=low_open, high_open=high_open, note=note)


def share(note: str = "") -> Any:
    """A probability or a share of a whole: in [0, 1]."""
    return between(0.0, 1.0, note=note)


def one_of(*choices: str) -> Any:
    """One of a fixed set of names."""
    return _knob(choices=choices)


def device() -> Any:
    """A torch device name: `auto` (CUDA when available, else CPU), cpu, cuda or cuda:N."""
    return _knob(pattern=r"auto|cpu|cuda(:\d+)?", shown="auto, cpu, cuda or cuda:N")


_KINDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _optional(hint: Any) -> tuple[Any, bool]:
    """`X | None` -> (X, True); any other hint -> (hint, False)."""
    args = typing.get_args(hint)
    if type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return hint, False


def accepts(value: Any, hint: Any) -> tuple[bool, Any]:
    """Whether a value read from YAML has the annotated type, and the value to keep.

    YAML's own types decide: true/false is never a number (bool is an int in Python), a
    number is never text, and an int field takes a float only when it is whole (16.0 is kept
    as 16, since it ends up in range() and tensor shapes), and no integer beyond 64 bits. A
    float field takes ints as they are (if a float can hold them), and neither nan nor inf
    (no knob means anything by them)."""
    hint, nullable = _optional(hint)
    if value is None:
        return nullable, value
    if typing.get_origin(hint) is list:  # list[str], the only list we read
        return isinstance(value, list) and all(isinstance(v, str) for v in value), value
    if hint is bool or isinstance(value, bool):
        return hint is bool and isinstance(value, bool), value
    if hint is int:
        if isinstance(value, float) and value.is_integer():
            return abs(value) <= _INT_MAX, int(value)
        return isinstance(value, int) and abs(value) <= _INT_MAX, value
    if hint is float:
        if isinstance(value, int):  # a hex literal can be an int far beyond any float
            return abs(value) <= sys.float_info.max, value
        return isinstance(value, float) and math.isfinite(value), value
    return isinstance(value, hint) if isinstance(hint, type) else True, value


def expected(hint: Any, limit: Limit | None) -> str:
    """What a field must be, in words: `a number > 0`, `an integer >= 0 (0 = none) or null`."""
    hint, nullable = _optional(hint)
    if limit is not None and (limit.choices or limit.pattern):
        text = limit.describe()
    else:
        kind = "a list of strings" if typing.get_origin(hint) is list else _KINDS.get(hint, str(hint))
        text = kind + (f" {limit.describe()}" if limit is not None else "")
    return text + (" or null" if nullable else "")


def number_hint(value: Any, hint: Any) -> str:
    """For text where a number belongs, how to write it so YAML reads a number. PyYAML reads a
    float only with a dot and a signed exponent: `1e-5` and `1.0e5` are text, `1.0e-5` is not."""
    hint, _ = _optional(hint)
    if not isinstance(value, str) or hint not in (int, float):
        return ""
    try:
        number = float(value)
    except ValueError:
        return ""
    if len(value) > SHOWN_CHARS:  # the hint writes the text out again: only short text is
        return " (text, not a number: write it without quotes)"
    if hint is int and number.is_integer():
        return f" (text, not a number: write {int(number)} without quotes)"
    m = re.fullmatch(r"\s*([-+]?\d*)(\.\d*)?[eE]([-+]?)(\d+)\s*", value)
    if m:
        spelled = f"{m[1] or '0'}{m[2] if m[2] and len(m[2]) > 1 else '.0'}e{m[3] or '+'}{m[4]}"
        return f" (YAML reads {value.strip()} as text: write it with a dot and a signed exponent, {spelled})"
    return f" (text, not a number: write {value.strip()} without quotes)"


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    # The annotations are strings (`from __future__ import annotations`); resolve them once.
    return typing.get_type_hints(cls)


def field_problems(cfg: Any, where: str) -> list[str]:
    """One line per field of the config `cfg` (at params.yaml `where`) whose value has the
    wrong type or is outside its limit. A whole float in an int field is kept as the int.
    The lines do not name the file: the ParamsError that carries them does."""
    problems = []
    for f in fields(cfg):
        if "section" in f.metadata:
            continue  # a nested section checked itself when it was built
        value, hint, limit = getattr(cfg, f.name), _hints(type(cfg))[f.name], f.metadata.get("limit")
        ok, kept = accepts(value, hint)
        if ok and kept is not value:
            object.__setattr__(cfg, f.name, kept)  # frozen: the only way to normalise in place
        if not ok or (limit is not None and not limit.allows(kept)):
            problems.append(
                f"{where}.{f.name} must be {expected(hint, limit)}, got {shown(value)}{number_hint(value, hint)}"
            )
    return problems


class Checked:
    """Base of the section configs: building one (from params.yaml, or with
    dataclasses.replace) checks each field's type and limit, then the section's cross-key
    rules (`cross_problems`, which compare values, so only once the types are right), and
    raises every problem of the section together as one ConfigError."""

    SECTION: ClassVar[str] = ""

    def __post_init__(self) -> None:
        problems = field_problems(self, self.SECTION)
        if not problems:
            problems = self.cross_problems()
        if problems:
            raise ParamsError(problems)

    def cross_problems(self) -> list[str]:
        """Rules that relate two keys of the section; none unless a section says so."""
        return []


def _build(cls: type[T], raw: dict[str, Any], where: str) -> T:
    check_keys(raw, [f.name for f in fields(cls)], where)  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    problems: list[str] = []
    for f in fields(cls):  # type: ignore[arg-type]
        value = raw[f.name]
        sub = f.metadata.get("section")
        if sub is not None:
            try:
                value = _build(sub, value, f"{where}.{f.name}")
            except ParamsError as e:  # report every nested section's problems together
                problems += e.problems
        values[f.name] = value
    if problems:
        raise ParamsError(problems)
    return cls(**values)


@dataclass(frozen=True)
class DemoConfig(Checked):
    """How the embedded demo corpus is synthesized."""

    SECTION = "data.demo"

    voice: str
    utterances: int = at_least(1)
    # The sentence grammar's range, MIN/MAX_SUPPORTED_WORDS of pipeline/demo/sentences.py (not
    # imported: every stage reads this module, and the grammar must not be a dep of them all;
    # tests/test_params_validation.py pins the two equal).
    min_words: int = between(3, 30)
    max_words: int = between(3, 30)
    seed: int = at_least(0)
    sample_rate: int = at_least(1)
    batch_size: int = at_least(1)
    extra_voices: list[str]  # "<festival voice>:<utterances>" each; [] = one voice
    extra_sample_rate: int = at_least(1)
    # The unseen-words test set: held-back sentences of the main voice (0 = none, and no hold-out),
    # the share of each content-word class no training sentence may use, and the sentence
    # templates (names in pipeline/demo/sentences.py TEMPLATES, checked there) only they use.
    unseen_utterances: int = at_least(0)
    unseen_word_share: float = between(0.0, 0.5)
    unseen_templates: list[str]
    # In-grammar sentences of the main voice listed in validation.txt (validated on whatever
    # their hash draws): enough of them that the in-grammar WER gap is measured, not drawn.
    validation_utterances: int = at_least(0)

    def cross_problems(self) -> list[str]:
        problems = []
        if self.unseen_utterances > 0 and self.unseen_word_share <= 0:
            problems.append(
                f"data.demo.unseen_utterances is {self.unseen_utterances} but unseen_word_share is 0: "
                "unseen sentences need held-back words (set a share, e.g. 0.2, or unseen_utterances: 0)"
            )
        if self.min_words > self.max_words:
            problems.append(f"data.demo.min_words ({self.min_words}) must be <= max_words ({self.max_words})")
        bad = [e for e in self.extra_voices if not re.fullmatch(r"[A-Za-z0-9_.-]+:[1-9][0-9]*", e)]
        if bad:
            # One line however many entries are wrong: the first one shows what to fix.
            more = len(bad) - 1
            others = f" ({more:,} more {'entry' if more == 1 else 'entries'} like it)" if more else ""
            problems.append(
                f"data.demo.extra_voices entry {shown(bad[0])} must be '<festival voice>:<utterances>', "
                f"e.g. 'kal_diphone:150'{others}"
            )
        voices = [self.voice] + [e.split(":")[0] for e in self.extra_voices]
        if len(set(voices)) < len(voices):
            problems.append(f"data.demo voices must differ (each is a speaker), got {shown(voices)}")
        return problems

    def speakers(self) -> list[tuple[str, int, int, int]]:
        """(voice, utterances, sample rate, sentence seed) of each speaker, the main one first;
        each extra speaker has sentences of its own (seed + its position)."""
        extra = [e.split(":") for e in self.extra_voices]
        return [(self.voice, self.utterances, self.sample_rate, self.seed)] + [
            (voice, int(n), self.extra_sample_rate, self.seed + k) for k, (voice, n) in enumerate(extra, start=1)
        ]


@dataclass(frozen=True)
class ValidateConfig(Checked):
    """Bounds the validate stage enforces on every row."""

    SECTION = "data.validate"

    min_duration: float = at_least(0.0)
    max_duration: float = above(0.0)
    clip_level: float = between(0.0, 1.0, low_open=True)
    max_clip_share: float = share()
    silence_top_db: float = above(0.0)
    silence_frame_length: int = at_least(1)
    silence_hop_length: int = at_least(1)
    max_silence_share: float = share()
    min_peak: float = share(note="0 = no file counts as silent")
    # A float file's peak above this is over full scale (a warning; precompute peak-normalizes).
    max_peak: float = at_least(1.0)
    # |mean| of the mono mix above this is a DC offset (a warning; precompute removes it).
    max_dc_offset: float = share()
    # A clip passes when median/f <= rate <= median*f: below 1 no clip could pass.
    rate_outlier_factor: float = at_least(1.0)
    reject_duplicate_text: bool

    def cross_problems(self) -> list[str]:
        if self.min_duration >= self.max_duration:
            return [
                f"data.validate.min_duration ({self.min_duration:g}) must be below "
                f"max_duration ({self.max_duration:g}): no clip could pass"
            ]
        return []


@dataclass(frozen=True)
class DataConfig(Checked):
    """Where the corpus is and how its rows map to speakers and languages."""

    SECTION = "data"

    corpus: str
    speaker_regex: str | None
    default_speaker: str
    default_language: str
    demo: DemoConfig = dataclasses.field(metadata={"section": DemoConfig})
    validate: ValidateConfig = dataclasses.field(metadata={"section": ValidateConfig})

    def cross_problems(self) -> list[str]:
        problems = []
        unusable = path_problem(self.corpus)
        if unusable:
            problems.append(f"data.corpus must be the path of a folder, got {shown(self.corpus)}: {unusable}")
        # A regex that does not compile would otherwise fail on the first row of the corpus.
        try:
            re.compile(self.speaker_regex or "")
        except (re.error, RecursionError) as e:  # Python's regex parser recurses once per group
            why = _clip(str(e), 2 * SHOWN_CHARS) if isinstance(e, re.error) else "its groups are nested too deeply"
            problems.append(f"data.speaker_regex {shown(self.speaker_regex)} is not a valid regular expression: {why}")
        return problems


def path_problem(path: str) -> str:
    """What makes `path` unusable as a path whatever is on disk, in words ("it is empty",
    "it contains a NUL byte", too long for the filesystem); "" when nothing does. Only the
    text is looked at: whether the folder exists is for the stage that reads it."""
    if not path:
        return "it is empty (write . for the current folder)"
    if "\x00" in path:
        return "it contains a NUL byte, which no path can hold"
    try:
        encoded = os.fsencode(path)
    except UnicodeEncodeError:
        return "it contains a character that no file name can hold (a lone UTF-16 surrogate)"
    if len(encoded) > PATH_MAX_BYTES:
        return f"it is {len(encoded):,} bytes long, and a path can be at most {PATH_MAX_BYTES:,}"
    longest = max(len(part) for part in encoded.split(b"/"))
    if longest > NAME_MAX_BYTES:
        return f"a name in it is {longest:,} bytes long, and a file name can be at most {NAME_MAX_BYTES}"
    return ""


@dataclass(frozen=True)
class FeaturesConfig(Checked):
    """Audio, mel and text-frontend settings of the precompute stage."""

    SECTION = "features"

    sample_rate: int = at_least(1)
    n_fft: int = at_least(1)
    hop_length: int = at_least(1)
    win_length: int = at_least(1)
    n_mels: int = at_least(1)
    fmin: float = at_least(0.0)
    fmax: float = above(0.0)
    log_clamp: float = above(0.0)  # the floor under log(): 0 would let log(0) through
    trim_top_db: float = above(0.0)
    trim_frame_length: int = at_least(1)
    trim_hop_length: int = at_least(1)
    peak_norm: float = between(0.0, 1.0, low_open=True)
    frontend: str = one_of("phonemes", "characters")
    val_share: float = between(0.0, 1.0, high_open=True)  # 1 would leave nothing to train on
    split_salt: str
    chunk_frames: int = at_least(1)
    workers: int = at_least(0, note="0 = all cores")

    def cross_problems(self) -> list[str]:
        # The STFT's window must fit its frame, and consecutive frames must not skip samples.
        problems = []
        if self.win_length > self.n_fft:
            problems.append(f"features.win_length ({self.win_length}) must be <= n_fft ({self.n_fft})")
        if self.hop_length > self.win_length:
            problems.append(f"features.hop_length ({self.hop_length}) must be <= win_length ({self.win_length})")
        if self.fmin >= self.fmax:
            problems.append(f"features.fmin ({self.fmin:g}) must be below fmax ({self.fmax:g})")
        if self.fmax > self.sample_rate / 2:
            problems.append(
                f"features.fmax ({self.fmax:g}) must be <= half the sample rate (Nyquist, {self.sample_rate / 2:g})"
            )
        return problems


def load_params(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    """Read a params file (params.yaml, or the file --params names) as a plain dict, with a
    clear error naming that file when it is absent, malformed, too big once its YAML aliases
    are expanded, or holds a value any stage would refuse (`check_params`): checked before
    any work starts."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: not found; run from the repository root or pass --params")
    loader = _AnchorNamingLoader(p.read_text(encoding="utf-8"))
    try:
        root = loader.get_single_node()
        too_big = _too_big(root, loader.anchor_names) if root is not None else ""
        raw = loader.construct_document(root) if root is not None and not too_big else None
    except yaml.YAMLError as e:
        # PyYAML quotes the file's own text (an undefined alias's name, a tag): cut each line.
        raise ConfigError(
            f"{p}: not valid YAML: " + "\n".join(_clip(line, 2 * SHOWN_CHARS) for line in str(e).splitlines())
        ) from e
    except RecursionError as e:  # PyYAML composes recursively, one call per level of nesting
        raise ConfigError(f"{p}: nested too deeply to read; params nest a few levels") from e
    except ValueError as e:  # a value YAML reads but Python refuses: an integer of 4,301+ digits
        why = str(e).split(";")[0].split(":")[0]  # Python's advice after it is for programmers
        raise ConfigError(f"{p}: a value cannot be read: {_clip(why, 2 * SHOWN_CHARS)}") from e
    finally:
        loader.dispose()
    if too_big:
        raise ConfigError(f"{p}: {too_big}")
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: top level must be a mapping of stage sections")
    with params_from(p):
        check_params(raw)
    return raw


@contextlib.contextmanager
def params_from(source: str | Path) -> Iterator[None]:
    """Say that the params checked inside came from `source`: the file load_params read, or
    the command-line flag that set a value (`--steps`). A ParamsError raised inside names it
    instead of params.yaml; its problems are unchanged."""
    try:
        yield
    except ParamsError as e:
        raise e.naming(source) from None  # the same error, only its source differs


class _AnchorNamingLoader(yaml.SafeLoader):
    """PyYAML's safe loader, also remembering each anchor's name by its node: composing a
    document forgets the names, and a refusal should say which alias repeats too much."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.anchor_names: dict[int, str] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        node = super().compose_node(parent, index)
        if getattr(event, "anchor", None):  # an anchor (&name) or an alias (*name) of this node
            self.anchor_names[id(node)] = event.anchor
        return node


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _expanded_sizes(root: yaml.Node) -> dict[int, int]:
    """How many nodes each node of a composed YAML document stands for once every alias is
    written out, by node id, counted above MAX_PARAMS_VALUES as MAX_PARAMS_VALUES + 1. An
    alias is the node it names, so the graph is a DAG of shared nodes: each is counted once
    and its count reused (9 aliases of 9 aliases cost 18 steps, not 81). A node inside itself
    (`a: &a [*a]`) would expand without end and counts as over."""
    over = MAX_PARAMS_VALUES + 1
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # started, not finished: the path from the root
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:  # depth first, without recursion: the nesting is the file's to choose
        node, finished = stack.pop()
        if finished:
            open_nodes.discard(id(node))
            sizes[id(node)] = min(over, 1 + sum(sizes[id(c)] for c in _children(node)))
        elif id(node) in open_nodes:
            sizes[id(node)] = over  # reached again from inside itself
        elif id(node) not in sizes:
            open_nodes.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))
    return sizes


def _too_big(root: yaml.Node, anchor_names: dict[int, str]) -> str:
    """Why a composed params document is refused before it is built ("" when it is not):
    it expands past MAX_PARAMS_VALUES values. Names the outermost key and alias to blame."""
    sizes = _expanded_sizes(root)
    if sizes[id(root)] <= MAX_PARAMS_VALUES:
        return ""
    keys, node = [], root
    while isinstance(node, yaml.MappingNode):  # down the key whose value is too big, if one is
        big = [(k, v) for k, v in node.value if sizes[id(v)] > MAX_PARAMS_VALUES]
        if not big or id(node) in anchor_names:
            break
        key, node = big[0]
        keys.append(_label(key.value) if isinstance(key, yaml.ScalarNode) else "<a complex key>")
    where = ".".join(keys) or "the file"
    while id(node) not in anchor_names:  # the outermost anchored value that is too big
        inner = [c for c in _children(node) if sizes[id(c)] > MAX_PARAMS_VALUES]
        if not inner:
            break
        node = inner[0]
    alias = f" through the YAML alias *{_clip(anchor_names[id(node)])}" if id(node) in anchor_names else ""
    return (
        f"{where} expands to more than {MAX_PARAMS_VALUES:,} values{alias}; a params file holds a few "
        "hundred: write the value out instead of repeating aliases"
    )


def data_config(params: dict[str, Any]) -> DataConfig:
    """The `data` section as a typed config."""
    return _build(DataConfig, params.get("data", {}), "data")


def features_config(params: dict[str, Any]) -> FeaturesConfig:
    """The `features` section as a typed config."""
    return _build(FeaturesConfig, params.get("features", {}), "features")


@dataclass(frozen=True)
class AlignConfig(Checked):
    """The duration aligner trained inside precompute (model/aligner.py)."""

    SECTION = "align"

    steps: int = at_least(1)
    batch_size: int = at_least(1)
    lr: float = above(0.0)
    hidden: int = at_least(1)
    attn_dim: int = at_least(1)
    temperature: float = above(0.0)
    prior_scaling: float = above(0.0)  # the beta-binomial's shape parameters are this times positions
    blank_logprob: float = at_most(0.0)  # a log-probability
    pause_top_db: float = above(0.0)
    seed: int = at_least(0)
    device: str = device()
    outlier_mad: float = above(0.0)
    drop_flagged: bool
    figures: int = at_least(0, note="0 = none")

    def training_key(self) -> dict[str, Any]:
        """The knobs that change the trained aligner (the rest only change how it is used)."""
        return {
            k: v
            for k, v in dataclasses.asdict(self).items()
            if k not in ("device", "outlier_mad", "drop_flagged", "figures", "pause_top_db")
        }


def align_config(params: dict[str, Any]) -> AlignConfig:
    """The `align` section as a typed config."""
    return _build(AlignConfig, params.get("align", {}), "align")


@dataclass(frozen=True)
class EvalConfig(Checked):
    """The evaluate stage (params.yaml `eval`)."""

    SECTION = "eval"

    checkpoint: str
    utterances: int = at_least(0, note="0 = all of them")
    unseen_utterances: int = at_least(0, note="0 = all of them")
    vocoder_utterances: int = at_least(0, note="0 = all of them")
    batch_size: int = at_least(1)
    device: str = device()
    vocoder: str  # trained | griffin_lim; model/vocoder.py refuses exported files, saying why (they can run code)
    griffin_lim_iters: int = at_least(1)
    length_scale: float = above(0.0)
    mcd_order: int = at_least(1)
    mcd_alpha: float = between(0.0, 1.0, high_open=True)  # an all-pass constant: |alpha| < 1
    mcd_floor_db: float = above(0.0)
    mcd_trim_top_db: float = above(0.0)
    stop_tolerance: float = at_least(0.0)
    recognizer: str = one_of("pocketsphinx", "none")
    speaker_similarity: bool
    similarity_references: int = at_least(1)
    target_val_mel_loss: float = above(0.0)
    curve_smoothing: float = between(0.0, 1.0, low_open=True)  # an EMA weight: 0 would never move
    samples: int = at_least(0, note="0 = none")
    figures: int = at_least(0, note="0 = none")
    sentences: list[str]


def eval_config(params: dict[str, Any]) -> EvalConfig:
    """The `eval` section as a typed config."""
    return _build(EvalConfig, params.get("eval", {}), "eval")


def store_model_config(params: dict[str, Any], attrs: dict[str, Any]) -> ModelConfig:
    """`model_config` with the vocabulary sizes, n_mels and the word separators (the symbols
    that may last 0 frames) of a features store's attributes."""
    symbols = attrs["symbols"]
    return model_config(
        params,
        len(symbols),
        len(attrs["speakers"]),
        len(attrs["languages"]),
        attrs["mel"]["n_mels"],
        tuple(i for i, s in enumerate(symbols) if s == WORD_SEPARATOR),
    )


def model_config(
    params: dict[str, Any],
    n_symbols: int,
    n_speakers: int,
    n_languages: int,
    n_mels: int,
    optional_ids: tuple[int, ...] = (),
) -> ModelConfig:
    """The `model` section, with its size preset expanded, plus the vocabulary sizes that the
    features store knows. Types are checked here (against ModelConfig's annotations, naming
    the params.yaml key); ranges and the heads/d_model rule are ModelConfig's own."""
    raw = params.get("model", {})
    check_keys(raw, PARAM_KEYS, "model")
    sizes, size = raw["sizes"], raw["size"]
    if not isinstance(sizes, dict):
        raise ParamsError([f"`model.sizes` must be a mapping of presets, got {type(sizes).__name__}"])
    if not isinstance(size, str) or size not in sizes:
        raise ParamsError([f"model.size {shown(size)} is not one of {shown(sorted(sizes, key=_label))}"])
    check_keys(sizes[size], SIZE_KEYS, f"model.sizes.{_label(size)}")
    own = {k: raw[k] for k in PARAM_KEYS if k not in ("size", "sizes")}
    values = {**own, **sizes[size]}

    def key(name: str) -> str:
        return f"model.sizes.{_label(size)}.{name}" if name in SIZE_KEYS else f"model.{name}"

    hints = _hints(ModelConfig)
    problems = []
    for name, value in values.items():
        ok, values[name] = accepts(value, hints[name])
        if not ok:
            problems.append(f"{key(name)} must be {expected(hints[name], None)}, got {shown(value)}")
    if problems:
        raise ParamsError(problems)
    try:
        return ModelConfig(
            n_symbols=n_symbols,
            n_speakers=n_speakers,
            n_languages=n_languages,
            n_mels=n_mels,
            optional_ids=optional_ids,
            **values,
        )
    except ValueError as e:
        # ModelConfig says one problem per line, each starting with the field's name and
        # ending with the value as repr writes it (model/ cannot import this module's
        # `shown`): that repr is swapped for `shown`'s, so a huge model.decoder stays short.
        lines = [line.split(" ", 1) for line in str(e).splitlines()]
        raise ParamsError([f"{key(name)} {_shown_tail(rest, values.get(name))}" for name, rest in lines]) from e


def _shown_tail(text: str, value: Any) -> str:
    """`text` with a final `got <repr of value>` written by `shown` instead."""
    written = f"got {value!r}"  # the value passed `accepts`: a number or a string
    return text[: -len(written)] + f"got {shown(value)}" if text.endswith(written) else text


def check_params(params: Any) -> None:
    """Build every section of params.yaml (and the model of every size preset), so that no
    stage starts on params that it, or a later stage, would refuse. Raises one ConfigError
    listing every problem found, one line each, section by section."""
    check_keys(params, SECTIONS, "")
    problems: list[str] = []
    builders = (data_config, features_config, align_config, train_config, vocoder_config, eval_config, lr_find_config)
    for build in builders:
        try:
            build(params)
        except ParamsError as e:
            problems += e.problems
    model = params["model"]
    presets = list(model["sizes"]) if isinstance(model, dict) and isinstance(model.get("sizes"), dict) else []
    seen: set[str] = set()  # the non-preset keys' problems would repeat for every preset
    for size in [None, *presets]:  # None: as configured, so model.size must name a preset
        sized = params if size is None else {**params, "model": {**model, "size": size}}
        try:
            # The store's sizes are unknown before precompute; any valid ones do here.
            model_config(sized, n_symbols=1, n_speakers=1, n_languages=1, n_mels=1)
        except ParamsError as e:
            new = [line for line in e.problems if line not in seen]
            seen.update(new)
            problems += new
    if problems:
        raise ParamsError(problems)


LR_SCHEDULES = ("cosine_restarts", "noam")
# train.freeze: the model's top-level modules (model/tts.py HamgaraTTS).
FREEZABLE = ("encoder", "reference", "duration", "decoder", "postnet")
# train.init_from: base checkpoints live here, a dependency of the train stage in dvc.yaml.
PRETRAINED = "pretrained"


def outside_pretrained(path: str) -> bool:
    """Whether an init_from path is not a file under pretrained/ (relative, without ..)."""
    parts = Path(path).parts
    return Path(path).is_absolute() or len(parts) < 2 or parts[0] != PRETRAINED or ".." in parts


@dataclass(frozen=True)
class TrainConfig(Checked):
    """The train stage (params.yaml `train`): optimizer and schedule, step mechanics, the loop,
    and the loss terms' weights and settings. pipeline/training/ reads every field."""

    SECTION = "train"

    lr: float = above(0.0)
    lr_schedule: str = one_of(*LR_SCHEDULES)
    warmup_steps: int = at_least(0, note="0 = no warm-up")
    restart_period: int = at_least(1)  # a cycle of 0 steps would never end (schedule.cycle_position)
    restart_mult: float = at_least(1.0)  # each cycle this many times longer than the last
    min_lr: float = at_least(0.0)
    plateau_factor: float = between(0.0, 1.0, low_open=True, note="1 = never lower the LR")
    plateau_patience: int = at_least(1)
    grad_clip: float = above(0.0)  # 0 would zero every gradient
    grad_accumulation: int = at_least(1)
    mixed_precision: bool
    batch_size: int = at_least(1)
    speaker_balance: float = share(note="0 = each utterance once per epoch")
    num_workers: int = at_least(0, note="0 = load in the training process")
    val_every: int = at_least(1)
    early_stop_patience: int = at_least(1)
    early_stop_min_delta: float = at_least(0.0)
    convergence_window: int = at_least(2)  # a slope needs two points
    max_steps: int = at_least(1)
    max_nonfinite: int = at_least(1)
    log_every: int = at_least(1)  # steps between the host reads of the device-side step figures
    checkpoint_every: int = at_least(1)
    seed: int = at_least(0)
    device: str = device()
    mel_loss_weight: float = at_least(0.0)
    kl_loss_weight: float = at_least(0.0)
    stop_loss_weight: float = at_least(0.0)
    attention_loss_weight: float = at_least(0.0)
    duration_loss_weight: float = at_least(0.0)
    huber_delta: float | None = above(0.0)  # null = plain L1
    mel_label_smoothing: float = share()
    stop_label_smoothing: float = share()
    stop_pos_weight: float = above(0.0)
    attention_soften: float = at_least(0.0, note="0 = hard path")
    kl_warmup_steps: int = at_least(0, note="0 = full weight from the start")
    adaptive_loss_weights: bool
    adaptive_bound: float = at_least(1.0)  # factors stay in [1/bound, bound]: below 1 that is empty
    adaptive_strength: float = share(note="0 = no rebalancing")
    loss_ema: float = between(0.0, 1.0, low_open=True)  # the newest value's weight: 0 would never move
    scheduled_sampling: float = share(note="0 = plain teacher forcing")
    scheduled_sampling_steps: int = at_least(0, note="0 = the full probability from the start")
    input_noise: float = at_least(0.0, note="0 = off")
    free_running_utterances: int = at_least(0, note="0 = no free-running check at validation")
    init_from: str | None  # null = from scratch
    freeze: list[str]

    def cross_problems(self) -> list[str]:
        problems = []
        # The schedule warms up from min_lr to lr and anneals back: min_lr above lr inverts it.
        # warmup_steps >= max_steps is allowed: a short run may be all warm-up.
        if self.min_lr > self.lr:
            problems.append(f"train.min_lr ({self.min_lr:g}) must be <= lr ({self.lr:g})")
        # dvc.yaml lists pretrained/ as a dependency of train (a null param cannot be one),
        # so a base anywhere else would change without DVC rerunning train.
        if self.init_from is not None and outside_pretrained(self.init_from):
            problems.append(
                f"train.init_from ({shown(self.init_from)}) must be a checkpoint under {PRETRAINED}/, "
                f"which DVC tracks for the train stage: copy it there (cp models/best.pt {PRETRAINED}/base.pt) "
                f"and set train.init_from={PRETRAINED}/base.pt"
            )
        unknown = [m for m in self.freeze if m not in FREEZABLE]
        if unknown or len(set(self.freeze)) < len(self.freeze):
            problems.append(
                f"train.freeze must list distinct modules from {', '.join(FREEZABLE)}, got {shown(self.freeze)}"
            )
        return problems

    def loss_weights(self) -> LossWeights:
        """The fixed weight of each loss term (`train.<term>_loss_weight`)."""
        return LossWeights(**{t: getattr(self, f"{t}_loss_weight") for t in LOSS_TERMS})

    def loss_settings(self, reduction: int) -> LossSettings:
        """How the loss terms are computed; `reduction` is the model's frames per decoder step."""
        return LossSettings(
            huber_delta=self.huber_delta,
            mel_label_smoothing=self.mel_label_smoothing,
            stop_label_smoothing=self.stop_label_smoothing,
            stop_pos_weight=self.stop_pos_weight,
            attention_soften=self.attention_soften,
            reduction=reduction,
        )


def train_config(params: dict[str, Any]) -> TrainConfig:
    """The `train` section as a typed config; an unknown key is an error naming the nearest known one."""
    return _build(TrainConfig, params.get("train", {}), "train")


@dataclass(frozen=True)
class VocoderConfig(Checked):
    """The vocoder stage (params.yaml `vocoder`): the generator's shape, its phase
    reconstruction, and its training. pipeline/vocoding/ reads every field."""

    SECTION = "vocoder"

    dim: int = at_least(1)
    intermediate: int = at_least(1)
    layers: int = at_least(1)
    kernel: int = at_least(1)
    phase_iters: int = at_least(0, note="0 = zero phase: a test of the magnitude alone")
    momentum: float = between(0.0, 1.0, high_open=True)  # 1 would make the accelerated update diverge
    segment_frames: int = at_least(2)  # the phase reconstruction's STFT reflect-pads a segment by (n_fft - hop) / 2
    batch_size: int = at_least(1)
    lr: float = above(0.0)
    warmup_steps: int = at_least(0, note="0 = no warm-up")
    max_steps: int = at_least(1)
    spectral_convergence_weight: float = at_least(0.0)
    grad_clip: float = above(0.0)
    val_every: int = at_least(1)
    samples: int = at_least(0, note="0 = none")
    checkpoint_every: int = at_least(1)
    max_nonfinite: int = at_least(1)
    seed: int = at_least(0)
    device: str = device()
    mixed_precision: bool
    init_from: str | None  # null = from scratch

    def cross_problems(self) -> list[str]:
        problems = []
        if self.kernel % 2 == 0:
            problems.append(
                f"vocoder.kernel ({self.kernel}) must be odd: an even kernel shifts every frame by half a frame"
            )
        # As train.init_from: dvc.yaml lists pretrained/ as a dependency of the vocoder stage.
        if self.init_from is not None and outside_pretrained(self.init_from):
            problems.append(
                f"vocoder.init_from ({shown(self.init_from)}) must be a vocoder checkpoint under {PRETRAINED}/, "
                f"which DVC tracks for the vocoder stage: copy it there (cp models/vocoder.pt {PRETRAINED}/vocoder.pt) "
                f"and set vocoder.init_from={PRETRAINED}/vocoder.pt"
            )
        return problems


def vocoder_config(params: dict[str, Any]) -> VocoderConfig:
    """The `vocoder` section as a typed config."""
    return _build(VocoderConfig, params.get("vocoder", {}), "vocoder")


LR_FIND_RULES = ("min_over", "steepest")


@dataclass(frozen=True)
class LrFindConfig(Checked):
    """`hamgara lr-find`, the LR range test (params.yaml `lr_find`). Only the sweep's own knobs
    live here: the model, batch size, accumulation, clipping and loss come from `model` and
    `train`, so the test is of the run that `train` would make."""

    SECTION = "lr_find"

    start_lr: float = above(0.0)
    end_lr: float = above(0.0)
    steps: int = at_least(3)  # a slope of the smoothed loss needs a few points
    smoothing: float = between(0.0, 1.0, low_open=True)  # the newest loss's EMA weight: 0 would never move
    divergence_factor: float = above(1.0)  # at 1 the first uptick of the loss would end the sweep
    rule: str = one_of(*LR_FIND_RULES)
    min_divisor: float = above(1.0)  # the suggestion sits below the loss's minimum, never above

    def cross_problems(self) -> list[str]:
        if self.start_lr >= self.end_lr:
            return [f"lr_find.start_lr ({self.start_lr:g}) must be below end_lr ({self.end_lr:g})"]
        return []


def lr_find_config(params: dict[str, Any]) -> LrFindConfig:
    """The `lr_find` section as a typed config."""
    return _build(LrFindConfig, params.get("lr_find", {}), "lr_find")
