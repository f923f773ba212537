"""reports/index.html: one evaluation on one page — the headline figures of eval.json, the
figures evaluate drew and a player for every sample, grouped per utterance. The unseen
sentences (eval.json `unseen`, `wer.unseen`), when the store has them, get their own section
of figures beside the validation set's, and their samples a group of their own.

The page is self-contained: inline CSS, no script, nothing fetched from elsewhere. Images and
audio are links relative to the page (`figures/eval/...`, `samples/...`), so it opens straight
from the file system (`file://`) or from any static server of the reports folder, and keeps
working when the folder is copied elsewhere. Every text that comes from data (ids, texts, what
the recognizer heard, file names) is escaped.

`report_page` builds the HTML from a `PageContent` and touches no file; `collect_content` reads
what evaluate left in the reports folder; `write_page` does both and writes the page atomically.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pipeline.common.atomic import write_text
from pipeline.evaluation.free_running import STOP_OUTCOMES

PAGE = "index.html"
SAMPLES = "samples"
FIGURES = "figures/eval"

# The vocoders evaluate compares (eval.json `vocoder.<name>`); a name eval.json adds is found too.
VOCODERS = ("griffin_lim", "trained")
VOCODER_NAMES = {"griffin_lim": "Griffin-Lim", "trained": "trained vocoder"}
HELD_BACK = re.compile(r"held_back_(\d+)\.wav")

# An utterance's files are `<id>_<kind>.wav` (report.py's write_samples); shown in this order,
# the order a listener compares them in: the recording, the vocoder alone on its mel, the model.
BASE_KINDS = ("truth", "vocoded_truth", "synthesized")

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; } h3 { margin-bottom: 0.3em; }
table { border-collapse: collapse; margin: 0.5em 0; } th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f3f3f3; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.cards { display: flex; flex-wrap: wrap; gap: 0.8em; margin: 1em 0; }
.card { border: 1px solid #ccc; border-radius: 6px; padding: 0.6em 1em; min-width: 9em; }
.card .value { font-size: 1.5em; font-weight: bold; } .card .name { color: #555; font-size: 0.9em; }
.utterance { border: 1px solid #ddd; border-radius: 6px; padding: 0.5em 1em; margin: 1em 0; }
.players { display: grid; grid-template-columns: repeat(auto-fill, minmax(20em, 1fr)); gap: 0.6em; }
.player { display: flex; flex-direction: column; gap: 0.2em; } audio { width: 100%; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption, .note { color: #555; font-size: 0.9em; } .missing { color: #a33; }
code { background: #f3f3f3; padding: 0 0.2em; }
"""


@dataclass(frozen=True)
class Media:
    """One audio file or image: its address relative to the page, and what it is."""

    src: str
    label: str


@dataclass(frozen=True)
class UtteranceSamples:
    """The players of one evaluated utterance, in listening order, with its text, what the
    recognizer heard of the synthesis (None without a recognizer) and whether it is one of the
    unseen sentences (its row's `set`) rather than a validation utterance."""

    id: str
    text: str | None
    heard: str | None
    players: tuple[Media, ...]
    unseen: bool = False


@dataclass(frozen=True)
class PageContent:
    """Everything the page shows. A folder that does not exist is None (the page says so); an
    empty one is an empty list."""

    metrics: dict[str, Any]
    checkpoint: str | None = None
    utterances: list[UtteranceSamples] | None = None
    held_back: list[Media] | None = None
    other_samples: tuple[Media, ...] = ()
    figures: list[Media] | None = None


# --- reading the reports folder -------------------------------------------------------------------


def vocoder_name(name: str) -> str:
    """How a vocoder is called on the page."""
    return VOCODER_NAMES.get(name, name)


