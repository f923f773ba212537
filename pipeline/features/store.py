"""features.zarr: ragged per-utterance features stored flat with offsets (zarr 3).

Layout (DESIGN.md): `mel` [total_frames, n_mels] float32 chunked along frames,
`mel_offsets` [n+1]; `tokens` [total_tokens] int32, `token_offsets` [n+1];
`durations` [total_tokens] int32 frames per token (sum per utterance == its frames);
`speaker`, `language`, `split` [n] (0 train, 1 val, 2 dropped by the aligner's outlier
check, 3 unseen: listed in the corpus's unseen.txt); `align_score` [n] forward-sum loss per frame, `align_flagged` [n];
`trim_start` [n] seconds cut from the start of the audio by trimming; attrs hold ids, names, the symbol table, mel settings, normalisation
statistics and versions.

Writing happens in a `.partial` folder beside the target with a ledger (`progress.json`)
that is rewritten atomically after every flushed batch, so a killed run resumes from its
last batch; the finished store is renamed into place in one step, so a later stage never
reads a half-written store. A full disk met by zarr's own writes names the partial store.

A chunk that no longer decodes (its file cut short by an interrupted copy, or garbled past what
the decoder accepts) is a `DamagedStoreError` naming the store, the array and the chunk, whoever
reads it; `damaged_chunks` decodes every chunk once to find them all (doctor).
"""

from __future__ import annotations

import errno
import functools
import json
import os
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from pipeline.common.atomic import MARKER, DiskFullError, atomic_path, disk_full_error, write_json

FORMAT_VERSION = 2
LEDGER = "progress.json"

# What to do about a damaged store: build it again from the corpus (`--force`, because DVC may
# consider the stage up to date).
REBUILD_FIX = "rerun `dvc repro precompute --force`"

# What zarr's codecs raise on bytes they cannot decode: numcodecs' zstd a RuntimeError ("Zstd
# decompression error"), a chunk that decodes to the wrong size a ValueError.
_DECODE_ERRORS = (RuntimeError, ValueError)


class DamagedStoreError(ValueError):
    """A chunk of a features store does not decode; the message names the store, the array, the
    chunk (or the rows read) and the fix. Built from one string, as torch's DataLoader rebuilds
    a worker's exception in the main process."""


@dataclass(frozen=True)
class DamagedChunk:
    """One chunk of an array that does not decode: where it is, the rows it holds (along the
    first axis) and the decoder's complaint."""

    array: str
    chunk: str
    rows: tuple[int, int]
    file: Path
    error: str

    def __str__(self) -> str:
        return (
            f"array {self.array}, chunk {self.chunk} (rows {self.rows[0]}:{self.rows[1]}, file {self.file}) "
            f"does not decode ({self.error})"
        )


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


def _chunk_damage(store: Path, name: str, arr: zarr.Array, coords: tuple[int, ...]) -> DamagedChunk | None:
    """The chunk at grid `coords` of array `name` decoded once: None when it decodes."""
    selection = tuple(slice(c * size, min((c + 1) * size, n)) for c, size, n in zip(coords, arr.chunks, arr.shape))
    try:
        arr[selection]
    except _DECODE_ERRORS as e:
        # All arrays of the layout are chunked along their first axis only: name a chunk by its
        # index there, and by its grid position only where an array is chunked otherwise.
        single = all(c == 0 for c in coords[1:]) and all(k == 1 for k in arr.cdata_shape[1:])
        label = str(coords[0]) if single else str(coords)
        rows = (selection[0].start, selection[0].stop)
        return DamagedChunk(name, label, rows, store / name / arr.metadata.encode_chunk_key(coords), _one_line(e))
    return None


def damaged_chunks(path: str | Path) -> list[DamagedChunk]:
    """Every chunk of every array of the store at `path` that does not decode, each decoded once
    (a chunk of the fill value that zarr never wrote reads as such, and is no damage)."""
    path = Path(path)
    group = zarr.open_group(str(path), mode="r")
    with warnings.catch_warnings():
        # Listing the members meets the folder's ownership marker (atomic.MARKER), which is ours.
        warnings.filterwarnings("ignore", message=f"Object at {re.escape(MARKER)} is not recognized")
        arrays = sorted(group.arrays(), key=lambda kv: kv[0])
    found = []
    for name, arr in arrays:
        for coords in np.ndindex(*arr.cdata_shape):
            damage = _chunk_damage(path, name, arr, coords)
            if damage is not None:
                found.append(damage)
    return found


