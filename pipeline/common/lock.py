"""One run at a time per output folder: a lock file beside the folder, held while a command writes.

Two `train` runs on the same models/ and dvclive/ would both run to the end, interleaving the
history and letting the later writer's worse best.pt replace the better one (issue 29). The lock
is an exclusive `flock` on `<parent>/.<folder name>.hamgara-lock`: the kernel takes it
atomically and releases it when its holder exits, however it exits, so a lock left by a killed
run is free to the next one without any judgement of whether its owner is alive. The file also
records the owner's pid, host, command and start time, so a refused run can name who holds it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

LOCK_SUFFIX = ".hamgara-lock"


class FolderBusyError(OSError):
    """Another live process holds the folder's lock; the message names the folder and that process."""


def lock_path(folder: Path) -> Path:
    """The lock file of `folder`: a hidden sibling, so it is never part of the folder's contents
    (DVC caches the folder; a lock inside it would be cached with it)."""
    folder = Path(folder)
    name = folder.resolve().name if folder.name in ("", ".", "..") else folder.name
    return folder.parent / f".{name}{LOCK_SUFFIX}"


@contextmanager
def folder_lock(folder: Path, command: str) -> Iterator[None]:
    """Hold `folder`'s lock while the body runs, for the command named `command`; refuse at once
    with FolderBusyError when another process holds it. The lock file is removed on exit."""
    path = lock_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _take(path, folder)
    try:
        owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": command,
            "argv": sys.argv,
            "since": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(owner) + "\n").encode(), 0)
        yield
    finally:
        # Unlinked while still held, so a process that opens the path after this takes a new
        # file: it can never lock the old inode and believe it holds the folder.
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        os.close(fd)


@contextmanager
def folder_locks(folders: list[Path], command: str) -> Iterator[None]:
    """Hold the locks of several folders (a command's outputs), taken in a fixed order so that
    two commands wanting the same pair cannot each wait on the other."""
    with ExitStack() as stack:
        for folder in sorted(folders, key=lambda f: str(Path(f).resolve())):
            stack.enter_context(folder_lock(folder, command))
        yield


def _take(path: Path, folder: Path) -> int:
    """Open and lock `path`, retrying when the file it opened was unlinked by a holder that just
    finished (its inode is no longer the path's). Raises FolderBusyError when the lock is held."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise FolderBusyError(_busy_message(path, folder)) from None
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def _busy_message(path: Path, folder: Path) -> str:
    try:
        owner = json.loads(path.read_text(encoding="utf-8"))
        who = (
            f"{owner.get('command', 'a command')} (pid {owner.get('pid')} on {owner.get('host')}, "
            f"since {owner.get('since')})"
        )
    except (OSError, ValueError):
        who = "another process (it has not written its name yet)"
    return (
        f"{folder} is in use by {who}: two runs writing one folder would overwrite each other's "
        f"results. Wait for it to finish or stop it, or give this run other output folders (lock: {path})"
    )
