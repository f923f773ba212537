"""Many speakers end to end: the similarity encoder tells real voices apart, the figures are
computed as the module says, a synthesis in the wrong voice is caught; on a two-speaker corpus
evaluate writes them with the per-speaker figures, and synth speaks as the speaker named."""

from __future__ import annotations

import dataclasses
import io
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers import TEXTS, committed_params, tiny_params, write_corpus
from pipeline.config import EvalConfig, eval_config
from pipeline.evaluation.similarity import SpeakerEncoder, similarity_report

SENTENCES = [
    "The old man walked slowly to the market.",
    "Please call me back when you have finished.",
    "A small boat sailed across the lake.",
    "She opened the window and listened.",
    "We will meet at the station at seven.",
    "The children laughed while their father cooked.",
]
VOICES = ("en-us+m3", "en-us+f4")  # two espeak-ng voices: a low male and a high female variant


@pytest.fixture(scope="module")
def voices() -> dict[str, list[np.ndarray]]:
    """Six d-vectors per espeak-ng voice: real, distinct voices without a download."""
    encoder = SpeakerEncoder()
    out = {}
    for voice in VOICES:
        out[voice] = []
        for text in SENTENCES:
            wav = subprocess.run(["espeak-ng", "-v", voice, "--stdout", text], capture_output=True, check=True).stdout
            wave, sr = sf.read(io.BytesIO(wav))
            out[voice].append(encoder.embed(wave, sr))
    return out


def _report(voices: dict[str, list[np.ndarray]], synthesized_as: dict[str, str]) -> dict:
    """Centroids from each voice's first three; its last three scored, their 'synthesis' taken
    from the voice `synthesized_as` names."""
    references = {v: e[:3] for v, e in voices.items()}
    scored = [
        (v, {"real": e[k], "vocoded_truth": e[k], "synthesized": voices[synthesized_as[v]][k]})
        for v, e in voices.items()
        for k in range(3, 6)
    ]
    return similarity_report(references, scored)


def test_real_recordings_are_nearer_their_own_speakers_centroid_than_the_others(voices) -> None:
    report = _report(voices, {v: v for v in VOICES})
    assert report["real"]["identification"] == 1.0 and report["real"]["margin"] > 0.02
    for voice in VOICES:
        assert report["per_speaker"][voice]["real"]["margin"] > 0


def test_a_synthesis_in_the_other_voice_is_not_identified_and_its_margin_is_negative(voices) -> None:
    # Planted fault: the model ignores the speaker embedding and speaks in the other voice.
    swapped = _report(voices, {VOICES[0]: VOICES[1], VOICES[1]: VOICES[0]})
    assert swapped["synthesized"]["identification"] == 0.0
    assert swapped["synthesized"]["margin"] < 0 and swapped["margin_ratio"] < 0
    faithful = _report(voices, {v: v for v in VOICES})
    assert faithful["margin_ratio"] == pytest.approx(1.0)


def unit(*xs: float) -> np.ndarray:
    v = np.array(xs, dtype=np.float64)
    return v / np.linalg.norm(v)


def test_margins_are_own_similarity_minus_the_best_other_and_the_ratio_is_synthesized_over_real() -> None:
    references = {"a": [unit(1, 0, 0)], "b": [unit(0, 1, 0)], "c": [unit(0, 0, 1)]}
    real, synth = unit(1, 0.5, 0), unit(1, 0.9, 0.2)
    report = similarity_report(references, [("a", {"real": real, "vocoded_truth": real, "synthesized": synth})])
    assert report["real"]["margin"] == pytest.approx(real[0] - real[1])
    assert report["synthesized"]["margin"] == pytest.approx(synth[0] - synth[1])
    assert report["margin_ratio"] == pytest.approx((synth[0] - synth[1]) / (real[0] - real[1]))
    assert report["synthesized"]["similarity"] == pytest.approx(synth[0])


def test_one_speaker_has_no_similarity_margin() -> None:
    with pytest.raises(ValueError, match="at least two speakers"):
        similarity_report(
            {"a": [unit(1, 0)]}, [("a", {k: unit(1, 0) for k in ("real", "vocoded_truth", "synthesized")})]
        )


def quick_eval(checkpoint: Path, **changes: object) -> EvalConfig:
    """The committed eval settings, made quick: 4 Griffin-Lim iterations, no recognizer, no held-back lines."""
    return dataclasses.replace(
        eval_config(committed_params()),
        checkpoint=str(checkpoint),
        griffin_lim_iters=4,
        vocoder="griffin_lim",  # no trained vocoder here (tests/test_evaluate.py compares one)
        device="cpu",
        sentences=[],
        recognizer="none",
        **changes,
    )


