"""`python -m pipeline.common.params_doc`: write docs/params.md, the reference of every params.yaml key.

The page is made, never written by hand, so it cannot drift from what it documents:
- each key's default is its value in params.yaml, as written there;
- what a key may be ("allowed") is its typed config's own words: for a section config of
  pipeline/config.py, `expected(type, limit)` of the field, the text a refusal of a bad value
  says; for the model (model/config.py ModelConfig checks its values in code, declaring no
  Limit), what ModelConfig says when it refuses a value out of its range;
- each key's meaning is its comment in params.yaml: the comment lines just above the key and
  the comment on its line, joined. A comment block followed by a blank line is not about one
  key: right under a section's name (or just above it) it introduces the section; elsewhere
  it introduces the keys after it, and is a row of its own in the table. The `model.sizes`
  presets share one table, whose keys' meanings are the `#   key: meaning` lines of the
  comment above `sizes:`.

A key without a meaning, or a comment that belongs to no key, is refused (exit 2), naming the
key or the line. With --check nothing is written: the page is compared with what it should be,
and a difference is the negative verdict (exit 4), naming the keys whose rows differ. Which
params file is documented: the one --params names (params.yaml by default), the file a
developer edits; the test (tests/test_params_doc.py) compares the page with what this module
makes from the committed params.yaml.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import re
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from model.config import ModelConfig
from pipeline import config as cfg
from pipeline.common.atomic import write_text
from pipeline.common.stage import EXIT_VERDICT, run_stage

COMMAND = "python -m pipeline.common.params_doc"
DOC = Path("docs/params.md")

# The size presets: a mapping of preset names, each a mapping of the same keys, shown as one table.
PRESETS = "model.sizes"
# The model section: checked by ModelConfig (through cfg.model_config), not by a Checked config.
MODEL = "model"

# How many lines of a unified diff --check prints before it only counts the rest.
_SHOWN_DIFF_LINES = 60


@dataclass
class Row:
    """One key of params.yaml: its dotted name, its default as written, what it may be, and its meaning."""

    key: str
    default: str
    allowed: str
    meaning: str


@dataclass
class Note:
    """A comment that introduces the keys after it (a group of a section's keys)."""

    text: str


@dataclass
class Section:
    """A mapping of params.yaml: its dotted name, its introduction, its keys (and notes) in
    file order, its nested sections, and, for model.sizes, the presets."""

    key: str
    intro: list[str] = field(default_factory=list)
    rows: list[Row | Note] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    presets: list[str] = field(default_factory=list)
    preset_rows: list[tuple[str, list[str], str, str]] = field(default_factory=list)  # key, defaults, allowed, meaning


# --- what each key may be -------------------------------------------------------------------------


def checked_configs() -> dict[str, type]:
    """Every section config of pipeline/config.py by the dotted section it reads (`data.demo`)."""
    return {c.SECTION: c for c in cfg.Checked.__subclasses__() if c.__module__ == cfg.__name__}  # type: ignore[attr-defined]


def section_allowed(config: type) -> dict[str, str]:
    """What each field of a section config may be, as its refusal says it: `a number > 0`."""
    hints = typing.get_type_hints(config)
    return {
        f.name: cfg.expected(hints[f.name], f.metadata.get("limit"))
        for f in dataclasses.fields(config)
        if "section" not in f.metadata
    }


def model_allowed(params: dict[str, Any]) -> dict[str, str]:
    """What each ModelConfig field that params.yaml sets may be, in ModelConfig's own words: the
    text after "must be" when it refuses a value far out of range (-1e9, then 1e9; "x" for text),
    else the type as model_config's type check says it. Probed from the configured model."""
    base = cfg.model_config(params, n_symbols=1, n_speakers=1, n_languages=1, n_mels=1)
    hints = typing.get_type_hints(ModelConfig)
    probes: dict[Any, tuple[Any, ...]] = {int: (-(10**9), 10**9), float: (-1e9, 1e9), str: ("x",)}
    out = {}
    for f in dataclasses.fields(ModelConfig):
        said = ""
        for probe in probes.get(hints[f.name], ()):
            try:
                dataclasses.replace(base, **{f.name: probe})
            except ValueError as e:
                lines = [line for line in str(e).splitlines() if line.startswith(f"{f.name} must be ")]
                if lines:
                    said = lines[0][len(f"{f.name} must be ") :].rsplit(", got ", 1)[0]
                    break
        out[f.name] = said or cfg.expected(hints[f.name], None)
    return out


# --- params.yaml's text: values as written, comments -----------------------------------------------


def _comment_text(line: str) -> str:
    """A full-line comment without its `#` and the one space after it (deeper indentation kept)."""
    text = line.strip()[1:]
    return text[1:] if text.startswith(" ") else text


def _written(node: yaml.Node) -> str:
    """A value as params.yaml writes it: a scalar as typed (quotes kept), a list on one line."""
    if isinstance(node, yaml.SequenceNode):
        return "[" + ", ".join(_written(n) for n in node.value) + "]"
    if isinstance(node, yaml.MappingNode):
        return "{" + ", ".join(f"{_written(k)}: {_written(v)}" for k, v in node.value) + "}"
    if node.style in ("'", '"'):
        return node.style + node.value + node.style
    return node.value if node.value != "" else "null"


class _Reader:
    """params.yaml's text read into Sections: the composed YAML gives each key's line and its
    value's extent, the lines give the comments."""

    def __init__(self, text: str, source: str) -> None:
        self.lines = text.splitlines()
        self.source = source
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if not isinstance(root, yaml.MappingNode):
            raise cfg.ConfigError(f"{source}: top level must be a mapping of stage sections")
        self.root = root
        # line -> (dotted key, key node, value node), for every key the page shows or walks into
        self.keys: dict[int, tuple[str, yaml.Node, yaml.Node]] = {}
        self._index(root, "")
        self.attached: dict[int, list[str]] = {}  # key line -> the comment lines just above it
        self.notes: dict[int, list[list[str]]] = {}  # key line -> detached comment blocks before it
        self.page_intro: list[str] = []
        self._read_comments()

    def _index(self, node: yaml.MappingNode, prefix: str) -> None:
        for k, v in node.value:
            dotted = f"{prefix}{k.value}"
            self.keys.setdefault(k.start_mark.line, (dotted, k, v))
            if isinstance(v, yaml.MappingNode):
                if dotted != PRESETS:
                    self._index(v, f"{dotted}.")
                else:  # a preset's name may carry a comment; its keys are one line of values
                    for pk, pv in v.value:
                        self.keys.setdefault(pk.start_mark.line, (f"{dotted}.{pk.value}", pk, pv))

    def _is_comment(self, i: int) -> bool:
        return self.lines[i].lstrip().startswith("#")

    def _read_comments(self) -> None:
        i, first_key = 0, min(self.keys)
        while i < len(self.lines):
            if not self._is_comment(i):
                i += 1
                continue
            start = i
            while i < len(self.lines) and self._is_comment(i):
                i += 1
            block = [_comment_text(line) for line in self.lines[start:i]]
            if i in self.keys:  # the block touches a key: it is about that key
                self.attached[i] = block
            elif i < len(self.lines) and self.lines[i].strip():
                raise ValueError(
                    f"{self.source}:{start + 1}: this comment is inside a value, where it documents no key; "
                    "move it above the key (a key's meaning is its comment on its line or just above it)"
                )
            elif i <= first_key:
                self.page_intro += block
            else:
                after = [line for line in self.keys if line > i]
                if not after:
                    raise ValueError(
                        f"{self.source}:{start + 1}: this comment is after the last key and documents none; "
                        "remove it or move it above the key it is about"
                    )
                self.notes.setdefault(min(after), []).append(block)

    def inline(self, line: int, key: yaml.Node, value: yaml.Node) -> str:
        """The comment on a key's own line: after its value when the value is on that line, else
        after the key (a `#` after a blank starts a comment; no anchor, tag or alias holds one)."""
        on_line = value.start_mark.line == line and value.end_mark.line == line
        rest = self.lines[line][(value if on_line else key).end_mark.column :]
        comment = re.search(r"(?:^|\s)#(.*)$", rest)
        return comment[1].strip() if comment else ""

    def meaning(self, line: int, key: yaml.Node, value: yaml.Node) -> list[str]:
        """The comment lines just above a key, then the comment on its line."""
        return [*self.attached.get(line, []), self.inline(line, key, value)]


def _at(params: dict[str, Any], dotted: str) -> Any:
    """The value at a dotted key of the params."""
    node: Any = params
    for part in dotted.split("."):
        node = node[part]
    return node


def _join(lines: list[str]) -> str:
    return " ".join(line.strip() for line in lines if line.strip())


def read(text: str, source: str = cfg.PARAMS_FILE) -> tuple[list[str], list[Section]]:
    """params.yaml's text as the page's parts: the page's introduction and its sections. The
    params are checked first (check_params): the page documents only params a stage accepts."""
    params = yaml.safe_load(text)
    with cfg.params_from(source):
        cfg.check_params(params)
    reader = _Reader(text, source)
    configs = checked_configs()
    allowed = {f"{s}.{name}": said for s, c in configs.items() for name, said in section_allowed(c).items()}
    allowed |= {f"{MODEL}.{name}": said for name, said in model_allowed(params).items()}
    presets = list(_at(params, PRESETS))
    allowed[f"{MODEL}.size"] = f"one of {', '.join(presets)} (a preset of {PRESETS})"

    missing: list[str] = []

    def section(dotted: str, key_node: yaml.Node, node: yaml.MappingNode, notes: list[str]) -> Section:
        """A section from its mapping; `notes` are the blocks that stand just above its name."""
        line = key_node.start_mark.line
        out = Section(dotted, intro=[*notes, _join(reader.meaning(line, key_node, node))])
        for i, (k, v) in enumerate(node.value):
            child, child_line = f"{dotted}.{k.value}", k.start_mark.line
            blocks = [_join(b) for b in reader.notes.get(child_line, [])]
            if i == 0:  # the blocks under the section's name introduce the section
                out.intro += blocks
                blocks = []
            if isinstance(v, yaml.MappingNode) and child != PRESETS:
                out.sections.append(section(child, k, v, blocks))
                continue
            if child == PRESETS:
                out.sections.append(presets_section(child, k, v, blocks))
                continue
            out.rows += [Note(b) for b in blocks]
            meaning = _join(reader.meaning(child_line, k, v))
            if not meaning:
                missing.append(f"{child} (line {child_line + 1})")
            out.rows.append(Row(child, _written(v), allowed[child], meaning))
        out.intro = [p for p in out.intro if p]
        return out

    def presets_section(dotted: str, key_node: yaml.Node, node: yaml.MappingNode, notes: list[str]) -> Section:
        """The presets' table: their keys' meanings are `#   key: meaning` lines above the name."""
        line = key_node.start_mark.line
        out = Section(dotted, presets=[k.value for k, _ in node.value])
        names = [k.value for k, _ in node.value[0][1].value]
        meanings: dict[str, list[str]] = {}
        current: list[str] | None = None
        for comment in reader.meaning(line, key_node, node):
            item = re.fullmatch(r"\s+(\w+): (.+)", comment)
            if item and item[1] in names:
                current = meanings.setdefault(item[1], [])
                current.append(item[2])
            elif current is not None and comment.startswith("    "):
                current.append(comment)  # a deeper-indented line continues the item above
            else:
                current = None
                out.intro.append(comment)
        out.intro = [p for p in [*notes, _join(out.intro)] if p]
        for preset_key, preset in node.value:  # a preset's own comment, on its line or above it
            said = _join(reader.meaning(preset_key.start_mark.line, preset_key, preset))
            if said:
                out.intro.append(f"`{preset_key.value}`: {said}")
        values = {k.value: {kk.value: _written(vv) for kk, vv in v.value} for k, v in node.value}
        for name in names:
            meaning = _join(meanings.get(name, []))
            if not meaning:
                missing.append(f"{dotted}.<preset>.{name} (a `#   {name}: ...` line in the comment above sizes:)")
            defaults = [values[p][name] for p in out.presets]
            out.preset_rows.append((name, defaults, allowed[f"{MODEL}.{name}"], meaning))
        return out

    sections = [
        section(k.value, k, v, [_join(b) for b in reader.notes.get(k.start_mark.line, [])])
        for k, v in reader.root.value
    ]
    if missing:
        raise ValueError(
            f"{source}: key(s) without a meaning: {'; '.join(missing)}. Write what each means as a comment "
            "on its line or just above it"
        )
    return reader.page_intro, sections


# --- the page -------------------------------------------------------------------------------------


def _escape(text: str) -> str:
    """Text for a markdown table cell: `|` escaped everywhere; outside code spans, `*` and a
    `<` that would open an HTML tag (`<id>`) escaped too."""
    parts = re.split(r"(`[^`]*`)", text)
    for i, part in enumerate(parts):
        if i % 2 == 0:
            part = re.sub(r"<(?=[A-Za-z/!?])", "&lt;", part.replace("*", r"\*"))
        parts[i] = part.replace("|", r"\|")
    return "".join(parts)


def _code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}".replace("|", r"\|")


