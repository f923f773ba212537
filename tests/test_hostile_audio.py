"""Damaged audio and metadata, planted as a hostile user would: each fault gets its own name in
validate's reports (a rejection or a warning, on the right row), every other row is unaffected,
and precompute repairs what validate says it repairs (issue 14, "Damaged audio")."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from helpers import TEXTS, write_corpus
from pipeline.config import DataConfig, FeaturesConfig, data_config, features_config
from pipeline.data.audio import load_waveform
from pipeline.data.validation import (
    MANIFEST_COLUMNS,
    ValidationResult,
    espeak_voices,
    validate_corpus,
    write_outputs,
)
from pipeline.features.extraction import dc_corrections
from pipeline.validate import main

pytestmark = pytest.mark.usefixtures("warm_librosa")

SR = 22050
GOOD = [(f"utt_{i:03d}", t) for i, t in enumerate(TEXTS)]
GOOD_IDS = [utt_id for utt_id, _ in GOOD]
# One planted row's transcript (distinct from TEXTS, so it is no duplicate text).
PLANTED_TEXT = "The lamp in the hallway flickered twice."


@pytest.fixture
def cfg(params: dict) -> DataConfig:
    return data_config(params)


def corpus_with(root: Path, *planted: str) -> Path:
    """The good rows plus one row per planted id (clean audio, fault planted afterwards)."""
    extra = [(name, f"{PLANTED_TEXT} {word}") for name, word in zip(planted, ("Again.", "Once more.", "Then."))]
    return write_corpus(root, GOOD + extra)


def wav(corpus: Path, utt_id: str) -> Path:
    return corpus / "wavs" / f"{utt_id}.wav"


def validate(corpus: Path, cfg: DataConfig, frontend: str = "phonemes") -> ValidationResult:
    # One worker: the files are measured in this process, whose librosa kernels warm_librosa
    # compiled once; pool workers would compile them again for every test. The pool path has
    # its own tests (test_validate's command test, test_precompute's pool tests, test_process_pool).
    return validate_corpus(corpus, cfg, target_sample_rate=SR, workers=1, frontend=frontend)


def reasons(result: ValidationResult) -> dict[str, list[str]]:
    return {r.id: r.reasons.split(";") for r in result.rejected.itertuples()}


def warning_kinds(result: ValidationResult) -> list[tuple[str, str]]:
    return sorted((str(r.id), r.kind) for r in result.warnings.itertuples())


def assert_good_rows_untouched(result: ValidationResult, also: tuple[str, ...] = ()) -> None:
    """Every good row accepted, with no warning and no DC correction: the fault stayed on its row."""
    assert sorted(result.manifest["id"]) == sorted([*GOOD_IDS, *also])
    assert not set(result.warnings["id"]) & set(GOOD_IDS)
    corrections = dict(zip(result.manifest["id"], dc_corrections(result.manifest)))
    assert all(corrections[i] == 0.0 for i in GOOD_IDS)


def line_of(corpus: Path, utt_id: str) -> int:
    lines = (corpus / "metadata.csv").read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, start=1) if line.split("|")[0] == utt_id)


# --- truncated ----------------------------------------------------------------------------------


def chop(path: Path, share: float) -> None:
    """Cut the last `share` of a file's bytes off, as an interrupted copy or download does."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * (1 - share))])


def test_wav_cut_short_of_its_header_is_rejected_as_truncated_with_both_counts(tmp_path, cfg):
    corpus = corpus_with(tmp_path / "c", "cut")
    declared = sf.info(wav(corpus, "cut")).frames
    chop(wav(corpus, "cut"), 0.4)
    decodable = sf.read(wav(corpus, "cut"))[0].shape[0]
    assert decodable < declared  # soundfile reads what is there without a word
    result = validate(corpus, cfg)
    assert reasons(result) == {"cut": ["truncated"]}
    row = result.rejected.iloc[0]
    assert row["line"] == line_of(corpus, "cut")
    assert f"header declares {declared} frames, {decodable} decode ({declared - decodable} missing" in row["details"]
    assert_good_rows_untouched(result)


def test_flac_cut_short_is_truncated_not_unreadable(tmp_path, cfg):
    corpus = corpus_with(tmp_path / "c", "cut")
    y, _ = sf.read(wav(corpus, "cut"), dtype="float32")
    wav(corpus, "cut").unlink()
    flac = corpus / "wavs" / "cut.flac"
    sf.write(flac, y, SR, subtype="PCM_16")
    chop(flac, 0.5)
    result = validate(corpus, cfg)
    assert reasons(result) == {"cut": ["truncated"]}
    assert f"header declares {len(y)} frames" in result.rejected["details"].iloc[0]
    assert_good_rows_untouched(result)