def sample_kinds(metrics: dict[str, Any]) -> dict[str, str]:
    """Every kind of utterance sample evaluate writes, in listening order, with its label: the
    three of the vocoder the evaluation heard, then copy synthesis and synthesis through each
    other vocoder compared (`<kind>_<vocoder>`)."""
    compared = metrics.get("vocoder") or {}
    used = compared.get("used")
    heard_through = f" ({vocoder_name(used)})" if used else ""
    kinds = {
        "truth": "recording",
        "vocoded_truth": f"vocoded recording{heard_through}",
        "synthesized": f"synthesized{heard_through}",
    }
    others = [n for n in (*VOCODERS, *compared) if n != "used" and n != used]
    for name in dict.fromkeys(others):
        kinds[f"vocoded_truth_{name}"] = f"vocoded recording ({vocoder_name(name)})"
        kinds[f"synthesized_{name}"] = f"synthesized ({vocoder_name(name)})"
    return kinds


def split_sample_name(stem: str, ids: Sequence[str], kinds: Iterable[str]) -> tuple[str, str] | None:
    """(utterance id, kind) of a sample file's stem, or None when it is no utterance sample.

    Ids may contain underscores and end like a kind (`a_vocoded` + `truth` and `a` +
    `vocoded_truth` are both `a_vocoded_truth`), so the known ids decide first, the longest
    first; a file of an id not among them is split at the longest kind it ends with."""
    kinds = sorted(kinds, key=len, reverse=True)
    for utt_id in sorted(ids, key=len, reverse=True):
        if stem.startswith(f"{utt_id}_") and stem[len(utt_id) + 1 :] in kinds:
            return utt_id, stem[len(utt_id) + 1 :]
    for kind in kinds:
        if stem.endswith(f"_{kind}") and len(stem) > len(kind) + 1:
            return stem[: -len(kind) - 1], kind
    return None


def _src(folder: str, name: str) -> str:
    # Percent-encoded, so that an id with `#`, `?` or a space still names its file.
    return quote(f"{folder}/{name}")


def collect_samples(
    folder: Path, metrics: dict[str, Any], rows: Sequence[dict[str, Any]], held_back_texts: Sequence[str]
) -> tuple[list[UtteranceSamples], list[Media], tuple[Media, ...]] | None:
    """The wav files of reports/samples/ as (utterances, held-back sentences, any other file),
    or None when the folder does not exist. `rows` (eval_utterances' rows) give each id its
    text and what was heard; `held_back_texts` are eval.sentences in the order written."""
    if not folder.is_dir():
        return None
    kinds = sample_kinds(metrics)
    by_id = {str(r["id"]): r for r in rows if "id" in r}
    grouped: dict[str, dict[str, Media]] = {}
    held_back: list[tuple[int, Media]] = []
    other: list[Media] = []
    for path in sorted(folder.glob("*.wav")):
        src = _src(SAMPLES, path.name)
        held = HELD_BACK.fullmatch(path.name)
        split = None if held else split_sample_name(path.stem, list(by_id), kinds)
        if held:
            k = int(held[1])
            text = held_back_texts[k - 1] if 0 < k <= len(held_back_texts) else path.name
            held_back.append((k, Media(src, text)))
        elif split:
            utt_id, kind = split
            grouped.setdefault(utt_id, {})[kind] = Media(src, kinds[kind])
        else:
            other.append(Media(src, path.name))
    order = list(kinds)
    utterances = []
    for utt_id in sorted(grouped):
        row = by_id.get(utt_id, {})
        players = tuple(grouped[utt_id][k] for k in sorted(grouped[utt_id], key=order.index))
        utterances.append(
            UtteranceSamples(utt_id, row.get("text"), row.get("heard_synthesized"), players, row.get("set") == "unseen")
        )
    return utterances, [m for _, m in sorted(held_back, key=lambda x: x[0])], tuple(other)


def figure_caption(name: str) -> str:
    """What an evaluation figure shows, from its file name (report.py's write_figures)."""
    stem = name.removesuffix(".png")
    if stem.endswith("_mel"):
        return f"{stem.removesuffix('_mel')}: recorded and free-running synthesized mel"
    if stem.endswith("_attention"):
        return f"{stem.removesuffix('_attention')}: teacher-forced attention, with the duration path (cyan)"
    return stem


