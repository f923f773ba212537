"""Where the trained vocoder is used: synth picks it when it sits beside the checkpoint, doctor
reviews it, and both say why when they cannot use it."""

from __future__ import annotations

import shutil
from pathlib import Path

import soundfile as sf
import torch

from helpers import committed_params
from pipeline.evaluation.verdicts import OK, PROBLEM, WARNING
from pipeline.evaluation.vocoder_checks import check_vocoder
from pipeline.synth import main as synth_main


def _voice(tiny_runs: dict[str, Path], tmp_path: Path, vocoder: Path | None) -> Path:
    """A models/ folder with the tiny acoustic model, and `vocoder` beside it when given."""
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(tiny_runs["parallel"] / "models" / "best.pt", models / "best.pt")
    if vocoder is not None:
        shutil.copy(vocoder, models / "vocoder.pt")
    return models / "best.pt"


def _samples(path: Path) -> int:
    return sf.info(str(path)).frames


HOP = committed_params()["features"]["hop_length"]


def test_synth_speaks_through_the_trained_vocoder_beside_the_checkpoint(tiny_runs, tiny_vocoder, tmp_path, capsys):
    checkpoint = _voice(tiny_runs, tmp_path, tiny_vocoder)
    assert synth_main(["The small dog slept.", "--checkpoint", str(checkpoint), "-o", str(tmp_path / "a.wav")]) == 0
    args = ["--checkpoint", str(checkpoint), "--vocoder", "griffin_lim", "--griffin-lim-iters", "2"]
    assert synth_main(["The small dog slept.", *args, "-o", str(tmp_path / "b.wav")]) == 0
    # Told apart by length: the trained vocoder gives whole hops, Griffin-Lim half a hop more
    # than whole hops (its frames are delayed half a hop to line up with the mel's).
    assert _samples(tmp_path / "a.wav") % HOP == 0
    assert _samples(tmp_path / "b.wav") % HOP == HOP // 2
    assert "Griffin-Lim" not in capsys.readouterr().err


def test_synth_falls_back_to_griffin_lim_saying_why_when_the_vocoder_is_for_other_mels(
    tiny_runs, tiny_vocoder, tmp_path, capsys
):
    ckpt = torch.load(tiny_vocoder, weights_only=True)
    ckpt["mel"]["sample_rate"] = 16000
    other = tmp_path / "other.pt"
    torch.save(ckpt, other)
    checkpoint = _voice(tiny_runs, tmp_path, other)
    args = ["Hello.", "--checkpoint", str(checkpoint), "--griffin-lim-iters", "2", "-o", str(tmp_path / "x.wav")]
    assert synth_main(args) == 0
    err = capsys.readouterr().err
    assert "using Griffin-Lim" in err and "sample_rate: vocoder 16000" in err
    assert synth_main([*args, "--vocoder", "trained"]) == 2  # asked for by name: an error, not a fallback
    assert "sample_rate: vocoder 16000" in capsys.readouterr().err


def test_doctor_warns_when_there_is_no_trained_vocoder(tiny_store, tmp_path):
    [check] = check_vocoder(tmp_path / "vocoder.pt", tiny_store, None)
    assert check.verdict == WARNING and "Griffin-Lim" in check.evidence and "dvc repro vocoder" in check.fix


def test_doctor_calls_a_damaged_vocoder_a_problem_naming_it(tiny_store, tmp_path):
    damaged = tmp_path / "vocoder.pt"
    damaged.write_bytes(b"not a checkpoint")
    [check] = check_vocoder(damaged, tiny_store, None)
    assert check.verdict == PROBLEM and str(damaged) in check.evidence


def test_doctor_calls_a_vocoder_for_other_mels_a_problem_naming_both_values(tiny_store, tiny_vocoder, tmp_path):
    ckpt = torch.load(tiny_vocoder, weights_only=True)
    ckpt["mel"]["n_mels"] = 64
    other = tmp_path / "vocoder.pt"
    torch.save(ckpt, other)
    [check] = check_vocoder(other, tiny_store, None)
    assert check.verdict == PROBLEM and "n_mels: vocoder 64, mels 80" in check.evidence


def test_doctor_warns_when_the_trained_vocoder_scores_below_griffin_lim(tiny_store, tiny_vocoder):
    worse = {"vocoder": {"griffin_lim": {"pesq_wb": 2.6, "estoi": 0.94}, "trained": {"pesq_wb": 2.1, "estoi": 0.95}}}
    better = {"vocoder": {"griffin_lim": {"pesq_wb": 2.6, "estoi": 0.94}, "trained": {"pesq_wb": 3.7, "estoi": 0.98}}}
    found, comparison = check_vocoder(tiny_vocoder, tiny_store, worse)
    assert found.verdict == OK and "made for this store's mels" in found.evidence
    assert comparison.verdict == WARNING and "PESQ-WB 2.10 vs Griffin-Lim 2.60" in comparison.evidence
    assert check_vocoder(tiny_vocoder, tiny_store, better)[1].verdict == OK
    assert len(check_vocoder(tiny_vocoder, tiny_store, {})) == 1  # no comparison yet: nothing to judge