def _render_section(s: Section, depth: int) -> list[str]:
    out = [f"{'#' * depth} `{s.key}`", ""]
    for paragraph in s.intro:
        out += [_escape(paragraph), ""]
    if s.presets:
        out += [
            f"| key under `{s.key}.<preset>` | " + " | ".join(f"`{p}`" for p in s.presets) + " | allowed | meaning |",
            "|---|" + "---:|" * len(s.presets) + "---|---|",
        ]
        for name, defaults, allowed, meaning in s.preset_rows:
            cells = [_code(name), *(_code(d) for d in defaults), _escape(allowed), _escape(meaning)]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    elif s.rows:
        out += ["| key | default | allowed | meaning |", "|---|---|---|---|"]
        for row in s.rows:
            if isinstance(row, Note):
                out.append(f"| | | | *{_escape(row.text)}* |")
            else:
                out.append(
                    f"| {_code(row.key)} | {_code(row.default)} | {_escape(row.allowed)} | {_escape(row.meaning)} |"
                )
        out.append("")
    for sub in s.sections:
        out += _render_section(sub, depth + 1)
    return out


def render(text: str, source: str = cfg.PARAMS_FILE) -> str:
    """docs/params.md for the params file whose text is `text` (named `source` in errors)."""
    intro, sections = read(text, source)
    out = [
        "# params.yaml, key by key",
        "",
        f"Written by `{COMMAND}` from [params.yaml](../params.yaml) and the typed configs of "
        "[pipeline/config.py](../pipeline/config.py); do not edit it by hand. *default* is the value in "
        "params.yaml, *allowed* what the key's config accepts (a value outside it is refused when the params "
        "are loaded, before any stage starts, with a message naming the key), *meaning* the key's comment in "
        "params.yaml. Rules that relate two keys (a window no longer than its FFT, `min_lr <= lr`, ...) are "
        "checked at load as well. To change this page, change params.yaml's comments or the configs and rerun "
        f"`{COMMAND}`; tests/test_params_doc.py fails while the page is out of date.",
        "",
    ]
    if intro:
        out += [_escape(_join(intro)), ""]
    for s in sections:
        out += _render_section(s, 2)
    return "\n".join(out).rstrip("\n") + "\n"


