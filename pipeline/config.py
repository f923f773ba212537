"""Typed configuration, one dataclass per stage section of params.yaml.

Every default lives in params.yaml; these classes only give the values types and a clear
error when a key is missing or unknown, so no knob hides in code.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from model.config import LOSS_TERMS, PARAM_KEYS, SIZE_KEYS, WORD_SEPARATOR, LossSettings, LossWeights, ModelConfig

T = TypeVar("T")


class ConfigError(ValueError):
    """params.yaml is missing a key, has an unknown one, or a value of the wrong kind."""


def check_keys(raw: Any, known: tuple[str, ...] | list[str], where: str) -> None:
    """Refuse a section that is not a mapping, has a key we do not read (naming the nearest
    known key: `val_evry` is almost always a typo of `val_every`), or lacks one we need."""
    if not isinstance(raw, dict):
        raise ConfigError(f"params.yaml: `{where}` must be a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(known))
    if unknown:
        hints = []
        for key in unknown:
            near = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            hints.append(f"{where}.{key}" + (f" (did you mean {where}.{near[0]}?)" if near else ""))
        raise ConfigError(f"params.yaml: unknown key(s): {'; '.join(hints)}. Known under `{where}`: {', '.join(known)}")
    missing = [k for k in known if k not in raw]
    if missing:
        raise ConfigError(f"params.yaml: missing key(s) under `{where}`: {', '.join(missing)}")


def _build(cls: type[T], raw: dict[str, Any], where: str) -> T:
    check_keys(raw, [f.name for f in fields(cls)], where)  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        value = raw[f.name]
        sub = f.metadata.get("section")
        if sub is not None:
            value = _build(sub, value, f"{where}.{f.name}")
        values[f.name] = value
    return cls(**values)


@dataclass(frozen=True)
class DemoConfig:
    """How the embedded demo corpus is synthesized."""

    voice: str
    utterances: int
    min_words: int
    max_words: int
    seed: int
    sample_rate: int
    batch_size: int


@dataclass(frozen=True)
class ValidateConfig:
    """Bounds the validate stage enforces on every row."""

    min_duration: float
    max_duration: float
    clip_level: float
    max_clip_share: float
    silence_top_db: float
    silence_frame_length: int
    silence_hop_length: int
    max_silence_share: float
    min_peak: float
    rate_outlier_factor: float
    reject_duplicate_text: bool


@dataclass(frozen=True)
class DataConfig:
    """Where the corpus is and how its rows map to speakers and languages."""

    corpus: str
    speaker_regex: str | None
    default_speaker: str
    default_language: str
    demo: DemoConfig = dataclasses.field(metadata={"section": DemoConfig})
    validate: ValidateConfig = dataclasses.field(metadata={"section": ValidateConfig})


@dataclass(frozen=True)
class FeaturesConfig:
    """Audio, mel and text-frontend settings of the precompute stage."""

    sample_rate: int
    n_fft: int
    hop_length: int
    win_length: int
    n_mels: int
    fmin: float
    fmax: float
    log_clamp: float
    trim_top_db: float
    trim_frame_length: int
    trim_hop_length: int
    peak_norm: float
    frontend: str
    val_share: float
    split_salt: str
    chunk_frames: int
    workers: int

    def __post_init__(self) -> None:
        if self.frontend not in ("phonemes", "characters"):
            raise ConfigError(
                f"params.yaml: features.frontend must be 'phonemes' or 'characters', got {self.frontend!r}"
            )
        if not 0.0 <= self.val_share < 1.0:
            raise ConfigError(f"params.yaml: features.val_share must be in [0, 1), got {self.val_share}")
        if self.fmax > self.sample_rate / 2:
            raise ConfigError(f"params.yaml: features.fmax {self.fmax} is above Nyquist ({self.sample_rate / 2})")


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read params.yaml as a plain dict, with a clear error when it is absent or malformed."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: not found; run from the repository root or pass --params")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: top level must be a mapping of stage sections")
    return raw


def data_config(params: dict[str, Any]) -> DataConfig:
    """The `data` section as a typed config."""
    return _build(DataConfig, params.get("data", {}), "data")


def features_config(params: dict[str, Any]) -> FeaturesConfig:
    """The `features` section as a typed config."""
    return _build(FeaturesConfig, params.get("features", {}), "features")


@dataclass(frozen=True)
class AlignConfig:
    """The duration aligner trained inside precompute (model/aligner.py)."""

    steps: int
    batch_size: int
    lr: float
    hidden: int
    attn_dim: int
    temperature: float
    prior_scaling: float
    blank_logprob: float
    pause_top_db: float
    seed: int
    device: str
    outlier_mad: float
    drop_flagged: bool
    figures: int

    def training_key(self) -> dict[str, Any]:
        """The knobs that change the trained aligner (the rest only change how it is used)."""
        return {
            k: v
            for k, v in dataclasses.asdict(self).items()
            if k not in ("device", "outlier_mad", "drop_flagged", "figures", "pause_top_db")
        }


def align_config(params: dict[str, Any]) -> AlignConfig:
    """The `align` section as a typed config."""
    return _build(AlignConfig, params.get("align", {}), "align")


@dataclass(frozen=True)
class EvalConfig:
    """The evaluate stage (params.yaml `eval`)."""

    checkpoint: str
    utterances: int
    batch_size: int
    device: str
    vocoder: str
    griffin_lim_iters: int
    length_scale: float
    mcd_order: int
    mcd_alpha: float
    mcd_floor_db: float
    mcd_trim_top_db: float
    stop_tolerance: float
    recognizer: str
    target_val_mel_loss: float
    curve_smoothing: float
    samples: int
    figures: int
    sentences: list[str]

    def __post_init__(self) -> None:
        if self.recognizer not in ("pocketsphinx", "none"):
            raise ConfigError(f"params.yaml: eval.recognizer must be pocketsphinx or none, got {self.recognizer!r}")
        if self.length_scale <= 0 or not 0 < self.curve_smoothing <= 1:
            raise ConfigError("params.yaml: eval.length_scale must be > 0 and eval.curve_smoothing in (0, 1]")


def eval_config(params: dict[str, Any]) -> EvalConfig:
    """The `eval` section as a typed config."""
    return _build(EvalConfig, params.get("eval", {}), "eval")


def store_model_config(params: dict[str, Any], attrs: dict[str, Any]) -> ModelConfig:
    """`model_config` with the vocabulary sizes, n_mels and the word separators (the symbols
    that may last 0 frames) of a features store's attributes."""
    symbols = attrs["symbols"]
    return model_config(
        params,
        len(symbols),
        len(attrs["speakers"]),
        len(attrs["languages"]),
        attrs["mel"]["n_mels"],
        tuple(i for i, s in enumerate(symbols) if s == WORD_SEPARATOR),
    )


