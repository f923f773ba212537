"""The model checks of `hamgara doctor` as verdicts: the experiments of
pipeline/evaluation/model_checks.py run on one batch of the user's training split.

Each loss term's share of the gradient (on the trained weights when the checkpoint fits),
gradient flow per module, and overfitting one batch. torch is imported inside the functions
so that the data and run checks, and `--help`, do not wait for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.evaluation.verdicts import OK, PROBLEM, WARNING, Check

if TYPE_CHECKING:
    import torch

    from model.config import LossSettings, LossWeights, ModelConfig
    from model.tts import HamgaraTTS, TTSBatch


@dataclass
class Probe:
    """What every model check works on: the model config built from params.yaml and the store,
    the loss settings and weights, one training batch, and its utterances' true frames [B, T]
    (counted from the mels, independently of the batch's own mask)."""

    config: ModelConfig
    settings: LossSettings
    weights: LossWeights
    batch: TTSBatch
    true_frames: torch.Tensor


def make_probe(params: dict[str, Any], store_path: Path, batch_size: int) -> Probe:
    """The first `batch_size` utterances of the training split as a batch, with the model config."""
    import torch

    from model.layers import lengths_to_mask
    from pipeline.config import store_model_config, train_config
    from pipeline.features.split import TRAIN
    from pipeline.features.store import FeatureStore
    from pipeline.training.dataset import FeatureDataset, collate

    cfg = store_model_config(params, FeatureStore(store_path).attrs)
    tcfg = train_config(params)
    dataset = FeatureDataset(store_path, [TRAIN])
    items = [dataset[k] for k in range(min(batch_size, len(dataset)))]
    batch, _ = collate(items)
    lengths = torch.tensor([it["mel"].shape[0] for it in items])
    true_frames = lengths_to_mask(lengths, batch.mels.size(1))
    return Probe(cfg, tcfg.loss_settings(cfg.reduction), tcfg.loss_weights(), batch, true_frames)


def check_model(
    params: dict[str, Any],
    store_path: Path,
    overfit_steps: int,
    overfit_lr: float,
    checkpoint: Path | None = None,
    batch_size: int = 8,
    overfit_ratio: float = 0.5,
    dominant_share: float = 0.9,
    vanishing_share: float = 0.01,
) -> list[Check]:
    """Overfit one batch of the training split and gradient flow per module (a fresh model
    built from params.yaml `model` and the store); the gradient share per loss term on the
    trained weights of `checkpoint` when it fits, else at initialisation (where KL has no
    gradient yet, so it is not judged). A healthy tiny model on the demo reaches x0.36 in 150
    steps; a broken mask or broken durations leave it near x1."""
    if not store_path.exists():
        return [Check("model", "model checks", PROBLEM, f"{store_path} is missing", "run dvc repro precompute")]
    probe = make_probe(params, store_path, batch_size)
    return [
        check_gradient_shares(probe, checkpoint, dominant_share, vanishing_share),
        check_gradient_flow(probe),
        check_overfit(probe, overfit_steps, overfit_lr, overfit_ratio),
    ]


def seeded_model(config: ModelConfig, checkpoint: Path | None = None) -> tuple[HamgaraTTS, str]:
    """A model built under seed 0, with the weights of `checkpoint` when it is a readable
    checkpoint of this architecture, and where those weights come from. An unreadable or
    foreign checkpoint leaves the fresh model: check_checkpoint reports it."""
    import torch

    from model.tts import HamgaraTTS
    from pipeline.training.checkpoint import CheckpointError, load_checkpoint, model_state

    torch.manual_seed(0)
    model = HamgaraTTS(config)
    if checkpoint is None or not checkpoint.is_file():
        return model, "at initialisation"
    try:
        model.load_state_dict(model_state(load_checkpoint(checkpoint)))
    except (CheckpointError, RuntimeError, KeyError):  # unreadable, or trained with other model params
        return model, "at initialisation"
    return model, f"on {checkpoint}"


def check_gradient_shares(
    probe: Probe, checkpoint: Path | None, dominant_share: float, vanishing_share: float
) -> Check:
    """Each weighted loss term's share of the gradient: none should drown or vanish."""
    from pipeline.evaluation.model_checks import gradient_shares

    model, where = seeded_model(probe.config, checkpoint)
    shares = gradient_shares(model, probe.batch, probe.settings, probe.weights)
    top = max(shares, key=shares.get)
    # KL has no gradient at initialisation by construction: only judged on trained weights.
    weak = [k for k, v in shares.items() if v < vanishing_share and not (k == "kl" and where == "at initialisation")]
    fix = []
    if shares[top] > dominant_share:
        fix.append(f"{top} drowns the other terms: lower train.{top}_loss_weight (or keep adaptive_loss_weights on)")
    for k in weak:
        if k == "kl":
            fix.append(kl_collapse_explanation(probe.config.n_speakers))
        else:
            fix.append(f"{k} barely trains: raise train.{k}_loss_weight")
    return Check(
        "model",
        "loss-term gradient shares",
        WARNING if shares[top] > dominant_share or weak else OK,
        f"share of the gradient {where}: "
        + ", ".join(f"{k} {v:.0%}" for k, v in sorted(shares.items(), key=lambda kv: -kv[1])),
        "; ".join(fix),
    )


def kl_collapse_explanation(n_speakers: int) -> str:
    """Why the style latent collapsed to its prior, and what to do when style control matters."""
    fix = "for style control (synth --reference) lower train.kl_loss_weight or lengthen kl_warmup_steps"
    if n_speakers <= 1:
        return f"kl has no gradient: the style latent has collapsed to its prior and carries no style (harmless for one voice; {fix})"
    return (
        f"kl has no gradient: the style latent has collapsed to its prior. With {n_speakers} speakers the speaker "
        "embedding already says who speaks, so the latent is left only what varies within a speaker, and a "
        f"KL weight this high makes that not worth encoding; {fix}"
    )


def check_gradient_flow(probe: Probe) -> Check:
    """Every top-level module of a fresh model gets a finite, non-zero gradient."""
    from pipeline.evaluation.model_checks import gradient_flow

    model, _ = seeded_model(probe.config)
    norms = gradient_flow(model, probe.batch, probe.settings, probe.weights)
    dead = [k for k, v in norms.items() if v == 0.0]
    exploding = [k for k, v in norms.items() if not np.isfinite(v) or v > 1e4]
    return Check(
        "model",
        "gradient flow",
        PROBLEM if dead or exploding else OK,
        "gradient norm per module: " + ", ".join(f"{k} {v:.2e}" for k, v in norms.items()),
        (f"no gradient reaches {', '.join(dead)}: it is disconnected or masked away. " if dead else "")
        + (f"{', '.join(exploding)} explode: lower train.lr, check the input scale" if exploding else ""),
    )


def check_overfit(probe: Probe, steps: int, lr: float, ratio: float) -> Check:
    """A fresh model memorises the batch: its mel L1 falls to `ratio` of the start or less."""
    from pipeline.evaluation.model_checks import overfit_one_batch

    model, _ = seeded_model(probe.config)
    result = overfit_one_batch(model, probe.batch, probe.settings, probe.weights, steps, lr, probe.true_frames)
    return Check(
        "model",
        "overfit one batch",
        OK if result.ratio <= ratio else PROBLEM,
        f"mel L1 on {probe.batch.tokens.size(0)} training utterances: {result.initial:.3f} -> {result.final:.3f} "
        f"in {result.steps} steps (x{result.ratio:.2f}; needs x{ratio} or less)",
        ""
        if result.ratio <= ratio
        else "the model cannot memorise one batch: check the masks and that durations sum to the frames "
        "(a model bug or broken data, not a slow recipe)",
    )
