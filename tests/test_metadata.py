"""metadata.csv parsing: the LJSpeech layout and its variants, and structural errors that name file, line and fix."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.config import DataConfig, data_config
from pipeline.data.metadata import HEADER_ATTR, MetadataError, read_metadata


@pytest.fixture
def cfg(params: dict) -> DataConfig:
    return data_config(params)


def corpus_with(root: Path, metadata: str | bytes, wavs: tuple[str, ...] = ()) -> Path:
    """A corpus folder holding `metadata` verbatim and a short wav for each id in `wavs`."""
    (root / "wavs").mkdir(parents=True, exist_ok=True)
    data = metadata.encode("utf-8") if isinstance(metadata, str) else metadata
    (root / "metadata.csv").write_bytes(data)
    for utt_id in wavs:
        sf.write(root / "wavs" / f"{utt_id}.wav", np.zeros(2205, dtype=np.float32), 22050)
    return root


def test_three_columns_give_id_text_and_normalized_text(tmp_path, cfg):
    corpus = corpus_with(
        tmp_path / "c",
        "LJ001-0001|Printing, in the 2nd sense|Printing, in the second sense\n"
        "LJ001-0002|in being comparatively modern.|in being comparatively modern.\n",
        wavs=("LJ001-0001", "LJ001-0002"),
    )
    df = read_metadata(corpus, cfg)
    assert df["id"].tolist() == ["LJ001-0001", "LJ001-0002"]
    assert df["text"].tolist() == ["Printing, in the 2nd sense", "in being comparatively modern."]
    assert df["normalized_text"].tolist() == ["Printing, in the second sense", "in being comparatively modern."]
    assert df["line"].tolist() == [1, 2]
    assert df["speaker"].tolist() == [cfg.default_speaker] * 2
    assert df["language"].tolist() == [cfg.default_language] * 2
    assert df["audio"].tolist() == [str(corpus / "wavs" / "LJ001-0001.wav"), str(corpus / "wavs" / "LJ001-0002.wav")]


def test_two_columns_use_the_text_as_normalized_text(tmp_path, cfg):
    corpus = corpus_with(tmp_path / "c", "a1|Hello there.\na2|Good night.\n")
    df = read_metadata(corpus, cfg)
    assert df["normalized_text"].tolist() == ["Hello there.", "Good night."]
    assert df["normalized_text"].tolist() == df["text"].tolist()


def test_empty_third_column_falls_back_to_the_text(tmp_path, cfg):
    corpus = corpus_with(tmp_path / "c", "a1|Hello there.|\n")
    assert read_metadata(corpus, cfg)["normalized_text"].tolist() == ["Hello there."]


def test_fourth_column_is_the_speaker_and_fifth_the_language(tmp_path, cfg):
    corpus = corpus_with(
        tmp_path / "c",
        "a1|Hello.|Hello.|alice|en-us\na2|سلام.|سلام.|dara|fa\n",
    )
    df = read_metadata(corpus, cfg)
    assert df["speaker"].tolist() == ["alice", "dara"]
    assert df["language"].tolist() == ["en-us", "fa"]


def test_four_columns_set_the_speaker_and_keep_the_default_language(tmp_path, cfg):
    corpus = corpus_with(tmp_path / "c", "a1|Hello.|Hello.|alice\n")
    df = read_metadata(corpus, cfg)
    assert df["speaker"].tolist() == ["alice"]
    assert df["language"].tolist() == [cfg.default_language]


def test_speaker_comes_from_speaker_regex_for_vctk_ids(tmp_path, cfg):
    cfg = dataclasses.replace(cfg, speaker_regex=r"^(p\d+)_")
    corpus = corpus_with(
        tmp_path / "c", "p248_065_mic1|Hello.|Hello.\np225_001_mic2|Please call Stella.|Please call Stella.\n"
    )
    assert read_metadata(corpus, cfg)["speaker"].tolist() == ["p248", "p225"]


def test_speaker_column_wins_over_speaker_regex(tmp_path, cfg):
    cfg = dataclasses.replace(cfg, speaker_regex=r"^(p\d+)_")
    corpus = corpus_with(tmp_path / "c", "p248_065_mic1|Hello.|Hello.|narrator\n")
    assert read_metadata(corpus, cfg)["speaker"].tolist() == ["narrator"]


def test_id_not_matching_speaker_regex_names_file_and_line(tmp_path, cfg):
    cfg = dataclasses.replace(cfg, speaker_regex=r"^(p\d+)_")
    corpus = corpus_with(tmp_path / "c", "p248_065_mic1|Hello.|Hello.\nLJ001-0001|Hello.|Hello.\n")
    with pytest.raises(MetadataError) as e:
        read_metadata(corpus, cfg)
    msg = str(e.value)
    assert f"{corpus / 'metadata.csv'}:2:" in msg
    assert "LJ001-0001" in msg and "speaker_regex" in msg


def test_utf8_byte_order_mark_is_ignored(tmp_path, cfg):
    corpus = corpus_with(tmp_path / "c", b"\xef\xbb\xbfa1|Hello.|Hello.\n")
    assert read_metadata(corpus, cfg)["id"].tolist() == ["a1"]


def test_windows_line_endings_and_blank_lines_are_tolerated(tmp_path, cfg):
    corpus = corpus_with(tmp_path / "c", "a1|Hello.|Hello.\r\n\r\na2|Bye.|Bye.\r\n")
    df = read_metadata(corpus, cfg)
    assert df["normalized_text"].tolist() == ["Hello.", "Bye."]
    assert df["line"].tolist() == [1, 3]


def test_missing_metadata_csv_names_the_file_and_the_fix(tmp_path, cfg):
    corpus = tmp_path / "c"
    (corpus / "wavs").mkdir(parents=True)
    with pytest.raises(MetadataError) as e:
        read_metadata(corpus, cfg)
    assert str(corpus / "metadata.csv") in str(e.value)
    assert "not found" in str(e.value) and "wavs/" in str(e.value)


def test_missing_corpus_folder_names_the_folder_and_the_param(tmp_path, cfg):
    corpus = tmp_path / "nowhere"
    with pytest.raises(MetadataError) as e:
        read_metadata(corpus, cfg)
    assert str(corpus) in str(e.value)
    assert "data.corpus" in str(e.value)


@pytest.mark.parametrize(
    ("separator", "name"),
    [(",", "comma"), ("\t", "tab"), (";", "semicolon")],
)
def test_wrong_delimiter_names_file_line_and_the_fix(tmp_path, cfg, separator, name):
    corpus = corpus_with(tmp_path / "c", f"a1{separator}Hello{separator}Hello\n")
    with pytest.raises(MetadataError) as e:
        read_metadata(corpus, cfg)
    msg = str(e.value)
    assert f"{corpus / 'metadata.csv'}:1:" in msg
    assert name in msg and "'|'" in msg


def test_wrong_delimiter_on_a_later_line_names_that_line(tmp_path, cfg):
    corpus = corpus_with(tmp_path / "c", "a1|Hello.|Hello.\na2|Bye.|Bye.\na3,Oops,Oops\n")
    with pytest.raises(MetadataError, match=r"metadata\.csv:3: .*comma"):
        read_metadata(corpus, cfg)


def test_single_field_without_any_separator_is_an_error(tmp_path, cfg):
    corpus = corpus_with(tmp_path / "c", "just an id\n")
    with pytest.raises(MetadataError, match=r"metadata\.csv:1: .*one field"):
        read_metadata(corpus, cfg)


def test_too_many_fields_names_file_line_and_the_likely_cause(tmp_path, cfg):
    corpus = corpus_with(tmp_path / "c", "a1|Hello.|Hello.|s|en-us\na2|A|pipe|inside|the|text\n")
    with pytest.raises(MetadataError) as e:
        read_metadata(corpus, cfg)
    msg = str(e.value)
    assert f"{corpus / 'metadata.csv'}:2:" in msg
    assert "6 fields" in msg and "'|' inside a transcript" in msg


def test_inconsistent_column_count_names_the_line_that_differs(tmp_path, cfg):
    corpus = corpus_with(tmp_path / "c", "a1|Hello.|Hello.\na2|Bye.|Bye.\na3|Again.|Again.|alice\n")
    with pytest.raises(MetadataError) as e:
        read_metadata(corpus, cfg)
    msg = str(e.value)
    assert f"{corpus / 'metadata.csv'}:3:" in msg
    assert "4 fields" in msg and "3" in msg and "same columns" in msg


@pytest.mark.parametrize(
    ("encoding", "text"),
    [("cp1256", "سلام دنيا"), ("latin-1", "Café déjà vu")],
)
def test_non_utf8_bytes_name_the_line_and_how_to_reencode(tmp_path, cfg, encoding, text):
    data = b"a1|Hello.|Hello.\na2|Bye.|Bye.\n" + f"a3|{text}|{text}\n".encode(encoding)
    corpus = corpus_with(tmp_path / "c", data)
    with pytest.raises(MetadataError) as e:
        read_metadata(corpus, cfg)
    msg = str(e.value)
    assert f"{corpus / 'metadata.csv'}:3:" in msg
    assert "UTF-8" in msg and "iconv" in msg


def test_empty_metadata_is_an_error(tmp_path, cfg):
    corpus = corpus_with(tmp_path / "c", "\n\n")
    with pytest.raises(MetadataError, match="no rows"):
        read_metadata(corpus, cfg)


def test_flac_is_found_when_no_wav_exists(tmp_path, cfg):
    corpus = corpus_with(tmp_path / "c", "a1|Hello.|Hello.\na2|Bye.|Bye.\n", wavs=("a2",))
    sf.write(corpus / "wavs" / "a1.flac", np.zeros(2205, dtype=np.float32), 22050)
    df = read_metadata(corpus, cfg)
    assert df["audio"].tolist() == [str(corpus / "wavs" / "a1.flac"), str(corpus / "wavs" / "a2.wav")]


def test_wav_is_preferred_when_both_wav_and_flac_exist(tmp_path, cfg):
    corpus = corpus_with(tmp_path / "c", "a1|Hello.|Hello.\n", wavs=("a1",))
    sf.write(corpus / "wavs" / "a1.flac", np.zeros(2205, dtype=np.float32), 22050)
    assert read_metadata(corpus, cfg)["audio"].tolist() == [str(corpus / "wavs" / "a1.wav")]


def test_missing_audio_still_yields_the_expected_wav_path(tmp_path, cfg):
    corpus = corpus_with(tmp_path / "c", "a1|Hello.|Hello.\n")
    assert read_metadata(corpus, cfg)["audio"].tolist() == [str(corpus / "wavs" / "a1.wav")]


# A header line: named and skipped, never read as an utterance with a missing audio file.


@pytest.mark.parametrize(
    "header",
    ["id|text|normalized_text", "file|transcription|normalized_text|speaker|language", "ID|Text", "id,text"],
)
def test_header_line_is_skipped_and_named_in_attrs(tmp_path, cfg, header):
    lines = (
        ["a1|Hello.|Hello.|alice|en-us", "a2|Bye.|Bye.|bob|en-us"] if header.count("|") == 4 else ["a1|Hello.|Hello."]
    )
    corpus = corpus_with(tmp_path / "c", "\n".join([header, *lines]) + "\n", wavs=("a1",))
    df = read_metadata(corpus, cfg)
    assert df["id"].tolist() == ["a1", "a2"][: len(lines)]
    assert df["line"].tolist()[0] == 2
    assert df.attrs[HEADER_ATTR] == {"line": 1, "text": header}


def test_first_line_whose_id_has_audio_is_an_utterance_not_a_header(tmp_path, cfg):
    """An utterance may really be called `id` (its wav decides), and only line 1 can be a header."""
    corpus = corpus_with(tmp_path / "c", "id|text|spoken here.\nfile|text|spoken again.\n", wavs=("id",))
    df = read_metadata(corpus, cfg)
    assert df["id"].tolist() == ["id", "file"]
    assert HEADER_ATTR not in df.attrs


def test_metadata_holding_only_a_header_says_so(tmp_path, cfg):
    corpus = corpus_with(tmp_path / "c", "id|text|normalized_text\n")
    with pytest.raises(MetadataError, match=r"no rows \(line 1 is a column header, skipped\)"):
        read_metadata(corpus, cfg)
