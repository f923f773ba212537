"""Reading an LJSpeech-layout corpus folder into one table of rows.

`metadata.csv` is `id|text|normalized_text`, optionally followed by `|speaker` and
`|language`. Structural problems (the file as a whole cannot be trusted) raise
`MetadataError` naming the file, the line and the fix; row-level problems (an empty text,
a missing wav) are left for the validate stage to reject row by row. A first line that names
the columns (`id|text|normalized_text`) is skipped, and left in the table's attrs for validate
to warn about.

Beside it, an optional `unseen.txt` lists ids (one per line, `#` comments) held out of training
and validation alike: sentences evaluate scores as text the model never had (`wer.unseen`). An
optional `validation.txt`, in the same format, lists ids that go to the validation split
whatever their hash draws: sentences chosen for scoring (the demo's in-grammar test set).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from pipeline.config import NAME_MAX_BYTES, DataConfig, path_problem, shown

AUDIO_SUFFIXES = (".wav", ".flac")

# What spreadsheet exports and other corpora call their first two columns. A first line whose
# first two fields are such names, and whose "id" has no audio file, is a header, not a row.
HEADER_ID_NAMES = frozenset(
    {"id", "utt_id", "utterance_id", "file", "filename", "file_name", "fname", "name", "path", "audio", "wav", "key"}
)
HEADER_TEXT_NAMES = frozenset(
    {"text", "transcript", "transcription", "sentence", "utterance", "raw_text", "normalized_text", "normalized"}
)
# Where read_metadata leaves a skipped header line, in the table's attrs: {"line": n, "text": str}.
HEADER_ATTR = "header"
# A file name holds at most 255 bytes (NAME_MAX of ext4, XFS, btrfs, APFS), and Hamgara names
# files by id with up to 31 bytes around it (an evaluation sample while it is written:
# `.<id>_vocoded_truth.wav.tmp-<pid>`). A longer id could name neither its audio nor its outputs,
# and the filesystem, asked about such a name, raises "File name too long" instead of answering.
MAX_ID_BYTES = NAME_MAX_BYTES - 31
# The corpus's list of held-out ids, beside metadata.csv.
UNSEEN_FILE = "unseen.txt"
# The corpus's list of ids that always validate, beside metadata.csv.
VALIDATION_FILE = "validation.txt"


class MetadataError(ValueError):
    """The metadata file is structurally unusable; the message names file, line and fix."""


def _split_line(path: Path, lineno: int, line: str) -> list[str]:
    fields = line.split("|")
    if len(fields) == 1:
        for name, sep in (("tab", "\t"), ("comma", ","), ("semicolon", ";")):
            if sep in line:
                raise MetadataError(
                    f"{path}:{lineno}: no '|' separator but a {name} is present; LJSpeech metadata is "
                    f"'id|text|normalized_text' - convert the file to '|' separators"
                )
        raise MetadataError(f"{path}:{lineno}: expected 'id|text|normalized_text[|speaker[|language]]', got one field")
    if len(fields) > 5:
        raise MetadataError(
            f"{path}:{lineno}: {len(fields)} fields; expected 2 to 5 "
            "('id|text|normalized_text[|speaker[|language]]'); is there a '|' inside a transcript?"
        )
    return fields


def read_metadata(corpus: str | Path, cfg: DataConfig) -> pd.DataFrame:
    """Parse `<corpus>/metadata.csv` into a table with one row per line.

    Columns: line (1-based), id, id_problem (why the id cannot name a file, or ''; see
    `id_problem`), text, normalized_text (the text itself when the column is empty),
    normalized_given (whether it was not), speaker, language, audio (path of the wav or flac under
    `wavs/`; the .wav path when neither exists, or when the id cannot name a file, which is then
    not looked for). The speaker comes from the
    metadata's 4th column, else from `cfg.speaker_regex` applied to the id, else
    `cfg.default_speaker`; the language from the 5th column, else `cfg.default_language`.
    """
    corpus = Path(corpus)
    path = corpus / "metadata.csv"
    unusable = path_problem(str(corpus))  # first: the filesystem raises on a name too long to ask about
    if unusable or not corpus.is_dir():
        why = (
            f"cannot be used: {unusable}" if unusable else "is a file, not a folder" if corpus.exists() else "not found"
        )
        raise MetadataError(
            f"corpus {shown(str(corpus)) if unusable else repr(str(corpus))} {why}; "
            "set data.corpus in the params file (or validate --corpus)"
        )
    if not path.is_file():
        raise MetadataError(f"{path}: not found; an LJSpeech-layout corpus needs metadata.csv beside wavs/")
    regex = re.compile(cfg.speaker_regex) if cfg.speaker_regex else None
    rows: list[dict[str, object]] = []
    width: int | None = None
    header: dict[str, object] | None = None
    for lineno, line in _lines(path):
        if not rows and header is None and _is_header(corpus, line):
            header = {"line": lineno, "text": line}
            continue
        fields = _split_line(path, lineno, line)
        if width is None:
            width = len(fields)
        elif len(fields) != width:
            raise MetadataError(
                f"{path}:{lineno}: {len(fields)} fields where earlier lines have {width}; "
                "every line needs the same columns"
            )
        rows.append(_row(corpus, lineno, fields, cfg, regex))
    if not rows:
        only = f" (line {header['line']} is a column header, skipped)" if header else ""
        raise MetadataError(f"{path}: no rows{only}; the corpus is empty")
    table = pd.DataFrame(rows)
    if header is not None:
        table.attrs[HEADER_ATTR] = header
    corpus, known = Path(corpus), set(table["id"])
    unseen = listed_ids(corpus / UNSEEN_FILE, known, "to hold out of training")
    validation = listed_ids(corpus / VALIDATION_FILE, known, "to validate on")
    for utt_id, lineno in validation.items():
        if utt_id in unseen:
            raise MetadataError(
                f"{corpus / VALIDATION_FILE}:{lineno}: id {utt_id!r} is also in {UNSEEN_FILE}; a sentence is "
                "either held out (unseen) or validated on, not both"
            )
    table["unseen"] = table["id"].isin(unseen)
    table["validation"] = table["id"].isin(validation)
    return table


def listed_ids(path: Path, known: set[str], purpose: str) -> dict[str, int]:
    """The ids a list beside metadata.csv names (`unseen.txt`, `validation.txt`), each with the
    line it is first on; empty when there is no such file. Blank lines and `#` comments are
    skipped; an id that is not a metadata row raises MetadataError naming the file and line,
    since a mistyped id would silently leave its sentence in the wrong split. `purpose` ends
    that message ("to hold out of training")."""
    if not path.is_file():
        return {}
    ids: dict[str, int] = {}
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        utt_id = raw.split("#", 1)[0].strip()
        if not utt_id:
            continue
        if utt_id not in known:
            raise MetadataError(
                f"{path}:{lineno}: id {utt_id!r} is not in metadata.csv; {path.name} lists ids of metadata rows {purpose}"
            )
        ids.setdefault(utt_id, lineno)
    return ids


def _is_header(corpus: Path, line: str) -> bool:
    """Whether the first line names columns (`id|text|normalized_text`, `file|transcription`, in
    any of the delimiters people export with) rather than holding an utterance: read as a row
    it would be rejected as an utterance with a missing audio file, which misleads."""
    fields = [f.strip() for f in re.split(r"[|,\t;]", line)]
    if len(fields) < 2 or fields[0].lower() not in HEADER_ID_NAMES or fields[1].lower() not in HEADER_TEXT_NAMES:
        return False
    return not any((corpus / "wavs" / f"{fields[0]}{suffix}").is_file() for suffix in AUDIO_SUFFIXES)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, text) of every non-blank line, decoded as UTF-8."""
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]  # a UTF-8 byte-order mark is harmless; drop it
    for lineno, bline in enumerate(raw.split(b"\n"), start=1):
        try:
            line = bline.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as e:
            raise MetadataError(
                f"{path}:{lineno}: not valid UTF-8 (byte {e.start}: {bline[e.start : e.start + 1]!r}); "
                "re-encode the file as UTF-8 (e.g. iconv -f cp1256 -t utf-8)"
            ) from None
        if line.strip():
            yield lineno, line


