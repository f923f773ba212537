"""Jobs for tests/test_process_pool.py: pool workers import them by module name."""

from __future__ import annotations

import threading

# Held by a thread of the test process while a pool starts: a worker that inherited it held
# (a forked child of a threaded process) can never take it.
LOCK = threading.Lock()


def under_lock(x: int) -> int:
    """`x`, once LOCK could be taken in this worker."""
    with LOCK:
        return x
