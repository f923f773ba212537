"""One entry wrapper for every command, so all of them fail the same way with the same exit codes.

Exit codes (docs/troubleshooting.md, "Exit codes"):
  0  done
  1  an unexpected error: a bug of ours; Python prints the traceback (please report it)
  2  bad input or params: the message names the file, row or key and what to change
     (or a full disk: one line naming the path being written and the free space left)
  3  the work started and could not finish (training diverged, festival failed); what was
     already written is kept, and rerunning resumes where the stage supports it
  4  the command ran and its verdict is negative (validate: no usable row; doctor: a problem)
  130 interrupted (Ctrl-C, SIGTERM); what was saved is said
Set HAMGARA_TRACEBACK=1 to see the traceback behind a code-2 or code-3 message.
Which errors get which code is one table, `classify`, the same for every command.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable

from pipeline.common.atomic import DiskFullError, disk_full_error

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_ABORTED = 3
EXIT_VERDICT = 4
EXIT_INTERRUPTED = 130


# The top-level packages of this repository (pyproject's packages, and the benchmarks).
_OUR_PACKAGES = frozenset({"pipeline", "model", "benchmarks"})


class RunAborted(RuntimeError):
    """The work started and cannot go on; the message says why and what was kept."""


def run_stage(name: str, work: Callable[[], int]) -> int:
    """Run a command's `work` and turn the errors a user can act on into one line on stderr
    and the exit code above (`classify`). Anything else propagates with its traceback: a bug."""
    try:
        return work()
    except KeyboardInterrupt as e:
        print(f"{name}: {e}" if str(e) else f"{name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        verdict = classify(e)
        if verdict is None:
            raise
        code, message = verdict
        if os.environ.get("HAMGARA_TRACEBACK"):
            raise
        print(f"{name}: error: {message}", file=sys.stderr)
        return code


def classify(e: BaseException) -> tuple[int, str] | None:
    """The exit code and the one-line message for an error a user can act on, or None for a bug.

    One table for every command, so the same mistake exits the same way wherever it is met:
    - ours: ValueError (ConfigError, MetadataError, CheckpointError, DamagedStoreError, ...)
      and OSError (a missing file, a full disk, a folder in use) are bad input, exit 2;
      RunAborted (TrainingAborted, FestivalError) is work that could not finish, exit 3;
    - a library's, reached through our code before we could name it better: an audio file
      libsndfile cannot read (its message names the file), a package that cannot be imported
      (a broken or partial install), exit 2; memory exhausted (CPU or GPU), exit 3 with the knob
      that sizes the work.
    """
    if isinstance(e, RunAborted):
        return EXIT_ABORTED, _message(e)
    if isinstance(e, (ValueError, OSError)):
        return EXIT_BAD_INPUT, _message(e)
    soundfile = sys.modules.get("soundfile")  # not imported: the error cannot be one of its
    if soundfile is not None and isinstance(e, soundfile.SoundFileError):
        return EXIT_BAD_INPUT, f"an audio file cannot be read: {_message(e)}"
    # Only a package of the environment is an incomplete install; an import of our own code that
    # fails (or one that names no module) is a bug, and keeps its traceback.
    if isinstance(e, ImportError) and e.name and e.name.partition(".")[0] not in _OUR_PACKAGES:
        missing = e.name
        return EXIT_BAD_INPUT, (
            f"the package {missing} cannot be imported ({_message(e)}): the install is incomplete; "
            "rerun ./setup.sh (or pip install -e .) in this environment"
        )
    torch = sys.modules.get("torch")
    if isinstance(e, MemoryError) or (torch is not None and isinstance(e, torch.OutOfMemoryError)):
        return EXIT_ABORTED, (
            f"out of memory ({_message(e) or type(e).__name__}): lower train.batch_size (or eval.batch_size, "
            "or synth --batch-size); what was saved before is kept"
        )
    return None


# torch's DataLoader re-raises a worker's exception in the main process as the same type, built
# from a message that holds the worker's whole traceback; its original message is the last line.
_WORKER_TRACEBACK = "Original Traceback (most recent call last):"


def _message(e: BaseException) -> str:
    """The message of `e` as one line: a full disk met outside an atomic write (a library
    writing on its own, zarr into the partial store) is said as inside one (path and free
    space); an error re-raised from a data-loading worker is said as the worker said it."""
    if isinstance(e, OSError) and not isinstance(e, DiskFullError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return str(disk_full_error(e.filename, e.errno, atomic=False))
    text = str(e)
    if _WORKER_TRACEBACK in text:
        last = text.rstrip().splitlines()[-1]
        # As the traceback module names the type: bare for builtins, else with its module.
        for prefix in (f"{type(e).__module__}.{type(e).__qualname__}: ", f"{type(e).__qualname__}: "):
            if last.startswith(prefix):
                return last[len(prefix) :]
        return last
    return text
