"""A DC offset is removed so that silence stays silent, and only when it is large against the
file's own level (issue 29, "Audio facts that spoil trimming")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from helpers import TEXTS, speech_like, write_corpus
from pipeline.config import DataConfig, FeaturesConfig, data_config, features_config
from pipeline.data.audio import load_waveform
from pipeline.data.validation import validate_corpus
from pipeline.features.extraction import dc_corrections

pytestmark = pytest.mark.usefixtures("warm_librosa")

SR = 22050
PLANTED = "planted"


@pytest.fixture
def cfg(params: dict) -> DataConfig:
    return data_config(params)


@pytest.fixture
def fcfg(params: dict) -> FeaturesConfig:
    return features_config(params)


def corpus_with_audio(root: Path, audio: np.ndarray) -> Path:
    """Three clean rows and a fourth, PLANTED, whose audio is `audio` (a float file)."""
    corpus = write_corpus(root, [(f"utt_{i:03d}", t) for i, t in enumerate(TEXTS[:3])] + [(PLANTED, TEXTS[3])])
    sf.write(corpus / "wavs" / f"{PLANTED}.wav", audio, SR, subtype="FLOAT")
    return corpus


def planted_row(corpus: Path, cfg: DataConfig) -> tuple[pd.Series, float, list[str]]:
    """The planted row of the manifest, the offset precompute will subtract from it, and its
    warning kinds."""
    result = validate_corpus(corpus, cfg, target_sample_rate=SR, workers=1)
    assert result.rejected.empty
    manifest = result.manifest
    k = manifest.index[manifest["id"] == PLANTED][0]
    kinds = result.warnings.loc[result.warnings["id"] == PLANTED, "kind"].tolist()
    return manifest.loc[k], dc_corrections(manifest)[k], kinds


def lopsided_speech() -> np.ndarray:
    """Speech whose waveform does not average to zero (its negative half-waves a third of the
    positive ones, as a voice's often are), between half a second of silence at each end."""
    y = speech_like(3.0, SR, seed=4, edge=0.5)
    return np.where(y > 0, y, y / 3).astype(np.float32)


def test_trimmed_frames_of_a_file_with_a_dc_offset_equal_those_of_the_file_without_it(tmp_path, cfg, fcfg):
    clean = lopsided_speech()
    assert abs(clean[clean != 0].mean()) > 0.02  # the speech's own mean: what a whole-file mean would leave
    sf.write(tmp_path / "clean.wav", clean, SR, subtype="FLOAT")
    corpus = corpus_with_audio(tmp_path / "c", clean + np.float32(0.2))
    row, dc, _ = planted_row(corpus, cfg)
    trim = (fcfg.sample_rate, fcfg.trim_top_db, fcfg.peak_norm, fcfg.trim_frame_length, fcfg.trim_hop_length)

    corrected, start = load_waveform(row["audio"], *trim, dc)
    reference, reference_start = load_waveform(str(tmp_path / "clean.wav"), *trim)

    assert reference_start > 0.4  # the clean file's half-second lead-in is trimmed
    assert (start, len(corrected)) == (reference_start, len(reference))


def test_a_loud_float_file_whose_offset_is_small_against_its_peak_is_not_corrected(tmp_path, cfg):
    loud = 8 * speech_like(3.0, SR, seed=4)
    # Above max_dc_offset in absolute terms (the peak is far over 2), half of it against the peak.
    offset = np.float32(0.5 * cfg.validate.max_dc_offset * np.abs(loud).max())
    assert offset > cfg.validate.max_dc_offset
    corpus = corpus_with_audio(tmp_path / "c", loud + offset)
    _, dc, kinds = planted_row(corpus, cfg)
    assert dc == 0.0
    assert "dc_offset" not in kinds


def test_a_quiet_file_whose_offset_is_large_against_its_peak_is_corrected(tmp_path, cfg):
    quiet = speech_like(3.0, SR, seed=4) / 20
    # Below max_dc_offset in absolute terms, twice it against the peak.
    offset = np.float32(2 * cfg.validate.max_dc_offset * np.abs(quiet).max())
    assert offset < cfg.validate.max_dc_offset
    corpus = corpus_with_audio(tmp_path / "c", quiet + offset)
    _, dc, kinds = planted_row(corpus, cfg)
    assert dc == pytest.approx(offset, rel=1e-3)
    assert "dc_offset" in kinds


def test_speech_from_end_to_end_without_an_offset_is_not_corrected(tmp_path, cfg):
    # No frame is silent, so no silence can say where zero is; one lopsided frame of speech
    # must not pass for an offset (it did: the quietest frame's level was taken instead).
    speech = speech_like(3.0, SR, seed=99, edge=0.0).astype(np.float32)
    _, removed, kinds = planted_row(corpus_with_audio(tmp_path, speech), cfg)
    assert removed == 0.0 and "dc_offset" not in kinds
