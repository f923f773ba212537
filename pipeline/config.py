"""Typed configuration, one dataclass per stage section of params.yaml.

Every default lives in params.yaml; these classes only give the values types and a clear
error when a key is missing or unknown, so no knob hides in code.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

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