def _damaged_read_error(
    path: Path, name: str, arr: zarr.Array, start: int, stop: int, cause: BaseException
) -> DamagedStoreError:
    """The error of a read of rows start:stop of array `name` that failed to decode: the chunks
    among those rows that do not decode on their own, or, when none does, the rows."""
    size = arr.chunks[0]
    damaged = [
        d
        for first in range(start // size, -(-stop // size))
        for rest in np.ndindex(*arr.cdata_shape[1:])
        if (d := _chunk_damage(path, name, arr, (first, *rest))) is not None
    ]
    where = (
        "; ".join(str(d) for d in damaged)
        if damaged
        else f"array {name}, rows {start}:{stop} do not decode ({_one_line(cause)})"
    )
    return DamagedStoreError(f"{path}: damaged store: {where}; {REBUILD_FIX}")


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
            with self._zarr_writes():
                self.group = zarr.open_group(str(self.partial), mode="r+")
                self.group["mel"].resize((sum(ledger.frames), n_mels))
                self.group["tokens"].resize((sum(ledger.n_tokens),))
        else:
            self.ledger = Ledger(fingerprint, mel_sum=[0.0] * n_mels, mel_sumsq=[0.0] * n_mels)
            with self._zarr_writes():
                self.group = zarr.open_group(str(self.partial), mode="w")
                self.group.create_array("mel", shape=(0, n_mels), chunks=(chunk_frames, n_mels), dtype="float32")
                self.group.create_array("tokens", shape=(0,), chunks=(chunk_frames * 8,), dtype="int32")
            self._write_ledger()

    @contextmanager
    def _zarr_writes(self) -> Iterator[None]:
        """Around zarr's writes into the partial store: a full disk is said naming the store.
        zarr's OSError carries no filename (the write of an open file fails), and the reporter
        would then measure the free space of the current folder, maybe another filesystem."""
        try:
            yield
        except OSError as e:
            if isinstance(e, DiskFullError) or e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise disk_full_error(self.partial, e.errno, atomic=False) from e

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
        with self._zarr_writes():
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
        with self._zarr_writes():
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
            token_chunks = (self.group["tokens"].chunks[0],)
            for name, values in per_token.items():
                if len(values) != n_tokens:
                    raise ValueError(f"finalize: {name} has {len(values)} values for {n_tokens} tokens")
                g.create_array(name, data=np.asarray(values), chunks=token_chunks, overwrite=True)
            g.attrs.update({**attrs, "ids": led.ids, "format_version": FORMAT_VERSION})
        (self.partial / LEDGER).unlink()
        with atomic_path(self.target, folder=True) as tmp:
            os.replace(self.partial, tmp)


class FeatureStore:
    """Random-access reader of a finished features.zarr (reads only what is asked for). A chunk
    that does not decode is a `DamagedStoreError` naming it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not (self.path / "zarr.json").is_file():
            raise FileNotFoundError(f"{self.path}: no features store; run `dvc repro precompute`")
        self.group = zarr.open_group(str(self.path), mode="r")
        self.attrs: dict[str, Any] = dict(self.group.attrs)
        self.ids: list[str] = self.attrs["ids"]

    # Read on first use, so that a reader of the attrs alone (the settings a store was made
    # with) never decodes a chunk, and is not stopped by a damaged one.
    @functools.cached_property
    def mel_offsets(self) -> np.ndarray:
        """Utterance i is mel[mel_offsets[i]:mel_offsets[i + 1]]."""
        return self._read("mel_offsets")

    @functools.cached_property
    def token_offsets(self) -> np.ndarray:
        """Utterance i is tokens[token_offsets[i]:token_offsets[i + 1]]."""
        return self._read("token_offsets")

    def __len__(self) -> int:
        return len(self.ids)

    def _read(self, name: str, start: int | None = None, stop: int | None = None) -> np.ndarray:
        """Rows start:stop of array `name` (all of it by default)."""
        arr = self.group[name]
        try:
            return arr[start:stop]
        except _DECODE_ERRORS as e:
            first, last, _ = slice(start, stop).indices(arr.shape[0])
            raise _damaged_read_error(self.path, name, arr, first, last, e) from e

    def array(self, name: str) -> np.ndarray:
        """A whole per-utterance array (speaker, language, split, trim_start)."""
        return self._read(name)

    def mel(self, i: int) -> np.ndarray:
        """Log-mel of utterance i, [frames, n_mels], unnormalized."""
        return self._read("mel", int(self.mel_offsets[i]), int(self.mel_offsets[i + 1]))

    def tokens(self, i: int) -> np.ndarray:
        """Token ids of utterance i."""
        return self._read("tokens", int(self.token_offsets[i]), int(self.token_offsets[i + 1]))

    def durations(self, i: int) -> np.ndarray:
        """Frames per token of utterance i (sums to its frame count)."""
        return self._read("durations", int(self.token_offsets[i]), int(self.token_offsets[i + 1]))

    def frames(self) -> np.ndarray:
        """Frame count per utterance."""
        return np.diff(self.mel_offsets)
