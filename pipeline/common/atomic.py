"""Atomic file and folder writes: write to a temporary sibling, then rename.

A reader (or a later DVC stage) therefore sees either the old complete file or the new
complete file, never a half-written one, even when the writer is killed.

What may be replaced (so that nothing of the user's is ever deleted):
  - a file target replaces only a regular file (or a symbolic link to one, which is replaced
    as a link, never written through); a folder, a link to a folder or a special file there is
    an `OutputPathError` naming the path and what is there;
  - a folder target (`folder=True`) replaces only a folder this module wrote, recognised by the
    marker file `MARKER` inside it, or an empty folder; any other folder is refused.

Temporary siblings are named `.{name}.tmp-{pid}` and `.{name}.old-{pid}`. A killed writer leaves
them behind; the next write of the same target removes those whose process is gone, and
`clean_stale_temps(folder)` does it for a whole folder. A full disk (ENOSPC, EDQUOT) surfaces as
a `DiskFullError` naming the path and the free space, with the temporary removed and the old
target intact.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Inside every folder output: marks it as ours, so a later write may replace it. A hidden name,
# so that listings skip it; zarr opens a store with it (it warns only when listing members).
MARKER = ".hamgara-output"
MARKER_TEXT = "Written by Hamgara; a later run may replace this folder as a whole.\n"

_TEMP = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-(?P<pid>\d+)$")
_FULL = (errno.ENOSPC, errno.EDQUOT)


class OutputPathError(ValueError):
    """An output path holds something that is not ours to replace; the message names it."""


class DiskFullError(OSError):
    """The disk (or the quota) filled up while writing a path; the message names it and the free space."""

    def __str__(self) -> str:
        # The plain message, without OSError's "[Errno 28]" prefix: run_stage prints it as is.
        return str(self.strerror)


@contextmanager
def atomic_path(target: str | Path, folder: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `target`; on success rename it over `target`.

    `folder=True` for a folder output (the body creates a folder at the yielded path); it is
    marked as ours. Before any work, and again before the rename, `target` is checked: only a
    regular file (file target) or a folder of ours (folder target) is replaced, otherwise
    `OutputPathError`. On an exception the temporary path is removed and `target` is left
    untouched; a full disk becomes `DiskFullError`.
    """
    target = Path(target)
    _make_parent(target)
    check_output_path(target, folder)
    clean_stale_temps(target.parent, target.name)
    tmp = _sibling(target, "tmp")
    _remove_temp(tmp)  # our own pid's leftover from an earlier failed write
    try:
        yield tmp
        _check_written(tmp, target, folder)
        check_output_path(target, folder)  # the work may have taken long: look again
        if folder:
            _replace_folder(tmp, target)
        else:
            os.replace(tmp, target)
    except Exception as e:  # a library may wrap the OSError(ENOSPC) in an error of its own
        code = _disk_full(e)
        if code is None or isinstance(e, DiskFullError):
            raise
        raise disk_full_error(target, code) from e
    finally:
        _remove_temp(tmp)


def _sibling(target: Path, kind: str) -> Path:
    return target.with_name(f".{target.name}.{kind}-{os.getpid()}")