# --- non-finite ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_float_wav_with_non_finite_samples_is_rejected_as_non_finite_not_silent(tmp_path, cfg, bad):
    corpus = corpus_with(tmp_path / "c", "broken")
    y, _ = sf.read(wav(corpus, "broken"), dtype="float32")
    y[1000:1003] = bad
    sf.write(wav(corpus, "broken"), y, SR, subtype="FLOAT")
    result = validate(corpus, cfg)
    assert reasons(result) == {"broken": ["non_finite"]}
    assert f"3 of {len(y)} samples are NaN or infinite" in result.rejected["details"].iloc[0]
    assert_good_rows_untouched(result)


# --- over full scale ----------------------------------------------------------------------------


def test_float_file_far_above_full_scale_is_accepted_with_over_range_warning_not_clipped(tmp_path, cfg):
    corpus = corpus_with(tmp_path / "c", "loud")
    y, _ = sf.read(wav(corpus, "loud"), dtype="float32")
    sf.write(wav(corpus, "loud"), 8 * y, SR, subtype="FLOAT")
    result = validate(corpus, cfg)
    assert result.rejected.empty
    assert warning_kinds(result) == [("loud", "over_range")]
    detail = result.warnings["detail"].iloc[0]
    assert "over full scale" in detail and "peak-normalizes" in detail
    assert_good_rows_untouched(result, also=("loud",))


def test_float_file_clipped_at_its_own_ceiling_is_still_clipped(tmp_path, cfg):
    """Over full scale is not a licence to clip: samples piled at the file's own peak are clipping."""
    corpus = corpus_with(tmp_path / "c", "loud")
    y, _ = sf.read(wav(corpus, "loud"), dtype="float32")
    sf.write(wav(corpus, "loud"), np.clip(40 * y, -3.0, 3.0), SR, subtype="FLOAT")
    result = validate(corpus, cfg)
    assert reasons(result) == {"loud": ["clipped"]}
    assert_good_rows_untouched(result)


# --- DC offset ----------------------------------------------------------------------------------


def plant_dc(corpus: Path, utt_id: str, offset: float, lead_seconds: float = 0.0) -> None:
    y, _ = sf.read(wav(corpus, utt_id), dtype="float32")
    y = np.concatenate([np.zeros(int(lead_seconds * SR), dtype=np.float32), y])
    sf.write(wav(corpus, utt_id), y + np.float32(offset), SR, subtype="FLOAT")


def test_dc_offset_is_warned_with_its_value_and_recorded_for_precompute(tmp_path, cfg):
    corpus = corpus_with(tmp_path / "c", "offset")
    plant_dc(corpus, "offset", 0.2)
    result = validate(corpus, cfg)
    assert result.rejected.empty
    assert warning_kinds(result) == [("offset", "dc_offset")]
    assert "DC offset +0.2" in result.warnings["detail"].iloc[0]
    row = result.manifest.set_index("id").loc["offset"]
    assert row["dc_correction"] == pytest.approx(0.2, abs=1e-3)
    assert_good_rows_untouched(result, also=("offset",))


def test_dc_offset_no_longer_hides_excess_silence(tmp_path, cfg):
    """An offset keeps every frame above the silence threshold; measured without it, four
    seconds of leading silence are found."""
    corpus = corpus_with(tmp_path / "c", "offset")
    plant_dc(corpus, "offset", 0.2, lead_seconds=4.0)
    result = validate(corpus, cfg)
    assert reasons(result) == {"offset": ["excess_silence"]}
    assert_good_rows_untouched(result)


def features(params: dict) -> FeaturesConfig:
    return features_config(params)


def test_precompute_removes_the_recorded_offset_and_leaves_clean_files_alone(tmp_path, cfg, params):
    corpus = corpus_with(tmp_path / "c", "offset")
    clean, _ = sf.read(wav(corpus, "offset"), dtype="float32")
    plant_dc(corpus, "offset", 0.2)
    result = validate(corpus, cfg)
    write_outputs(result, tmp_path / "manifest.parquet", tmp_path / "reports")
    manifest = pd.read_parquet(tmp_path / "manifest.parquet")
    fcfg = features(params)
    trim = (fcfg.sample_rate, fcfg.trim_top_db, fcfg.peak_norm, fcfg.trim_frame_length, fcfg.trim_hop_length)
    for (_, row), dc in zip(manifest.iterrows(), dc_corrections(manifest)):
        wave, start = load_waveform(row["audio"], *trim, dc)
        if row["id"] != "offset":
            assert dc == 0.0
            plain, plain_start = load_waveform(row["audio"], *trim)
            assert wave.numpy().tobytes() == plain.numpy().tobytes() and start == plain_start
            continue
        sf.write(tmp_path / "clean.wav", clean, SR, subtype="FLOAT")
        reference, reference_start = load_waveform(tmp_path / "clean.wav", *trim)
        uncorrected, uncorrected_start = load_waveform(row["audio"], *trim)
        assert uncorrected_start == 0.0  # the offset defeated the trim
        assert start == reference_start > 0.0  # removed, the quiet lead-in is trimmed again
        assert np.abs(wave.numpy() - reference.numpy()).max() < 1e-3


