"""What the train and vocoder stages share around their steps: a SIGINT/SIGTERM flag, atomic
checkpoint writes, a damaged checkpoint set aside, and the dvclive history (opened at a step,
closed step by step, cut back to a checkpoint on resume)."""

from __future__ import annotations

import json
import os
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from pipeline.common.atomic import atomic_path, write_text


class StopFlag:
    """Turns SIGINT/SIGTERM into a flag the loop checks after each step (then it saves)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signal = signum

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def set_aside_damaged(path: Path) -> Path:
    """Rename `path` to `<name>.damaged-<UTC time>` in its folder (never over another file)
    and return the new path: the user's file is kept for them to inspect or delete."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while aside.exists() or aside.is_symlink():
        aside, n = path.with_name(f"{path.name}.damaged-{stamp}-{n}"), n + 1
    path.rename(aside)
    return aside


def trim_history(live_dir: Path, step: int) -> None:
    """Cut the dvclive history back to a checkpoint taken after `step` optimizer steps.

    The loop logs optimizer step k (1-based) at dvclive step k - 1, so a checkpoint at `step`
    covers the rows with step < `step`; rows at or after it were logged between that
    checkpoint and a kill and will be logged again by the resumed run. Each .tsv is rewritten
    atomically without them, and metrics.json's latest values follow the kept rows."""
    metrics = live_dir / "plots" / "metrics"
    tables = sorted(metrics.rglob("*.tsv")) if metrics.is_dir() else []
    kept_last: dict[tuple[str, ...], float | None] = {}
    for table in tables:
        keys = table.relative_to(metrics).with_suffix("").parts
        kept_last[keys] = _trim_table(table, step)
    _trim_summary(live_dir / "metrics.json", kept_last, step)


def _trim_table(table: Path, step: int) -> float | None:
    """Keep the header and the whole rows with step < `step` (a row cut short by a kill, or
    one whose step does not parse, goes too); the last kept value, or None."""
    lines = table.read_text(encoding="utf-8").splitlines()
    if not lines:
        return None
    header = lines[0].split("\t")
    if "step" not in header:
        return None
    at, width = header.index("step"), len(header)
    rows = [(line, _row_step(line, at, width)) for line in lines[1:]]
    kept = [line for line, row_step in rows if row_step is not None and row_step < step]
    if len(kept) != len(rows):
        write_text(table, "".join(f"{line}{os.linesep}" for line in [lines[0], *kept]))
    if not kept:
        return None
    try:
        return float(kept[-1].split("\t")[width - 1])  # dvclive writes the value last
    except ValueError:
        return None


def _row_step(line: str, at: int, width: int) -> int | None:
    """The step of a .tsv row, or None for a row that is not whole."""
    fields = line.split("\t")
    if len(fields) != width:
        return None
    try:
        return int(fields[at])
    except ValueError:
        return None


def _trim_summary(path: Path, kept_last: dict[tuple[str, ...], float | None], step: int) -> None:
    """Rewrite metrics.json's latest values (and its step) from the trimmed tables; dvclive
    reads it on resume and would otherwise report values from after the checkpoint."""
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # absent or half-written: dvclive starts a new one
    if not isinstance(summary, dict):
        return
    for keys, value in kept_last.items():
        _set_in(summary, keys, value)
    summary["step"] = max(step - 1, 0)
    write_text(path, json.dumps(summary, indent=4) + "\n")


def _set_in(tree: dict[str, Any], keys: tuple[str, ...], value: float | None) -> None:
    """Set the nested entry `keys` of `tree` to `value`, or remove it when `value` is None."""
    node = tree
    for k in keys[:-1]:
        child = node.get(k)
        if not isinstance(child, dict):
            if value is None:
                return
            child = node[k] = {}
        node = child
    if value is None:
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = value


def open_live(live_dir: Path, resumed: bool, step: int) -> Any:
    """A dvclive logger on `live_dir` at `step`, continuing its history when `resumed`."""
    from dvclive import Live

    live = Live(str(live_dir), resume=resumed, dvcyaml=False, save_dvc_exp=False)
    live.step = step
    return live


def end_live_step(live: Any, validated: bool) -> None:
    """Close a step's dvclive rows: metrics.json written and the step advanced, as
    `next_step` does; dvclive's full `next_step` only where the step was validated.

    Why not `next_step` every step: it also prepares a DVC Studio update, and dvclive 3.49
    re-reads every metric .tsv in full to do so even when no Studio is configured, a cost that
    grows with the run's length (docs/measurements.md, "The loop around the step"). The rows, metrics.json
    and the steps written are the same either way; Studio and the VS Code extension hear of
    the run at each validation."""
    if validated:
        live.next_step()
    else:
        live.make_summary()
        live.step += 1


def save_checkpoint(path: Path, obj: dict[str, Any]) -> None:
    """torch.save to `path` atomically (a temp file renamed over it)."""
    # Through a file object: saving to a path, torch reports a full disk as a RuntimeError with
    # no errno, which would slip past atomic_path's clear disk-full message.
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)
