"""Typed configuration, one dataclass per stage section of params.yaml.

Every default lives in params.yaml; these classes only give the values types and a clear
error when a key is missing or unknown, so no knob hides in code.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

if TYPE_CHECKING:  # torch-backed types; imported lazily so data stages do not load torch
    from model.config import ModelConfig
    from model.losses import LossWeights
    from model.objective import LossSettings
    from pipeline.trainer import TrainConfig

T = TypeVar("T")


class ConfigError(ValueError):
    """params.yaml is missing a key, has an unknown one, or a value of the wrong kind."""


def _build(cls: type[T], raw: dict[str, Any], where: str) -> T:
    if not isinstance(raw, dict):
        raise ConfigError(f"params.yaml: `{where}` must be a mapping, got {type(raw).__name__}")
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - names)
    missing = sorted(names - set(raw))
    if unknown:
        raise ConfigError(f"params.yaml: unknown key(s) under `{where}`: {', '.join(unknown)}")
    if missing:
        raise ConfigError(f"params.yaml: missing key(s) under `{where}`: {', '.join(missing)}")
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
            raise ConfigError(
                f"params.yaml: features.fmax {self.fmax} is above Nyquist ({self.sample_rate / 2})"
            )


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


def store_model_config(params: dict[str, Any], attrs: dict[str, Any]) -> "ModelConfig":
    """`model_config` with the vocabulary sizes, n_mels and the word separators (the symbols
    that may last 0 frames) of a features store's attributes."""
    symbols = attrs["symbols"]
    return model_config(
        params, len(symbols), len(attrs["speakers"]), len(attrs["languages"]), attrs["mel"]["n_mels"],
        tuple(i for i, s in enumerate(symbols) if s == " "),
    )


SIZE_KEYS = (
    "d_model", "heads", "encoder_layers", "decoder_layers", "ff", "latent", "reference_channels",
    "postnet_channels", "postnet_layers", "prenet_dim", "duration_channels",
)
MODEL_KEYS = ("decoder", "size", "reduction", "dropout", "prenet_dropout", "attention_window", "max_length_factor", "sizes")


def model_config(
    params: dict[str, Any],
    n_symbols: int,
    n_speakers: int,
    n_languages: int,
    n_mels: int,
    optional_ids: tuple[int, ...] = (),
) -> "ModelConfig":
    """The `model` section, with its size preset expanded, plus the vocabulary sizes that the
    features store knows."""
    from model.config import ModelConfig

    raw = params.get("model", {})
    unknown = sorted(set(raw) - set(MODEL_KEYS))
    missing = sorted(set(MODEL_KEYS) - set(raw))
    if unknown or missing:
        raise ConfigError(f"params.yaml `model`: unknown {unknown or '-'}, missing {missing or '-'}")
    sizes = raw["sizes"]
    if raw["size"] not in sizes:
        raise ConfigError(f"params.yaml: model.size {raw['size']!r} is not one of {sorted(sizes)}")
    preset = sizes[raw["size"]]
    if sorted(preset) != sorted(SIZE_KEYS):
        raise ConfigError(f"params.yaml: model.sizes.{raw['size']} needs exactly {', '.join(SIZE_KEYS)}")
    try:
        return ModelConfig(
            decoder=raw["decoder"],
            n_symbols=n_symbols,
            n_speakers=n_speakers,
            n_languages=n_languages,
            n_mels=n_mels,
            reduction=raw["reduction"],
            dropout=raw["dropout"],
            prenet_dropout=raw["prenet_dropout"],
            attention_window=raw["attention_window"],
            max_length_factor=raw["max_length_factor"],
            optional_ids=optional_ids,
            **preset,
        )
    except ValueError as e:
        raise ConfigError(f"params.yaml `model`: {e}") from e


def _train_values(params: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """The named keys of params.yaml `train`; a missing one is a ConfigError naming it."""
    t = params.get("train", {})
    missing = [k for k in keys if k not in t]
    if missing:
        raise ConfigError(f"params.yaml: missing key(s) under `train`: {', '.join(missing)}")
    return {k: t[k] for k in keys}


def loss_settings(params: dict[str, Any], reduction: int) -> "LossSettings":
    """How the loss terms are computed (params.yaml `train`)."""
    from model.objective import LossSettings

    keys = ("huber_delta", "mel_label_smoothing", "stop_label_smoothing", "stop_pos_weight", "attention_soften")
    return LossSettings(**_train_values(params, keys), reduction=reduction)


def loss_weights(params: dict[str, Any]) -> "LossWeights":
    """The loss weights (params.yaml `train.*_loss_weight`)."""
    from model.losses import LossWeights

    terms = ("mel", "kl", "stop", "attention", "duration")
    values = _train_values(params, [f"{k}_loss_weight" for k in terms])
    return LossWeights(**{k: values[f"{k}_loss_weight"] for k in terms})


@dataclass(frozen=True)
class RunConfig:
    """The train stage's loop knobs (params.yaml `train`) that are not step mechanics."""

    batch_size: int
    num_workers: int
    val_every: int
    max_steps: int
    checkpoint_every: int
    seed: int
    device: str


def train_configs(params: dict[str, Any]) -> tuple["TrainConfig", RunConfig]:
    """params.yaml `train` split into the step mechanics and the loop knobs."""
    from pipeline.trainer import TrainConfig

    step = TrainConfig(**_train_values(params, [f.name for f in fields(TrainConfig)]))
    run = _train_values(params, [f.name for f in fields(RunConfig)])
    try:
        step.schedule()  # refuse an unknown train.lr_schedule before any data is loaded
    except ValueError as e:
        raise ConfigError(f"params.yaml: {e}") from None
    return step, RunConfig(**run)