def collect_figures(folder: Path) -> list[Media] | None:
    """The png files of reports/figures/eval/, or None when the folder does not exist."""
    if not folder.is_dir():
        return None
    return [Media(_src(FIGURES, p.name), figure_caption(p.name)) for p in sorted(folder.glob("*.png"))]


def collect_content(
    reports: Path,
    metrics: dict[str, Any],
    rows: Sequence[dict[str, Any]] = (),
    held_back_texts: Sequence[str] = (),
    checkpoint: str | None = None,
) -> PageContent:
    """What the page of the reports folder `reports` shows: `metrics` (eval.json's content)
    and the samples and figures evaluate wrote there."""
    samples = collect_samples(reports / SAMPLES, metrics, rows, held_back_texts)
    utterances, held_back, other = samples if samples is not None else (None, None, ())
    return PageContent(metrics, checkpoint, utterances, held_back, other, collect_figures(reports / FIGURES))


def write_page(
    reports: Path,
    metrics: dict[str, Any],
    rows: Sequence[dict[str, Any]] = (),
    held_back_texts: Sequence[str] = (),
    checkpoint: str | None = None,
) -> Path:
    """Write reports/index.html (atomically) for what evaluate left in `reports`; returns its path."""
    path = reports / PAGE
    write_text(path, report_page(collect_content(reports, metrics, rows, held_back_texts, checkpoint)))
    return path


# --- the HTML -------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any, digits: int = 3, unit: str = "") -> str:
    """A number as the page shows it; – for a measure this run does not have."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "–"
    return f"{value:.{digits}f}{unit}" if isinstance(value, float) else f"{value}{unit}"


def _get(tree: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def stop_rate(metrics: dict[str, Any]) -> float | None:
    """The share of utterances whose stop token fired on time (autoregressive decoder), or None."""
    stop = metrics.get("stop")
    total = sum(stop.values()) if isinstance(stop, dict) else 0
    return stop.get("on_time", 0) / total if total else None


def headline_cards(m: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, value) of the few figures a reader looks at first."""
    cards = [
        ("MCD-DTW, model", _num(_get(m, "mcd", "model"), 2, " dB")),
        ("MCD-DTW, vocoder ceiling", _num(_get(m, "mcd", "vocoder_ceiling"), 2, " dB")),
    ]
    if "wer" in m:
        cards += [("WER synthesized", _num(_get(m, "wer", "synthesized"))), ("WER gap", _num(_get(m, "wer", "gap")))]
    if stop_rate(m) is not None:
        cards.append(("stop on time", f"{stop_rate(m):.0%}"))
    cards.append(("val_mel_loss", _num(m.get("val_mel_loss"))))
    return cards