# --- comparing ------------------------------------------------------------------------------------


def row_keys(page: str) -> dict[str, str]:
    """Each dotted key of a page with its table row (a preset table's row stands for the key
    in every preset: `model.sizes.tiny.d_model`, ...)."""
    rows: dict[str, str] = {}
    presets: list[str] = []
    prefix = ""
    for line in page.splitlines():
        header = re.match(r"\| key under `([\w.]+)\.<preset>` \| (.*) \| allowed \| meaning \|$", line)
        if header:
            prefix, presets = header[1], re.findall(r"`([^`]+)`", header[2])
            continue
        if line.startswith("| key |"):
            presets = []
        row = re.match(r"\| `([^`]+)` \|", line)
        if row:
            for key in [f"{prefix}.{p}.{row[1]}" for p in presets] or [row[1]]:
                rows[key] = line
    return rows


def difference(old: str | None, new: str, doc: Path | str = DOC) -> str:
    """ "" when the page `old` is `new`; else what differs, in words: the keys whose rows differ,
    and a unified diff (cut after a few dozen lines), with the command that rewrites the page."""
    if old == new:
        return ""
    if old is None:
        return f"{doc} does not exist: run `{COMMAND}` to write it"
    before, after = row_keys(old), row_keys(new)
    keys = [k for k in {**before, **after} if before.get(k) != after.get(k)]
    what = f"the rows of {', '.join(keys)} differ" if keys else "its text around the tables differs"
    diff = list(
        difflib.unified_diff(old.splitlines(), new.splitlines(), f"{doc} (as it is)", f"{doc} (as made)", lineterm="")
    )
    if len(diff) > _SHOWN_DIFF_LINES:
        diff = diff[:_SHOWN_DIFF_LINES] + [f"... ({len(diff) - _SHOWN_DIFF_LINES:,} more diff lines)"]
    return f"{doc} is out of date: {what}; run `{COMMAND}` to rewrite it\n" + "\n".join(diff)


