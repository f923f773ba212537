"""Free-running figures at validation: computed from synthesis, logged by both decoders, read by doctor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import make_batch, small_config
from model.objective import teacher_forced_metrics
from model.tts import HamgaraTTS
from pipeline.evaluation.free_running import (
    STOP_OUTCOMES,
    dtw_mel_distance,
    free_running_rows,
    probe_batch,
    stop_outcome,
    summarize,
)
from pipeline.evaluation.history import read_series

DECODERS = ("autoregressive", "parallel")
FREE_KEYS = ["mel_distance", "teacher_forced_distance", "exposure_gap", "length_ratio_error"] + [
    f"stop_{o}" for o in STOP_OUTCOMES
]


def test_the_dtw_distance_forgives_a_slower_speaking_rate_but_not_other_sounds() -> None:
    rng = np.random.default_rng(0)
    mel = rng.normal(size=(40, 16))
    assert dtw_mel_distance(mel, mel) == 0.0
    slower = np.repeat(mel, 2, axis=0)  # every frame said twice as long
    assert dtw_mel_distance(mel, slower) == pytest.approx(0.0)
    assert dtw_mel_distance(mel, rng.normal(size=(40, 16))) > 0.5


def test_an_empty_mel_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="empty"):
        dtw_mel_distance(np.zeros((0, 16)), np.zeros((5, 16)))


@pytest.mark.parametrize(
    ("fired", "frames", "outcome"),
    [(True, 100, "on_time"), (True, 70, "early"), (True, 130, "late"), (False, 100, "never"), (None, 100, None)],
)
def test_stop_outcomes_compare_the_length_with_the_recording(fired, frames, outcome) -> None:
    assert stop_outcome(fired, frames, 100, 0.2) == outcome


def test_the_probe_is_the_first_utterances_of_the_validation_batches_trimmed_to_their_lengths(tiny_store) -> None:
    from pipeline.features.split import VAL
    from pipeline.training.dataset import FeatureDataset, collate

    val = FeatureDataset(tiny_store, [VAL])
    assert len(val) >= 2
    order = [[1], [0]]  # validation's own batch order, as the training loop passes it
    probe = probe_batch(val, order, 1)
    expected = collate([val[1]])[0]
    assert probe is not None and torch.equal(probe.tokens, expected.tokens) and torch.equal(probe.mels, expected.mels)
    assert probe.mels.shape[1] == len(val[1]["mel"])  # padded to its own longest only
    assert probe_batch(val, order, 5).tokens.size(0) == 2
    assert probe_batch(val, order, 0) is None and probe_batch(val, [], 4) is None


@pytest.mark.parametrize("decoder", DECODERS)
def test_both_decoders_report_the_same_keys_and_draw_no_random_numbers(decoder: str) -> None:
    model = HamgaraTTS(small_config(decoder))
    before = torch.random.get_rng_state()
    figures = summarize(free_running_rows(model, make_batch([9, 6], [30, 20]), 0.2))
    # Nothing drawn: a run's dropout masks are the same with or without these figures.
    assert torch.equal(before, torch.random.get_rng_state())
    assert sorted(figures) == sorted(f"free/{k}" for k in FREE_KEYS)
    assert sum(figures[f"free/stop_{o}"] for o in STOP_OUTCOMES) == pytest.approx(1.0)
    assert figures["free/exposure_gap"] == pytest.approx(
        figures["free/mel_distance"] - figures["free/teacher_forced_distance"]
    )


def _break_synthesis(model: HamgaraTTS) -> str:
    """Break only what synthesis uses and teacher forcing does not; returns how every
    utterance must then end. The autoregressive decoder's stop head never fires, so the length
    cap ends every utterance; the parallel decoder's duration predictor makes every token last
    ~50 frames."""
    with torch.no_grad():
        if model.cfg.decoder == "autoregressive":
            model.decoder.stop_head.bias.fill_(-50.0)
            return "never"
        model.duration.out.bias.fill_(4.0)
        return "late"


@pytest.mark.parametrize("decoder", DECODERS)
def test_a_broken_synthesis_moves_the_free_running_figures_but_not_the_teacher_forced_loss(
    decoder: str, params
) -> None:
    from pipeline.config import train_config

    torch.manual_seed(0)
    model = HamgaraTTS(small_config(decoder)).eval()
    batch = make_batch([9, 6, 11], [30, 20, 36])
    settings = train_config(params).loss_settings(model.cfg.reduction)
    healthy = summarize(free_running_rows(model, batch, 0.2))
    loss = teacher_forced_metrics(model, [batch], settings, torch.device("cpu"))["val_mel_loss"]
    ending = _break_synthesis(model)
    broken = summarize(free_running_rows(model, batch, 0.2))
    assert teacher_forced_metrics(model, [batch], settings, torch.device("cpu"))["val_mel_loss"] == loss
    assert broken["free/teacher_forced_distance"] == pytest.approx(healthy["free/teacher_forced_distance"])
    assert healthy[f"free/stop_{ending}"] < 1.0 and broken[f"free/stop_{ending}"] == 1.0
    assert abs(broken["free/length_ratio_error"] - healthy["free/length_ratio_error"]) > 0.3
    assert broken["free/mel_distance"] != pytest.approx(healthy["free/mel_distance"])


@pytest.mark.parametrize("decoder", DECODERS)
def test_training_logs_the_free_running_figures_at_every_validation(decoder: str, tiny_runs) -> None:
    metrics = tiny_runs[decoder] / "dvclive" / "plots" / "metrics"
    val_steps, _ = read_series(metrics / "val_mel_loss.tsv")
    assert len(val_steps) >= 2
    for key in FREE_KEYS:
        steps, values = read_series(metrics / "free" / f"{key}.tsv")
        assert steps.tolist() == val_steps.tolist(), key
        assert np.isfinite(values).all(), key