def headline_rows(m: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(measure, value, meaning) of every headline figure eval.json has, as in summary.md."""
    rows = [
        ("val_mel_loss", _num(m.get("val_mel_loss")), "teacher-forced L1 on normalized mels (training's curve)"),
        ("MCD-DTW, model", _num(_get(m, "mcd", "model"), 2, " dB"), "synthesized vs recording"),
        (
            "MCD-DTW, vocoder ceiling",
            _num(_get(m, "mcd", "vocoder_ceiling"), 2, " dB"),
            "vocoder on the recording's mel",
        ),
        (
            "MCD, model's share",
            _num(_get(m, "mcd", "model_share"), 2, " dB"),
            "what a better acoustic model could remove",
        ),
        ("length ratio error", _num(m.get("length_ratio_error")), "mean abs(synthesized / recorded length - 1)"),
        (
            "duration error",
            _num(m.get("duration_mae_frames"), 2, " frames"),
            "predicted vs aligner durations, per token",
        ),
    ]
    if "alignment_error" in m:
        rows.append(("attention alignment error", _num(m["alignment_error"], 3, " tokens"), "attention vs durations"))
    stop = m.get("stop")
    if isinstance(stop, dict):
        counts = ", ".join(f"{stop.get(k, 0)} {k.replace('_', ' ')}" for k in ("on_time", "early", "late", "never"))
        rate = stop_rate(m)
        rows.append(
            ("stop token", f"{rate:.0%} on time ({counts})" if rate is not None else counts, "vs recorded length")
        )
    wer = m.get("wer")
    if isinstance(wer, dict):
        rows += [
            ("WER synthesized", _num(wer.get("synthesized")), "the recognizer on the synthesized audio"),
            ("WER vocoded truth", _num(wer.get("vocoded_truth")), "... on the vocoder's copy of the recording"),
            ("WER truth", _num(wer.get("truth")), "... on the recordings (the recognizer's own floor)"),
            ("WER gap", _num(wer.get("gap")), "synthesized minus vocoded truth"),
        ]
        unseen = wer.get("unseen")
        if isinstance(unseen, dict):
            rows.append(
                (
                    "WER gap, unseen sentences",
                    _num(unseen.get("gap")),
                    "the same gap on text whose words training never had (see Unseen sentences)",
                )
            )
        if "held_back" in wer:
            rows.append(("WER held-back sentences", _num(wer["held_back"]), "sentences from no corpus"))
    similarity = m.get("speaker_similarity")
    if isinstance(similarity, dict):
        rows.append(("speaker margin ratio", _num(similarity.get("margin_ratio"), 2), "synthesized / real margin"))
    rtf = m.get("rtf") or {}
    rows.append(
        (
            "real-time factor",
            _num(rtf.get("total")),
            f"compute seconds per second of audio (model {_num(rtf.get('model'))}, vocoder {_num(rtf.get('vocoder'))})",
        )
    )
    conv = m.get("convergence") or {}
    rows += [
        ("steps_to_target", _num(conv.get("steps_to_target")), "first step with smoothed val_mel_loss at the target"),
        ("validation curve area", _num(conv.get("val_curve_area")), "mean val_mel_loss over the run (lower = faster)"),
        ("training wall time", _num(conv.get("wall_seconds"), 0, " s"), ""),
    ]
    return rows


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], numeric: range | set[int]) -> list[str]:
    """An HTML table; the columns in `numeric` are right-aligned, so that digits line up."""
    out = ["<table>", "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>"]
    for row in rows:
        cells = [f'<td class="num">{_e(c)}</td>' if i in numeric else f"<td>{_e(c)}</td>" for i, c in enumerate(row)]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return out


def _headline(m: dict[str, Any]) -> list[str]:
    out = ['<section id="scores">', "<h2>Scores</h2>", '<div class="cards">']
    for name, value in headline_cards(m):
        out.append(f'<div class="card"><div class="value">{_e(value)}</div><div class="name">{_e(name)}</div></div>')
    out.append("</div>")
    out += _table(["measure", "value", "meaning"], headline_rows(m), numeric={1})
    out.append("</section>")
    return out


def _interval(wer: dict[str, Any]) -> str:
    """A WER gap with its 95% interval, as the page shows it."""
    low, high = wer.get("gap_ci95_low"), wer.get("gap_ci95_high")
    shown = _num(wer.get("gap"))
    return shown if low is None or high is None else f"{shown} ({_num(low)} to {_num(high)})"


def stop_phrase(stop: Any) -> str:
    """Stop-token outcomes as a phrase ("3 on time, 1 early, 0 late, 0 never"); "–" without them."""
    if not isinstance(stop, dict):
        return "–"
    return ", ".join(f"{stop.get(k, 0)} {k.replace('_', ' ')}" for k in STOP_OUTCOMES)


def unseen_rows(m: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(measure, validation, unseen) of the unseen sentences' figures beside the validation
    set's; empty when eval.json has no `unseen` (a store without unseen sentences)."""
    unseen = m.get("unseen")
    if not isinstance(unseen, dict):
        return []
    rows = [
        ("utterances", _num(m.get("utterances")), _num(unseen.get("utterances"))),
        ("MCD-DTW, model", _num(_get(m, "mcd", "model"), 2, " dB"), _num(unseen.get("mcd_model"), 2, " dB")),
        ("length ratio error", _num(m.get("length_ratio_error")), _num(unseen.get("length_ratio_error"))),
    ]
    if "stop" in unseen:
        rows.append(("stop token", stop_phrase(m.get("stop")), stop_phrase(unseen["stop"])))
    wer, unseen_wer = m.get("wer"), _get(m, "wer", "unseen")
    if isinstance(wer, dict) and isinstance(unseen_wer, dict):
        rows += [
            ("WER synthesized", _num(wer.get("synthesized")), _num(unseen_wer.get("synthesized"))),
            ("WER vocoded truth", _num(wer.get("vocoded_truth")), _num(unseen_wer.get("vocoded_truth"))),
            ("WER gap (95% interval)", _interval(wer), _interval(unseen_wer)),
        ]
    return rows


def _unseen(m: dict[str, Any]) -> list[str]:
    rows = unseen_rows(m)
    if not rows:
        return []
    return [
        '<section id="unseen">',
        "<h2>Unseen sentences</h2>",
        '<p class="note">Sentences whose words training never had (split <code>unseen</code>), synthesized '
        "and scored as the validation ones; no figure above includes them. A WER gap wider here than on "
        "validation, with the two intervals apart, says the model reads the words it trained on better than "
        "new ones.</p>",
        *_table(["measure", "validation (in-grammar)", "unseen"], rows, numeric={1, 2}),
        "</section>",
    ]


def _vocoders(m: dict[str, Any]) -> list[str]:
    compared = m.get("vocoder")
    if not isinstance(compared, dict):
        return []
    names = [n for n in compared if n != "used" and isinstance(compared[n], dict)]
    rows = []
    for name in names:
        f = compared[name]
        shown = vocoder_name(name) + (" (heard)" if name == compared.get("used") else "")
        rows.append(
            [
                shown,
                _num(f.get("pesq_wb"), 2),
                _num(f.get("estoi")),
                _num(f.get("mcd"), 2),
                _num(f.get("rtf_one_thread")),
                _num(f.get("wer_copy")),
                _num(f.get("wer_synthesized")),
                _num(f.get("wer_gap")),
            ]
        )
    header = ["vocoder", "PESQ-WB", "ESTOI", "MCD-DTW dB", "RTF, one thread", "WER copy", "WER synthesized", "WER gap"]
    return [
        '<section id="vocoders">',
        "<h2>Vocoders</h2>",
        '<p class="note">Copy synthesis: each vocoder on the recording\'s own mel, scored against the recording. '
        "WER gap: synthesized minus copy synthesis, heard through the same vocoder.</p>",
        *_table(header, rows, numeric=range(1, len(header))),
        "</section>",
    ]


def _speakers(m: dict[str, Any]) -> list[str]:
    per_speaker = m.get("per_speaker")
    if not isinstance(per_speaker, dict) or len(per_speaker) < 2:
        return []  # one speaker: the table would repeat the whole
    rows = []
    for name, s in per_speaker.items():
        rows.append(
            [
                name,
                _num(s.get("utterances")),
                _num(_get(s, "wer", "gap")),
                _num(_get(s, "wer", "synthesized")),
                _num(_get(s, "mcd", "model"), 2),
                _num(_get(s, "mcd", "vocoder_ceiling"), 2),
                _num(s.get("length_ratio_error")),
            ]
        )
    header = ["speaker", "utterances", "WER gap", "WER synthesized", "MCD model", "MCD ceiling", "length err"]
    return [
        '<section id="speakers">',
        "<h2>Per speaker</h2>",
        *_table(header, rows, numeric=range(1, len(header))),
        "</section>",
    ]


def _player(media: Media) -> str:
    return (
        f'<div class="player"><span>{_e(media.label)}</span>'
        f'<audio controls preload="metadata" src="{_e(media.src)}"></audio></div>'
    )


def _utterance(utt: UtteranceSamples) -> list[str]:
    """One utterance's box: its id, text, what the recognizer heard, and its players."""
    out = [f'<div class="utterance" id="utt-{_e(quote(utt.id, safe=""))}">', f"<h3>{_e(utt.id)}</h3>"]
    if utt.text is not None:
        out.append(f'<p dir="auto">{_e(utt.text)}</p>')
    if utt.heard is not None:
        heard = f"«{_e(utt.heard)}»" if utt.heard.strip() else "nothing"
        out.append(f'<p class="note" dir="auto">the recognizer heard the synthesis as: {heard}</p>')
    return [*out, '<div class="players">', *(_player(p) for p in utt.players), "</div>", "</div>"]


def _samples(content: PageContent) -> list[str]:
    out = ['<section id="samples">', "<h2>Listen</h2>"]
    if content.utterances is None:
        out.append(f'<p class="missing">No <code>{SAMPLES}/</code> folder beside this page: no samples to play.</p>')
        return [*out, "</section>"]
    if not content.utterances and not content.held_back and not content.other_samples:
        out.append(f'<p class="missing">No samples in <code>{SAMPLES}/</code> (eval.samples is 0?).</p>')
    for utt in content.utterances:
        if not utt.unseen:
            out += _utterance(utt)
    unseen = [utt for utt in content.utterances if utt.unseen]
    if unseen:
        out += [
            "<h3>Unseen sentences</h3>",
            '<p class="note">Text whose words training never had: the synthesis beside the vocoded recording.</p>',
        ]
        for utt in unseen:
            out += _utterance(utt)
    if content.held_back:
        out += [
            "<h3>Held-back sentences</h3>",
            '<p class="note">Sentences no corpus contains (eval.sentences), synthesized.</p>',
            '<div class="players">',
            *(_player(p) for p in content.held_back),
            "</div>",
        ]
    if content.other_samples:
        out += [
            "<h3>Other samples</h3>",
            '<div class="players">',
            *(_player(p) for p in content.other_samples),
            "</div>",
        ]
    return [*out, "</section>"]


def _figures(content: PageContent) -> list[str]:
    out = ['<section id="figures">', "<h2>Figures</h2>"]
    if content.figures is None:
        out.append(f'<p class="missing">No <code>{FIGURES}/</code> folder beside this page: no figures.</p>')
    elif not content.figures:
        out.append(f'<p class="missing">No figures in <code>{FIGURES}/</code> (eval.figures is 0?).</p>')
    for fig in content.figures or []:
        out.append(
            f'<figure><img src="{_e(fig.src)}" alt="{_e(fig.label)}"><figcaption>{_e(fig.label)}</figcaption></figure>'
        )
    return [*out, "</section>"]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def report_page(content: PageContent) -> str:
    """The HTML of reports/index.html: a self-contained page (inline CSS, no script, relative
    links only) with the scores, a player per sample grouped per utterance, and the figures."""
    m = content.metrics
    facts = [
        f"checkpoint {content.checkpoint}" if content.checkpoint else None,
        f"step {m['checkpoint_step']}" if "checkpoint_step" in m else None,
        f"{m['decoder']} decoder" if "decoder" in m else None,
        f"{m['utterances']} validation utterance{'' if m['utterances'] == 1 else 's'} synthesized free-running"
        if "utterances" in m
        else None,
        _count(_get(m, "unseen", "utterances"), "unseen sentence") + " beside them"
        if _get(m, "unseen", "utterances")
        else None,
        f"heard through {vocoder_name(str(_get(m, 'vocoder', 'used')))}" if _get(m, "vocoder", "used") else None,
    ]
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>Hamgara evaluation</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        "<h1>Hamgara evaluation</h1>",
        f'<p class="note">{_e("; ".join(f for f in facts if f))}. The numbers are those of '
        "<code>eval.json</code>; every score is explained in <code>summary.md</code> and docs/evaluation.md.</p>",
        *_headline(m),
        *_unseen(m),
        *_vocoders(m),
        *_speakers(m),
        *_samples(content),
        *_figures(content),
        "</body>",
        "</html>",
    ]
    return "\n".join(lines) + "\n"
