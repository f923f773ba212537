"""One entry wrapper for every command, so all of them fail the same way with the same exit codes.

Exit codes (README, "Exit codes"):
  0  done
  1  an unexpected error: a bug of ours; Python prints the traceback (please report it)
  2  bad input or params: the message names the file, row or key and what to change
     (or a full disk: one line naming the path being written and the free space left)
  3  the work started and could not finish (training diverged, festival failed); what was
     already written is kept, and rerunning resumes where the stage supports it
  4  the command ran and its verdict is negative (validate: no usable row; doctor: a problem)
  130 interrupted (Ctrl-C, SIGTERM); what was saved is said
Set HAMGARA_TRACEBACK=1 to see the traceback behind a code-2 or code-3 message.
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


class RunAborted(RuntimeError):
    """The work started and cannot go on; the message says why and what was kept."""


def run_stage(name: str, work: Callable[[], int]) -> int:
    """Run a command's `work` and turn the errors a user can act on into one line on stderr
    and the exit code above. Anything else propagates with its traceback: that is a bug."""
    try:
        return work()
    except KeyboardInterrupt as e:
        print(f"{name}: {e}" if str(e) else f"{name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, OSError) as e:  # ConfigError, MetadataError, CheckpointError, a missing file, a full disk
        _report(name, e)
        return EXIT_BAD_INPUT
    except RunAborted as e:  # TrainingAborted, FestivalError
        _report(name, e)
        return EXIT_ABORTED


def _report(name: str, e: BaseException) -> None:
    if os.environ.get("HAMGARA_TRACEBACK"):
        raise e
    print(f"{name}: error: {_message(e)}", file=sys.stderr)


def _message(e: BaseException) -> str:
    """The message of `e`; a full disk met outside an atomic write (a library writing on its own,
    zarr into the partial store) is said the same way as inside one: one line, path and free space."""
    if isinstance(e, OSError) and not isinstance(e, DiskFullError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return str(disk_full_error(e.filename, e.errno, atomic=False))
    return str(e)