def _make_parent(target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as e:
        raise OutputPathError(
            f"{target}: cannot create its folder {target.parent}: a file is in the way; "
            "move it away or choose another path"
        ) from e


def check_output_path(target: Path, folder: bool = False) -> None:
    """Raise OutputPathError unless whatever is at `target` may be replaced by a file (or, with
    `folder`, a folder) output: see the module doc. Commands call it up front, before any work."""
    kind = _kind(target)
    if kind is None:
        return
    if not folder:
        if kind in ("file", "link to a file", "dangling link"):
            return
        raise OutputPathError(
            f"{target}: is {_article(kind)}, not a file; move it away or choose another path (nothing was written)"
        )
    if kind == "folder":
        if (target / MARKER).is_file() or not any(target.iterdir()):
            return
        raise OutputPathError(
            f"{target}: exists and was not written by Hamgara; move it away or choose another path "
            f"(nothing was written; Hamgara marks the folders it writes with a {MARKER} file)"
        )
    raise OutputPathError(
        f"{target}: is {_article(kind)}, where a folder is written; move it away or choose another path "
        "(nothing was written)"
    )


def _kind(path: Path) -> str | None:
    """What is at `path`, in words; None when nothing is."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(mode):
        try:
            followed = path.stat().st_mode
        except (FileNotFoundError, NotADirectoryError):
            return "dangling link"
        if stat.S_ISREG(followed):
            return "link to a file"
        return "link to a folder" if stat.S_ISDIR(followed) else "link to a special file"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISFIFO(mode):
        return "named pipe"
    return "socket" if stat.S_ISSOCK(mode) else "device or other special file"


def _article(kind: str) -> str:
    return f"a {kind}" if kind != "file" else "a regular file"


def _check_written(tmp: Path, target: Path, folder: bool) -> None:
    """The body wrote what the call promised; mark a folder as ours."""
    if folder:
        if not tmp.is_dir():
            raise TypeError(f"{target}: atomic_path(folder=True) expects a folder at {tmp}")
        (tmp / MARKER).write_text(MARKER_TEXT, encoding="utf-8")
    elif tmp.is_dir():
        raise TypeError(f"{target}: a folder was written at {tmp}; pass folder=True")


def _replace_folder(tmp: Path, target: Path) -> None:
    """Rename `tmp` over `target`: a folder of ours is moved aside first (rename cannot replace a
    non-empty folder) and put back if the rename fails; an empty folder is replaced by rename."""
    if not target.is_dir() or not (target / MARKER).is_file():
        os.replace(tmp, target)  # nothing there, or an empty folder (checked just before)
        return
    old = _sibling(target, "old")
    _remove_temp(old)
    os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(old, target)
        raise
    shutil.rmtree(old)  # our own output, marked, moved aside a moment ago


def _remove_temp(path: Path) -> None:
    """Remove a temporary sibling (named by this module, so ours, folder or file)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def clean_stale_temps(folder: str | Path, name: str | None = None) -> list[Path]:
    """Remove the temporary siblings (`.NAME.tmp-PID`, `.NAME.old-PID`) in `folder` that a killed
    writer left behind, and return them. Only those whose process is gone: another live writer's
    temp is kept. `name` limits it to the temps of one target. Call it at start-up on a folder of
    outputs (models/); every atomic write also does it for its own target."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        found = _TEMP.match(path.name)
        if found is None or (name is not None and found["name"] != name):
            continue
        if _alive(int(found["pid"])):
            continue
        _remove_temp(path)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    """Whether a process `pid` exists (ours counts as alive: our own temp is handled by its writer)."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    except OverflowError:
        return False  # not a pid at all
    return True


def _disk_full(e: BaseException) -> int | None:
    """The ENOSPC/EDQUOT errno behind `e` (itself or its cause), or None."""
    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _FULL:
            return seen.errno
        seen = seen.__cause__ or seen.__context__
    return None


def disk_full_error(path: str | Path | None, code: int = errno.ENOSPC, atomic: bool = True) -> DiskFullError:
    """A one-line DiskFullError: what filled up, the path being written (when known), the free
    space left on its filesystem, what to do. `atomic`: the write was undone (atomic_path's)."""
    what = "disk quota exceeded" if code == errno.EDQUOT else "no space left on the disk"
    probe = Path(path) if path is not None else Path.cwd()
    probe = next((p for p in (probe, *probe.parents) if p.exists()), Path("."))
    try:
        free = f"{_size(shutil.disk_usage(probe).free)} free on that filesystem"
    except OSError:
        free = "free space unknown"
    if path is None:
        message = f"{what} ({free}, the one of {probe})"
    else:
        message = f"{path}: {what} while writing it ({free})"
    undone = "; nothing half-written was kept" if atomic else ""
    return DiskFullError(code, f"{message}{undone}; free some space and rerun", None if path is None else str(path))


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def write_text(target: str | Path, text: str) -> None:
    """Atomically write `text` (UTF-8) to `target`."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: str | Path, obj: Any) -> None:
    """Atomically write `obj` as indented JSON to `target`."""
    write_text(target, json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False) + "\n")


def write_wav(target: str | Path, wave: Any, sample_rate: int) -> None:
    """Atomically write a mono float wave as 16-bit PCM WAV (clipped to [-1, 1])."""
    import io

    import numpy as np
    import soundfile as sf

    # Encoded in memory, then written by Python: libsndfile writing to a full disk fails with an
    # assertion or a vague error, Python's write with OSError(ENOSPC), which becomes DiskFullError.
    buffer = io.BytesIO()
    sf.write(
        buffer, np.clip(np.asarray(wave, dtype=np.float32), -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV"
    )
    with atomic_path(target) as tmp:
        tmp.write_bytes(buffer.getvalue())