def model_config(
    params: dict[str, Any],
    n_symbols: int,
    n_speakers: int,
    n_languages: int,
    n_mels: int,
    optional_ids: tuple[int, ...] = (),
) -> ModelConfig:
    """The `model` section, with its size preset expanded, plus the vocabulary sizes that the
    features store knows."""
    raw = params.get("model", {})
    check_keys(raw, PARAM_KEYS, "model")
    sizes = raw["sizes"]
    if raw["size"] not in sizes:
        raise ConfigError(f"params.yaml: model.size {raw['size']!r} is not one of {sorted(sizes)}")
    check_keys(sizes[raw["size"]], SIZE_KEYS, f"model.sizes.{raw['size']}")
    own = {k: raw[k] for k in PARAM_KEYS if k not in ("size", "sizes")}
    try:
        return ModelConfig(
            n_symbols=n_symbols,
            n_speakers=n_speakers,
            n_languages=n_languages,
            n_mels=n_mels,
            optional_ids=optional_ids,
            **own,
            **sizes[raw["size"]],
        )
    except (TypeError, ValueError) as e:
        raise ConfigError(f"params.yaml `model`: {e}") from e


LR_SCHEDULES = ("cosine_restarts", "noam")


@dataclass(frozen=True)
class TrainConfig:
    """The train stage (params.yaml `train`): optimizer and schedule, step mechanics, the loop,
    and the loss terms' weights and settings. pipeline/training/ reads every field."""

    lr: float
    lr_schedule: str
    warmup_steps: int
    restart_period: int
    restart_mult: float
    min_lr: float
    plateau_factor: float
    plateau_patience: int
    grad_clip: float
    grad_accumulation: int
    mixed_precision: bool
    batch_size: int
    num_workers: int
    val_every: int
    early_stop_patience: int
    early_stop_min_delta: float
    convergence_window: int
    max_steps: int
    max_nonfinite: int
    checkpoint_every: int
    seed: int
    device: str
    mel_loss_weight: float
    kl_loss_weight: float
    stop_loss_weight: float
    attention_loss_weight: float
    duration_loss_weight: float
    huber_delta: float | None
    mel_label_smoothing: float
    stop_label_smoothing: float
    stop_pos_weight: float
    attention_soften: float
    kl_warmup_steps: int
    adaptive_loss_weights: bool
    adaptive_bound: float
    adaptive_strength: float
    loss_ema: float

    def __post_init__(self) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(
                f"params.yaml: train.lr_schedule {self.lr_schedule!r} is not one of {', '.join(LR_SCHEDULES)}"
            )

    def loss_weights(self) -> LossWeights:
        """The fixed weight of each loss term (`train.<term>_loss_weight`)."""
        return LossWeights(**{t: getattr(self, f"{t}_loss_weight") for t in LOSS_TERMS})

    def loss_settings(self, reduction: int) -> LossSettings:
        """How the loss terms are computed; `reduction` is the model's frames per decoder step."""
        return LossSettings(
            huber_delta=self.huber_delta,
            mel_label_smoothing=self.mel_label_smoothing,
            stop_label_smoothing=self.stop_label_smoothing,
            stop_pos_weight=self.stop_pos_weight,
            attention_soften=self.attention_soften,
            reduction=reduction,
        )


def train_config(params: dict[str, Any]) -> TrainConfig:
    """The `train` section as a typed config; an unknown key is an error naming the nearest known one."""
    return _build(TrainConfig, params.get("train", {}), "train")