@pytest.fixture(scope="module")
def two_speaker_eval(tmp_path_factory) -> tuple[dict, object]:
    """A VCTK-style two-speaker tiny corpus (speakers from the ids) through validate,
    precompute, a 6-step training run and evaluate."""
    from pipeline.config import align_config, data_config, features_config
    from pipeline.data.validation import validate_corpus, write_outputs
    from pipeline.evaluation.scoring import evaluate
    from pipeline.features.build import precompute
    from pipeline.training.loop import fit

    params = committed_params()
    root = tmp_path_factory.mktemp("two_speakers")
    ids = [f"p30{1 + k % 2}_{k:03d}_mic1" for k in range(len(TEXTS))]
    corpus = write_corpus(root / "corpus", list(zip(ids, TEXTS)))
    dcfg = dataclasses.replace(data_config(params), speaker_regex=r"^(p\d+)_")
    fcfg = dataclasses.replace(features_config(params), workers=1, val_share=0.25)
    acfg = dataclasses.replace(align_config(params), steps=2, device="cpu", figures=0, drop_flagged=False)
    write_outputs(
        validate_corpus(corpus, dcfg, fcfg.sample_rate, workers=1), root / "manifest.parquet", root / "reports"
    )
    store = root / "features.zarr"
    precompute(root / "manifest.parquet", store, fcfg, acfg, progress=False)
    p = tiny_params(committed_params(), max_steps=6)
    fit(store, p, root / "models", root / "dvclive", progress=False)
    cfg = quick_eval(root / "models" / "best.pt", samples=1, figures=1, similarity_references=2)
    reports = root / "reports"
    no_vocoder = root / "no_vocoder.pt"
    metrics = evaluate(
        store,
        root / "manifest.parquet",
        root / "dvclive",
        cfg,
        params,
        reports,
        progress=False,
        vocoder_path=no_vocoder,
    )
    return metrics, reports


def test_evaluate_scores_every_speaker_and_their_similarity(two_speaker_eval) -> None:
    metrics, reports = two_speaker_eval
    assert sorted(metrics["per_speaker"]) == ["p301", "p302"]  # both in validation
    sim = metrics["speaker_similarity"]
    assert sorted(sim["per_speaker"]) == ["p301", "p302"] and sim["references_per_speaker"] == 2
    for kind in ("real", "vocoded_truth", "synthesized"):
        assert set(sim[kind]) == {"similarity", "margin", "identification"}
    summary = (reports / "summary.md").read_text()
    assert "## Per speaker" in summary and "## Speaker similarity" in summary


def test_evaluate_of_one_speaker_has_no_similarity(tiny_runs, tiny_store, tmp_path) -> None:
    from pipeline.evaluation.scoring import evaluate

    params = committed_params()
    cfg = quick_eval(tiny_runs["parallel"] / "models" / "best.pt", samples=0, figures=0)
    manifest = tiny_store.parent / "manifest.parquet"
    metrics = evaluate(
        tiny_store,
        manifest,
        tiny_runs["parallel"] / "dvclive",
        cfg,
        params,
        tmp_path,
        progress=False,
        vocoder_path=tmp_path / "no_vocoder.pt",
    )
    assert "speaker_similarity" not in metrics and len(metrics["per_speaker"]) == 1


def test_synth_speaks_as_the_speaker_it_is_asked_for(two_speaker_eval) -> None:
    import torch

    from pipeline.evaluation.synthesizer import Synthesizer

    _, reports = two_speaker_eval
    synth = Synthesizer.from_file(str(reports.parent / "models" / "best.pt"), torch.device("cpu"))
    assert synth.speakers == ["p301", "p302"]
    first, second = (synth.synthesize(["The small dog slept."], None, speaker=s)[0].mel for s in synth.speakers)
    n = min(len(first), len(second))
    assert not np.allclose(first[:n], second[:n], atol=1e-4)  # the name reaches the speaker embedding


def test_synth_refuses_a_speaker_it_was_not_trained_on(two_speaker_eval, tmp_path, capsys) -> None:
    from pipeline.synth import main as synth_main

    _, reports = two_speaker_eval
    checkpoint = str(reports.parent / "models" / "best.pt")
    rc = synth_main(["Hello.", "--checkpoint", checkpoint, "--speaker", "p999", "-o", str(tmp_path / "x.wav")])
    err = capsys.readouterr().err
    assert rc == 2 and "'p999'" in err and "p301, p302" in err
    assert not (tmp_path / "x.wav").exists()


def test_a_capped_evaluation_still_hears_both_speakers(two_speaker_eval, tmp_path) -> None:
    from pipeline.evaluation.scoring import evaluate

    _, reports = two_speaker_eval
    root = reports.parent
    cfg = quick_eval(root / "models" / "best.pt", samples=0, figures=0, utterances=2, speaker_similarity=False)
    metrics = evaluate(
        root / "features.zarr",
        root / "manifest.parquet",
        root / "dvclive",
        cfg,
        committed_params(),
        tmp_path,
        False,
        vocoder_path=tmp_path / "no_vocoder.pt",
    )
    assert metrics["utterances"] == 2
    assert {name: s["utterances"] for name, s in metrics["per_speaker"].items()} == {"p301": 1, "p302": 1}


@pytest.mark.parametrize("samples", [0, 500, 22050])
def test_a_silent_or_empty_synthesis_gets_a_finite_vector_not_a_crash(samples: int) -> None:
    vector = SpeakerEncoder().embed(np.zeros(samples, dtype=np.float32), 22050)
    assert vector.shape == (256,) and np.isfinite(vector).all()
