"""Where work runs: the torch device, worker processes and their pools, and the allocator
setting for long runs."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.pool import Pool
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported lazily so the data stages do not load it
    import torch


def resolve_device(name: str) -> torch.device:
    """'auto' is CUDA when available, else CPU; any other name is passed to torch as it is."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def worker_count(requested: int) -> int:
    """Worker processes to use: `requested`, or all usable cores when it is 0."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(requested, available) if requested > 0 else available)


def limit_heap_fragmentation(threshold: int = 65536) -> bool:
    """Serve allocations of `threshold` bytes or more from mmap, so they go back to the OS when
    freed (glibc's mallopt M_MMAP_THRESHOLD; a no-op elsewhere). Returns whether it applied.

    Why: the aligner allocates batches of ever-different shapes; on glibc's heap that fragments
    and peak memory grows with corpus size (benchmarks/precompute_throughput.py measures it).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_mmap_threshold = -3
    return bool(libc.mallopt(m_mmap_threshold, threshold))


# How long a pool may take to shut down before its workers are killed: finished workers exit in
# milliseconds, so this only ever runs out when one is stuck.
POOL_SHUTDOWN_SECONDS = 10.0


def worker_context(preload: Sequence[str] = ()) -> multiprocessing.context.BaseContext:
    """The multiprocessing context every worker process of the pipeline starts from (process
    pools, DataLoader workers): a fork server, see `process_pool` for why. `preload` names the
    modules the server imports before forking workers; it takes effect when this process's
    fork server starts (its first worker), and later workers share that server."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(preload))
    return ctx


@contextmanager
def process_pool(
    workers: int,
    *,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
    preload: Sequence[str] = (),
    shutdown_seconds: float = POOL_SHUTDOWN_SECONDS,
) -> Iterator[Pool]:
    """A `multiprocessing` pool of `workers` processes that is safe to start from a process
    that runs threads, and that shuts down in bounded time however its body ends.

    Why not the default `fork`: by the time a stage starts its pool, the process runs zarr's
    asyncio I/O thread, tqdm's monitor and dvclive's workers; a child forked from it inherits
    every lock those threads held at that instant, with no thread left to release them, and can
    block forever (issue 29: precompute's pool hung in `Pool.terminate` with a zombie worker).
    Workers come instead from a fork server: a fresh interpreter, started once per process,
    that imports the modules in `preload` (the worker functions' own, so each worker starts
    warm) before it has any thread of ours; the only threads it then holds are OpenBLAS's and
    jemalloc's, and both register fork handlers.

    The pool is closed and joined on success, terminated on any exception (Ctrl-C included);
    either way, if it has not finished after `shutdown_seconds`, its workers are killed and
    the pool's own threads abandoned (they are daemons), so a stuck worker can never hang the
    caller. Functions and arguments given to the pool must be importable from a module (they
    are pickled), and the workers see no monkeypatching done in this process.
    """
    pool = worker_context(preload).Pool(workers, initializer=initializer, initargs=initargs)
    try:
        yield pool
    except BaseException:
        _shut_down(pool, pool.terminate, shutdown_seconds)
        raise
    pool.close()
    _shut_down(pool, pool.join, shutdown_seconds)


def _shut_down(pool: Pool, how: Callable[[], None], seconds: float) -> None:
    """Run `how` (the pool's join or terminate) for at most `seconds`; past that, kill the
    workers and leave the pool's threads behind. Both shutdown paths can block without end:
    terminate waits for the task queue's lock, which a dead or deadlocked worker may hold for
    good (issue 29's hang), and join waits for every worker to exit."""
    # The worker processes, read before shutting down (the pool forgets them as it goes); a
    # private attribute, but the only handle on them, and stable since Python 3.2.
    procs = list(getattr(pool, "_pool", []))
    done = threading.Thread(target=how, name="hamgara-pool-shutdown", daemon=True)
    done.start()
    done.join(seconds)
    if not done.is_alive():
        return
    for p in procs:
        if p.is_alive():
            p.kill()
    print(
        f"warning: a worker pool did not shut down within {seconds:g} s; its {len(procs)} worker(s) were killed",
        file=sys.stderr,
    )
