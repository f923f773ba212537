"""features.zarr: ragged per-utterance features stored flat with offsets (zarr 3).

Layout (DESIGN.md): `mel` [total_frames, n_mels] float32 chunked along frames,
`mel_offsets` [n+1]; `tokens` [total_tokens] int32, `token_offsets` [n+1];
`durations` [total_tokens] int32 frames per token (sum per utterance == its frames);
`speaker`, `language`, `split` [n] (0 train, 1 val, 2 dropped by the aligner's outlier
check); `align_score` [n] forward-sum loss per frame, `align_flagged` [n];
`trim_start` [n] seconds cut from the start of the audio by trimming; attrs hold ids, names, the symbol table, mel settings, normalisation
statistics and versions.

Writing happens in a `.partial` folder beside the target with a ledger (`progress.json`)
that is rewritten atomically after every flushed batch, so a killed run resumes from its
last batch; the finished store is renamed into place in one step, so a later stage never
reads a half-written store.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from pipeline.common.atomic import atomic_path, write_json

FORMAT_VERSION = 2
LEDGER = "progress.json"


@dataclass
class Ledger:
    """What a partial store holds: the ids written so far and running sums for statistics."""

    fingerprint: str
    ids: list[str] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)
    n_tokens: list[int] = field(default_factory=list)
    trim_start: list[float] = field(default_factory=list)
    train_frames: int = 0
    mel_sum: list[float] = field(default_factory=list)
    mel_sumsq: list[float] = field(default_factory=list)


class FeatureWriter:
    """Appends utterances to a partial store and finalizes it into place.

    Reopening with the same fingerprint resumes: arrays are cut back to what the ledger
    records (a batch written but not recorded is redone), and `done` lists finished ids.
    A different fingerprint (other params or manifest) starts from scratch.
    """

    def __init__(self, target: Path, fingerprint: str, n_mels: int, chunk_frames: int) -> None:
        self.target = Path(target)
        self.partial = self.target.with_name(self.target.name + ".partial")
        self.n_mels = n_mels
        ledger = self._read_ledger()
        if ledger is not None and ledger.fingerprint == fingerprint:
            self.ledger = ledger
            self.group = zarr.open_group(str(self.partial), mode="r+")
            self.group["mel"].resize((sum(ledger.frames), n_mels))
            self.group["tokens"].resize((sum(ledger.n_tokens),))
        else:
            self.ledger = Ledger(fingerprint, mel_sum=[0.0] * n_mels, mel_sumsq=[0.0] * n_mels)
            self.group = zarr.open_group(str(self.partial), mode="w")
            self.group.create_array("mel", shape=(0, n_mels), chunks=(chunk_frames, n_mels), dtype="float32")
            self.group.create_array("tokens", shape=(0,), chunks=(chunk_frames * 8,), dtype="int32")
            self._write_ledger()

    @property
    def done(self) -> set[str]:
        """Ids already in the store."""
        return set(self.ledger.ids)

    def _read_ledger(self) -> Ledger | None:
        path = self.partial / LEDGER
        if not path.is_file():
            return None
        try:
            return Ledger(**json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError):
            return None

    def _write_ledger(self) -> None:
        write_json(self.partial / LEDGER, self.ledger.__dict__)

    def append(self, items: list[dict[str, Any]]) -> None:
        """Write a batch: each item has id, mel [frames, n_mels], tokens [n], trim_start, is_train.

        The ledger is rewritten after the arrays, so a kill between the two only costs redoing
        this batch.
        """
        if not items:
            return
        mel = np.concatenate([it["mel"] for it in items]).astype(np.float32)
        tokens = np.concatenate([np.asarray(it["tokens"], dtype=np.int32) for it in items])
        self.group["mel"].append(mel, axis=0)
        self.group["tokens"].append(tokens, axis=0)
        led = self.ledger
        for it in items:
            led.ids.append(it["id"])
            led.frames.append(int(it["mel"].shape[0]))
            led.n_tokens.append(len(it["tokens"]))
            led.trim_start.append(float(it["trim_start"]))
            if it["is_train"]:
                m = it["mel"].astype(np.float64)
                led.train_frames += m.shape[0]
                led.mel_sum = (np.asarray(led.mel_sum) + m.sum(0)).tolist()
                led.mel_sumsq = (np.asarray(led.mel_sumsq) + (m * m).sum(0)).tolist()
        self._write_ledger()

    def reader(self) -> Callable[[int], tuple[np.ndarray, np.ndarray]]:
        """index -> (mel [frames, n_mels], tokens) of a written utterance (partial store); the
        offsets are computed once, for many reads."""
        f = np.concatenate([[0], np.cumsum(self.ledger.frames)])
        t = np.concatenate([[0], np.cumsum(self.ledger.n_tokens)])
        mel, tokens = self.group["mel"], self.group["tokens"]
        return lambda i: (mel[f[i] : f[i + 1]], tokens[t[i] : t[i + 1]])

    def stats(self, exclude: list[int]) -> tuple[np.ndarray, np.ndarray, int]:
        """Per-channel mean and std of the training frames, leaving out utterances `exclude`
        (indices of training utterances, e.g. those the aligner flagged), and the frame count."""
        led = self.ledger
        total = np.asarray(led.mel_sum)
        total_sq = np.asarray(led.mel_sumsq)
        n = led.train_frames
        read = self.reader()
        for i in exclude:
            m = read(i)[0].astype(np.float64)
            total = total - m.sum(0)
            total_sq = total_sq - (m * m).sum(0)
            n -= m.shape[0]
        if n <= 0:
            raise RuntimeError("no training frames: every utterance is in the validation split or dropped")
        mean = total / n
        std = np.sqrt(np.maximum(total_sq / n - mean**2, 1e-8))
        return mean, std, n

    def finalize(self, per_utt: dict[str, np.ndarray], per_token: dict[str, np.ndarray], attrs: dict[str, Any]) -> None:
        """Write offsets, per-utterance and per-token arrays and attrs; move the store into place.

        `per_utt` arrays align with the written ids, `per_token` arrays with `tokens`.
        """
        led = self.ledger
        g = self.group
        n_tokens = int(sum(led.n_tokens))
        g.create_array(
            "mel_offsets", data=np.concatenate([[0], np.cumsum(led.frames)]).astype(np.int64), overwrite=True
        )
        g.create_array(
            "token_offsets", data=np.concatenate([[0], np.cumsum(led.n_tokens)]).astype(np.int64), overwrite=True
        )
        g.create_array("trim_start", data=np.asarray(led.trim_start, dtype=np.float32), overwrite=True)
        for name, values in per_utt.items():
            if len(values) != len(led.ids):
                raise ValueError(f"finalize: {name} has {len(values)} values for {len(led.ids)} utterances")
            g.create_array(name, data=np.asarray(values), overwrite=True)
        for name, values in per_token.items():
            if len(values) != n_tokens:
                raise ValueError(f"finalize: {name} has {len(values)} values for {n_tokens} tokens")
            g.create_array(name, data=np.asarray(values), chunks=(self.group["tokens"].chunks[0],), overwrite=True)
        g.attrs.update({**attrs, "ids": led.ids, "format_version": FORMAT_VERSION})
        (self.partial / LEDGER).unlink()
        with atomic_path(self.target, folder=True) as tmp:
            os.replace(self.partial, tmp)


class FeatureStore:
    """Random-access reader of a finished features.zarr (reads only what is asked for)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not (self.path / "zarr.json").is_file():
            raise FileNotFoundError(f"{self.path}: no features store; run `dvc repro precompute`")
        self.group = zarr.open_group(str(self.path), mode="r")
        self.attrs: dict[str, Any] = dict(self.group.attrs)
        self.mel_offsets = self.group["mel_offsets"][:]
        self.token_offsets = self.group["token_offsets"][:]
        self.ids: list[str] = self.attrs["ids"]

    def __len__(self) -> int:
        return len(self.ids)

    def array(self, name: str) -> np.ndarray:
        """A whole per-utterance array (speaker, language, split, trim_start)."""
        return self.group[name][:]

    def mel(self, i: int) -> np.ndarray:
        """Log-mel of utterance i, [frames, n_mels], unnormalized."""
        return self.group["mel"][self.mel_offsets[i] : self.mel_offsets[i + 1]]

    def tokens(self, i: int) -> np.ndarray:
        """Token ids of utterance i."""
        return self.group["tokens"][self.token_offsets[i] : self.token_offsets[i + 1]]

    def durations(self, i: int) -> np.ndarray:
        """Frames per token of utterance i (sums to its frame count)."""
        return self.group["durations"][self.token_offsets[i] : self.token_offsets[i + 1]]

    def frames(self) -> np.ndarray:
        """Frame count per utterance."""
        return np.diff(self.mel_offsets)
