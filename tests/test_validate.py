"""The validate stage: every planted fault is rejected with its own reason, every good row gets through."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from helpers import REPO, SECONDS_PER_LETTER, TEXTS, speech_like, write_corpus
from pipeline.config import DataConfig, data_config
from pipeline.data.rejections import CHECKS, FIXES, REASONS
from pipeline.data.schema import schema_checks
from pipeline.data.validation import ValidationResult, validate_corpus
from pipeline.validate import main

pytestmark = pytest.mark.usefixtures("warm_librosa")

SR = 22050
GOOD = [(f"utt_{i:03d}", t) for i, t in enumerate(TEXTS)]
GOOD_IDS = [utt_id for utt_id, _ in GOOD]
# Transcripts for planted rows: distinct from TEXTS, so no row is a duplicate text by accident.
EXTRA = {
    "missing": "The lamp in the hallway flickered twice.",
    "unreadable": "Our neighbours planted tulips along the fence.",
    "clipped": "A loud trumpet echoed through the narrow valley.",
    "silent": "Nobody answered the phone that afternoon.",
    "empty": "This transcript will be blanked out.",
    "digits": "I counted 3 cats and 12 dogs.",
    "short": "Yes.",
    "silence": "The train finally left the quiet station.",
    "stereo": "Grandmother knitted a warm scarf for winter.",
    "brief": "Go on.",
}


@pytest.fixture
def cfg(params: dict) -> DataConfig:
    return data_config(params)


def make_corpus(root: Path, *extra: str) -> Path:
    """The good rows plus the named EXTRA rows (audio matching their text, faults planted afterwards)."""
    return write_corpus(root, GOOD + [(name, EXTRA[name]) for name in extra])


def metadata_lines(corpus: Path) -> list[str]:
    return (corpus / "metadata.csv").read_text(encoding="utf-8").splitlines()


def write_metadata(corpus: Path, lines: list[str]) -> None:
    (corpus / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def set_transcript(corpus: Path, utt_id: str, text: str) -> None:
    write_metadata(
        corpus, [f"{utt_id}|{text}|{text}" if line.split("|")[0] == utt_id else line for line in metadata_lines(corpus)]
    )


def swap_transcripts(corpus: Path, a: str, b: str) -> None:
    texts = {line.split("|")[0]: line.split("|")[1] for line in metadata_lines(corpus)}
    set_transcript(corpus, a, texts[b])
    set_transcript(corpus, b, texts[a])


def wav(corpus: Path, utt_id: str) -> Path:
    return corpus / "wavs" / f"{utt_id}.wav"


def plant_clipping(corpus: Path, utt_id: str) -> None:
    y, sr = sf.read(wav(corpus, utt_id), dtype="float32")
    sf.write(wav(corpus, utt_id), np.clip(20 * y, -1.0, 1.0), sr, subtype="PCM_16")


def plant_stereo_44k(corpus: Path, utt_id: str, seconds: float) -> None:
    y = speech_like(seconds, 44100, seed=99)
    sf.write(wav(corpus, utt_id), np.stack([y, 0.8 * y], axis=1), 44100, subtype="PCM_16")


def validate(corpus: Path, cfg: DataConfig) -> ValidationResult:
    # One worker: the files are measured in this process, whose librosa kernels warm_librosa
    # compiled once; pool workers would compile them again for every test. The pool path has
    # its own tests (the command test below, test_precompute's pool tests, test_process_pool).
    return validate_corpus(corpus, cfg, target_sample_rate=SR, workers=1)


def reasons(result: ValidationResult) -> dict[str, list[str]]:
    """Rejected id -> its reason codes (the last rejected line wins for duplicated ids)."""
    return {r.id: r.reasons.split(";") for r in result.rejected.itertuples()}


def assert_accepted(result: ValidationResult, ids: list[str]) -> None:
    assert sorted(result.manifest["id"]) == sorted(ids)


def test_clean_corpus_accepts_every_row_without_warnings(tiny_corpus, cfg):
    result = validate(tiny_corpus, cfg)
    assert result.manifest["id"].tolist() == GOOD_IDS
    assert result.rejected.empty
    assert result.warnings.empty
    assert result.report["rows"] == result.report["accepted"] == len(GOOD)
    assert result.manifest["sample_rate"].tolist() == [SR] * len(GOOD)
    assert result.manifest["channels"].tolist() == [1] * len(GOOD)


def test_missing_wav_is_rejected_as_missing_audio(tmp_path, cfg):
    corpus = make_corpus(tmp_path / "c", "missing")
    wav(corpus, "missing").unlink()
    result = validate(corpus, cfg)
    assert reasons(result) == {"missing": ["missing_audio"]}
    assert "does not exist" in result.rejected["details"].iloc[0]
    assert_accepted(result, GOOD_IDS)


def test_garbage_bytes_in_a_wav_are_rejected_as_unreadable_audio(tmp_path, cfg):
    corpus = make_corpus(tmp_path / "c", "unreadable")
    wav(corpus, "unreadable").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(range(256)) * 8)
    result = validate(corpus, cfg)
    assert reasons(result) == {"unreadable": ["unreadable_audio"]}
    assert_accepted(result, GOOD_IDS)


def test_clipped_file_is_rejected_as_clipped(tmp_path, cfg):
    corpus = make_corpus(tmp_path / "c", "clipped")
    plant_clipping(corpus, "clipped")
    result = validate(corpus, cfg)
    assert reasons(result) == {"clipped": ["clipped"]}
    assert_accepted(result, GOOD_IDS)


def test_all_zero_file_is_rejected_as_silent(tmp_path, cfg):
    corpus = make_corpus(tmp_path / "c", "silent")
    sf.write(wav(corpus, "silent"), np.zeros(2 * SR, dtype=np.float32), SR, subtype="PCM_16")
    result = validate(corpus, cfg)
    assert list(reasons(result)) == ["silent"]
    # An all-zero file is also all silence; "silent" is the reason that explains it.
    assert reasons(result)["silent"][0] == "silent"
    assert "min_peak" in result.rejected["details"].iloc[0]
    assert_accepted(result, GOOD_IDS)


@pytest.mark.parametrize("blank", ["", "   ", "\t"])
def test_empty_or_whitespace_transcript_is_rejected_as_empty_text(tmp_path, cfg, blank):
    corpus = make_corpus(tmp_path / "c", "empty")
    set_transcript(corpus, "empty", blank)
    result = validate(corpus, cfg)
    assert reasons(result) == {"empty": ["empty_text"]}
    assert_accepted(result, GOOD_IDS)


def test_digits_are_rejected_as_unsupported_chars_naming_them(tmp_path, cfg):
    corpus = make_corpus(tmp_path / "c", "digits")
    result = validate(corpus, cfg)
    assert reasons(result) == {"digits": ["unsupported_chars"]}
    assert "'312'" in result.rejected["details"].iloc[0]
    assert_accepted(result, GOOD_IDS)


def test_duplicated_id_rejects_the_later_line_and_keeps_the_first(tmp_path, cfg):
    corpus = make_corpus(tmp_path / "c")
    lines = metadata_lines(corpus)
    write_metadata(corpus, [*lines, lines[3]])
    result = validate(corpus, cfg)
    assert reasons(result) == {"utt_003": ["duplicate_id"]}
    row = result.rejected.iloc[0]
    assert row["line"] == len(lines) + 1
    assert "line 4" in row["details"]
    assert result.manifest["id"].tolist() == GOOD_IDS
    assert result.manifest.loc[result.manifest["id"] == "utt_003", "line"].tolist() == [4]


def test_swapped_transcripts_of_very_different_length_are_rate_outliers(tmp_path, cfg):
    corpus = make_corpus(tmp_path / "c", "brief")
    swap_transcripts(corpus, "utt_010", "brief")
    result = validate(corpus, cfg)
    assert reasons(result) == {"utt_010": ["rate_outlier"], "brief": ["rate_outlier"]}
    assert all("does not match the audio" in d for d in result.rejected["details"])
    assert_accepted(result, [i for i in GOOD_IDS if i != "utt_010"])


def test_speaking_rate_is_judged_against_the_speakers_own_median(tmp_path, cfg):
    """A fast talker is not an outlier: each speaker's rate is compared with that speaker's median."""
    corpus = make_corpus(tmp_path / "c")
    lines = [f"{line}|slow" for line in metadata_lines(corpus)]
    for k, text in enumerate(TEXTS[:5]):
        letters = sum(ch.isalpha() for ch in text)
        y = speech_like(letters * SECONDS_PER_LETTER / 2.5, SR, seed=50 + k)
        sf.write(wav(corpus, f"fast_{k}"), y, SR, subtype="PCM_16")
        lines.append(f"fast_{k}|{text}|{text}|fast")
    write_metadata(corpus, lines)
    result = validate(corpus, cfg)
    assert result.rejected.empty
    assert_accepted(result, [*GOOD_IDS, *(f"fast_{k}" for k in range(5))])
    rates = result.manifest.groupby("speaker")["chars_per_second"].median()
    assert rates["fast"] > 2 * rates["slow"]


def test_clip_of_a_fifth_of_a_second_is_rejected_as_too_short(tmp_path, cfg):
    corpus = make_corpus(tmp_path / "c", "short")
    sf.write(wav(corpus, "short"), speech_like(0.2, SR, seed=5, edge=0.0), SR, subtype="PCM_16")
    result = validate(corpus, cfg)
    assert reasons(result) == {"short": ["too_short"]}
    assert "0.20 s < min_duration" in result.rejected["details"].iloc[0]
    assert_accepted(result, GOOD_IDS)


def test_long_leading_silence_is_rejected_as_excess_silence(tmp_path, cfg):
    corpus = make_corpus(tmp_path / "c", "silence")
    y, sr = sf.read(wav(corpus, "silence"), dtype="float32")
    sf.write(wav(corpus, "silence"), np.concatenate([np.zeros(4 * sr, dtype=np.float32), y]), sr, subtype="PCM_16")
    result = validate(corpus, cfg)
    assert reasons(result) == {"silence": ["excess_silence"]}
    assert_accepted(result, GOOD_IDS)


def test_file_with_no_samples_is_rejected_as_empty_audio(tmp_path, cfg):
    corpus = make_corpus(tmp_path / "c", "silent")
    sf.write(wav(corpus, "silent"), np.zeros(0, dtype=np.float32), SR)
    result = validate(corpus, cfg)
    assert reasons(result) == {"silent": ["empty_audio"]}
    assert "no samples" in result.rejected["details"].iloc[0]
    assert_accepted(result, GOOD_IDS)


def test_clip_longer_than_max_duration_is_rejected_as_too_long(tmp_path, cfg):
    long_text = " ".join(TEXTS[:10])  # about 22 s at the fixture's speaking rate
    corpus = write_corpus(tmp_path / "c", [*GOOD, ("long", long_text)])
    result = validate(corpus, cfg)
    assert reasons(result) == {"long": ["too_long"]}
    assert "> max_duration 20.0 s" in result.rejected["details"].iloc[0]
    assert_accepted(result, GOOD_IDS)


@pytest.mark.parametrize("bad", ["../utt_001", "sub/utt_x"])
def test_id_with_a_path_separator_is_rejected_as_bad_id(tmp_path, cfg, bad):
    corpus = make_corpus(tmp_path / "c")
    write_metadata(corpus, [*metadata_lines(corpus), f"{bad}|{EXTRA['brief']}|{EXTRA['brief']}"])
    result = validate(corpus, cfg)
    assert list(reasons(result)) == [bad]
    assert "bad_id" in reasons(result)[bad]
    assert_accepted(result, GOOD_IDS)


def test_id_too_long_to_name_a_file_is_rejected_as_bad_id_on_its_line(tmp_path, cfg):
    corpus = make_corpus(tmp_path / "c")
    long_id = "x" * 300
    write_metadata(corpus, [*metadata_lines(corpus), f"{long_id}|{EXTRA['brief']}|{EXTRA['brief']}"])
    result = validate(corpus, cfg)
    assert list(reasons(result)) == [long_id]
    assert "bad_id" in reasons(result)[long_id]
    assert result.rejected["line"].tolist() == [len(GOOD) + 1]
    assert "is 300 bytes long: too long to name a file" in result.rejected["details"].iloc[0]
    assert_accepted(result, GOOD_IDS)


def test_folder_in_place_of_a_wav_is_rejected_saying_it_is_a_folder(tmp_path, cfg):
    corpus = make_corpus(tmp_path / "c", "missing")
    wav(corpus, "missing").unlink()
    wav(corpus, "missing").mkdir()
    result = validate(corpus, cfg)
    assert reasons(result) == {"missing": ["missing_audio"]}
    assert result.rejected["details"].iloc[0] == f"{wav(corpus, 'missing')} is a folder, not a file"
    assert_accepted(result, GOOD_IDS)


def test_stereo_44k_file_is_accepted_with_multichannel_and_resampled_warnings(tmp_path, cfg):
    corpus = make_corpus(tmp_path / "c", "stereo")
    plant_stereo_44k(corpus, "stereo", seconds=2.4)
    result = validate(corpus, cfg)
    assert result.rejected.empty
    assert_accepted(result, [*GOOD_IDS, "stereo"])
    warned = result.warnings[result.warnings["id"] == "stereo"]
    assert sorted(warned["kind"]) == ["multichannel", "resampled"]
    assert set(result.warnings["id"]) == {"stereo"}
    row = result.manifest.set_index("id").loc["stereo"]
    assert (row["channels"], row["sample_rate"]) == (2, 44100)
    assert result.report["sample_rates"] == {"22050": len(GOOD), "44100": 1}


def duplicate_text_corpus(root: Path) -> Path:
    return write_corpus(root, [*GOOD, ("again", TEXTS[2])])


def test_duplicate_text_is_a_warning_by_default(tmp_path, cfg):
    corpus = duplicate_text_corpus(tmp_path / "c")
    result = validate(corpus, cfg)
    assert result.rejected.empty
    assert_accepted(result, [*GOOD_IDS, "again"])
    assert result.warnings[["id", "kind"]].values.tolist() == [["again", "duplicate_text"]]
    assert "utt_002" in result.warnings["detail"].iloc[0]


def test_duplicate_text_is_rejected_when_configured(tmp_path, cfg):
    corpus = duplicate_text_corpus(tmp_path / "c")
    strict = dataclasses.replace(cfg, validate=dataclasses.replace(cfg.validate, reject_duplicate_text=True))
    result = validate(corpus, strict)
    assert reasons(result) == {"again": ["duplicate_text"]}
    assert "utt_002" in result.rejected["details"].iloc[0]
    assert result.warnings.empty
    assert_accepted(result, GOOD_IDS)


def test_duplicate_text_ignores_case(tmp_path, cfg):
    corpus = write_corpus(tmp_path / "c", [*GOOD, ("again", TEXTS[2].upper())])
    result = validate(corpus, cfg)
    assert result.warnings[["id", "kind"]].values.tolist() == [["again", "duplicate_text"]]


# The planted-fault corpus of the issue, all faults at once.
PLANTED = {
    "missing": ["missing_audio"],
    "clipped": ["clipped"],
    "empty": ["empty_text"],
    "utt_005": ["duplicate_id"],
    "utt_010": ["rate_outlier"],
    "brief": ["rate_outlier"],
}


def planted_corpus(root: Path) -> Path:
    corpus = make_corpus(root, "missing", "stereo", "clipped", "empty", "brief")
    wav(corpus, "missing").unlink()
    plant_stereo_44k(corpus, "stereo", seconds=2.4)
    plant_clipping(corpus, "clipped")
    set_transcript(corpus, "empty", "")
    swap_transcripts(corpus, "utt_010", "brief")
    lines = metadata_lines(corpus)
    write_metadata(corpus, [*lines, next(line for line in lines if line.startswith("utt_005|"))])
    return corpus


def planted_accepted() -> list[str]:
    return [*[i for i in GOOD_IDS if i != "utt_010"], "stereo"]


def test_planted_fault_corpus_names_every_fault_and_passes_every_good_row(tmp_path, cfg):
    result = validate(planted_corpus(tmp_path / "c"), cfg)
    assert reasons(result) == PLANTED
    assert_accepted(result, planted_accepted())
    assert sorted(result.warnings["kind"]) == ["multichannel", "resampled"]
    assert result.report["rows"] == len(GOOD) + 5 + 1
    assert result.report["rejected_by_reason"] == {
        "clipped": 1,
        "duplicate_id": 1,
        "empty_text": 1,
        "missing_audio": 1,
        "rate_outlier": 2,
    }


def write_params(tmp_path: Path, params: dict, workers: int) -> Path:
    params["features"]["workers"] = workers
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


@pytest.fixture
def params_file(tmp_path: Path, params: dict) -> Path:
    """Two workers: the command measures the planted corpus in a pool (validate's pool path)."""
    return write_params(tmp_path, params, workers=2)


@pytest.fixture
def one_worker_params_file(tmp_path: Path, params: dict) -> Path:
    """One worker: for the command tests about exit codes, which need no pool started."""
    return write_params(tmp_path, params, workers=1)


def run_main(tmp_path: Path, params_file: Path, corpus: Path) -> tuple[int, Path, Path]:
    manifest, reports = tmp_path / "out" / "manifest.parquet", tmp_path / "out" / "reports"
    rc = main(
        ["--params", str(params_file), "--corpus", str(corpus), "--manifest", str(manifest), "--reports", str(reports)]
    )
    return rc, manifest, reports


def test_main_writes_manifest_and_reports_and_returns_0(tmp_path, params_file):
    rc, manifest, reports = run_main(tmp_path, params_file, planted_corpus(tmp_path / "c"))
    assert rc == 0
    table = pd.read_parquet(manifest)
    assert sorted(table["id"]) == sorted(planted_accepted())
    assert {"id", "normalized", "speaker", "language", "audio", "sample_rate", "duration"} <= set(table.columns)

    report = json.loads((reports / "validation.json").read_text())
    rejected = pd.read_csv(reports / "rejected.csv", keep_default_na=False)
    assert dict(zip(rejected["id"], rejected["reasons"].str.split(";"))) == PLANTED
    assert len(rejected) == len(PLANTED)
    assert (rejected["details"].str.len() > 0).all()
    counts: dict[str, int] = {}
    for rs in rejected["reasons"]:
        for r in rs.split(";"):
            counts[r] = counts.get(r, 0) + 1
    assert report["rejected_by_reason"] == counts
    assert report["accepted"] == len(table) and report["rejected"] == len(rejected)

    warnings = pd.read_csv(reports / "warnings.csv")
    assert sorted(warnings["kind"]) == ["multichannel", "resampled"]


def test_main_returns_1_when_no_row_is_usable_and_still_lists_them(tmp_path, one_worker_params_file, capsys):
    corpus = make_corpus(tmp_path / "c")
    for utt_id in GOOD_IDS:
        wav(corpus, utt_id).unlink()
    rc, manifest, reports = run_main(tmp_path, one_worker_params_file, corpus)
    assert rc == 4
    rejected = pd.read_csv(reports / "rejected.csv")
    assert rejected["id"].tolist() == GOOD_IDS
    assert set(rejected["reasons"]) == {"missing_audio"}
    assert "no usable rows" in capsys.readouterr().err


def test_main_returns_2_on_a_structural_error_and_names_file_and_line(tmp_path, one_worker_params_file, capsys):
    corpus = make_corpus(tmp_path / "c")
    lines = metadata_lines(corpus)
    lines[4] = lines[4].replace("|", ",")
    write_metadata(corpus, lines)
    rc, manifest, reports = run_main(tmp_path, one_worker_params_file, corpus)
    assert rc == 2
    assert f"{corpus / 'metadata.csv'}:5:" in capsys.readouterr().err
    assert not manifest.exists()
    assert not (reports / "rejected.csv").exists()


@pytest.mark.parametrize("reject_duplicate_text", [False, True])
def test_every_schema_check_is_a_listed_reason_and_every_reason_is_checked(cfg, reject_duplicate_text):
    vcfg = dataclasses.replace(cfg.validate, reject_duplicate_text=reject_duplicate_text)
    assert schema_checks(vcfg) == CHECKS
    assert set(FIXES) == set(REASONS)
    assert all(r.meaning and r.fix for r in REASONS.values())


def test_the_corpus_page_lists_every_rejection_reason_with_its_meaning_and_fix():
    page = (REPO / "docs" / "corpus.md").read_text(encoding="utf-8")
    start = page.index("| reason | meaning | fix |\n|---|---|---|\n")
    table = page[start:].split("\n\n", 1)[0].splitlines()[2:]
    assert table == [f"| `{name}` | {r.meaning} | {r.fix} |" for name, r in REASONS.items()]
