"""The precompute stage: features.zarr holds exactly the features of each accepted utterance, and resumes."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from helpers import TEXTS, committed_params, speech_like, write_corpus
from model.mel import LogMel
from model.text import to_phonemes
from pipeline.config import AlignConfig, FeaturesConfig, align_config, data_config, features_config
from pipeline.data.audio import load_waveform
from pipeline.data.validation import validate_corpus, write_outputs
from pipeline.features.build import precompute
from pipeline.features.extraction import mel_settings
from pipeline.features.fingerprint import features_record
from pipeline.features.split import TRAIN, VAL, split_of
from pipeline.features.store import LEDGER, FeatureStore, FeatureWriter

pytestmark = pytest.mark.usefixtures("warm_librosa", "one_torch_thread")

STEREO_SECONDS = 2.4


def small_config(**changes) -> FeaturesConfig:
    """The repository's features config, made small: one worker, a quarter in validation, 64-frame chunks.

    One worker measures the files in this process (librosa's kernels compiled once, by
    warm_librosa): a pool would start two fresh workers, which import torch and compile their
    own kernels, for every build and every resume below. The pool path has its own tests here
    (test_a_pool_of_workers_writes_the_store_one_worker_writes, and the resume with another
    worker count)."""
    cfg = features_config(committed_params())
    return dataclasses.replace(cfg, **{"workers": 1, "val_share": 0.25, "chunk_frames": 64, **changes})


def small_align() -> AlignConfig:
    """The aligner barely trained (these tests are about the features, not the durations), on the CPU,
    without figures, and dropping nothing, so the split is exactly the id-hash split."""
    cfg = align_config(committed_params())
    return dataclasses.replace(cfg, steps=1, device="cpu", figures=0, drop_flagged=False)


def run_precompute(manifest: Path, out: Path, cfg: FeaturesConfig) -> dict:
    return precompute(manifest, out, cfg, small_align(), progress=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory, warm_librosa) -> SimpleNamespace:
    """tiny corpus + one 44.1 kHz stereo file -> validate -> manifest -> precompute, once for the module."""
    root = tmp_path_factory.mktemp("precompute")
    rows = [(f"utt_{i:03d}", t) for i, t in enumerate(TEXTS)] + [
        ("stereo", "Grandmother knitted a warm scarf for winter.")
    ]
    corpus = write_corpus(root / "corpus", rows)
    y = speech_like(STEREO_SECONDS, 44100, seed=99, edge=0.0)
    sf.write(corpus / "wavs" / "stereo.wav", np.stack([y, 0.7 * y], axis=1), 44100, subtype="PCM_16")

    params = committed_params()
    cfg = small_config()
    result = validate_corpus(corpus, data_config(params), cfg.sample_rate, workers=cfg.workers)
    assert result.rejected.empty
    manifest_path = root / "manifest.parquet"
    write_outputs(result, manifest_path, root / "reports")
    store_path = root / "features.zarr"
    report = run_precompute(manifest_path, store_path, cfg)
    return SimpleNamespace(
        manifest_path=manifest_path,
        manifest=pd.read_parquet(manifest_path),
        store_path=store_path,
        store=FeatureStore(store_path),
        cfg=cfg,
        report=report,
    )


def reference_wave(row: pd.Series, cfg: FeaturesConfig) -> torch.Tensor:
    wave, _ = load_waveform(
        row["audio"], cfg.sample_rate, cfg.trim_top_db, cfg.peak_norm, cfg.trim_frame_length, cfg.trim_hop_length
    )
    return wave


def reference_mel(row: pd.Series, cfg: FeaturesConfig) -> np.ndarray:
    with torch.no_grad():
        return LogMel(mel_settings(cfg))(reference_wave(row, cfg)).numpy()


def test_report_counts_every_utterance_and_both_splits(built):
    r = built.report
    assert r["utterances"] == len(built.manifest) == len(TEXTS) + 1
    assert r["dropped"] == 0
    assert r["train"] + r["val"] == r["utterances"]
    assert r["train"] > 0 and r["val"] > 0
    assert r["frames"] == int(built.store.frames().sum())
    assert r["resumed_utterances"] == 0
    assert r["symbols"] == len(built.store.attrs["symbols"])


def test_store_lists_manifest_ids_in_order_and_leaves_no_partial(built):
    assert built.store.ids == built.manifest["id"].tolist()
    assert built.store.attrs["texts"] == built.manifest["normalized"].tolist()
    assert not built.store_path.with_name(built.store_path.name + ".partial").exists()


def test_each_mel_equals_an_independent_log_mel_of_its_file(built):
    for i, row in built.manifest.iterrows():
        stored = built.store.mel(i)
        expected = reference_mel(row, built.cfg)
        assert stored.dtype == np.float32
        assert stored.shape == expected.shape, row["id"]
        np.testing.assert_allclose(stored, expected, rtol=0, atol=1e-5, err_msg=row["id"])


def test_mels_are_chunked_along_frames_by_chunk_frames(built):
    mel = built.store.group["mel"]
    assert mel.chunks == (built.cfg.chunk_frames, built.cfg.n_mels)
    assert mel.shape[0] > 10 * built.cfg.chunk_frames  # utterances straddle chunk boundaries


def test_tokens_decode_to_the_phonemes_of_each_text(built):
    table = built.store.attrs["symbols"]
    phonemes = to_phonemes(built.manifest["normalized"].tolist(), "en-us")
    assert table[0] == "_"
    for i, expected in enumerate(phonemes):
        tokens = built.store.tokens(i)
        assert tokens.dtype == np.int32
        assert [table[t] for t in tokens] == expected


def test_mel_offsets_add_up_and_frames_are_trimmed_samples_over_hop(built):
    offsets = built.store.mel_offsets
    assert offsets[0] == 0
    assert np.all(np.diff(offsets) > 0)
    assert offsets[-1] == built.store.group["mel"].shape[0]
    hop = built.cfg.hop_length
    for i, row in built.manifest.iterrows():
        assert built.store.frames()[i] == len(reference_wave(row, built.cfg)) // hop, row["id"]


def test_token_offsets_add_up(built):
    offsets = built.store.token_offsets
    assert offsets[0] == 0
    assert offsets[-1] == built.store.group["tokens"].shape[0]
    phonemes = to_phonemes(built.manifest["normalized"].tolist(), "en-us")
    assert np.diff(offsets).tolist() == [len(p) for p in phonemes]


def test_durations_of_each_utterance_sum_to_its_frames(built):
    frames = built.store.frames()
    for i in range(len(built.store)):
        durations = built.store.durations(i)
        assert len(durations) == len(built.store.tokens(i))
        assert durations.min() >= 0
        assert durations.sum() == frames[i], built.store.ids[i]


def test_trim_start_records_the_quiet_lead_in(built):
    trim = built.store.array("trim_start")
    lead = dict(zip(built.store.ids, trim))
    # write_corpus puts 0.1 s of digital silence before each utterance; the stereo file has none.
    assert all(0.05 <= lead[f"utt_{i:03d}"] <= 0.1 for i in range(len(TEXTS)))
    assert lead["stereo"] < 0.02


def test_normalisation_stats_come_from_the_training_split_only(built):
    split = built.store.array("split")
    mels = [built.store.mel(i).astype(np.float64) for i in range(len(built.store))]
    train = np.concatenate([m for m, s in zip(mels, split) if s == TRAIN])
    everything = np.concatenate(mels)
    attrs = built.store.attrs
    assert attrs["train_frames"] == len(train)
    np.testing.assert_allclose(attrs["mel_mean"], train.mean(0), rtol=0, atol=1e-6)
    np.testing.assert_allclose(attrs["mel_std"], train.std(0), rtol=1e-4, atol=1e-5)
    # ... and not from all frames: the validation frames would move them.
    assert np.abs(np.asarray(attrs["mel_mean"]) - everything.mean(0)).max() > 1e-3


def test_split_array_equals_split_of_each_id(built):
    expected = [split_of(i, built.cfg.val_share, built.cfg.split_salt) for i in built.store.ids]
    assert built.store.array("split").tolist() == expected
    assert set(expected) == {TRAIN, VAL}
    assert built.store.attrs["split_names"][:2] == ["train", "val"]


def test_speaker_and_language_index_their_attr_lists(built):
    assert built.store.attrs["speakers"] == ["speaker0"]
    assert built.store.attrs["languages"] == ["en-us"]
    assert built.store.array("speaker").tolist() == [0] * len(built.store)
    assert built.store.array("language").tolist() == [0] * len(built.store)


def test_store_records_the_mel_settings_it_was_made_with(built):
    assert built.store.attrs["mel"] == dataclasses.asdict(mel_settings(built.cfg))
    assert built.store.attrs["features"] == features_record(built.cfg)


def test_stereo_44k_file_is_downmixed_and_resampled_to_the_target_rate(built):
    i = built.store.ids.index("stereo")
    frames = int(built.store.frames()[i])
    expected = STEREO_SECONDS * built.cfg.sample_rate / built.cfg.hop_length  # ~207, not ~413 at 44.1 kHz
    assert abs(frames - expected) <= 2


# --- resuming after a kill -------------------------------------------------------------------


def partial_of(store: Path) -> Path:
    return store.with_name(store.name + ".partial")


ARRAYS = ("mel", "mel_offsets", "tokens", "token_offsets", "split", "speaker", "language", "trim_start")


def assert_same_store(a: Path, b: Path) -> None:
    x, y = FeatureStore(a), FeatureStore(b)
    for name in ARRAYS:
        np.testing.assert_array_equal(x.group[name][:], y.group[name][:], err_msg=name)
    assert x.attrs == y.attrs


def interrupt_after_first_batch(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """FeatureWriter.append writes its first batch, then the run is 'killed' (KeyboardInterrupt)."""
    written: list[int] = []
    real_append = FeatureWriter.append

    def append_then_die(self: FeatureWriter, items: list) -> None:
        if written:
            raise KeyboardInterrupt
        real_append(self, items)
        written.append(len(items))

    monkeypatch.setattr(FeatureWriter, "append", append_then_die)
    return written


SMALL_BATCH = 4  # utterances per batch in the resume tests: the 13 make four batches


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr("pipeline.features.extraction.BATCH", SMALL_BATCH)
    return SMALL_BATCH


def test_killed_run_leaves_only_a_partial_store(built, tmp_path, monkeypatch, small_batches):
    out = tmp_path / "features.zarr"
    with monkeypatch.context() as m:
        written = interrupt_after_first_batch(m)
        with pytest.raises(KeyboardInterrupt):
            run_precompute(built.manifest_path, out, built.cfg)
    assert written == [small_batches]
    assert not out.exists()
    assert (partial_of(out) / LEDGER).is_file()


def test_resumed_run_continues_from_the_last_batch_and_equals_an_uninterrupted_run(
    built, tmp_path, monkeypatch, small_batches
):
    out = tmp_path / "features.zarr"
    with monkeypatch.context() as m:
        written = interrupt_after_first_batch(m)
        with pytest.raises(KeyboardInterrupt):
            run_precompute(built.manifest_path, out, built.cfg)
    report = run_precompute(built.manifest_path, out, built.cfg)
    assert report["resumed_utterances"] == sum(written) == small_batches
    assert report["utterances"] == len(built.manifest)
    assert not partial_of(out).exists()
    assert_same_store(out, built.store_path)


def test_batch_written_but_not_recorded_is_redone_on_resume(built, tmp_path, monkeypatch, small_batches):
    out = tmp_path / "features.zarr"
    ledger_writes: list[None] = []
    real_write = FeatureWriter._write_ledger

    def write_then_die_on_second_batch(self: FeatureWriter) -> None:
        ledger_writes.append(None)
        if len(ledger_writes) == 3:  # 1: a new store, 2: after batch 1, 3: after batch 2's arrays
            raise KeyboardInterrupt
        real_write(self)

    with monkeypatch.context() as m:
        m.setattr(FeatureWriter, "_write_ledger", write_then_die_on_second_batch)
        with pytest.raises(KeyboardInterrupt):
            run_precompute(built.manifest_path, out, built.cfg)
    report = run_precompute(built.manifest_path, out, built.cfg)
    assert report["resumed_utterances"] == small_batches
    assert_same_store(out, built.store_path)


def test_stale_partial_from_other_settings_is_discarded(built, tmp_path, monkeypatch, small_batches):
    out = tmp_path / "features.zarr"
    with monkeypatch.context() as m:
        interrupt_after_first_batch(m)
        with pytest.raises(KeyboardInterrupt):
            run_precompute(built.manifest_path, out, built.cfg)
    assert partial_of(out).exists()
    cfg64 = dataclasses.replace(built.cfg, n_mels=64)
    report = run_precompute(built.manifest_path, out, cfg64)
    assert report["resumed_utterances"] == 0
    store = FeatureStore(out)
    assert store.group["mel"].shape == (report["frames"], 64)
    assert store.frames().tolist() == built.store.frames().tolist()
    assert len(store.attrs["mel_mean"]) == 64


@pytest.fixture(scope="module")
def resumed_by_a_pool(built, tmp_path_factory) -> SimpleNamespace:
    """A run killed after its first batch in this process (one worker), resumed by a pool of two
    worker processes started from the fork server: the module's one pool start, shared by the
    two tests of the pool path."""
    out = tmp_path_factory.mktemp("pool") / "features.zarr"
    with pytest.MonkeyPatch.context() as m:
        m.setattr("pipeline.features.extraction.BATCH", SMALL_BATCH)
        with pytest.MonkeyPatch.context() as kill:
            written = interrupt_after_first_batch(kill)
            with pytest.raises(KeyboardInterrupt):
                run_precompute(built.manifest_path, out, built.cfg)
        report = run_precompute(built.manifest_path, out, dataclasses.replace(built.cfg, workers=2))
    return SimpleNamespace(out=out, written=written, report=report)


def test_resume_with_another_worker_count_keeps_the_partial(built, resumed_by_a_pool):
    assert built.cfg.workers == 1  # killed under one worker, resumed under two
    assert resumed_by_a_pool.written == [SMALL_BATCH]
    assert resumed_by_a_pool.report["resumed_utterances"] == SMALL_BATCH
    np.testing.assert_array_equal(FeatureStore(resumed_by_a_pool.out).group["mel"][:], built.store.group["mel"][:])


def test_a_pool_of_workers_writes_the_store_one_worker_writes(built, resumed_by_a_pool):
    # The module's store is built in this process; the two workers wrote every utterance after
    # the first batch, streamed back in order over several batches. Same arrays, same
    # attributes: only the worker count they record differs.
    report = resumed_by_a_pool.report
    assert report["utterances"] - report["resumed_utterances"] > 2 * SMALL_BATCH
    pooled = FeatureStore(resumed_by_a_pool.out)
    for name in ARRAYS:
        np.testing.assert_array_equal(pooled.group[name][:], built.store.group[name][:], err_msg=name)
    assert pooled.attrs["features"] == {**built.store.attrs["features"], "workers": 2}
    assert {**pooled.attrs, "features": None} == {**built.store.attrs, "features": None}


def test_stale_partial_from_another_manifest_is_discarded(built, tmp_path, monkeypatch, small_batches):
    out = tmp_path / "features.zarr"
    with monkeypatch.context() as m:
        interrupt_after_first_batch(m)
        with pytest.raises(KeyboardInterrupt):
            run_precompute(built.manifest_path, out, built.cfg)
    fewer = tmp_path / "manifest.parquet"
    built.manifest.iloc[2:].reset_index(drop=True).to_parquet(fewer, index=False)
    report = run_precompute(fewer, out, built.cfg)
    assert report["resumed_utterances"] == 0
    assert FeatureStore(out).ids == built.manifest["id"].tolist()[2:]


def test_rerun_over_a_finished_store_replaces_it(built, tmp_path):
    out = tmp_path / "features.zarr"
    shutil.copytree(built.store_path, out)
    report = run_precompute(built.manifest_path, out, built.cfg)
    assert report["resumed_utterances"] == 0
    assert_same_store(out, built.store_path)


def test_empty_manifest_is_a_clear_error(built, tmp_path):
    empty = tmp_path / "manifest.parquet"
    built.manifest.iloc[:0].to_parquet(empty, index=False)
    with pytest.raises(ValueError, match="no rows"):
        run_precompute(empty, tmp_path / "features.zarr", built.cfg)


def _voiced(sr: int, seconds: float = 2.0, pad: float = 0.2) -> np.ndarray:
    """A band-limited, speech-ish sound defined analytically, so that it can be sampled at any
    rate: harmonics of a gliding 120-180 Hz pitch up to 7 kHz under a syllable-rate envelope,
    with silence either side."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = 150 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    wave = sum(np.sin(k * phase) / k for k in range(1, int(7000 / 180)))
    wave = wave * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)) * np.hanning(len(t))
    silence = np.zeros(int(pad * sr))
    return (0.5 * np.concatenate([silence, wave / np.abs(wave).max(), silence])).astype(np.float32)


def test_a_48khz_recording_and_its_22khz_twin_give_the_same_features(tmp_path) -> None:
    # The VCTK + LJSpeech mix: the same sound recorded at 48 kHz must become the mels it would
    # have had at 22.05 kHz (a wrong resampling ratio would stretch it in time and pitch).
    cfg = features_config(committed_params())
    mels = []
    for sr in (48000, 22050):
        path = tmp_path / f"twin_{sr}.wav"
        sf.write(path, _voiced(sr), sr, subtype="PCM_24")
        wave, _ = load_waveform(str(path), cfg.sample_rate, cfg.trim_top_db, cfg.peak_norm)
        mels.append(LogMel(mel_settings(cfg))(wave).numpy())
    high, low = mels
    assert abs(len(high) - len(low)) <= 1
    n = min(len(high), len(low))
    loud = low[:n] > np.log(1e-3)  # compare where there is sound, not the floor's noise
    assert np.abs(high[:n] - low[:n])[loud].mean() < 0.05
