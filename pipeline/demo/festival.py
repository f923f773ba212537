"""Speech synthesis with festival, one process per batch of utterances.

Festival start-up (loading the lexicon and the voice) costs more than synthesising a short
sentence, so a whole batch goes through one `festival -b` run of a generated Scheme script.
The script also prints festival's own phone and word timings: they are the true alignment of
the audio, which later scores the aligner.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from pipeline.common.stage import RunAborted

# Module attribute rather than a constant inside the functions, so tests can point it elsewhere.
FESTIVAL_EXECUTABLE = "festival"

INSTALL_HINT = "apt-get install festival festvox-us-slt-hts"

# Festival's time stamps are multiples of 5 ms; the saved wave may end a frame later (HTS
# voices: 6 ms), and the diphone voices' residual-excited LPC runs 48-57 ms past the last phone.
DURATION_TOLERANCE = 0.08

# Festival's Scheme has no exceptions a script could catch per utterance, so the script marks
# its output lines and the end of each utterance; anything else on stdout is festival chatter.
_MARK = "HAMGARA"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_SAFE_VOICE = re.compile(r"^[A-Za-z0-9_]+$")


class FestivalError(RunAborted):
    """Festival is missing, lacks the voice, failed, or wrote audio that does not match its timings."""


@dataclass(frozen=True)
class Segment:
    """A labelled stretch of time in seconds."""

    label: str
    start: float
    end: float


@dataclass(frozen=True)
class Timings:
    """Festival's alignment of one utterance: phones (Segment relation) and words (Word relation)."""

    phones: list[Segment]
    words: list[Segment]


def festival_path() -> str:
    """The festival executable, or a FestivalError that says how to install it."""
    path = shutil.which(FESTIVAL_EXECUTABLE)
    if path is None:
        raise FestivalError(
            f"festival ({FESTIVAL_EXECUTABLE!r}) was not found on PATH; the demo corpus is "
            f"synthesized with it. Install it with: {INSTALL_HINT}"
        )
    return path


def scheme_string(text: str) -> str:
    """`text` as a Scheme string literal, quotes included.

    Line breaks and other control characters become spaces: a sentence is one line to the
    synthesizer anyway, and a raw newline inside a literal would break the line-based output.
    """
    flat = "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in text)
    return '"' + flat.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _voice_check(voice: str) -> str:
    # voice.list only lists installed voices; printing a marker lets Python tell a missing
    # voice apart from any other failure and name the package to install.
    return f'(if (not (member \'{voice} (voice.list)))\n  (begin (format t "{_MARK}\\tNOVOICE\\n") (exit 3)))\n'


def _script(items: list[tuple[str, str]], wav_dir: Path, voice: str, sample_rate: int) -> str:
    lines = [_voice_check(voice)]
    for utt_id, text in items:
        wav = scheme_string(str(wav_dir / f"{utt_id}.wav"))
        # Selecting the voice before every utterance keeps each one independent of what the
        # batch synthesized before it, so batching cannot change the audio.
        lines.append(
            f"(voice_{voice})\n"
            f"(set! utt (SynthText {scheme_string(text)}))\n"
            f"(utt.wave.resample utt {int(sample_rate)})\n"
            f"(utt.save.wave utt {wav} 'riff)\n"
            f'(format t "{_MARK}\\tBEGIN\\t%s\\n" {scheme_string(utt_id)})\n'
            '(mapcar (lambda (s) (format t "' + _MARK + '\\tP\\t%s\\t%f\\t%f\\n"'
            ' (item.name s) (item.feat s "segment_start") (item.feat s "end")))'
            " (utt.relation.items utt 'Segment))\n"
            '(mapcar (lambda (w) (format t "' + _MARK + '\\tW\\t%s\\t%f\\t%f\\n"'
            ' (item.name w) (item.feat w "word_start") (item.feat w "word_end")))'
            " (utt.relation.items utt 'Word))\n"
            f'(format t "{_MARK}\\tEND\\t%s\\n" {scheme_string(utt_id)})\n'
        )
    return "".join(lines)