def id_problem(utt_id: str) -> str:
    """Why `utt_id` cannot name its files (wavs/<id>.wav and what the stages write per id), as a
    phrase that follows "id <id>", or '' when it can."""
    if not utt_id:
        return "is empty"
    if "/" in utt_id or "\\" in utt_id:
        return "contains a path separator"
    size = len(utt_id.encode("utf-8"))
    if size > MAX_ID_BYTES:
        return (
            f"is {size} bytes long: too long to name a file (at most {MAX_ID_BYTES} bytes, "
            "to leave room for the suffixes of the files named after it)"
        )
    return ""


def _row(
    corpus: Path, lineno: int, fields: list[str], cfg: DataConfig, regex: re.Pattern[str] | None
) -> dict[str, object]:
    """One metadata line as a table row, with its speaker, language and audio path resolved."""
    utt_id = fields[0].strip()
    text = fields[1]
    # An empty normalized_text column means "say the text": validate spells its numbers and
    # abbreviations out (model.textnorm) and lists what it became; a given one is kept as is.
    normalized_given = len(fields) > 2 and bool(fields[2].strip())
    normalized = fields[2] if normalized_given else text
    if len(fields) > 3 and fields[3].strip():
        speaker = fields[3].strip()
    elif regex is not None:
        m = regex.search(utt_id)
        if m is None:
            raise MetadataError(
                f"{corpus / 'metadata.csv'}:{lineno}: id {utt_id!r} does not match data.speaker_regex "
                f"{cfg.speaker_regex!r}"
            )
        speaker = m.group(1) if m.groups() else m.group(0)
    else:
        speaker = cfg.default_speaker
    language = fields[4].strip() if len(fields) > 4 and fields[4].strip() else cfg.default_language
    problem = id_problem(utt_id)
    return {
        "line": lineno,
        "id": utt_id,
        "id_problem": problem,
        "text": text,
        "normalized_text": normalized,
        "normalized_given": normalized_given,
        "speaker": speaker,
        "language": language,
        "audio": str(_audio_path(corpus, utt_id, looked_for=not problem)),
    }


def _audio_path(corpus: Path, utt_id: str, looked_for: bool) -> Path:
    """The row's audio file: the first of its suffixes that is a file, else the .wav path.
    `looked_for` False skips the search (an id that cannot name a file: probing it would raise)."""
    for suffix in AUDIO_SUFFIXES if looked_for else ():
        candidate = corpus / "wavs" / f"{utt_id}{suffix}"
        if candidate.is_file():
            return candidate
    return corpus / "wavs" / f"{utt_id}.wav"
