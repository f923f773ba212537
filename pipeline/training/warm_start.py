"""Starting a new run from another run's weights (`train.init_from`), as distinct from resuming.

A warm start takes the base checkpoint's model weights only: the optimizer, the LR schedule,
the step count and the dvclive history start fresh. The base must have been trained on the
same mel settings and with the same model shape (the keys that differ are named otherwise).
The vocabularies may differ: each embedding row is matched by name (symbol, language, speaker),
not by index, so a symbol table in another order keeps every known symbol's row; names the base
never saw get the mean of the base's rows (a neutral start that sits among the known ones).

Speakers: a base trained on one voice has no speaker table (model/text_encoder.py adds one only
for several), so a multi-speaker run starting from it gives every speaker a zero row — the
base's behaviour exactly, the differences left to learn. A single-speaker run from a
multi-speaker base has no table either; the speaker's row (or the mean, for a new name) is added
into every language row instead, which is the same sum the encoder would have made.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

import torch

from model.config import SIZE_KEYS, ModelConfig

# The ModelConfig fields that decide which weights exist and their shapes. The rest act in
# training (dropouts) or at synthesis (windows, length cap) and may differ freely.
SHAPE_KEYS = (
    "decoder",
    *SIZE_KEYS,
    "n_mels",
    "reduction",
    "aligned_conditioning",
    "text_conv_layers",
    "text_conv_kernel",
)
# The embedding tables matched by name: checkpoint/store attribute -> state-dict key.
TABLES = {
    "symbols": "encoder.embed.weight",
    "languages": "encoder.language.weight",
    "speakers": "encoder.speaker.weight",
}
PADDING_SYMBOL = 0  # model/text_encoder.py: padding_idx=0, a row that stays zero


class WarmStartError(ValueError):
    """A base checkpoint this run cannot start from; the message names the differing keys."""


@dataclass
class WarmStart:
    """What a warm start did: the new names per table (initialised, not copied) and the names
    the base knew that this run does not have."""

    new: dict[str, list[str]] = field(default_factory=dict)
    dropped: dict[str, list[str]] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """One line per table that changed, for the log."""
        out = [f"new {table}, initialised: {', '.join(map(repr, names))}" for table, names in self.new.items() if names]
        out += [
            f"{table} the base knew and this run has not: {', '.join(map(repr, names))}"
            for table, names in self.dropped.items()
            if names
        ]
        return out


def check_compatible(base: dict[str, Any], mcfg: ModelConfig, mel: dict[str, Any], source: str) -> None:
    """Refuse a base whose mel settings or model shape differ from this run's, naming every
    differing key with both values."""
    problems = []
    base_mel = base["mel"]
    for key in sorted(set(base_mel) | set(mel)):
        if base_mel.get(key) != mel.get(key):
            problems.append(f"features.{key}: base {base_mel.get(key)!r}, this run {mel.get(key)!r}")
    # A base written before a knob existed lacks its key; it was made as the knob's default
    # (ModelConfig's defaults say so), which is what it is compared as.
    defaults = {f.name: f.default for f in fields(ModelConfig) if f.default is not MISSING}
    base_cfg, cfg = {**defaults, **base["model_config"]}, asdict(mcfg)
    for key in SHAPE_KEYS:
        if base_cfg.get(key) != cfg[key]:
            where = f"model.sizes.<size>.{key}" if key in SIZE_KEYS else f"model.{key}"
            problems.append(f"{where}: base {base_cfg.get(key)!r}, this run {cfg[key]!r}")
    if problems:
        raise WarmStartError(
            f"{source}: cannot start from this checkpoint, its settings differ from this run's:\n  "
            + "\n  ".join(problems)
        )


def warm_start_state(
    base_state: dict[str, torch.Tensor],
    base_names: dict[str, list[str]],
    model: torch.nn.Module,
    names: dict[str, list[str]],
    source: str,
) -> tuple[dict[str, torch.Tensor], WarmStart]:
    """The state dict to load into `model`: every weight from the base, the embedding tables
    re-indexed by name (see the module docstring). Any other weight whose shape differs is a
    WarmStartError naming it (check_compatible has normally refused such a base already)."""
    own = model.state_dict()
    state = {k: v for k, v in base_state.items() if k not in TABLES.values()}
    report = WarmStart()
    for table, key in TABLES.items():
        rows = _table(base_state.get(key), base_names[table], names[table], table, own.get(key), report)
        if rows is not None:
            state[key] = rows
    if "encoder.speaker.weight" not in own and "encoder.speaker.weight" in base_state:
        state["encoder.language.weight"] = state["encoder.language.weight"] + _folded_speaker(
            base_state["encoder.speaker.weight"], base_names["speakers"], names["speakers"]
        )
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        details = [f"missing {', '.join(missing)}"] if missing else []
        details += [f"not in this model {', '.join(unexpected)}"] if unexpected else []
        details += [f"{k}: base {tuple(state[k].shape)}, this run {tuple(own[k].shape)}" for k in wrong]
        raise WarmStartError(f"{source}: its weights do not fit this model: {'; '.join(details)}")
    return {k: v.to(own[k].dtype) for k, v in state.items()}, report


def _table(
    base_rows: torch.Tensor | None,
    base_names: list[str],
    names: list[str],
    table: str,
    own_rows: torch.Tensor | None,
    report: WarmStart,
) -> torch.Tensor | None:
    """This run's rows of one embedding table, by name; None when this model has no such table."""
    report.new[table] = [n for n in names if n not in base_names]
    report.dropped[table] = [n for n in base_names if n not in names]
    if own_rows is None:
        return None
    if base_rows is None:  # a single-speaker base: no speaker offset at all, so zero rows
        return torch.zeros_like(own_rows)
    index = {n: i for i, n in enumerate(base_names)}
    real = [i for i in range(len(base_names)) if not (table == "symbols" and i == PADDING_SYMBOL)]
    mean = base_rows[real].mean(0)
    rows = torch.stack([base_rows[index[n]] if n in index else mean for n in names])
    if table == "symbols":
        rows[PADDING_SYMBOL] = 0.0
    return rows


def _folded_speaker(base_rows: torch.Tensor, base_names: list[str], names: list[str]) -> torch.Tensor:
    """The speaker row a single-speaker run adds into its language rows: its own, if the base
    knew it, else the mean of the base's speakers."""
    if len(names) == 1 and names[0] in base_names:
        return base_rows[base_names.index(names[0])]
    return base_rows.mean(0)
