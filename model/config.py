"""The model's configuration: one typed object, built from params.yaml `model` and the features."""

from __future__ import annotations

from dataclasses import dataclass, fields

# The integer fields of ModelConfig for which 0 is a setting (every frame; no convolutions).
ZERO_ALLOWED = ("frame_attention_window", "text_conv_layers")


@dataclass(frozen=True)
class ModelConfig:
    """Every size and behaviour knob of model/tts.py.

    The vocabulary sizes (symbols, speakers, languages) and n_mels come from the features
    store, the rest from params.yaml `model` (the size preset picked by `model.size`).
    """

    decoder: str  # "autoregressive" | "parallel"
    n_symbols: int
    n_speakers: int
    n_languages: int
    n_mels: int
    d_model: int
    heads: int
    encoder_layers: int
    decoder_layers: int
    ff: int
    latent: int
    reference_channels: int
    postnet_channels: int
    postnet_layers: int
    prenet_dim: int
    duration_channels: int
    dropout: float
    prenet_dropout: float
    reduction: int
    attention_window: int
    max_length_factor: float
    # Each autoregressive step also sees the length-regulated text state at its own frames
    # (the aligner's durations in training, the predicted ones at synthesis), so it need not
    # find its place in the text from its own past frames. False in checkpoints written before
    # the knob existed, which were made without it.
    aligned_conditioning: bool = False
    # Dropout on the attention weights. Before the knob, attention used `dropout` (0.1 in every
    # checkpoint written then); it only acts in training, so synthesis never depends on it.
    attention_dropout: float = 0.1
    # Parallel decoder: each frame's self-attention sees the frames at most this many away
    # (cost linear in utterance length); 0 = every frame, as before the knob.
    frame_attention_window: int = 0
    # Residual 1-D convolutions over the tokens before the encoder's attention layers: each
    # token's state takes in its neighbours' (the local context a phone's sound depends on, the
    # encoder pre-net of Transformer-TTS). 0 = none, as in checkpoints written before the knob.
    text_conv_layers: int = 0
    # Tokens each of those convolutions sees (odd, so a token stays at its own position).
    text_conv_kernel: int = 5
    # Token ids that may last 0 frames at synthesis (word separators); every other real token
    # gets at least one frame, so no phone is skipped.
    optional_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        """Refuse a model that cannot be built or would misbehave, all problems together. Each
        line starts with the field's name, so pipeline/config.py can name the params.yaml key."""
        problems = []
        if self.decoder not in ("autoregressive", "parallel"):
            problems.append(f"decoder must be 'autoregressive' or 'parallel', got {self.decoder!r}")
        # Every count (vocabulary, widths, layers, frames per step, attention window) is >= 1:
        # 0 builds an empty layer, or a window that sees no token.
        for f in fields(self):
            if f.type == "int" and f.name not in ZERO_ALLOWED and getattr(self, f.name) < 1:
                problems.append(f"{f.name} must be an integer >= 1, got {getattr(self, f.name)!r}")
        for name in ZERO_ALLOWED:  # 0 is "every frame" / "no convolutions"
            if getattr(self, name) < 0:
                problems.append(f"{name} must be an integer >= 0, got {getattr(self, name)!r}")
        if self.text_conv_kernel >= 1 and self.text_conv_kernel % 2 == 0:
            problems.append(
                f"text_conv_kernel ({self.text_conv_kernel}) must be odd: an even kernel shifts each token by half a position"
            )
        for name in (
            "dropout",
            "prenet_dropout",
            "attention_dropout",
        ):  # a drop probability of 1 would zero every activation
            if not 0 <= getattr(self, name) < 1:
                problems.append(f"{name} must be a number in [0, 1), got {getattr(self, name)!r}")
        if not self.max_length_factor >= 1:  # a cap below 1 cuts every predicted length short
            problems.append(f"max_length_factor must be a number >= 1, got {self.max_length_factor!r}")
        if self.heads >= 1 and self.d_model % self.heads:
            problems.append(f"heads must divide d_model ({self.d_model}), got {self.heads}")
        if problems:
            raise ValueError("\n".join(problems))


# The symbol between words in every frontend's output (model/text.py): it may last 0 frames.
WORD_SEPARATOR = " "

# The ModelConfig fields that come from the features store rather than params.yaml `model`.
STORE_KEYS = ("n_symbols", "n_speakers", "n_languages", "n_mels", "optional_ids")
# The ModelConfig fields that a size preset (params.yaml `model.sizes.<name>`) sets.
SIZE_KEYS = (
    "d_model",
    "heads",
    "encoder_layers",
    "decoder_layers",
    "ff",
    "latent",
    "reference_channels",
    "postnet_channels",
    "postnet_layers",
    "prenet_dim",
    "duration_channels",
)
# params.yaml `model`: every other ModelConfig field, plus the preset's name and the presets.
PARAM_KEYS = tuple(f.name for f in fields(ModelConfig) if f.name not in STORE_KEYS and f.name not in SIZE_KEYS) + (
    "size",
    "sizes",
)


@dataclass(frozen=True)
class LossWeights:
    """The fixed weight of each loss term (params.yaml `train.*_loss_weight`)."""

    mel: float
    kl: float
    stop: float
    attention: float
    duration: float


# The loss terms, in the order they are logged; each has a weight `train.<term>_loss_weight`.
LOSS_TERMS = tuple(f.name for f in fields(LossWeights))


@dataclass(frozen=True)
class LossSettings:
    """How each term is computed (params.yaml `train`)."""

    huber_delta: float | None  # None: plain L1
    mel_label_smoothing: float
    stop_label_smoothing: float
    stop_pos_weight: float
    attention_soften: float
    reduction: int
