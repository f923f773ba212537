"""Where work runs: the torch device, worker processes, and the allocator setting for long runs."""

from __future__ import annotations

import ctypes
import os
from typing import TYPE_CHECKING

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
