"""`hamgara doctor`'s vocoder checks: is there a trained vocoder, is it made for these mels, and
does it beat Griffin-Lim where evaluate compared them (reports/eval.json `vocoder`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.evaluation.verdicts import OK, PROBLEM, WARNING, Check
from pipeline.features.store import FeatureStore
from pipeline.training.checkpoint import CheckpointError
from pipeline.vocoding.checkpoint import VocoderMismatchError, load_generator, read_vocoder_checkpoint
from pipeline.vocoding.data import store_mel_settings

SECTION = "vocoder"


def check_vocoder(vocoder_path: Path, store_path: Path, eval_report: dict[str, Any] | None) -> list[Check]:
    """The trained vocoder's file, its fit to the store's mels, and evaluate's comparison."""
    if not vocoder_path.is_file():
        return [
            Check(
                SECTION,
                "trained vocoder",
                WARNING,
                f"{vocoder_path}: none: speech is heard through Griffin-Lim, which sounds metallic and phasey",
                "dvc repro vocoder (minutes on a CPU; docs/vocoder.md)",
            )
        ]
    try:
        settings = store_mel_settings(FeatureStore(store_path)) if (store_path / "zarr.json").is_file() else None
        load_generator(vocoder_path, settings)
        ckpt = read_vocoder_checkpoint(vocoder_path)
    except (CheckpointError, VocoderMismatchError) as e:
        return [Check(SECTION, "trained vocoder", PROBLEM, str(e), "dvc repro vocoder --force")]
    val = ckpt.get("val_loss")
    checks = [
        Check(
            SECTION,
            "trained vocoder",
            OK,
            f"{vocoder_path}: step {ckpt.get('step')}, validation loss "
            + (f"{val:.4f}" if isinstance(val, float) else "not measured")
            + ("" if settings is None else ", made for this store's mels"),
        )
    ]
    return checks + _comparison(eval_report)


def _comparison(report: dict[str, Any] | None) -> list[Check]:
    """Trained against Griffin-Lim in evaluate's copy synthesis: a trained vocoder that scores
    lower than the baseline it replaces is undertrained, or trained on too little audio."""
    compared = (report or {}).get("vocoder") or {}
    trained, baseline = compared.get("trained"), compared.get("griffin_lim")
    if not trained or not baseline or trained.get("pesq_wb") is None or baseline.get("pesq_wb") is None:
        return []
    figures = (
        f"PESQ-WB {trained['pesq_wb']:.2f} vs Griffin-Lim {baseline['pesq_wb']:.2f}, "
        f"ESTOI {trained['estoi']:.3f} vs {baseline['estoi']:.3f} (reports/eval.json)"
    )
    if trained["pesq_wb"] < baseline["pesq_wb"] or trained["estoi"] < baseline["estoi"]:
        return [
            Check(
                SECTION,
                "trained vs Griffin-Lim",
                WARNING,
                f"the trained vocoder scores below Griffin-Lim: {figures}",
                "train it longer (vocoder.max_steps) or on more audio; until then eval.vocoder: griffin_lim",
            )
        ]
    return [Check(SECTION, "trained vs Griffin-Lim", OK, figures)]