def _parse(stdout: str) -> dict[str, Timings]:
    """Collect the marked lines of festival's stdout into timings per utterance id."""
    result: dict[str, Timings] = {}
    current: str | None = None
    phones: list[Segment] = []
    words: list[Segment] = []
    for line in stdout.splitlines():
        fields = line.split("\t")
        if fields[0] != _MARK or len(fields) < 3:
            continue
        kind = fields[1]
        if kind == "BEGIN":
            current, phones, words = fields[2], [], []
        elif kind == "END" and current == fields[2]:
            result[current] = Timings(phones=phones, words=_fill_empty_words(words))
            current = None
        elif kind in ("P", "W") and current is not None and len(fields) == 5:
            seg = Segment(fields[2], round(float(fields[3]), 6), round(float(fields[4]), 6))
            (phones if kind == "P" else words).append(seg)
    return result


def _fill_empty_words(words: list[Segment]) -> list[Segment]:
    # A word without syllables (festival's "'s" of a possessive) reports 0..0; placing it
    # at the end of the previous word keeps the word list in time order.
    fixed: list[Segment] = []
    for w in words:
        if w.start == 0.0 and w.end == 0.0 and fixed:
            w = Segment(w.label, fixed[-1].end, fixed[-1].end)
        fixed.append(w)
    return fixed


def _check_wav(path: Path, timings: Timings, sample_rate: int) -> None:
    if not path.is_file():
        raise FestivalError(f"festival did not write {path}")
    info = sf.info(str(path))
    if info.channels != 1 or info.samplerate != sample_rate or info.subtype != "PCM_16":
        raise FestivalError(
            f"{path}: expected mono 16-bit PCM at {sample_rate} Hz, got {info.channels} channel(s), "
            f"{info.subtype} at {info.samplerate} Hz"
        )
    if not timings.phones:
        raise FestivalError(f"{path}: festival reported no phones")
    last_end = timings.phones[-1].end
    if abs(info.duration - last_end) > DURATION_TOLERANCE:
        raise FestivalError(
            f"{path}: audio lasts {info.duration:.3f} s but festival's last phone ends at {last_end:.3f} s"
        )


def synthesize_batch(items: list[tuple[str, str]], wav_dir: Path, voice: str, sample_rate: int) -> dict[str, Timings]:
    """Synthesize each (utt_id, text) to `wav_dir/<utt_id>.wav` with one festival process.

    The wavs are mono 16-bit PCM at `sample_rate`. Returns festival's phone and word timings
    (seconds) per utt_id, with festival's own labels (`pau`, `dh`, `ax`, ...). Raises
    FestivalError when festival or the voice is missing, when festival fails (with its
    stderr and the batch's ids), or when a wav does not match its timings.
    """
    if not items:
        return {}
    if not _SAFE_VOICE.match(voice):
        raise FestivalError(f"voice name {voice!r} is not a festival voice name")
    ids = [utt_id for utt_id, _ in items]
    bad = [i for i in ids if not _SAFE_NAME.match(i)]
    if bad:
        raise FestivalError(f"utterance ids must be plain file names, got {bad}")
    if len(set(ids)) != len(ids):
        raise FestivalError(f"utterance ids repeat within the batch: {ids}")
    exe = festival_path()
    wav_dir = Path(wav_dir).resolve()
    wav_dir.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="hamgara-festival-") as tmp:
        script = Path(tmp) / "batch.scm"
        script.write_text(_script(items, wav_dir, voice, sample_rate), encoding="utf-8")
        try:
            proc = subprocess.run(
                [exe, "-b", str(script)],
                capture_output=True,
                text=True,
                errors="replace",
                # Generous: a sentence takes well under a second; a hang must not stall the stage.
                timeout=120 + 30 * len(items),
            )
        except subprocess.TimeoutExpired as e:
            raise FestivalError(f"festival timed out after {e.timeout} s on utterances {ids}") from e

    if f"{_MARK}\tNOVOICE" in proc.stdout:
        raise FestivalError(
            f"festival voice {voice!r} is not installed (festival lists: voice.list). "
            f"Install it with: {INSTALL_HINT}"
            + ("" if voice == "cmu_us_slt_arctic_hts" else f", or the Debian package that provides {voice}")
        )
    timings = _parse(proc.stdout)
    missing = [i for i in ids if i not in timings]
    if proc.returncode != 0 or missing:
        raise FestivalError(
            f"festival failed (exit status {proc.returncode}) on the batch {ids}"
            + (f"; no result for {missing}" if missing else "")
            + f"\nfestival stderr:\n{proc.stderr.strip() or '(empty)'}"
        )
    for utt_id in ids:
        _check_wav(wav_dir / f"{utt_id}.wav", timings[utt_id], sample_rate)
    return {utt_id: timings[utt_id] for utt_id in ids}