# --- the command ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Write docs/params.md from the params file, or with --check say whether it is up to date."""
    ap = argparse.ArgumentParser(
        prog=COMMAND,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--params", default=cfg.PARAMS_FILE, help="params file to document (default: params.yaml)")
    ap.add_argument("--out", default=str(DOC), help=f"the page to write or check (default: {DOC})")
    ap.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 4 naming the keys whose rows differ when the page is out of date, 0 when it is not",
    )
    args = ap.parse_args(argv)

    def work() -> int:
        cfg.load_params(args.params)  # the file-level checks (aliases, YAML errors) before reading it again
        page = render(Path(args.params).read_text(encoding="utf-8"), args.params)
        out = Path(args.out)
        old = out.read_text(encoding="utf-8") if out.is_file() else None
        if args.check:
            said = difference(old, page, out)
            if said:
                print(f"params-doc: {said}", file=sys.stderr)
                return EXIT_VERDICT
            print(f"{out} is up to date with {args.params}")
            return 0
        if old == page:
            print(f"{out} is up to date with {args.params}")
            return 0
        write_text(out, page)
        print(f"wrote {out}: {len(row_keys(page))} keys of {args.params}")
        return 0

    return run_stage("params-doc", work)


if __name__ == "__main__":
    sys.exit(main())