def test_clean_corpus_writes_the_manifest_columns_it_always_did(tiny_corpus, cfg):
    """No row with an offset, no `dc_correction` column: the manifest keeps its bytes, and with
    them the features store's fingerprint; precompute reads the missing column as no correction."""
    result = validate(tiny_corpus, cfg)
    assert result.manifest.columns.tolist() == MANIFEST_COLUMNS
    assert dc_corrections(result.manifest) == [0.0] * len(result.manifest)


# --- unknown language ---------------------------------------------------------------------------

needs_espeak = pytest.mark.skipif(espeak_voices() is None, reason="espeak-ng is not installed")


def with_language(corpus: Path, utt_id: str, language: str) -> None:
    path = corpus / "metadata.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    out = [f"{line}|narrator|{language if line.split('|')[0] == utt_id else 'en-us'}" for line in lines]
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


@needs_espeak
def test_language_espeak_cannot_voice_is_rejected_as_unknown_language(tmp_path, cfg):
    corpus = corpus_with(tmp_path / "c", "klingon")
    with_language(corpus, "klingon", "tlh-xx")
    result = validate(corpus, cfg)
    assert reasons(result) == {"klingon": ["unknown_language"]}
    detail = result.rejected["details"].iloc[0]
    assert "'tlh-xx'" in detail and "espeak-ng --voices" in detail
    assert result.rejected["line"].iloc[0] == line_of(corpus, "klingon")
    assert_good_rows_untouched(result)


@needs_espeak
def test_any_language_passes_with_the_characters_frontend(tmp_path, cfg):
    corpus = corpus_with(tmp_path / "c", "klingon")
    with_language(corpus, "klingon", "tlh-xx")
    result = validate(corpus, cfg, frontend="characters")
    assert result.rejected.empty
    assert_good_rows_untouched(result, also=("klingon",))


@needs_espeak
def test_default_language_espeak_cannot_voice_rejects_every_row(tmp_path, cfg):
    """`en` is not an espeak-ng voice (`en-us` is): a plausible typo in data.default_language."""
    corpus = write_corpus(tmp_path / "c", GOOD)
    result = validate(corpus, dataclasses.replace(cfg, default_language="en"))
    assert set(result.rejected["reasons"]) == {"unknown_language"}
    assert len(result.rejected) == len(GOOD)


# --- header line --------------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["id|text|normalized_text", "file|transcription|normalized", "ID|Text"])
def test_header_line_is_skipped_with_a_warning_naming_line_1(tmp_path, cfg, header):
    corpus = write_corpus(tmp_path / "c", GOOD)
    path = corpus / "metadata.csv"
    path.write_text(f"{header}\n" + path.read_text(encoding="utf-8"), encoding="utf-8")
    result = validate(corpus, cfg)
    assert result.rejected.empty  # not an utterance with a missing audio file
    assert result.warnings[["line", "kind"]].values.tolist() == [[1, "header_line"]]
    assert "line 1" in result.warnings["detail"].iloc[0] and header in result.warnings["detail"].iloc[0]
    assert result.manifest["id"].tolist() == GOOD_IDS
    assert result.manifest["line"].tolist() == list(range(2, len(GOOD) + 2))


# --- all at once, through the command -----------------------------------------------------------


def test_every_fault_at_once_is_named_on_its_row_in_the_reports(tmp_path, params):
    corpus = corpus_with(tmp_path / "c", "cut", "broken", "offset")
    chop(wav(corpus, "cut"), 0.4)
    y, _ = sf.read(wav(corpus, "broken"), dtype="float32")
    y[500] = np.nan
    sf.write(wav(corpus, "broken"), y, SR, subtype="FLOAT")
    plant_dc(corpus, "offset", -0.3)
    path = corpus / "metadata.csv"
    path.write_text("id|text|normalized_text\n" + path.read_text(encoding="utf-8"), encoding="utf-8")
    # One worker: the command measures the files in this process (tests/test_validate.py's
    # command test runs the pool; a pool here would only start two more workers).
    params["features"]["workers"] = 1
    (tmp_path / "params.yaml").write_text(__import__("yaml").safe_dump(params), encoding="utf-8")
    out = tmp_path / "out"
    rc = main(
        ["--params", str(tmp_path / "params.yaml"), "--corpus", str(corpus)]
        + ["--manifest", str(out / "manifest.parquet"), "--reports", str(out / "reports")]
    )
    assert rc == 0
    rejected = pd.read_csv(out / "reports" / "rejected.csv", keep_default_na=False)
    assert dict(zip(rejected["id"], rejected["reasons"])) == {"cut": "truncated", "broken": "non_finite"}
    assert dict(zip(rejected["id"], rejected["line"])) == {
        "cut": line_of(corpus, "cut"),
        "broken": line_of(corpus, "broken"),
    }
    warnings = pd.read_csv(out / "reports" / "warnings.csv", keep_default_na=False)
    assert sorted(zip(warnings["id"], warnings["kind"])) == [("", "header_line"), ("offset", "dc_offset")]
    manifest = pd.read_parquet(out / "manifest.parquet")
    assert sorted(manifest["id"]) == sorted([*GOOD_IDS, "offset"])
